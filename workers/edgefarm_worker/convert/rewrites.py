"""ONNX graph rewrites that keep a model's values and step around a converter bug; conversion strategies apply
them after simplification (strategies.py)."""

from __future__ import annotations

import onnx
import onnx.shape_inference


def residual_adds(model: onnx.ModelProto) -> list[int]:
    """Where in the graph's node list the Adds of two computed tensors of one static 3-D to 5-D shape (residual
    connections) are."""
    shapes = _static_shapes(model)
    constants = {i.name for i in model.graph.initializer}
    constants |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    found = []
    for index, node in enumerate(model.graph.node):
        if node.op_type != "Add" or node.domain not in ("", "ai.onnx") or len(node.input) != 2:
            continue
        a, b = node.input
        if a in constants or b in constants:
            continue
        if shapes.get(a) is not None and shapes.get(a) == shapes.get(b) and 3 <= len(shapes[a]) <= 5:
            found.append(index)
    return found


def residual_adds_as_sum(model: onnx.ModelProto) -> onnx.ModelProto:
    """Residual Adds become Sum (the same values).

    Why: onnx2tf 1.29's Add has a "rescue guard for unexpected broadcasted shapes" that compares the TF result
    (channel-last, e.g. [1, 4, 3, 16]) with the ONNX shape ([1, 16, 4, 3]), takes the difference for a broadcast
    accident and transposes both operands back: the Add's output silently becomes NCHW while the next ops assume
    NHWC. Conv copes (it transposes an input whose shape equals the ONNX shape back); ConvTranspose does not (it
    tries kernel permutations until TF's shape check passes: SimpleBaseline's heatmaps come out with relative error
    0.9), nor does a grouped Conv whose width equals its group count (ShuffleNetV1: built as a depthwise conv).
    onnx2tf's Sum (tf.add_n) has no such guard. Not the default: ConvNeXt's Adds need the guard (one operand comes
    back from a permute in NCHW), and ADD_N does not fuse the following ReLU.
    """
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    for index in residual_adds(model):
        rewritten.graph.node[index].op_type = "Sum"
    return rewritten


def _static_shapes(model: onnx.ModelProto) -> dict[str, list[int] | None]:
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes: dict[str, list[int] | None] = {}
    for value in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        tensor = value.type.tensor_type
        static = tensor.HasField("shape") and all(d.HasField("dim_value") for d in tensor.shape.dim)
        shapes[value.name] = [d.dim_value for d in tensor.shape.dim] if static else None
    for initializer in inferred.graph.initializer:
        shapes[initializer.name] = list(initializer.dims)
    return shapes
