"""The portrait segmenter: a MobileNetV2 backbone (inverted residuals, width 1.0) with an FPN decoder.

(1,3,256,256) float32 RGB in [0, 1] → (1,1,256,256) mask logits; about 3 M parameters. Plain convolutions,
depthwise convolutions, ReLU6, nearest/bilinear upsampling and additions: the operators every edge runtime
quantizes well, which is the point of the example.

This file is the one definition of the model: the example trains it (train.py), and the farm's benchmarks
(bench/peers.py) export it untrained with fixed seeds. Nothing here downloads anything.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

SIZE = 256
INPUT_NAME = "image"
OUTPUT_NAME = "mask"
OPSET = 17


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    """Conv (no bias: batch norm follows) + BatchNorm (+ ReLU6); the exporter folds the BN into the conv."""
    layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, nn.ReLU6()) if act else nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1×1 expand, 3×3 depthwise, linear 1×1 project; a skip when the shape is kept."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers = [conv_bn(cin, hidden, 1)] if expand != 1 else []
        layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden), conv_bn(hidden, cout, 1, act=False)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.residual else self.block(x)


class FpnSegmenter(nn.Module):
    """MobileNetV2 + FPN → one channel of mask logits at the input resolution (any multiple of 32).

    The decoder merges the pyramid top-down (laterals + 2× nearest upsampling), sums the smoothed levels at
    stride 4 and upsamples the head's logits 4× bilinearly: fine enough for silhouette edges, cheap on device.
    The layer order is fixed: a given torch seed always gives the same initial weights.
    """

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

    def forward(self, image: torch.Tensor) -> torch.Tensor:
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


def export_onnx(model: nn.Module, path: str | Path) -> Path:
    """ONNX opset 17 with the TorchScript exporter (dynamo=False): static (1,3,256,256) input "image" and
    output "mask", the graph the farm's converter and the benchmarks are tested with. Puts `model` in eval mode."""
    model.eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(model, (torch.zeros(1, 3, SIZE, SIZE),), str(path), input_names=[INPUT_NAME],
                      output_names=[OUTPUT_NAME], opset_version=OPSET, dynamo=False)
    return path
