"""LiteRT (`ai_edge_litert`) for .tflite models: load with the planned delegates, run, and tell which
delegate owns each op.

How the delegate is known, not assumed (verified on ai-edge-litert 2.1.0, see tests/agent/test_litert.py):

- an external delegate (`load_delegate(path, options)`) is applied by the Interpreter constructor;
- XNNPACK, LiteRT's default CPU delegate, is applied lazily by `allocate_tensors()`, unless the op resolver
  is BUILTIN_WITHOUT_DEFAULT_DELEGATES (`--tflite_delegates none`);
- each delegation appends one `DELEGATE` node per partition to the node list, and keeps the replaced nodes.

So the DELEGATE nodes present right after construction belong to the external delegate, those added by
`allocate_tensors()` to XNNPACK. A partition's nodes are found by walking back from the DELEGATE node's
output tensors through the original nodes that produce them, stopping at the DELEGATE node's inputs.
The Python interpreter has no per-op profiler, so op times are left empty rather than invented.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType, load_delegate
from edgefarm.wire import DeviceSpec, OpDetail, Quantization, TensorInfo

from edgefarm_agent.backends import JobFailure
from edgefarm_agent.backends.feeds import Feeds
from edgefarm_agent.backends.host import RunPlan
from edgefarm_agent.backends.runner import Placement

RUNTIME = f"litert {version('ai-edge-litert')}"
XNNPACK = "XNNPACK"
DELEGATE_NODE = "DELEGATE"


def versions() -> dict[str, str]:
    return {"ai_edge_litert": version("ai-edge-litert")}


def open_model(path: Path, plan: RunPlan, device: DeviceSpec) -> LiteRTModel:
    return LiteRTModel(path, plan, device)


class LiteRTModel:
    def __init__(self, path: Path, plan: RunPlan, device: DeviceSpec) -> None:
        self.plan = plan
        self.threads = plan.threads or 1  # the Interpreter's own default is one thread
        self._delegates = [_load_external(plan, device)] if plan.delegate else []
        resolver = OpResolverType.AUTO if plan.xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            self._interpreter = Interpreter(model_path=str(path), experimental_delegates=self._delegates or None,
                                            num_threads=self.threads, experimental_op_resolver_type=resolver)
        except (ValueError, RuntimeError) as exc:
            if plan.delegate:
                raise JobFailure(f"{RUNTIME} could not load the model with the {plan.unit} delegate "
                                 f"{plan.delegate.library}: {exc}") from exc
            raise
        # The wrapper's node count, read without building op details: this sits inside the timed load.
        self._nodes_before_default_delegates = self._interpreter._interpreter.NumNodes()
        self._interpreter.allocate_tensors()
        self._input_details = self._interpreter.get_input_details()
        self._output_details = self._interpreter.get_output_details()
        self._input_index = {d["name"]: d["index"] for d in self._input_details}
        self.inputs = [_tensor_info(d) for d in self._input_details]
        self.outputs = [_tensor_info(d) for d in self._output_details]

    def set_inputs(self, feeds: Feeds) -> None:
        for name, value in feeds.items():
            self._interpreter.set_tensor(self._input_index[name], value)

    def invoke(self) -> None:
        self._interpreter.invoke()

    def get_outputs(self) -> Feeds:
        return {d["name"]: self._interpreter.get_tensor(d["index"]) for d in self._output_details}

    def close(self) -> None:
        # The interpreter before its delegates: it calls into them while it is torn down.
        del self._interpreter
        self._delegates.clear()

    def describe(self, *, feeds: Sequence[Feeds], work_dir: Path, runs: int) -> Placement:
        ops = self._interpreter._get_ops_details()
        originals = [op for op in ops if op["op_name"] != DELEGATE_NODE]
        owners: dict[int, str] = {}
        for op in ops:
            if op["op_name"] == DELEGATE_NODE:
                owner = "external" if op["index"] < self._nodes_before_default_delegates else XNNPACK
                for index in _partition(op, originals):
                    owners[index] = owner
        return self._placement(originals, owners)

    def _placement(self, originals: list[dict[str, Any]], owners: dict[int, str]) -> Placement:
        plan = self.plan
        external = plan.delegate.label if plan.delegate else None
        details = []
        for op in originals:
            owner = owners.get(op["index"])
            on_external = owner == "external"
            details.append(OpDetail(
                name=self._tensor_name(op["outputs"]), type=op["op_name"],
                compute_unit=plan.unit.upper() if on_external else "CPU",
                delegate=external if on_external else owner,
            ))
        total = len(originals)
        by_owner = Counter(owners.values())
        on_unit = by_owner["external"]
        cpu_delegate = XNNPACK if by_owner[XNNPACK] else None
        placement = Placement(ops=details, total_ops=total)
        if external and on_unit:
            placement.delegate, placement.delegated_ops = external, on_unit
        else:
            placement.delegate, placement.delegated_ops = cpu_delegate, by_owner[XNNPACK]
        on_cpu = [d for d in details if d.compute_unit == "CPU"]
        cpu_kernels = f"{XNNPACK} and plain CPU kernels" if cpu_delegate else "plain CPU kernels"
        if plan.unit != "cpu" and on_cpu:
            placement.cpu_fallback = True
            kinds = ", ".join(f"{kind} ×{n}" for kind, n in Counter(d.type for d in on_cpu).items())
            placement.warnings.append(
                f"{len(on_cpu)} of {total} ops ran on the CPU ({cpu_kernels}) although {plan.unit} was asked: "
                f"the {plan.unit} delegate {external} did not take {kinds}")
        elif plan.unit == "cpu" and plan.xnnpack and by_owner[XNNPACK] < total:
            placement.warnings.append(f"{XNNPACK} took {by_owner[XNNPACK]} of {total} ops; the rest ran on "
                                      "plain CPU kernels")
        placement.notes["execution_detail"] = ("LiteRT op list; the owning delegate from the interpreter's "
                                               "DELEGATE nodes; no per-op times (the Python API has no op profiler)")
        return placement

    def _tensor_name(self, tensors: Sequence[int]) -> str:
        # Ops have no names in a .tflite; their first output tensor's name is what tools show instead.
        index = next((int(t) for t in tensors if t >= 0), None)
        return self._interpreter._interpreter.TensorName(index, 0) if index is not None else ""


def _load_external(plan: RunPlan, device: DeviceSpec) -> Any:
    assert plan.delegate is not None
    library = plan.delegate.library
    where = f"the {plan.unit} delegate of device {device.name!r} (serial {device.serial})"
    # A bare file name is looked up on the library path; a path that names a missing file is said plainly.
    if len(library.parts) > 1 and not library.exists():
        raise JobFailure(f"{where} is configured as {library}, which does not exist")
    try:
        return load_delegate(str(library), dict(plan.delegate.options))
    except (OSError, ValueError) as exc:
        raise JobFailure(f"{where} failed to load from {library}: {exc}") from exc


def _partition(delegate_op: dict[str, Any], originals: list[dict[str, Any]]) -> set[int]:
    """The original nodes a DELEGATE node replaced: the producers of its outputs, back to its inputs."""
    producer = {int(t): op["index"] for op in originals for t in op["outputs"]}
    by_index = {op["index"]: op for op in originals}
    boundary = {int(t) for t in delegate_op["inputs"]}
    owned: set[int] = set()
    pending = [int(t) for t in delegate_op["outputs"]]
    while pending:
        tensor = pending.pop()
        node = producer.get(tensor)
        if tensor in boundary or node is None or node in owned:
            continue
        owned.add(node)
        pending.extend(int(t) for t in by_index[node]["inputs"] if t >= 0)
    return owned


def _tensor_info(detail: dict[str, Any]) -> TensorInfo:
    scale, zero_point = detail["quantization"]
    return TensorInfo(
        name=detail["name"], shape=[int(d) for d in detail["shape"]], dtype=np.dtype(detail["dtype"]).name,
        quantization=Quantization(scale=float(scale), zero_point=int(zero_point)) if scale else None,
    )
