"""A .tflite model's inputs and outputs read from its flatbuffer, without loading a runtime (the agent process
stays light): what benchmark_model feeds from raw files and writes back, in its order."""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgefarm.wire import Quantization, TensorInfo

from edgefarm_agent.backends import JobFailure

# TFLite tensor types (schema.fbs) as numpy dtypes; the others (string, int4, resource…) have no raw-file form.
TFLITE_TO_NUMPY = {"FLOAT32": "float32", "FLOAT16": "float16", "FLOAT64": "float64", "INT8": "int8", "INT16": "int16",
                   "INT32": "int32", "INT64": "int64", "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32",
                   "UINT64": "uint64", "BOOL": "bool", "COMPLEX64": "complex64", "COMPLEX128": "complex128"}
DYNAMIC = "?"  # a dimension the model leaves open (-1 in its shape signature)


@dataclass(frozen=True)
class TfliteIO:
    """The tensors benchmark_model feeds and saves, in its order: the subgraph's inputs and outputs."""

    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    signature: str | None = None  # passed as --signature_to_run_for when its subgraph is not the first


def read_tflite_io(path: Path) -> TfliteIO:
    """Read the inputs and outputs from the .tflite flatbuffer itself: the agent process loads no runtime.

    The subgraph is 0, or that of the model's only SignatureDef (what benchmark_model runs without
    --signature_to_run_for); a dimension the shape signature leaves open (-1) is DYNAMIC."""
    if path.stat().st_size < 8:
        raise JobFailure(f"the model {path.name} is not a .tflite flatbuffer (it has {path.stat().st_size} bytes)")
    # Mapped, not read: only the few tables describing the tensors are touched, however large the weights.
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return _read_io(data, path.name)


def _read_io(data: mmap.mmap, name: str) -> TfliteIO:
    from ai_edge_litert import schema_py_generated as schema  # flatbuffers only: no interpreter is loaded

    if not schema.Model.ModelBufferHasIdentifier(data, 0):
        raise JobFailure(f"the model {name} is not a .tflite flatbuffer (no TFL3 identifier); upload a .tflite "
                         "file or compile the model with --target_runtime tflite")
    types = {getattr(schema.TensorType, key): dtype for key, dtype in TFLITE_TO_NUMPY.items()}
    try:
        model = schema.Model.GetRootAs(data, 0)
        index, signature = 0, None
        if model.SignatureDefsLength() == 1:
            index = model.SignatureDefs(0).SubgraphIndex()
            signature = model.SignatureDefs(0).SignatureKey().decode() if index != 0 else None
        if not 0 <= index < model.SubgraphsLength():
            raise JobFailure(f"the model {name} has no subgraph {index} (its signature names it)")
        subgraph = model.Subgraphs(index)
        inputs = [_tensor_info(subgraph.Tensors(subgraph.Inputs(k)), types) for k in range(subgraph.InputsLength())]
        outputs = [_tensor_info(subgraph.Tensors(subgraph.Outputs(k)), types)
                   for k in range(subgraph.OutputsLength())]
    except (struct.error, IndexError, TypeError, UnicodeDecodeError) as exc:
        raise JobFailure(f"cannot read the inputs and outputs of the .tflite model {name}: it looks damaged "
                         f"({exc!r})") from exc
    return TfliteIO(inputs, outputs, signature)


def _tensor_info(tensor: Any, types: dict[int, str]) -> TensorInfo:
    name = (tensor.Name() or b"").decode()
    if tensor.Type() not in types:
        raise JobFailure(f"the model's tensor {name!r} is of TFLite type {tensor.Type()} (string, int4, resource…), "
                         "which benchmark_model's raw input and output files cannot carry; run this model on a host "
                         "device")
    shape: list[int | str] = [tensor.Shape(k) for k in range(tensor.ShapeLength())]
    for k in range(min(tensor.ShapeSignatureLength(), len(shape))):
        if tensor.ShapeSignature(k) < 0:
            shape[k] = DYNAMIC
    quantization = None
    q = tensor.Quantization()
    if q is not None and q.ScaleLength() == 1 and q.ZeroPointLength() == 1 and q.Scale(0) != 0:
        quantization = Quantization(scale=float(q.Scale(0)), zero_point=int(q.ZeroPoint(0)))
    return TensorInfo(name=name, shape=shape, dtype=types[tensor.Type()], quantization=quantization)


