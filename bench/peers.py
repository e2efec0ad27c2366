"""The peers the benchmarks measure the farm against, and the model they share.

The model is a MobileNetV2-style FPN segmenter at 256×256 (about 3.3 M parameters), built from torch with fixed
seeds: no downloads, no pretrained weights. Both sides run offline (onnx2tf finds its sample file in its cwd).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SIZE = 256
# The onnx2tf CLI looks for this file in its cwd before it tries to download it.
ONNX2TF_SAMPLE_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"


def build_segmenter_onnx(path: Path) -> Path:
    """MobileNetV2 backbone (inverted residuals, width 1.0) + FPN decoder → (1,1,256,256) mask logits."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    from tests.nets import shapes

    def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True):
        layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
        return nn.Sequential(*layers, nn.ReLU6()) if act else nn.Sequential(*layers)

    class InvertedResidual(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
            super().__init__()
            hidden = cin * expand
            layers = [conv_bn(cin, hidden, 1)] if expand != 1 else []
            layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden), conv_bn(hidden, cout, 1, act=False)]
            self.block = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            return x + self.block(x) if self.residual else self.block(x)

    class FpnSegmenter(nn.Module):
        # (expansion, channels, repeats, stride) as in MobileNetV2; FPN taps after strides 4, 8, 16 and 32.
        CONFIG = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                  (6, 320, 1, 1))
        TAPS = (1, 2, 4)

        def __init__(self, fpn: int = 128) -> None:
            super().__init__()
            self.stem = conv_bn(3, 32, 3, 2)
            self.stages = nn.ModuleList()
            cin = 32
            for expand, cout, repeats, stride in self.CONFIG:
                blocks = [InvertedResidual(cin if i == 0 else cout, cout, stride if i == 0 else 1, expand)
                          for i in range(repeats)]
                self.stages.append(nn.Sequential(*blocks))
                cin = cout
            self.top = conv_bn(320, 1280, 1)
            self.laterals = nn.ModuleList([nn.Conv2d(c, fpn, 1) for c in (24, 32, 96, 1280)])
            self.smooth = nn.ModuleList([conv_bn(fpn, fpn, 3) for _ in range(4)])
            self.head = nn.Sequential(conv_bn(fpn, 64, 3), nn.Conv2d(64, 1, 1))

        def forward(self, image):
            x = self.stem(image)
            taps = []
            for index, stage in enumerate(self.stages):
                x = stage(x)
                if index in self.TAPS:
                    taps.append(x)
            taps.append(self.top(x))
            merged = self.laterals[-1](taps[-1])
            pyramid = [self.smooth[-1](merged)]
            for level in range(2, -1, -1):
                merged = self.laterals[level](taps[level]) + F.interpolate(merged, scale_factor=2.0, mode="nearest")
                pyramid.insert(0, self.smooth[level](merged))
            fused = pyramid[0]
            for level, features in enumerate(pyramid[1:], start=1):
                fused = fused + F.interpolate(features, scale_factor=2.0 ** level, mode="nearest")
            return F.interpolate(self.head(fused), scale_factor=4.0, mode="bilinear")

    torch.manual_seed(0)
    model = FpnSegmenter()
    # Batch-norm statistics from synthetic images, so activations have realistic ranges for INT8 calibration.
    images, _, _ = shapes(32, seed=7, size=SIZE)
    model.train()
    with torch.no_grad():
        for start in range(0, len(images), 8):
            model(torch.from_numpy(images[start:start + 8]))
    model.eval()
    torch.onnx.export(model, (torch.zeros(1, 3, SIZE, SIZE),), str(path), input_names=["image"],
                      output_names=["mask"], opset_version=17, dynamo=False)
    return Path(path)


def onnx2tf_cli_int8(onnx_path: Path, calib_npy: Path, workdir: Path) -> float:
    """Run `onnx2tf -oiqt -cind ...` the way a user gets a full-INT8 model with their own calibration data.

    `calib_npy` holds float32 samples already normalised and in TF (NHWC) order, as onnx2tf requires; mean 0 and
    std 1 leave them as they are. Returns wall seconds; raises if `*_full_integer_quant.tflite` is missing.
    """
    import onnx

    workdir.mkdir(parents=True, exist_ok=True)
    input_name = onnx.load(str(onnx_path), load_external_data=False).graph.input[0].name
    samples = np.load(calib_npy)
    np.save(workdir / ONNX2TF_SAMPLE_FILE, samples[:20])  # keeps the CLI offline
    channels = samples.shape[-1]
    mean = "[[[[" + ",".join(["0.0"] * channels) + "]]]]"
    std = "[[[[" + ",".join(["1.0"] * channels) + "]]]]"
    bin_dir = Path(sys.executable).parent  # the CLI shells out to `onnxsim`, installed beside it
    out = workdir / "saved_model"
    command = [str(bin_dir / "onnx2tf"), "-i", str(Path(onnx_path).resolve()), "-o", str(out), "-oiqt",
               "-cind", input_name, str(Path(calib_npy).resolve()), mean, std]
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    produced = list(out.glob("*_full_integer_quant.tflite"))
    if completed.returncode != 0 or not produced:
        raise RuntimeError(f"onnx2tf CLI failed (exit {completed.returncode}):\n{completed.stdout[-3000:]}"
                           f"\n{completed.stderr[-3000:]}")
    return seconds


def direct_median_us(tflite_path: Path, threads: int, iterations: int, warmup: int) -> float:
    """The profile peer: what a user measures by hand. One LiteRT interpreter, the same threads, LiteRT's default
    XNNPACK, seeded random inputs set once, `invoke()` timed with perf_counter_ns; the median in µs."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(tflite_path), num_threads=threads)
    interpreter.allocate_tensors()
    rng = np.random.default_rng(0)
    for detail in interpreter.get_input_details():
        dtype = np.dtype(detail["dtype"])
        if dtype.kind == "f":
            value = rng.standard_normal(detail["shape"]).astype(dtype)
        else:
            limits = np.iinfo(dtype)
            value = rng.integers(limits.min, limits.max, detail["shape"], endpoint=True).astype(dtype)
        interpreter.set_tensor(detail["index"], value)
    for _ in range(warmup):
        interpreter.invoke()
    times = []
    for _ in range(iterations):
        start = time.perf_counter_ns()
        interpreter.invoke()
        times.append((time.perf_counter_ns() - start) / 1000.0)
    return float(np.median(times))
