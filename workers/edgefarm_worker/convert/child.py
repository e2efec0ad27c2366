"""Native code that may crash on a user's graph runs in a child process of the worker.

TensorFlow's calibrator segfaults on some graphs (an LSTM's INT8 calibration) and LiteRT aborts on some models
the converter writes (a full-INT8 ResNet-18). In the worker that kills the Celery pool process and, with it, every
later strategy of the job; in a child it is one attempt's named failure. A child says where it is with a STAGE
line on stderr before each step, because a process that dies leaves no message of its own, and enables
faulthandler, whose stack dump names the Python call the native code crashed under.
"""

from __future__ import annotations

import faulthandler
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

STAGE = "child stage: "
_NOISE = ("W0000", "I0000", "E0000", "WARNING: All log messages")  # absl/TF start-up chatter on stderr
# A faulthandler frame: '  File "/…/tensorflow/lite/python/optimize/calibrator.py", line 152 in _feed_tensors'
_FRAME = re.compile(r'^\s+File "(?P<path>[^"]+)", line \d+ in (?P<function>\S+)')


class ChildFailed(Exception):
    def __init__(self, stage: str, how: str, said: list[str], crashed_in: str | None) -> None:
        super().__init__(f"{stage} ({how})")
        self.stage = stage  # the last step the child announced
        self.how = how  # "killed by SIGSEGV", "exit status 3", "no answer after 600 s"
        self.said = said  # its stderr, less stage lines, start-up noise and the stack dump
        # The innermost Python frame of a crash dump: "optimize/calibrator.py:_feed_tensors".
        self.crashed_in = crashed_in
        self.signalled = how.startswith("killed by")


def stage(what: str) -> None:
    """In the child, before each step."""
    print(f"{STAGE}{what}", file=sys.stderr, flush=True)


def start() -> None:
    """In the child, first: a crash prints the Python stack, which the parent reads."""
    faulthandler.enable()


def run(module: str, args: list[str], timeout: float) -> str:
    """Runs `python -m module args…`; returns its stdout, or raises ChildFailed naming what happened."""
    try:
        child = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                               timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise _failure(_text(exc.stderr), f"no answer after {timeout:.0f} s") from None
    if child.returncode != 0:
        how = f"killed by {signal.Signals(-child.returncode).name}" if child.returncode < 0 \
            else f"exit status {child.returncode}"
        raise _failure(child.stderr, how)
    return child.stdout


def save_samples(path: Path, samples: list[dict[str, np.ndarray]]) -> None:
    """Samples to and from a child: "<sample>/<tensor name>" arrays in one .npz (no pickle either way)."""
    np.savez(path, **{f"{i}/{name}": value for i, sample in enumerate(samples) for name, value in sample.items()})


def load_samples(path: Path) -> list[dict[str, np.ndarray]]:
    samples: dict[int, dict[str, np.ndarray]] = {}
    with np.load(path, allow_pickle=False) as archive:
        for key in archive.files:
            index, _, name = key.partition("/")
            samples.setdefault(int(index), {})[name] = archive[key]
    return [samples[i] for i in sorted(samples)]


def _failure(stderr: str, how: str) -> ChildFailed:
    lines = stderr.splitlines()
    stage_ = next((line.removeprefix(STAGE) for line in reversed(lines) if line.startswith(STAGE)), "starting")
    dump = next((i for i, line in enumerate(lines) if line.startswith("Fatal Python error")), len(lines))
    frames = [m for line in lines[dump:] if (m := _FRAME.match(line))]
    crashed_in = None
    if frames:  # faulthandler lists the innermost frame first
        path = frames[0]["path"]
        crashed_in = f"{'/'.join(path.split('/')[-2:])}:{frames[0]['function']}"
    said = [line for line in lines[:dump] if line.strip() and not line.startswith((STAGE, *_NOISE))]
    return ChildFailed(stage_, how, said, crashed_in)


def _text(output: bytes | str | None) -> str:
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""
