"""TorchScript → ONNX, the first step for TorchScript uploads. torch is imported here only, when one arrives.

torch 2.13's default exporter (dynamo=True) goes through torch.export, which cannot take a loaded ScriptModule
(and needs onnxscript); the TorchScript-based exporter (dynamo=False) exports ScriptModules directly.
"""

from __future__ import annotations

import functools
import warnings
import zipfile
from pathlib import Path

from edgefarm import torchscript
from edgefarm.wire import TensorSpec

from .converter_log import ConverterLog
from .interface import ConversionError, first_line

# onnx2tf converts opset 17 well, and the TorchScript-based exporter writes it for every op we rely on.
OPSET = 17


def versions() -> str:
    import torch

    return f"torch {torch.__version__.split('+')[0]}"


def export(source: Path, input_specs: dict[str, TensorSpec] | None, workdir: Path, log: ConverterLog) -> Path:
    if not input_specs:
        raise ConversionError(
            "a TorchScript model does not record its input shapes: pass input_specs with the name, shape and dtype "
            "of each input, in the order forward() takes them, e.g. input_specs={'image': ((1, 3, 224, 224), "
            "'float32')}"
        )
    import torch

    try:  # the gateway checked it at upload; checked again, since loading runs the code it refuses
        torchscript.check_archive(source)
    except (torchscript.TorchScriptRefused, zipfile.BadZipFile) as refused:
        raise ConversionError(str(refused)) from None
    try:
        module = torch.jit.load(str(source), map_location="cpu")
    except Exception as exc:  # noqa: BLE001  (converters raise anything; the user gets its message)
        raise ConversionError(f"cannot load the model with torch.jit.load: {first_line(exc)}") from None
    _refuse_non_tensor_ops(module)
    module.eval()
    args = tuple(_example(name, spec) for name, spec in input_specs.items())
    try:
        with torch.no_grad():
            outputs = _flatten(module(*args))
    except Exception as exc:  # noqa: BLE001  (converters raise anything; the user gets its message)
        shapes = ", ".join(f"{name}: {tuple(s.shape)} {s.dtype}" for name, s in input_specs.items())
        raise ConversionError(
            f"the TorchScript model fails on inputs shaped like input_specs ({shapes}): {first_line(exc)}"
        ) from None
    path = workdir / "source.onnx"
    log.note(f"torch.onnx.export (TorchScript-based exporter), opset {OPSET}, {len(outputs)} output(s)")
    try:
        with warnings.catch_warnings():
            # Chosen on purpose (see above); and a ScriptModule has no Python signature, which it notes and skips.
            warnings.filterwarnings("ignore", message="You are using the legacy TorchScript-based ONNX export")
            warnings.filterwarnings("ignore", message="no signature found")
            torch.onnx.export(
                module, args, str(path),
                input_names=list(input_specs), output_names=[f"output_{i}" for i in range(len(outputs))],
                opset_version=OPSET, do_constant_folding=True, dynamo=False,
            )
    except Exception as exc:  # noqa: BLE001  (converters raise anything; the user gets its message)
        raise ConversionError(f"torch.onnx.export could not export the TorchScript model: {first_line(exc)}") from None
    return path


# Operator namespaces of tensor computations and TorchScript's own control flow; others (c10d, profiler,
# debugprims, custom classes) are not what a model that runs on a device calls.
ALLOWED_NAMESPACES = ("aten", "prim")


@functools.cache
def _file_ops() -> frozenset[str]:
    """Operators that take a file name: any aten op with a string argument named like one."""
    import torch

    return frozenset(
        schema.name for schema in torch._C._jit_get_all_schemas()
        if any(str(a.type) == "str" and ("file" in a.name or "path" in a.name) for a in schema.arguments))


def _refuse_non_tensor_ops(module) -> None:
    """Every operator `forward` reaches (its graph with every call inlined, into every block) is a tensor
    computation, or the model is refused before it runs."""
    found: set[str] = set()
    pending = [module.inlined_graph.nodes()]
    while pending:
        for node in pending.pop():
            found.add(node.kind())
            pending.extend(block.nodes() for block in node.blocks())
    refused = sorted(kind for kind in found
                     if kind.split("::", 1)[0] not in ALLOWED_NAMESPACES or kind in _file_ops())
    if refused:
        raise ConversionError(
            f"the TorchScript model calls {', '.join(refused)}: the farm runs only tensor computations from "
            f"uploaded TorchScript ({'/'.join(ALLOWED_NAMESPACES)} operators, none that opens a file); remove "
            "the call, or upload the model as ONNX")


def _example(name: str, spec: TensorSpec):
    """Inputs that trace every branch a plain forward takes: fixed pseudo-random floats, zeros for integers."""
    import torch

    dtype = getattr(torch, spec.dtype, None)
    if not isinstance(dtype, torch.dtype):
        raise ConversionError(f"input_specs gives input {name!r} the dtype {spec.dtype!r}, which torch does not know")
    if dtype.is_floating_point:
        generator = torch.Generator().manual_seed(0)
        return torch.rand(*spec.shape, generator=generator).to(dtype)
    return torch.zeros(*spec.shape, dtype=dtype)


def _flatten(outputs) -> list:
    """The tensors of a forward's result in the order the exporter flattens them."""
    if isinstance(outputs, (list, tuple)):
        return [t for item in outputs for t in _flatten(item)]
    if isinstance(outputs, dict):
        return [t for item in outputs.values() for t in _flatten(item)]
    return [outputs]
