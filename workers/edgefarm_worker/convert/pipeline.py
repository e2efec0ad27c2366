"""compile_model: source → (TorchScript export) → the request applied → per strategy: prepared ONNX → target →
verified against the source; the first verified target wins, and the CompileResult says how it was reached.

What the request itself gets wrong (an input spec, an output name, calibration data that does not fit) fails at
once: no strategy changes it. What a converter gets wrong, by failing, crashing or converting wrongly, moves on
to the next strategy; when none is left the job fails with every strategy's reason.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from dataclasses import dataclass

from edgefarm.wire import CompileResult, ConversionAttempt, strategy_ended, strategy_started

from . import calibration, from_torchscript, onnx_prep, strategies, to_onnx, to_tflite, verify
from .converter_log import ConverterLog
from .interface import CompiledModel, CompileRequest, ConversionError, ConverterCrashed, first_line
from .tensors import onnx_io

_log = logging.getLogger(__name__)
# A conversion changes the working directory and TensorFlow's global state: one at a time per process.
_LOCK = threading.Lock()


def warm_up() -> None:
    """Import the converter stack once per worker process, so the first job does not pay for it (~4 s).
    torch stays out: it is imported when a TorchScript model arrives."""
    # onnx2tf first: on import it sets TF_USE_LEGACY_KERAS and TF_CPP_MIN_LOG_LEVEL, which count only before
    # TensorFlow is imported.
    for module in ("onnx2tf", "tensorflow", "tf_keras", "onnxruntime.quantization", "onnxsim",
                   "ai_edge_litert.interpreter"):
        importlib.import_module(module)


def compile_model(request: CompileRequest) -> CompiledModel:
    with _LOCK:
        return _compile(request)


def _compile(request: CompileRequest) -> CompiledModel:
    started = time.monotonic()
    options = request.options
    calibration.require(options, request.calibration)
    workdir = request.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    log = ConverterLog()
    converters = []
    target = to_tflite if options.target_runtime == "tflite" else to_onnx
    precision = options.quantize_full_type or "float32"
    with log.capture():
        if request.source_format == "torchscript":
            source_onnx = from_torchscript.export(request.source_path, request.input_specs, workdir, log)
            converters.append(from_torchscript.versions())
        elif request.source_format == "onnx":
            source_onnx = request.source_path
        else:
            raise ConversionError(f"cannot compile a {request.source_format!r} model: upload ONNX or TorchScript")
        source = onnx_prep.load(source_onnx)
        source_inputs, source_outputs = onnx_io(source)
        fixed, inputs, outputs = onnx_prep.fix(source, request.input_specs, options.output_names)
        calib = calibration.check(request.calibration, inputs) if request.calibration else None
        if target is to_tflite:
            to_tflite.check_request(options, inputs, outputs)
        samples, origin = verify.verification_inputs(inputs, request.verification, calib)
        check = _Check(samples, verify.run_source(source_onnx, [o.name for o in outputs], samples), outputs,
                       precision, origin)

        attempts = [ConversionAttempt(strategy=name, outcome="crashed", reason=strategies.CRASHED)
                    for name in request.crashed_strategies]
        for strategy in strategies.chain(options, fixed, first=request.preferred_strategy):
            if strategy.name in request.crashed_strategies:
                continue
            request.progress(strategy_started(strategy.name))
            attempt, converted = _attempt(strategy, fixed, target, request, calib, check, log)
            request.progress(strategy_ended(strategy.name, attempt.outcome))
            attempts.append(attempt)
            if converted is not None:
                break
        else:
            raise ConversionError(strategies.failure_table(attempts))
        path, target_inputs, target_outputs, verification = converted
        converters.append(target.versions())
    seconds = time.monotonic() - started
    log.note(f"compiled in {seconds:.1f} s")
    return CompiledModel(
        path=path,
        result=CompileResult(
            target_format=options.target_runtime,
            source_inputs=source_inputs,
            source_outputs=source_outputs,
            target_inputs=target_inputs,
            target_outputs=target_outputs,
            source_size=request.source_path.stat().st_size,
            target_size=path.stat().st_size,
            converter=" / ".join(converters),
            seconds=round(seconds, 3),
            log=log.tail(),
            strategy=attempts[-1].strategy,
            attempts=attempts,
            verification=verification,
        ),
    )


@dataclass
class _Check:
    """What every attempt's target is verified against: the inputs and the source's outputs on them."""

    samples: list
    reference: list
    outputs: list
    precision: str
    origin: str


def _attempt(strategy, fixed, target, request: CompileRequest, calib, check: _Check, log: ConverterLog):
    """One strategy: prepare, convert, verify. Returns the attempt's record and, when its target can be kept,
    (path, target inputs, target outputs, verification)."""
    started = time.monotonic()
    log.note(f"strategy {strategy.name}: {strategy.why}")
    options, workdir = request.options, request.workdir / strategy.name
    converted = None
    try:
        prepared = onnx_prep.prepare(fixed, strategy, workdir, log)
        extra = {"onnx2tf_args": strategy.onnx2tf} if target is to_tflite else {}
        path, target_inputs, target_outputs = target.convert(prepared, options, calib, workdir, log, **extra)
        produced, notes = verify.run_target(path, options.target_runtime, target_inputs, target_outputs,
                                            check.samples)
        verification = verify.compare(check.reference, produced, check.outputs, check.precision, check.origin,
                                      _runtime(options.target_runtime), notes)
    except ConverterCrashed as exc:
        outcome, reason = "crashed", str(exc)
    except ConversionError as exc:
        outcome, reason = "failed", str(exc)
    except (Exception, SystemExit) as exc:  # noqa: BLE001  (a converter bug ends this attempt, not the job)
        _log.exception("strategy %s crashed the converter", strategy.name)
        outcome, reason = "crashed", f"{type(exc).__name__}: {first_line(exc)}"
    else:
        outcome = verification.verdict
        reason = verify.describe_failure(verification) if outcome == "mismatch" else ""
        if outcome != "mismatch":  # a quantized target's warning is shown, not a reason to look further
            converted = (path, target_inputs, target_outputs, verification)
    log.note(f"strategy {strategy.name}: {outcome}" + (f": {reason}" if reason else ""))
    attempt = ConversionAttempt(strategy=strategy.name, outcome=outcome, reason=reason,
                                seconds=round(time.monotonic() - started, 3))
    return attempt, converted


def _runtime(target_runtime: str) -> str:
    import onnxruntime

    if target_runtime == "onnx":
        return f"source and target in ONNX Runtime {onnxruntime.__version__} (CPU)"
    from importlib.metadata import version

    return (f"source in ONNX Runtime {onnxruntime.__version__}, target in LiteRT {version('ai-edge-litert')} "
            "(CPU, builtin kernels)")
