"""Pipeline benchmark: the farm's delivery loop against the same steps scripted by hand with the SDK.

    .venv/bin/python bench/pipeline.py [--eval-samples 16]

Model: the benchmark segmenter (256×256, 3.07 M parameters), full INT8 with int8 I/O, on a one-machine farm
(gateway, Celery worker, host agent; SQLite, embedded broker). Its weights are seeded, not trained (no training
in a benchmark), so its IoU is low and means nothing about quality: it shows only that both sides computed
the same numbers. examples/portrait_segmentation runs the same loop on a trained model.
Peer (by hand): submit the compile job; while it runs, compute the FP32 reference with ONNX Runtime in the
script; then submit the profile and inference jobs, download the profile and the outputs, and compute IoU
against the ground truth and against FP32 in the script: what a team writes before it has a farm that gates.
Farm: one `submit_pipeline(...)`, waited for; the farm does the same work and registers the version.
Each side gets its own calibration set (same size, different seed), so neither reuses the other's compile.
Prints both walls and their ratio (the pipeline's orchestration overhead), the numbers each side measured, and
the pipeline's own timeline (its recorded events), which shows where its time went.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root: bench.peers, tests.nets

from bench.peers import SIZE, build_segmenter_onnx, free_port  # noqa: E402
from tests.nets import shapes  # noqa: E402

OPTIONS = "--quantize_full_type int8 --quantize_io"
PROFILE = "--max_profiler_iterations 50"


def by_hand(client, model: Path, device, calibration, images, masks) -> tuple[float, float, float, float]:
    from edgefarm import metrics

    started = time.perf_counter()
    compiled = client.jobs.submit_compile(model, device, options=OPTIONS, calibration_data=calibration)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    reference = np.stack([session.run(None, {"image": image})[0] for image in images["image"]])
    profile_job = client.jobs.submit_profile(compiled, device, options=PROFILE, input_data=images)
    inference = client.jobs.submit_inference(compiled, device, images)
    outputs = np.stack(inference.download_output_data()["mask"])
    median_ms = profile_job.download_profile()["execution_summary"]["estimated_inference_time"] / 1000
    device_iou = metrics.evaluate("iou", outputs, masks[:, None])
    fp32_iou = metrics.evaluate("iou", reference, masks[:, None])
    return time.perf_counter() - started, fp32_iou, device_iou, median_ms


def pipeline(client, model: Path, device, calibration, images, masks) -> tuple[float, float, float, float]:
    from edgefarm import PipelineState

    started = time.perf_counter()
    run = client.pipelines.submit(
        model, "bench-segmenter", [device], compile_options=OPTIONS, calibration_data=calibration,
        profile_options=PROFILE, eval_inputs=images, ground_truth={"mask": [mask[None] for mask in masks]},
        metric={"name": "iou", "output": "mask"}, gates={"max_metric_drop": 0.05})
    state = run.wait()
    wall = time.perf_counter() - started
    assert state == PipelineState.SUCCESS, run.failure_reason
    for event in run.data.events:
        print(f"    pipeline +{max(0.0, (event.at - run.data.created_at).total_seconds()):6.2f} s  {event.message}")
    [measured] = run.report["devices"]
    return wall, measured["metrics"]["fp32_vs_truth"], measured["metrics"]["device_vs_truth"], \
        measured["profile"]["median_ms"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-samples", type=int, default=16, help="evaluation samples (default 16)")
    args = parser.parse_args()

    import edgefarm as ef
    from edgefarm.farm import LocalFarm

    with tempfile.TemporaryDirectory(prefix="edgefarm-bench-") as tmp:
        root = Path(tmp)
        model = build_segmenter_onnx(root / "segmenter.onnx")
        images, masks, _ = shapes(args.eval_samples, seed=99, size=SIZE)
        inputs = {"image": [image[None] for image in images]}  # one (1,3,256,256) array per sample
        masks = masks[:, 0]
        with LocalFarm(data_dir=root / "farm", port=free_port()) as farm:
            client = ef.Client(api_url=farm.url, api_token=farm.admin_token)
            device = ef.Device("Host CPU")
            results = {}
            for side, run, seed in (("by hand", by_hand, 11), ("pipeline", pipeline, 12)):
                calibration = {"image": [image[None] for image in shapes(32, seed=seed, size=SIZE)[0]]}
                results[side] = run(client, model, device, calibration, inputs, masks)

    hand, farm_run = results["by hand"], results["pipeline"]
    print(f"segmenter {SIZE}x{SIZE}, full INT8 with int8 I/O, {args.eval_samples} evaluation samples, Host CPU")
    for title, (wall, fp32_iou, device_iou, median_ms) in (
            ("by hand (compile, FP32 in the script, profile, inference, IoU)", hand),
            ("farm pipeline (the same, gated and registered)", farm_run)):
        print(f"  {title:64s} {wall:7.2f} s   IoU FP32 {fp32_iou:.4f} → device {device_iou:.4f}, "
              f"median {median_ms:.2f} ms")
    print(f"  ratio pipeline / by hand: {farm_run[0] / hand[0]:.2f}")


if __name__ == "__main__":
    main()
