"""Train the portrait segmenter briefly on generated portraits, on a 2-core CPU, and export it to ONNX.

    .venv/bin/python examples/portrait_segmentation/train.py [--steps 400] [--out DIR] [--seed 0]

From the seeded initialisation (no pretrained weights, nothing downloaded): Adam on BCE + Dice at the model's
own resolution, 256×256, batch 4 (for a budget of a few hundred steps, more updates of fewer images learn faster
than fewer updates of more), warm-up then cosine decay, random horizontal flips. The default budget ends in about
3 minutes on 2 cores (173 s measured). Then:

- the FP32 IoU on held-out portraits, computed as the farm computes it (edgefarm.metrics: Σ intersections /
  Σ unions over the set, sigmoid(logit) > 0.5), on the very samples run.py evaluates on;
- the ONNX export (opset 17, input "image" (1,3,256,256), output "mask" (1,1,256,256)), checked against torch
  with ONNX Runtime when it is installed;
- `portrait_segmenter.onnx` and `training.json` (the numbers above) in --out.

Seeded throughout: the same seed gives the same run on the same machine and thread count (CPU kernels may round
differently elsewhere, so weights can differ in the last bits across machines).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # imported from elsewhere (run.py does it by path too): find data and segmenter
    sys.path.insert(0, str(HERE))

import data  # noqa: E402
from segmenter import FpnSegmenter, export_onnx  # noqa: E402

DEFAULT_OUT = HERE / "build"
ONNX_NAME = "portrait_segmenter.onnx"
SUMMARY_NAME = "training.json"
TRAIN_IMAGES = 600
EVAL_SAMPLES = 24  # run.py's default --eval-samples: the FP32 IoU printed here is the farm's fp32_vs_truth
THREADS = 2
WARMUP = 10


def bce_dice_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """BCE for per-pixel calibration plus soft Dice per image: Dice keeps small people (few pixels) from being
    drowned by the background, which BCE alone would happily predict everywhere early in training."""
    bce = F.binary_cross_entropy_with_logits(logits, masks)
    probs = torch.sigmoid(logits)
    overlap = (probs * masks).sum((1, 2, 3))
    dice = 1 - (2 * overlap + 1) / (probs.sum((1, 2, 3)) + masks.sum((1, 2, 3)) + 1)
    return bce + dice.mean()


def train(steps: int, seed: int, *, batch: int = 4, lr: float = 2e-3, images: int = TRAIN_IMAGES,
          log: Callable[[str], None] = print) -> FpnSegmenter:
    """FpnSegmenter trained for `steps` Adam steps on `images` generated portraits (data.TRAIN_SEED)."""
    torch.set_num_threads(THREADS)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    train_images, train_masks = (torch.from_numpy(a) for a in data.portraits(images, data.TRAIN_SEED))
    log(f"generated {images} training portraits in {time.perf_counter() - started:.1f} s")

    # channels_last: oneDNN's depthwise and 1×1 convolutions are markedly faster in NHWC on CPU.
    model = FpnSegmenter().to(memory_format=torch.channels_last)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / WARMUP) * 0.5 * (1 + math.cos(math.pi * step / steps)))
    order = rng.permutation(images)
    position, running = 0, []
    for step in range(1, steps + 1):
        if position + batch > images:
            order, position = rng.permutation(images), 0
        index = torch.from_numpy(order[position:position + batch])
        position += batch
        x, y = train_images[index], train_masks[index]
        if rng.random() < 0.5:  # portraits are left-right symmetric; the generator's lean and tilt are too
            x, y = x.flip(-1), y.flip(-1)
        loss = bce_dice_loss(model(x.contiguous(memory_format=torch.channels_last)), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        running.append(loss.item())
        if step % 25 == 0 or step == steps:
            log(f"step {step:4d}/{steps}  loss {np.mean(running):.4f}  {time.perf_counter() - started:6.1f} s")
            running = []
    model.eval()
    return model.to(memory_format=torch.contiguous_format)


def predict(model: FpnSegmenter, images: np.ndarray, batch: int = 8) -> np.ndarray:
    """FP32 logits (n,1,256,256) for images (n,3,256,256), in eval mode."""
    model.eval()
    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(images[i:i + batch])).numpy()
                               for i in range(0, len(images), batch)])


def fp32_iou(model: FpnSegmenter, samples: int = EVAL_SAMPLES) -> float:
    """IoU on the held-out set (data.EVAL_SEED), with the farm's own metric so the numbers compare."""
    from edgefarm.metrics import evaluate

    images, masks = data.portraits(samples, data.EVAL_SEED)
    return float(evaluate("iou", predict(model, images), masks, {"threshold": 0.5, "logits": True}))


def onnx_max_abs_diff(onnx_path: Path, model: FpnSegmenter, samples: int = 4) -> float | None:
    """max |ONNX Runtime − torch| over a few held-out portraits; None when onnxruntime is not installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    images, _ = data.portraits(samples, data.EVAL_SEED)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    expected = predict(model, images)
    got = np.concatenate([session.run(["mask"], {"image": images[i:i + 1]})[0] for i in range(samples)])
    return float(np.max(np.abs(got - expected)))


def build(out: Path = DEFAULT_OUT, steps: int = 400, seed: int = 0, *, batch: int = 4, lr: float = 2e-3,
          eval_samples: int = EVAL_SAMPLES, log: Callable[[str], None] = print) -> Path:
    """Train, evaluate, export and check; returns the ONNX path. run.py calls this when the model is missing."""
    started = time.perf_counter()
    model = train(steps, seed, batch=batch, lr=lr, log=log)
    train_seconds = time.perf_counter() - started
    iou = fp32_iou(model, eval_samples)
    onnx_path = export_onnx(model, Path(out) / ONNX_NAME)
    diff = onnx_max_abs_diff(onnx_path, model)
    summary = {"steps": steps, "batch": batch, "lr": lr, "seed": seed, "threads": THREADS,
               "train_seconds": round(train_seconds, 1), "fp32_iou": round(iou, 4), "eval_samples": eval_samples,
               "onnx_max_abs_diff": diff, "onnx_size": onnx_path.stat().st_size}
    (Path(out) / SUMMARY_NAME).write_text(json.dumps(summary, indent=2) + "\n")
    log(f"trained {steps} steps in {train_seconds:.0f} s; FP32 IoU on {eval_samples} held-out portraits: {iou:.4f}")
    if diff is not None:
        log(f"ONNX Runtime vs torch: max |Δ logit| = {diff:.2e}")
    log(f"wrote {onnx_path} ({onnx_path.stat().st_size / 1e6:.1f} MB)")
    return onnx_path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400, help="Adam steps (default 400: about 3 min on 2 cores)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})")
    parser.add_argument("--seed", type=int, default=0, help="initialisation and batch order (default 0)")
    parser.add_argument("--batch", type=int, default=4, help="images per step (default 4)")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (default 2e-3)")
    parser.add_argument("--eval-samples", type=int, default=EVAL_SAMPLES,
                        help=f"held-out portraits for the FP32 IoU (default {EVAL_SAMPLES}, as run.py)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch < 1 or args.eval_samples < 1:
        parser.error("--steps, --batch and --eval-samples must be at least 1")
    build(args.out, args.steps, args.seed, batch=args.batch, lr=args.lr, eval_samples=args.eval_samples)


if __name__ == "__main__":
    main()
