"""The user's calibration samples: checked against the model's inputs, then fed to the quantizers, and used to
keep onnx2tf offline.

Samples arrive per source input name, stacked: (N, *input_shape) in the source layout. For a batch-1 input the
batch axis may be left out ((N, 3, H, W) for an input of shape (1, 3, H, W)).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from edgefarm.options import CompileOptions
from edgefarm.wire import TensorInfo

from .interface import ConversionError

# onnx2tf reads this file from the current directory before it tries to download it (see DESIGN.md).
ONNX2TF_SAMPLE_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"
_ONNX2TF_SAMPLE_COUNT = 20


def require(options: CompileOptions, calibration: dict[str, np.ndarray] | None) -> None:
    """Quantizing to integers without the user's data would mean guessing activation ranges: refuse instead."""
    if options.needs_calibration and not calibration:
        raise ConversionError(
            f"--quantize_full_type {options.quantize_full_type} needs calibration data: typical inputs that set the "
            "quantization ranges. Pass calibration_data={'<input name>': [sample, ...]} to submit_compile_job "
            "(or a calibration dataset id), one entry per model input, each sample shaped like the input in the "
            "source layout; a few dozen to a few hundred representative samples are enough."
        )


def check(calibration: dict[str, np.ndarray], inputs: list[TensorInfo]) -> dict[str, np.ndarray]:
    """The samples as (N, *input_shape) arrays of the input's dtype, or a ConversionError naming the input."""
    names = [i.name for i in inputs]
    unknown = [name for name in calibration if name not in names]
    missing = [name for name in names if name not in calibration]
    if unknown or missing:
        problems = []
        if unknown:
            problems.append(f"has data for {', '.join(map(repr, unknown))}, which the model does not take")
        if missing:
            problems.append(f"has no data for {', '.join(map(repr, missing))}")
        raise ConversionError(
            f"the calibration data {' and '.join(problems)}; the model's inputs are: {', '.join(map(repr, names))}"
        )
    checked: dict[str, np.ndarray] = {}
    for info in inputs:
        samples = np.asarray(calibration[info.name])
        shape = tuple(int(d) for d in info.shape)
        if samples.shape[1:] != shape:
            if shape[:1] == (1,) and samples.shape[1:] == shape[1:]:
                samples = samples[:, None]
            else:
                raise ConversionError(
                    f"calibration data for input {info.name!r}: expected samples of shape {shape} stacked as "
                    f"(N, {', '.join(map(str, shape))}), got an array of shape {samples.shape}"
                )
        if len(samples) == 0:
            raise ConversionError(f"calibration data for input {info.name!r} holds no samples")
        if samples.dtype.kind not in "biuf":
            raise ConversionError(
                f"calibration data for input {info.name!r} has dtype {samples.dtype}; the input takes {info.dtype}"
            )
        if samples.dtype.kind == "f" and not np.isfinite(samples).all():
            raise ConversionError(f"calibration data for input {info.name!r} contains NaN or infinite values")
        checked[info.name] = samples.astype(info.dtype, copy=False)
    counts = {name: len(s) for name, s in checked.items()}
    if len(set(counts.values())) > 1:
        raise ConversionError(f"calibration inputs must hold the same number of samples; got {counts}")
    return checked


def samples(calibration: dict[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
    """One {input name: array shaped like the input} per sample."""
    count = len(next(iter(calibration.values())))
    for index in range(count):
        yield {name: stacked[index] for name, stacked in calibration.items()}


def example(inputs: list[TensorInfo], calibration: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    """One input set for probing a converted graph: the first calibration sample, else fixed pseudo-random data."""
    if calibration:
        return next(samples(calibration))
    rng = np.random.default_rng(0)
    return {
        i.name: rng.random(i.shape).astype(i.dtype) if np.dtype(i.dtype).kind == "f" else np.zeros(i.shape, i.dtype)
        for i in inputs
    }


def write_onnx2tf_sample(workdir: Path, calibration: dict[str, np.ndarray] | None, inputs: list[TensorInfo]) -> Path:
    """Put onnx2tf's sample-image file where it looks first, so it never downloads one.

    onnx2tf feeds these NHWC images (resized to the input size) to ONNX Runtime to check its own conversion of
    models with 3-channel image inputs. The user's images serve that best; without them, a smooth gradient in
    [0, 1] is the harmless stand-in.
    """
    images = None
    for info in inputs:
        if calibration and len(info.shape) == 4 and info.shape[1] == 3:
            nchw = calibration[info.name].reshape(-1, *info.shape[1:]).astype(np.float32)
            images = nchw.transpose(0, 2, 3, 1)
            break
    if images is None:
        ramp = np.linspace(0.0, 1.0, 128, dtype=np.float32)
        image = np.stack([ramp[None, :].repeat(128, 0), ramp[:, None].repeat(128, 1), np.full((128, 128), 0.5)], -1)
        images = image[None].astype(np.float32)
    reps = -(-_ONNX2TF_SAMPLE_COUNT // len(images))
    path = workdir / ONNX2TF_SAMPLE_FILE
    np.save(path, np.concatenate([images] * reps)[:_ONNX2TF_SAMPLE_COUNT])
    return path
