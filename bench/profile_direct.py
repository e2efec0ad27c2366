"""Profile fidelity: the agent's LiteRT profile against a plain interpreter loop on the same model and CPU.

    python bench/profile_direct.py model.tflite [--threads 2] [--iterations 200] [--warmup 10]

- `direct_median_us` is the peer: what a user measures by hand — one `ai_edge_litert` Interpreter with the same
  threads and LiteRT's default XNNPACK, seeded random inputs set once, `invoke()` timed with perf_counter_ns.
- `agent_profile` runs the agent's own profile code path exactly as a leased job runs it (the host backend,
  a fresh child process per job), without a gateway.

The ratio agent/direct should sit near 1.0: the farm adds no overhead to what it reports and hides none.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from edgefarm.wire import JobType, Profile, TensorInfo
from edgefarm_agent.backends import Job, JobSpec, ProfileOutcome
from edgefarm_agent.backends.feeds import random_feeds
from edgefarm_agent.backends.host import HostBackend
from edgefarm_agent.config import parse_config

BENCH_DEVICE = """
[[devices]]
name = "bench host"
serial = "bench"
backend = "host"
"""


def direct_median_us(tflite_path: str | Path, threads: int, iterations: int, warmup: int) -> float:
    interpreter = Interpreter(model_path=str(tflite_path), num_threads=threads)
    interpreter.allocate_tensors()
    details = interpreter.get_input_details()
    inputs = random_feeds([_info(d) for d in details])
    for detail in details:
        interpreter.set_tensor(detail["index"], inputs[detail["name"]])
    for _ in range(warmup):
        interpreter.invoke()
    times = []
    for _ in range(iterations):
        start = time.perf_counter_ns()
        interpreter.invoke()
        times.append((time.perf_counter_ns() - start) / 1000.0)
    return float(np.median(times))


def agent_profile(tflite_path: str | Path, options: str) -> Profile:
    """`options` is the job's options string, as given to submit_profile_job
    (e.g. "--max_profiler_iterations 200 --warmup_iterations 10 --tflite_options number_of_threads=2")."""
    device = parse_config(BENCH_DEVICE).devices[0]
    spec = JobSpec(JobType.PROFILE, "tflite", options)
    with tempfile.TemporaryDirectory(prefix="edgefarm-bench-") as work_dir:
        job = Job(spec=spec, device=device.spec(), model_path=Path(tflite_path).resolve(), inputs_path=None,
                  work_dir=Path(work_dir))
        outcome = HostBackend(device).run(job, cancelled=threading.Event(), progress=lambda message: None)
    assert isinstance(outcome, ProfileOutcome)
    return outcome.profile


def _info(detail: dict) -> TensorInfo:
    return TensorInfo(name=detail["name"], shape=[int(n) for n in detail["shape"]],
                      dtype=np.dtype(detail["dtype"]).name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()
    direct = direct_median_us(args.model, args.threads, args.iterations, args.warmup)
    profile = agent_profile(args.model, f"--max_profiler_iterations {args.iterations} --warmup_iterations "
                                        f"{args.warmup} --tflite_options number_of_threads={args.threads}")
    agent = profile.execution_summary.estimated_inference_time
    print(f"{args.model.name}: direct LiteRT median {direct:.1f} µs, agent profile median {agent:.1f} µs "
          f"(delegate {profile.execution_summary.delegate}, {args.threads} threads): ratio {agent / direct:.3f}")


if __name__ == "__main__":
    main()
