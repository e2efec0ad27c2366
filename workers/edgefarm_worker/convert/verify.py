"""Every compile proves itself: the source model and the compiled target run on the same inputs on the worker, and
each target output, brought back to the source's terms, is compared with the source output of the same name.

The source runs in ONNX Runtime exactly as uploaded (before the farm simplified it), so a wrong constant folding is
caught as surely as a wrong conversion; a TorchScript source runs as its exported ONNX. The target runs in the
runtime it was built for: LiteRT for TFLite, ONNX Runtime for QDQ ONNX. Target tensors are fed and read by their
recorded names and converted with the recorded layout and quantization (edgefarm.tensors, the same functions the
device agents use), so verification checks the very facts later jobs rely on; nothing is matched by position.

Float targets (FP32, FP16) must agree within the tolerances below; a mismatch is not a success. Quantized
targets are never failed on accuracy (pipelines' gates decide that), but a wrong shape, a very low SNR or poor
top-1 agreement is a warning on the job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import json

import numpy as np
from edgefarm.tensors import from_target, to_target
from edgefarm.wire import OutputCheck, TensorInfo, Verification

from . import calibration as calib
from . import child
from .interface import ConversionError, first_line

# Samples verified per compile: enough to see a wrong axis or a broken branch, few enough to cost well under a
# second on the models the corpus holds (bench/corpus.py).
SAMPLES = 4
CHILD_TIMEOUT = 600.0  # seconds for the LiteRT child to run them: far above any corpus model (~1 s)


@dataclass(frozen=True)
class Tolerance:
    relative_error: float  # max |target - source| / max |source|, per output over all samples
    cosine: float  # cosine similarity of the flattened outputs, at least


# Set from the corpus (docs/compile.md has the figures). FP32 targets agree with ONNX Runtime to a relative error
# of 8e-8 to 9e-5 (45 models); FP16 weights cost up to 6.2e-2 relative (YOLOv8n's scores) with a cosine of at
# least 0.99962 (ResNet-50). Wrong conversions seen: relative error 0.5 to 1.3, cosine 0.19 to 0.53. The limits sit
# above the worst correct model and well below the best wrong one.
TOLERANCES = {
    "float32": Tolerance(relative_error=1e-3, cosine=0.99999),
    "float16": Tolerance(relative_error=1e-1, cosine=0.999),
}
# Quantized targets: below this SNR (dB) or this top-1 agreement a person should look before trusting the model.
LOW_SNR_DB = 10.0
LOW_TOP1_AGREEMENT = 0.5
SNR_CAP_DB = 150.0  # an output equal to float precision; keeps the figure finite (JSON has no infinity)


def verification_inputs(inputs: Sequence[TensorInfo], verification: dict[str, np.ndarray] | None,
                        calibration: dict[str, np.ndarray] | None) -> tuple[list[dict[str, np.ndarray]], str]:
    """Up to SAMPLES input sets in the source's terms, and where they came from."""
    for given, origin in ((verification, "verification data"), (calibration, "calibration data")):
        if given:
            samples = list(calib.samples(calib.check(given, list(inputs))))
            return samples[:SAMPLES], origin
    rng = np.random.default_rng(20261202)
    return [{i.name: _random(i, rng) for i in inputs} for _ in range(SAMPLES)], "seeded random inputs"


def _random(info: TensorInfo, rng: np.random.Generator) -> np.ndarray:
    """Floats from a standard normal; integers 0 or 1 (valid token ids, masks and indices for nearly any model:
    pass verification data for inputs that need more); booleans at random."""
    shape = [int(d) for d in info.shape]
    dtype = np.dtype(info.dtype)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    if dtype.kind in "iu":
        return rng.integers(0, 2, shape).astype(dtype)
    raise ConversionError(f"cannot make verification inputs for input {info.name!r} of type {dtype}: pass "
                          "verification_data (or calibration data) to the compile job")


def run_source(source_onnx: Path, output_names: Sequence[str], samples: list[dict[str, np.ndarray]]
               ) -> list[dict[str, np.ndarray]]:
    """The uploaded model in ONNX Runtime, without graph fusions (the reference the farm compares with)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    try:
        session = ort.InferenceSession(str(source_onnx), options, providers=["CPUExecutionProvider"])
        return [dict(zip(output_names, session.run(list(output_names), sample))) for sample in samples]
    except Exception as exc:  # noqa: BLE001  (ONNX Runtime's message names the node and the problem)
        raise ConversionError("ONNX Runtime cannot run the source model, so no conversion of it can be verified: "
                              f"{first_line(exc)}. The farm compiles only models ONNX Runtime runs: export with "
                              "standard ONNX operators and an IR version and opset ONNX Runtime "
                              f"{ort.__version__} supports") from None


def run_target(path: Path, target_format: str, inputs: Sequence[TensorInfo], outputs: Sequence[TensorInfo],
               samples: list[dict[str, np.ndarray]]) -> tuple[list[dict[str, np.ndarray]], list[str]]:
    """The compiled model on the worker's CPU, fed and read through its recorded tensor facts; outputs come back
    as float32 in the source's layout, under the source's names. Also returns warnings about running it."""
    feeds = [{i.name: to_target(_batched(sample[i.source_name or i.name], i), i) for i in inputs}
             for sample in samples]
    names = [o.name for o in outputs]
    if target_format == "tflite":
        values, notes = _run_tflite(path, feeds)
    else:
        values, notes = _run_onnx(path, feeds, names), []
    missing = [name for name in names if name not in values[0]]
    if missing:
        raise ConversionError(f"the target has no tensor {', '.join(map(repr, missing))} that its record names")
    return [{o.source_name or o.name: from_target(v[o.name], o) for o in outputs} for v in values], notes


def _batched(x: np.ndarray, info: TensorInfo) -> np.ndarray:
    return x.reshape([int(d) for d in info.shape]) if x.size == np.prod(info.shape) and x.ndim != len(info.shape) \
        else x


def _run_tflite(path: Path, feeds: list[dict[str, np.ndarray]]) -> tuple[list[dict[str, np.ndarray]], list[str]]:
    """LiteRT in a child process (litert_child says why); its builtin kernels give the numbers."""
    from . import litert_child  # here, not at the top: the child imports this package, and must not import itself

    feeds_path, outputs_path = path.with_suffix(".feeds.npz"), path.with_suffix(".outputs.npz")
    child.save_samples(feeds_path, feeds)
    try:
        stdout = child.run(litert_child.__name__, [str(path), str(feeds_path), str(outputs_path)], CHILD_TIMEOUT)
    except child.ChildFailed as exc:
        raise ConversionError(f"LiteRT failed {exc.stage} ({exc.how}" + (f": {exc.said[-1][:300]}" if exc.said else "")
                              + "): LiteRT cannot run the model the converter wrote") from None
    values = child.load_samples(outputs_path)
    refusal = json.loads(stdout.strip().splitlines()[-1])["xnnpack"]
    notes = [] if refusal is None else [
        f"LiteRT's default CPU delegate (XNNPACK) cannot run this model ({refusal}); it was verified with the "
        "builtin kernels, and on a device it runs only with --tflite_delegates none"]
    return values, notes


def _run_onnx(path: Path, feeds: list[dict[str, np.ndarray]], names: list[str]) -> list[dict[str, np.ndarray]]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [dict(zip(names, session.run(names, feed))) for feed in feeds]


def compare(reference: list[dict[str, np.ndarray]], target: list[dict[str, np.ndarray]],
            source_outputs: Sequence[TensorInfo], precision: str, origin: str, runtime: str,
            notes: Sequence[str] = ()) -> Verification:
    """Per source output: the errors over all samples, and the verdict for the whole target. `notes` are
    warnings from running the target (they make a quantized target's verdict "warning", never a float's
    "mismatch")."""
    tolerance = TOLERANCES.get(precision)
    checks: list[OutputCheck] = []
    warnings = list(notes)
    for info in source_outputs:
        ref = np.stack([r[info.name] for r in reference]).astype(np.float64)
        if info.name not in target[0]:
            checks.append(OutputCheck(name=info.name, shape=list(ref.shape[1:]), target_shape=None, passed=False))
            warnings.append(f"output {info.name!r} is missing from the target")
            continue
        got_shapes = {tuple(t[info.name].shape) for t in target}
        got_shape = list(next(iter(got_shapes)))
        if got_shapes != {tuple(ref.shape[1:])}:
            checks.append(OutputCheck(name=info.name, shape=list(ref.shape[1:]), target_shape=got_shape,
                                      passed=False))
            warnings.append(f"output {info.name!r} has shape {tuple(got_shape)} on the target but "
                            f"{tuple(ref.shape[1:])} in the source")
            continue
        got = np.stack([t[info.name] for t in target]).astype(np.float64)
        check = _measure(info.name, ref, got, quantized=tolerance is None)
        if tolerance is not None:
            check.passed = check.relative_error <= tolerance.relative_error and check.cosine >= tolerance.cosine
        else:
            if check.snr_db is not None and check.snr_db < LOW_SNR_DB:
                warnings.append(f"output {info.name!r}: SNR {check.snr_db:.1f} dB against the source is very low "
                                f"(below {LOW_SNR_DB:g} dB): check the calibration data")
            if check.top1_agreement is not None and check.top1_agreement < LOW_TOP1_AGREEMENT:
                warnings.append(f"output {info.name!r}: the top-1 class agrees with the source on "
                                f"{check.top1_agreement:.0%} of the samples")
        checks.append(check)
    if tolerance is not None:
        verdict = "verified" if all(c.passed for c in checks) else "mismatch"
    else:
        shapes_ok = all(c.target_shape == c.shape for c in checks)
        verdict = "verified" if shapes_ok and not warnings else "warning"
    return Verification(
        verdict=verdict, precision=precision, samples=len(reference), inputs=origin, runtime=runtime,
        tolerance=None if tolerance is None else {"relative_error": tolerance.relative_error,
                                                  "cosine": tolerance.cosine},
        outputs=checks, warnings=warnings)


def _measure(name: str, ref: np.ndarray, got: np.ndarray, *, quantized: bool) -> OutputCheck:
    diff = got - ref
    max_abs = float(np.abs(diff).max(initial=0.0)) if np.isfinite(got).all() else float("inf")
    scale = float(np.abs(ref).max(initial=0.0))
    relative = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    a, b = ref.ravel(), got.ravel()
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    if norms > 0:
        cosine = float(np.dot(a, b) / norms)
    else:
        cosine = 1.0 if max_abs == 0 else 0.0
    check = OutputCheck(name=name, shape=list(ref.shape[1:]), target_shape=list(got.shape[1:]),
                        max_abs_error=_finite(max_abs), relative_error=_finite(relative), cosine=_finite(cosine))
    if quantized:
        signal, noise = float(np.sum(ref ** 2)), float(np.sum(diff ** 2))
        check.snr_db = SNR_CAP_DB if noise <= signal * 10 ** (-SNR_CAP_DB / 10) else \
            (float(10 * np.log10(signal / noise)) if signal > 0 else None)
    classes = _class_axis(ref.shape[1:])
    if classes is not None:
        top_ref = ref.reshape(len(ref), -1).argmax(axis=1)
        top_got = got.reshape(len(got), -1).argmax(axis=1)
        check.top1_agreement = float(np.mean(top_ref == top_got))
    return check


def _class_axis(shape: tuple[int, ...]) -> int | None:
    """Class scores: one axis of 2 or more entries, every other axis 1 ((1, 1000), (1, 1000, 1, 1))."""
    wide = [axis for axis, size in enumerate(shape) if size > 1]
    return wide[0] if len(wide) == 1 and shape[wide[0]] >= 2 else None


def _finite(value: float) -> float:
    """JSON has no infinity or NaN: a target that produced them gets the largest float, which fails any check."""
    return value if np.isfinite(value) else float(np.finfo(np.float64).max)


def describe_failure(verification: Verification) -> str:
    """One sentence per output that failed, with its figures and the tolerance."""
    tolerance = verification.tolerance or {}
    parts = []
    for check in verification.outputs:
        if check.passed:
            continue
        if check.target_shape != check.shape:
            parts.append(f"output {check.name!r} has shape {tuple(check.target_shape or ())} instead of "
                         f"{tuple(check.shape)}")
        else:
            parts.append(f"output {check.name!r} differs from the source: relative error "
                         f"{check.relative_error:.2e} (tolerance {tolerance.get('relative_error', 0):.0e}), cosine "
                         f"{check.cosine:.6f} (at least {tolerance.get('cosine', 0)})")
    return (f"the {verification.precision} target does not compute what the source computes on "
            f"{verification.samples} {verification.inputs} sample(s): " + "; ".join(parts))
