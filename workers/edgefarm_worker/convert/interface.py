"""What a conversion takes and gives back: the compile task builds a CompileRequest, gets a CompiledModel or a
ConversionError whose text is shown to the user as the job's failure reason."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from edgefarm.options import CompileOptions
from edgefarm.wire import CompileResult, TensorSpec


@dataclass
class CompileRequest:
    source_path: Path  # the uploaded model file (read only)
    source_format: Literal["onnx", "torchscript"]
    options: CompileOptions
    # Required for TorchScript (names, shapes and dtypes of the inputs, in order); for ONNX optional: fixes
    # dynamic dimensions and must agree with the model otherwise.
    input_specs: dict[str, TensorSpec] | None
    # Per source input name: stacked samples, shape (N, *input_shape) in the source layout.
    calibration: dict[str, np.ndarray] | None
    workdir: Path  # an empty directory owned by this conversion; everything is written there
    # The user's verification inputs, in the calibration data's form; without them the calibration samples, else
    # seeded random inputs, are what source and target are compared on.
    verification: dict[str, np.ndarray] | None = None
    # A strategy that produced a verified target for the same model and options before: tried first.
    preferred_strategy: str | None = None
    # Strategies during which earlier attempts of this job died (the worker process killed by a segfault or the
    # OOM killer, twice): recorded as crashed and not tried again.
    crashed_strategies: list[str] = field(default_factory=list)
    # Told each strategy's start and outcome (as "strategy NAME: started" / "strategy NAME: OUTCOME"), so that
    # a process that dies mid-strategy leaves a trace the next attempt reads.
    progress: Callable[[str], None] = lambda message: None  # noqa: E731


@dataclass
class CompiledModel:
    path: Path  # the target model file, inside the request's workdir
    result: CompileResult


class ConversionError(Exception):
    """A conversion that cannot succeed as asked. The text is for the user: what the converter said, the node it
    stopped at and, when known, the fix."""


class ConverterCrashed(ConversionError):
    """A converter's native code died in its child process: the attempt's outcome is "crashed", and the chain
    goes on."""


def first_line(exc: BaseException, limit: int = 400) -> str:
    """The part of a converter's exception worth showing: its first line, or its type when it says nothing."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__
