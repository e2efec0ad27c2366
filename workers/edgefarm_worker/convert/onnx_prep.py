"""Turn the source ONNX into the graph a converter starts from: first the request applied (static input shapes,
only the wanted outputs), then per conversion strategy the graph simplified its way (constants folded: models whose
weights come out of constant subgraphs convert only then) and nodes named."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx
import onnx.shape_inference
from edgefarm.wire import TensorInfo, TensorSpec

from .converter_log import ConverterLog
from .interface import ConversionError, first_line
from .strategies import Strategy
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


def fix(model: onnx.ModelProto, input_specs: dict[str, TensorSpec] | None,
        output_names: list[str] | None) -> tuple[onnx.ModelProto, list[TensorInfo], list[TensorInfo]]:
    """The source with the request applied: static input shapes, only the wanted outputs. What fails here is the
    request's fault, which no conversion strategy changes. Returns the graph and its inputs and outputs."""
    fixed = onnx.ModelProto()  # callers keep their proto (the source's I/O is read from it)
    fixed.CopyFrom(model)
    inputs, outputs = onnx_io(fixed)
    _fix_input_shapes(fixed, inputs, input_specs or {})
    if output_names:
        _keep_outputs(fixed, [o.name for o in outputs], output_names)
    inputs, outputs = onnx_io(fixed)
    return fixed, inputs, outputs


def prepare(fixed: onnx.ModelProto, strategy: Strategy, workdir: Path, log: ConverterLog) -> PreparedOnnx:
    """The fixed graph as the strategy wants it for the converter, saved in the workdir, nodes named."""
    workdir.mkdir(parents=True, exist_ok=True)
    model = fixed
    if strategy.upgrade_opset is not None:
        model = upgrade_opset(model, strategy.upgrade_opset, log)
    model = simplify(model, strategy.simplifier, workdir, log)
    if strategy.rewrite is not None:
        model = strategy.rewrite(model)
    _name_nodes(model)
    path = workdir / "prepared.onnx"
    onnx.save(model, str(path))
    inputs, outputs = onnx_io(model)
    return PreparedOnnx(path=path, model=model, inputs=inputs, outputs=outputs)


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
        # Their dims become unknown (rank kept: onnxsim's checker refuses an output type without a shape).
        for output in model.graph.output:
            for dim in output.type.tensor_type.shape.dim:
                dim.Clear()


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


def simplify(model: onnx.ModelProto, how: str, workdir: Path, log: ConverterLog) -> onnx.ModelProto:
    """onnxsim or ONNX Runtime's constant folding. A simplifier that cannot handle the graph fails this strategy;
    the chain has one that simplifies the other way."""
    try:
        if how == "onnxsim":
            import onnxsim

            simplified, _ = onnxsim.simplify(model)
            log.note(f"simplified with onnxsim {onnxsim.__version__}: {len(model.graph.node)} -> "
                     f"{len(simplified.graph.node)} nodes")
            return simplified
        folded = fold_constants_with_onnxruntime(model, workdir)
        log.note(f"folded with ONNX Runtime: {len(model.graph.node)} -> {len(folded.graph.node)} nodes")
        return folded
    except Exception as exc:  # noqa: BLE001  (simplifiers raise anything; the user gets its message)
        what = "onnxsim" if how == "onnxsim" else "ONNX Runtime's constant folding"
        raise ConversionError(f"{what} could not process the graph: {first_line(exc)}") from None


def upgrade_opset(model: onnx.ModelProto, opset: int, log: ConverterLog) -> onnx.ModelProto:
    import onnx.version_converter

    before = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    try:
        upgraded = onnx.version_converter.convert_version(model, opset)
    except Exception as exc:  # noqa: BLE001  (the version converter raises anything)
        raise ConversionError(f"the ONNX version converter could not take opset {before} to {opset}: "
                              f"{first_line(exc)}") from None
    log.note(f"upgraded the graph from opset {before} to {opset}")
    return upgraded


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
