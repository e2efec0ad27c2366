"""Profile benchmark: what the farm reports against what a user measures by hand, plus dispatch and agent memory.

    .venv/bin/python bench/profile_jobs.py [--jobs 100]

1. Fidelity: the benchmark segmenter (256×256, 3.07 M parameters) compiled to full INT8 by the farm, then
   timed (a) by a plain LiteRT interpreter loop in this process (the peer) and (b) by a farm profile job on the
   host agent, same threads (2), same iterations, alternated twice. Prints both medians and their ratio
   (target within ±5 %).
2. Dispatch: `--jobs` tiny profile jobs submitted one after another to an idle agent; from the gateway's event
   times: submit → leased to the device, and submit → the agent starting to measure (target p50 ≤ 50 ms,
   p99 ≤ 250 ms).
3. The agent's peak RSS while profiling (sampled every 50 ms, in a separate run): the agent process, and with
   its job process.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: bench.peers, tests.nets

from bench.peers import SIZE, build_segmenter_onnx, direct_median_us, free_port  # noqa: E402
from tests.nets import shapes, write_convnet_onnx  # noqa: E402

THREADS, ITERATIONS, WARMUP = 2, 200, 10


class RssSampler:
    """Peak resident memory of a process (and optionally its children), sampled in a thread."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak_alone = self.peak_with_children = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                alone = self.process.memory_info().rss
                children = sum(c.memory_info().rss for c in self.process.children(recursive=True))
            except psutil.Error:
                continue
            self.peak_alone = max(self.peak_alone, alone)
            self.peak_with_children = max(self.peak_with_children, alone + children)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100, help="dispatch-latency jobs (default 100)")
    args = parser.parse_args()

    import edgefarm as ef
    from edgefarm.farm import LocalFarm

    with tempfile.TemporaryDirectory(prefix="edgefarm-bench-") as tmp:
        root = Path(tmp)
        farm = LocalFarm(data_dir=root / "farm", port=free_port())
        token = farm.start()
        try:
            client = ef.Client(api_url=farm.url, api_token=token)
            device = ef.Device("Host CPU")
            images = shapes(32, seed=11, size=SIZE)[0]
            compiled = client.jobs.submit_compile(
                build_segmenter_onnx(root / "segmenter.onnx"), device, name="segmenter-int8",
                options="--quantize_full_type int8 --quantize_io",
                calibration_data={"image": [i[None] for i in images]})
            target = compiled.download_target_model(root / "segmenter_int8.tflite")

            options = (f"--max_profiler_iterations {ITERATIONS} --warmup_iterations {WARMUP} "
                       f"--tflite_options number_of_threads={THREADS}")
            # Alternate the two, twice, so a drift of the machine's speed hits both sides alike. Nothing else
            # runs meanwhile: on 2 cores, even a memory sampler would slow the 2-thread side it watches.
            direct, farmed = [], []
            for _ in range(2):
                direct.append(direct_median_us(target, THREADS, ITERATIONS, WARMUP))
                farmed.append(client.jobs.submit_profile(compiled, device, options=options).download_profile()
                              ["execution_summary"]["estimated_inference_time"])
            direct_median, farm_median = float(np.median(direct)), float(np.median(farmed))

            agent = next(p for p in farm.processes if p.name == "agent")
            with RssSampler(agent.popen.pid) as rss:
                client.jobs.submit_profile(compiled, device, options=options).wait()

            tiny = client.models.upload(write_convnet_onnx(root / "tiny.onnx"))
            leased, started = [], []
            for _ in range(args.jobs):
                job = client.jobs.submit_profile(tiny, device, options="--max_profiler_iterations 1 "
                                                                       "--warmup_iterations 1")
                job.wait(timeout=60)
                at = {e.state.value: e.at for e in job.events}
                leased.append((at["PROVISIONING_DEVICE"] - at["CREATED"]).total_seconds() * 1000)
                started.append((at["MEASURING_PERFORMANCE"] - at["CREATED"]).total_seconds() * 1000)
        finally:
            farm.stop()

    def pct(values: list[float], q: float) -> float:
        return float(np.percentile(values, q))

    print(f"segmenter {SIZE}x{SIZE} full INT8 on LiteRT/XNNPACK, {THREADS} threads, {ITERATIONS} iterations")
    print(f"  direct interpreter loop median:   {direct_median / 1000:8.3f} ms  (runs: "
          f"{', '.join(f'{d / 1000:.3f}' for d in direct)})")
    print(f"  farm profile job median:          {farm_median / 1000:8.3f} ms  (runs: "
          f"{', '.join(f'{f / 1000:.3f}' for f in farmed)})   ratio farm/direct {farm_median / direct_median:.3f}")
    print(f"dispatch over {args.jobs} jobs (submit → ...):")
    print(f"  leased to the device:   p50 {pct(leased, 50):6.1f} ms   p99 {pct(leased, 99):6.1f} ms")
    print(f"  agent starts measuring: p50 {pct(started, 50):6.1f} ms   p99 {pct(started, 99):6.1f} ms")
    print(f"agent peak RSS while profiling: agent {rss.peak_alone / 2**20:6.1f} MB, "
          f"with its job process {rss.peak_with_children / 2**20:6.1f} MB")


if __name__ == "__main__":
    main()
