"""The agent stays light: importing it (and the job process's runtime modules) never loads TensorFlow or torch,
and the agent process itself loads no runtime at all."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("tensorflow", "torch", "keras", "onnx2tf")
RUNTIMES = ("ai_edge_litert", "onnxruntime")


def loaded_after(imports: str) -> set[str]:
    code = f"import sys\n{imports}\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return set(out.split())


def test_the_agent_process_imports_neither_heavy_frameworks_nor_runtimes():
    loaded = loaded_after("import edgefarm_agent, edgefarm_agent.__main__, edgefarm_agent.backends.host, "
                          "edgefarm_agent.backends.runner")
    assert "edgefarm_agent" in loaded
    assert not loaded & set(HEAVY + RUNTIMES)


def test_the_job_process_imports_only_the_runtimes():
    loaded = loaded_after("import edgefarm_agent.backends.litert, edgefarm_agent.backends.onnxruntime")
    assert set(RUNTIMES) <= loaded
    assert not loaded & set(HEAVY)
