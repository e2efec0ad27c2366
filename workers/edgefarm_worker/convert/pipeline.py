"""compile_model: source → (TorchScript export) → prepared ONNX → target, and the CompileResult that describes it."""

from __future__ import annotations

import importlib
import threading
import time

from edgefarm.wire import CompileResult

from . import calibration, from_torchscript, onnx_prep, to_onnx, to_tflite
from .converter_log import ConverterLog
from .interface import CompiledModel, CompileRequest, ConversionError
from .tensors import onnx_io

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
        prepared = onnx_prep.prepare(source, request.input_specs, options.output_names, workdir, log)
        calib = calibration.check(request.calibration, prepared.inputs) if request.calibration else None
        target = to_tflite if options.target_runtime == "tflite" else to_onnx
        path, target_inputs, target_outputs = target.convert(prepared, options, calib, workdir, log)
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
        ),
    )
