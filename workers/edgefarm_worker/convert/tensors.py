"""TensorInfo for source and target models: the names, shapes, dtypes, layouts and quantization that later jobs
use to feed a compiled model in the source model's terms.

Layout convention: a 4-D source tensor is NCHW (ONNX's convention). A 4-D target tensor is "NCHW" when its axes
are in the source order and "NHWC" when they are the source axes permuted by (0, 2, 3, 1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx.helper
from edgefarm.wire import Quantization, TensorInfo

from .interface import ConversionError


def onnx_io(model: onnx.ModelProto) -> tuple[list[TensorInfo], list[TensorInfo]]:
    """Graph inputs (initializers that old exporters list as inputs are not inputs) and outputs, in order."""
    initializers = {init.name for init in model.graph.initializer}
    inputs = [_value_info(v) for v in model.graph.input if v.name not in initializers]
    return inputs, [_value_info(v) for v in model.graph.output]


def _value_info(value: onnx.ValueInfoProto) -> TensorInfo:
    tensor = value.type.tensor_type
    dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)).name
    shape: list[int | str] = [
        dim.dim_value if dim.HasField("dim_value") else (dim.dim_param or "?") for dim in tensor.shape.dim
    ]
    return TensorInfo(name=value.name, shape=shape, dtype=dtype, layout="NCHW" if len(shape) == 4 else None)


def channel_last(rank: int) -> list[int]:
    """The permutation that takes a channel-first tensor (N, C, ...) to channel-last (N, ..., C)."""
    return [0, *range(2, rank), 1]


def channel_first(rank: int) -> list[int]:
    """The inverse of channel_last."""
    return [0, rank - 1, *range(1, rank - 1)]


def quantization(scale: float, zero_point: int) -> Quantization | None:
    """Per-tensor parameters as LiteRT reports them; scale 0 means the tensor is not quantized."""
    return Quantization(scale=float(scale), zero_point=int(zero_point)) if scale else None


def tflite_io(
    path: Path, input_sources: dict[str, str], output_sources: dict[str, str], channel_last_names: set[str]
) -> tuple[list[TensorInfo], list[TensorInfo]]:
    """The target's inputs and outputs through its serving signature.

    The `*_sources` map each signature key to the source tensor's name. TFLite tensor names are the converter's
    (`serving_default_image:0`, `StatefulPartitionedCall:1`) and `get_output_details()` is not in the source
    order, so the mapping goes by signature key, never by position. The lists follow the source order.
    """
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    signatures = interpreter.get_signature_list()
    if len(signatures) != 1:
        # Without a signature the TFLite tensors cannot be tied to the source's names; guessing by position or
        # shape is how outputs get swapped silently.
        raise ConversionError(
            f"the converted model has {len(signatures) or 'no'} serving signature(s) "
            f"({', '.join(signatures) or 'none'}); one is needed to tie its tensors to the source's names")
    runner = interpreter.get_signature_runner(next(iter(signatures)))

    def infos(details: dict[str, dict], sources: dict[str, str]) -> list[TensorInfo]:
        missing = [key for key in sources if key not in details]
        if missing:
            raise ConversionError(f"the converted model's signature lacks {', '.join(map(repr, missing))}; it has "
                                  f"{', '.join(map(repr, details))}")
        out = []
        for key, source in sources.items():
            d = details[key]
            shape = [int(s) for s in d["shape"]]
            layout = None
            if len(shape) == 4:
                layout = "NHWC" if source in channel_last_names else "NCHW"
            out.append(TensorInfo(
                name=d["name"], shape=shape, dtype=np.dtype(d["dtype"]).name, layout=layout,
                quantization=quantization(*d["quantization"]), source_name=source,
            ))
        return out

    return infos(runner.get_input_details(), input_sources), infos(runner.get_output_details(), output_sources)
