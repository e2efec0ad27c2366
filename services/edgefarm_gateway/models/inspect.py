"""Read an uploaded model file: which format it is, its inputs and outputs, and whether it is safe to keep.

Runs in the gateway, so it parses but never executes: ONNX via protobuf, TFLite via the LiteRT interpreter's
metadata (no tensors allocated), TorchScript by looking inside its zip (torch is never imported here).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from edgefarm.wire import Quantization, TensorInfo
from edgefarm_gateway.errors import BadRequest

UNREADABLE = ("not a model EdgeFarm can read: upload an ONNX model (.onnx), a TorchScript module "
              "(torch.jit.save / ScriptModule.save, .pt) or a TFLite model (.tflite)")


@dataclass
class ModelFacts:
    format: str
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]


def inspect_model(path: Path) -> ModelFacts:
    with path.open("rb") as f:
        head = f.read(8)
    if head[4:8] == b"TFL3":
        return _inspect_tflite(path)
    if zipfile.is_zipfile(path):
        return _inspect_torchscript(path)
    return _inspect_onnx(path)


def _inspect_onnx(path: Path) -> ModelFacts:
    import onnx
    from onnx import external_data_helper

    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError and friends for corrupt bytes
        raise BadRequest(f"{UNREADABLE} (ONNX parser: {exc})") from None
    if not model.graph.node and not model.graph.input:
        raise BadRequest(UNREADABLE)
    for tensor in external_data_helper._get_all_tensors(model):
        if external_data_helper.uses_external_data(tensor):
            location = next((e.value for e in tensor.external_data if e.key == "location"), "")
            escapes = PurePosixPath(location).is_absolute() or ".." in PurePosixPath(location).parts
            why = "points outside the model's directory" if escapes else "lives in a separate file"
            raise BadRequest(
                f"ONNX initializer {tensor.name!r} references external data {location!r}, which {why}; "
                "upload a single self-contained file (onnx.save(model, path, save_as_external_data=False), "
                "models up to 2 GB)")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise BadRequest(f"the ONNX model does not pass onnx.checker: {exc}") from None
    initializers = {t.name for t in model.graph.initializer}
    inputs = [_onnx_tensor(v) for v in model.graph.input if v.name not in initializers]
    outputs = [_onnx_tensor(v) for v in model.graph.output]
    return ModelFacts("onnx", inputs, outputs)


def _onnx_tensor(value) -> TensorInfo:
    from onnx import helper

    tensor_type = value.type.tensor_type
    shape: list[int | str] = [d.dim_param or (d.dim_value if d.HasField("dim_value") else "?")
                              for d in tensor_type.shape.dim]
    dtype = helper.tensor_dtype_to_np_dtype(tensor_type.elem_type).name if tensor_type.elem_type else "unknown"
    return TensorInfo(name=value.name, shape=shape, dtype=dtype)


def _inspect_tflite(path: Path) -> ModelFacts:
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_path=str(path))
    except Exception as exc:
        raise BadRequest(f"the TFLite model cannot be loaded by LiteRT: {exc}") from None
    return ModelFacts("tflite", [tflite_tensor(d) for d in interpreter.get_input_details()],
                      [tflite_tensor(d) for d in interpreter.get_output_details()])


def tflite_tensor(detail: dict) -> TensorInfo:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    quant = Quantization(scale=float(scale), zero_point=int(zero_point)) if scale else None
    return TensorInfo(name=detail["name"], shape=[int(d) for d in detail["shape"]],
                      dtype=detail["dtype"].__name__ if hasattr(detail["dtype"], "__name__") else str(detail["dtype"]),
                      quantization=quant)


def _inspect_torchscript(path: Path) -> ModelFacts:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile as exc:
        raise BadRequest(f"{UNREADABLE} (zip: {exc})") from None
    has_code = any("/code/" in n for n in names)
    has_data = any(n.endswith("/data.pkl") for n in names)
    if has_data and not has_code:
        raise BadRequest("this is a torch.save() checkpoint, not TorchScript: export the module with "
                         "torch.jit.trace(model, example_inputs).save('model.pt') and upload that")
    if not has_code:
        raise BadRequest(UNREADABLE)
    # Input names and shapes are not recorded in TorchScript; compile jobs take them from input_specs.
    return ModelFacts("torchscript", [], [])
