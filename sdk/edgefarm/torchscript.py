"""The farm's policy for TorchScript uploads, checked by the gateway at upload and by the worker before it loads one.

A TorchScript archive is code. Loading it runs the `__setstate__` methods its classes define, and exporting it runs
`forward`; either may call any operator TorchScript has, among them `aten::from_file` and `aten::save`, which read
and write any file the worker can (a sweep read the data dir's admin token that way, baked into the compiled model
the user then downloaded). The policy:

- an archive whose code defines `__setstate__` is refused before anything loads it (here, from the zip's text);
- after loading, every operator `forward` can reach must be a tensor computation: the `aten` and `prim` namespaces,
  less the operators that take a file name (`aten::from_file`, `aten::save`, read from torch's own schemas so a
  newer torch's are found too). The worker checks this (edgefarm_worker.convert.from_torchscript).
ONNX and TFLite uploads carry no code and are not affected.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

CODE_LIMIT = 64 << 20  # bytes of code text read from one archive, at most (a zip bomb stops here)
_SETSTATE = re.compile(rb"^\s*def __setstate__\s*\(", re.MULTILINE)


class TorchScriptRefused(Exception):
    """The archive breaks the policy; the text says what and how to upload instead."""


def check_archive(path: Path) -> None:
    """Refuses an archive whose code runs when it is loaded."""
    budget = CODE_LIMIT
    with zipfile.ZipFile(path) as archive:
        for entry in archive.infolist():
            if "/code/" not in entry.filename or not entry.filename.endswith(".py"):
                continue
            with archive.open(entry) as f:
                text = f.read(budget + 1)
            budget -= len(text)
            if budget < 0:
                raise TorchScriptRefused(f"the TorchScript archive holds more than {CODE_LIMIT >> 20} MB of code")
            if _SETSTATE.search(text):
                raise TorchScriptRefused(
                    f"the TorchScript code defines __setstate__ ({entry.filename.split('/code/', 1)[1]}), which "
                    "runs when the archive is loaded; the farm does not run code at load time: drop the custom "
                    "__getstate__/__setstate__, or upload the model as ONNX")
