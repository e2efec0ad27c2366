"""ONNX Runtime (CPU execution provider) for .onnx models: load, run, and per-node times from its profiler.

Per-node times come from a separate session with `SessionOptions.enable_profiling`: its trace holds one
`Node` event per kernel run (`<node>_kernel_time`, with `op_name` and `provider`) followed by one `model_run`
event per inference. The first profiled inference is dropped (warm-up), the others are averaged per node.
The nodes are those of the optimised graph ONNX Runtime actually ran (fused Conv+Relu shows as one Conv).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import onnxruntime as ort
import psutil
from edgefarm.wire import DeviceSpec, OpDetail, TensorInfo

from edgefarm_agent.backends.feeds import Feeds
from edgefarm_agent.backends.host import RunPlan
from edgefarm_agent.backends.runner import Placement

RUNTIME = f"onnxruntime {ort.__version__}"
PROVIDER = "CPUExecutionProvider"
KERNEL_SUFFIX = "_kernel_time"
# ONNX type strings → numpy dtype names
DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
          "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(int16)": "int16", "tensor(uint16)": "uint16",
          "tensor(int32)": "int32", "tensor(int64)": "int64", "tensor(bool)": "bool"}


def versions() -> dict[str, str]:
    return {"onnxruntime": ort.__version__}


def open_model(path: Path, plan: RunPlan, device: DeviceSpec) -> OnnxRuntimeModel:
    return OnnxRuntimeModel(path, plan)


class OnnxRuntimeModel:
    def __init__(self, path: Path, plan: RunPlan) -> None:
        self.path = path
        # ONNX Runtime's own default is one intra-op thread per physical core; set it explicitly so the
        # profile can say how many ran.
        self.threads = plan.threads or psutil.cpu_count(logical=False) or 1
        self._session = self._open()
        self.inputs = [_tensor_info(i) for i in self._session.get_inputs()]
        self._output_names = [o.name for o in self._session.get_outputs()]
        self._feeds: Feeds = {}
        self._outputs: list = []

    def _open(self, profile_prefix: Path | None = None) -> ort.InferenceSession:
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        if profile_prefix is not None:
            options.enable_profiling = True
            options.profile_file_prefix = str(profile_prefix)
        return ort.InferenceSession(str(self.path), options, providers=[PROVIDER])

    def set_inputs(self, feeds: Feeds) -> None:
        self._feeds = feeds

    def invoke(self) -> None:
        self._outputs = self._session.run(None, self._feeds)

    def get_outputs(self) -> Feeds:
        return dict(zip(self._output_names, self._outputs))

    def close(self) -> None:
        del self._session

    def describe(self, *, feeds: Sequence[Feeds], work_dir: Path, runs: int) -> Placement:
        profiled = self._open(profile_prefix=work_dir / "onnxruntime-profile")
        for i in range(runs + 1):
            profiled.run(None, feeds[i % len(feeds)])
        trace = Path(profiled.end_profiling())
        ops = _node_times(json.loads(trace.read_text()))
        return Placement(
            ops=ops, total_ops=len(ops),
            notes={"execution_detail": f"ONNX Runtime profiler: µs per node averaged over {runs} inferences of "
                                       "a separate profiled session, after one untimed"},
        )


def _node_times(events: list[dict]) -> list[OpDetail]:
    """Average each node's kernel time over the inferences in a profiler trace, skipping the first."""
    runs: list[list[dict]] = [[]]
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith(KERNEL_SUFFIX):
            runs[-1].append(event)
        elif event.get("cat") == "Session" and event["name"] == "model_run":
            runs.append([])
    measured = [run for run in runs[1:] if run] or [run for run in runs if run]
    totals: dict[str, float] = {}
    op_types: dict[str, str] = {}
    for run in measured:
        for event in run:
            name = event["name"].removesuffix(KERNEL_SUFFIX)
            totals[name] = totals.get(name, 0.0) + float(event["dur"])
            op_types[name] = event["args"].get("op_name", "")
    # Only the CPU execution provider is registered, so every node ran on the CPU.
    return [OpDetail(name=name, type=op_types[name], compute_unit="CPU", execution_time=total / len(measured))
            for name, total in totals.items()]


def _tensor_info(node: ort.NodeArg) -> TensorInfo:
    shape = [d if isinstance(d, int) else str(d) for d in node.shape]
    return TensorInfo(name=node.name, shape=shape, dtype=DTYPES.get(node.type, node.type))
