"""Turn the source ONNX into the graph every converter starts from: static input shapes, only the wanted outputs,
named nodes, and constants folded (models whose weights come out of constant subgraphs convert only then)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx
import onnx.shape_inference
from edgefarm.wire import TensorInfo, TensorSpec

from .converter_log import ConverterLog
from .interface import ConversionError
from .tensors import onnx_io


@dataclass
class PreparedOnnx:
    path: Path  # the prepared graph, saved in the workdir
    model: onnx.ModelProto
    inputs: list[TensorInfo]  # static shapes
    outputs: list[TensorInfo]


def load(path: Path) -> onnx.ModelProto:
    try:
        return onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001  (converters raise anything; the user gets its message)
        raise ConversionError(f"cannot read the model as ONNX: {exc}") from None


def prepare(
    model: onnx.ModelProto,
    input_specs: dict[str, TensorSpec] | None,
    output_names: list[str] | None,
    workdir: Path,
    log: ConverterLog,
) -> PreparedOnnx:
    prepared = onnx.ModelProto()  # callers keep their proto (the source's I/O is read from it)
    prepared.CopyFrom(model)
    inputs, outputs = onnx_io(prepared)
    _fix_input_shapes(prepared, inputs, input_specs or {})
    if output_names:
        _keep_outputs(prepared, [o.name for o in outputs], output_names)
    prepared = simplify(prepared, workdir, log)
    _name_nodes(prepared)
    path = workdir / "prepared.onnx"
    onnx.save(prepared, str(path))
    inputs, outputs = onnx_io(prepared)
    return PreparedOnnx(path=path, model=prepared, inputs=inputs, outputs=outputs)


def _fix_input_shapes(model: onnx.ModelProto, inputs: list[TensorInfo], specs: dict[str, TensorSpec]) -> None:
    """Apply input_specs and insist on static shapes: the TFLite and QDQ targets are built for fixed shapes."""
    names = [i.name for i in inputs]
    unknown = [name for name in specs if name not in names]
    if unknown:
        raise ConversionError(
            f"input_specs names {', '.join(map(repr, unknown))} that the model does not have; "
            f"its inputs are: {', '.join(map(repr, names))}"
        )
    changed = False
    by_name = {v.name: v for v in model.graph.input}
    for info in inputs:
        spec = specs.get(info.name)
        if spec is not None:
            if len(spec.shape) != len(info.shape) or any(
                isinstance(m, int) and m != s for m, s in zip(info.shape, spec.shape)
            ):
                raise ConversionError(
                    f"input_specs gives input {info.name!r} the shape {tuple(spec.shape)}, "
                    f"but the model declares {_show(info.shape)}"
                )
            if spec.dtype != info.dtype:
                raise ConversionError(
                    f"input_specs gives input {info.name!r} the dtype {spec.dtype}, but the model takes {info.dtype}"
                )
            if any(not isinstance(d, int) for d in info.shape):
                dims = by_name[info.name].type.tensor_type.shape.dim
                for dim, size in zip(dims, spec.shape):
                    dim.Clear()
                    dim.dim_value = size
                changed = True
        elif any(not isinstance(d, int) or d < 1 for d in info.shape):
            example = tuple(d if isinstance(d, int) and d > 0 else 1 for d in info.shape)
            raise ConversionError(
                f"input {info.name!r} has dynamic dimensions {_show(info.shape)}; pass input_specs to fix them, "
                f"e.g. input_specs={{{info.name!r}: ({example}, {info.dtype!r})}}"
            )
    if changed:
        # Shapes inferred from the old symbolic inputs would contradict the new ones: let inference redo them.
        del model.graph.value_info[:]
        for output in model.graph.output:
            output.type.tensor_type.ClearField("shape")


def _keep_outputs(model: onnx.ModelProto, available: list[str], wanted: list[str]) -> None:
    unknown = [name for name in wanted if name not in available]
    if unknown:
        raise ConversionError(
            f"--output_names names {', '.join(map(repr, unknown))} that the model does not output; "
            f"its outputs are: {', '.join(map(repr, available))}"
        )
    by_name = {o.name: o for o in model.graph.output}
    kept = [by_name[name] for name in wanted]  # in the order the user asked for
    del model.graph.output[:]
    model.graph.output.extend(kept)  # the simplifier then drops the nodes only the others needed


def simplify(model: onnx.ModelProto, workdir: Path, log: ConverterLog) -> onnx.ModelProto:
    """onnxsim first; ONNX Runtime's basic optimisation (constant folding) when onnxsim cannot handle the graph;
    the graph as it is when neither can (e.g. a custom op), so the converter gets to say what it cannot do."""
    import onnxsim

    try:
        simplified, _ = onnxsim.simplify(model)
        log.note(f"simplified with onnxsim {onnxsim.__version__}: {len(model.graph.node)} -> "
                 f"{len(simplified.graph.node)} nodes")
        return simplified
    except Exception as exc:  # noqa: BLE001  (converters raise anything; the user gets its message)
        log.note(f"onnxsim could not simplify the model ({_first_line(exc)}); folding constants with ONNX Runtime")
    try:
        folded = fold_constants_with_onnxruntime(model, workdir)
        log.note(f"folded with ONNX Runtime: {len(model.graph.node)} -> {len(folded.graph.node)} nodes")
        return folded
    except Exception as exc:  # noqa: BLE001  (converters raise anything; the user gets its message)
        log.note(f"ONNX Runtime could not optimise the model either ({_first_line(exc)}); converting it as it is")
        return onnx.shape_inference.infer_shapes(model)


def fold_constants_with_onnxruntime(model: onnx.ModelProto, workdir: Path) -> onnx.ModelProto:
    """ONNX Runtime's basic level only: constant folding and redundancy removal, standard ONNX ops out."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(workdir / "ort_folded.onnx")
    ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return onnx.shape_inference.infer_shapes(onnx.load(options.optimized_model_filepath))


def _name_nodes(model: onnx.ModelProto) -> None:
    """Converter messages name the node they stopped at; give unnamed nodes names that the prepared model (which
    the ONNX target and error messages share) also carries."""
    taken = {node.name for node in model.graph.node}
    for index, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{index}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)


def _show(shape: list[int | str]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
