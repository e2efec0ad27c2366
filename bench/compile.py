"""Compile benchmark: the farm against the onnx2tf command line, on the same model and calibration data.

    make bench        (or: .venv/bin/python bench/compile.py [--samples 32])

Model: a MobileNetV2-style FPN segmenter at 256×256 (3.07 M parameters), built with fixed seeds (no downloads).
Peer: `onnx2tf -oiqt -cind …`, the command line a user runs to get a full-INT8 TFLite with their own data.
Farm: a real one-machine farm (gateway + Celery worker, SQLite, embedded broker); the wall time runs from
`submit_compile_job` (upload included) until the INT8 model is downloaded. Then the same request again: a
cache hit. Both convert offline. Prints both walls and their ratio.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: bench.peers, tests.nets

from bench.peers import SIZE, build_segmenter_onnx, free_port, onnx2tf_cli_int8  # noqa: E402
from tests.nets import shapes  # noqa: E402

OPTIONS = "--quantize_full_type int8 --quantize_io"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=32, help="calibration samples (default 32)")
    args = parser.parse_args()

    import edgefarm as ef
    from edgefarm.farm import LocalFarm

    with tempfile.TemporaryDirectory(prefix="edgefarm-bench-") as tmp:
        root = Path(tmp)
        model = build_segmenter_onnx(root / "segmenter.onnx")
        images, _, _ = shapes(args.samples, seed=11, size=SIZE)
        np.save(root / "calib_nhwc.npy", images.transpose(0, 2, 3, 1))

        cli = onnx2tf_cli_int8(model, root / "calib_nhwc.npy", root / "cli")

        farm = LocalFarm(data_dir=root / "farm", port=free_port(), agent=False)
        token = farm.start()  # the worker imports the converter stack at start, as a running farm has
        try:
            client = ef.Client(api_url=farm.url, api_token=token)
            calibration = {"image": [image[None] for image in images]}
            started = time.perf_counter()
            job = client.jobs.submit_compile(model, ef.Device("Host CPU"), options=OPTIONS,
                                             calibration_data=calibration)
            job.download_target_model(root / "int8.tflite")
            farm_wall = time.perf_counter() - started
            converter = job.result.seconds
            at = {e.state.value: e.at for e in job.events}
            queued = (at["OPTIMIZING_MODEL"] - at["CREATED"]).total_seconds()
            held = (at["SUCCESS"] - at["OPTIMIZING_MODEL"]).total_seconds()

            started = time.perf_counter()
            again = client.jobs.submit_compile(model, ef.Device("Host CPU"), options=OPTIONS,
                                               calibration_data=calibration)
            assert again.get_status().success and again.data.cache_hit
            cache_hit = time.perf_counter() - started
        finally:
            farm.stop()

    print(f"segmenter {SIZE}x{SIZE} (3.07 M parameters), {args.samples} calibration samples, full INT8, int8 I/O")
    print(f"  onnx2tf CLI (-oiqt -cind):                    {cli:7.2f} s")
    print(f"  farm, submit → downloaded:                    {farm_wall:7.2f} s   ratio farm/CLI {farm_wall / cli:.2f}")
    print(f"    submitted → claimed by the worker:          {queued:7.2f} s")
    print(f"    claimed → SUCCESS (conversion {converter:5.2f} s):   {held:7.2f} s")
    print(f"    the rest (upload, polling, download):       {farm_wall - queued - held:7.2f} s")
    print(f"  farm, same request again (cache hit):         {cache_hit:7.3f} s")


if __name__ == "__main__":
    main()
