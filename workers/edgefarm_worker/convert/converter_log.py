"""Collects what the converters say, so a failure can quote them and a success can keep a short log tail.

onnx2tf prints (it does not log) and calls sys.exit; TensorFlow and the ONNX Runtime quantizer use `logging`.
Everything printed or logged by the converting thread while `capture()` is active lands here instead of the
worker's own stdout/stderr.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import threading
from collections.abc import Iterator

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _ThreadHandler(logging.Handler):
    """Keeps only records of one thread: the compile task runs a lease-renewal thread beside the conversion."""

    def __init__(self, stream: io.StringIO) -> None:
        super().__init__(logging.INFO)
        self._stream = stream
        self._thread = threading.get_ident()
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self._thread:
            self._stream.write(self.format(record) + "\n")


class ConverterLog:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self._stream: io.StringIO | None = None  # while capturing: everything goes here, in order

    def note(self, message: str) -> None:
        """One of our own steps, in the same log as the converters' messages."""
        line = f"[edgefarm] {message}"
        if self._stream is not None:
            self._stream.write(line + "\n")
        else:
            self.lines.append(line)

    @contextlib.contextmanager
    def capture(self) -> Iterator[None]:
        self._stream = io.StringIO()
        handler = _ThreadHandler(self._stream)
        root = logging.getLogger()
        root.addHandler(handler)
        try:
            with contextlib.redirect_stdout(self._stream), contextlib.redirect_stderr(self._stream):
                yield
        finally:
            root.removeHandler(handler)
            self.lines.extend(clean(self._stream.getvalue()).splitlines())
            self._stream = None

    def errors(self) -> list[str]:
        """The lines a converter flagged as errors (onnx2tf prefixes them with 'ERROR:'), without tracebacks."""
        lines = self.lines + (clean(self._stream.getvalue()).splitlines() if self._stream is not None else [])
        return [line.strip() for line in lines if line.lstrip().startswith("ERROR:")]

    def tail(self, lines: int = 40) -> str:
        kept = [line for line in self.lines if line.strip()]
        return "\n".join(kept[-lines:])


def clean(text: str) -> str:
    """onnx2tf colours its output; users read it in a browser."""
    return _ANSI.sub("", text)
