"""Run a compiled target the way a user of the farm would: source-named float inputs in, source-named outputs out.

The target is fed through what its CompileResult records (names, layout, quantization, source_name), so a wrong
record fails the numbers, not only a field check.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
from ai_edge_litert.interpreter import Interpreter

from edgefarm.tensors import from_target, to_target
from edgefarm.wire import CompileResult


def run_tflite(path: Path, result: CompileResult, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    inputs = {d["name"]: d["index"] for d in interpreter.get_input_details()}
    for info in result.target_inputs:
        interpreter.set_tensor(inputs[info.name], to_target(feeds[info.source_name], info))
    interpreter.invoke()
    outputs = {d["name"]: d["index"] for d in interpreter.get_output_details()}
    return {o.source_name: from_target(interpreter.get_tensor(outputs[o.name]), o) for o in result.target_outputs}


def run_onnx(path: Path, result: CompileResult, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    raw = session.run([o.name for o in result.target_outputs],
                      {i.name: to_target(feeds[i.source_name], i) for i in result.target_inputs})
    return {o.source_name: from_target(y, o) for o, y in zip(result.target_outputs, raw)}


def run_target(path: Path, result: CompileResult, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return (run_tflite if result.target_format == "tflite" else run_onnx)(path, result, feeds)


def reference(source: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The source model's FP32 outputs from ONNX Runtime."""
    session = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
