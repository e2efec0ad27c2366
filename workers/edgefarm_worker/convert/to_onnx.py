"""ONNX targets: the simplified graph for FP32, QDQ INT8 through ONNX Runtime's static quantizer otherwise.

--quantize_io makes the graph's float inputs and outputs real int8 tensors: the quantizer puts
QuantizeLinear → DequantizeLinear right after each input and right before each output; we drop the input's Q and
the output's DQ and record their scale and zero point, as TFLite's integer I/O does.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import onnx.numpy_helper
from edgefarm.options import CompileOptions
from edgefarm.wire import Quantization, TensorInfo

from . import calibration as calib
from .converter_log import ConverterLog
from .interface import ConversionError
from .onnx_prep import PreparedOnnx
from .tensors import onnx_io


def versions() -> str:
    import onnxruntime

    return f"onnxruntime {onnxruntime.__version__}"


def convert(
    prepared: PreparedOnnx,
    options: CompileOptions,
    calibration: dict[str, np.ndarray] | None,
    workdir: Path,
    log: ConverterLog,
) -> tuple[Path, list[TensorInfo], list[TensorInfo]]:
    path = workdir / "model.onnx"
    quantized: dict[str, Quantization] = {}
    if options.quantize_full_type is None:
        shutil.copyfile(prepared.path, path)
    else:
        _quantize_static(prepared.path, path, calibration, log)
        if options.quantize_io:
            quantized = _integer_io(path)
    inputs, outputs = onnx_io(onnx.load(str(path), load_external_data=False))
    for info in inputs + outputs:
        info.source_name = info.name
        info.quantization = quantized.get(info.name)
    return path, inputs, outputs


def _quantize_static(source: Path, target: Path, calibration, log: ConverterLog) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._samples = calib.samples(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._samples, None)

    log.note("onnxruntime quantize_static: QDQ, int8 activations, per-channel int8 weights")
    try:
        quantize_static(
            str(source), str(target), Reader(),
            quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
        )
    except Exception as exc:  # noqa: BLE001  (converters raise anything; the user gets its message)
        raise ConversionError(f"ONNX Runtime's quantizer failed: {type(exc).__name__}: {exc}") from None


def _integer_io(path: Path) -> dict[str, Quantization]:
    model = onnx.load(str(path))
    graph = model.graph
    constants = {init.name: onnx.numpy_helper.to_array(init) for init in graph.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    producers = {out: node for node in graph.node for out in node.output}
    params: dict[str, Quantization] = {}

    for value in graph.input:
        if value.type.tensor_type.elem_type != onnx.TensorProto.FLOAT or value.name in constants:
            continue
        users = consumers.get(value.name, [])
        if len(users) != 1 or users[0].op_type != "QuantizeLinear":
            raise ConversionError(
                f"--quantize_io: input {value.name!r} does not feed a single QuantizeLinear in the quantized graph "
                "(it has other consumers), so it cannot become an int8 input; compile without --quantize_io"
            )
        quantize = users[0]
        params[value.name] = _params(quantize, constants)
        for node in consumers.get(quantize.output[0], []):  # the DequantizeLinear(s) now read the int8 input
            node.input[:] = [value.name if n == quantize.output[0] else n for n in node.input]
        graph.node.remove(quantize)
        value.type.tensor_type.elem_type = onnx.TensorProto.INT8

    for value in graph.output:
        dequantize = producers.get(value.name)
        if value.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
            continue
        if dequantize is None or dequantize.op_type != "DequantizeLinear":
            raise ConversionError(
                f"--quantize_io: output {value.name!r} does not come from a DequantizeLinear in the quantized graph, "
                "so it cannot become an int8 output; compile without --quantize_io"
            )
        params[value.name] = _params(dequantize, constants)
        int8_name = dequantize.input[0]
        # The int8 tensor takes the output's name; nodes that read the float output keep a dequantized copy.
        float_copy = value.name + "_dequantized"
        for node in graph.node:
            node.input[:] = [float_copy if n == value.name else (value.name if n == int8_name else n)
                             for n in node.input]
            node.output[:] = [value.name if n == int8_name else n for n in node.output]
        dequantize.input[0] = value.name
        dequantize.output[0] = float_copy
        if not consumers.get(value.name):
            graph.node.remove(dequantize)
        value.type.tensor_type.elem_type = onnx.TensorProto.INT8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return params


def _params(node: onnx.NodeProto, constants: dict[str, np.ndarray]) -> Quantization:
    scale, zero_point = constants[node.input[1]], constants[node.input[2]]
    if scale.size != 1 or zero_point.dtype != np.int8:
        raise ConversionError(f"--quantize_io: {node.name} is not per-tensor int8; compile without --quantize_io")
    return Quantization(scale=float(scale.reshape(())), zero_point=int(zero_point.reshape(())))
