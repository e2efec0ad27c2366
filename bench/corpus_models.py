"""A corpus of public architectures, defined in plain torch.nn, for the conversion benchmark (bench/corpus.py).

Why: one hand-built segmenter says little about how often the farm converts what users bring. These are the
architectures people actually ship (ResNet, MobileNet, EfficientNet, ViT, BERT, YOLO, UNet, LSTM ...), each
keeping the structure converters trip on (channel shuffle, 5-D/6-D reshapes, dilations, ceil-mode pooling,
4-D softmax, window attention, DFL heads, int64 token ids, NHWC inputs, dynamic batch ...), at reduced widths
and input sizes so each one exports and converts in seconds on two CPU cores.

Everything is built offline (no torchvision, no downloads) with seeded random weights: conversion fidelity needs
no trained weights. Batch-norm layers get random affine parameters and running statistics from seeded batches
(train mode, cumulative average), then everything is put in eval mode, so activations are not degenerate.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# ----------------------------------------------------------------------------------------------------------------
# The corpus entry


@dataclass(frozen=True)
class CorpusModel:
    name: str
    family: str
    build: Callable[[], nn.Module]  # seeded, eval mode, batch-norm statistics set
    inputs: dict[str, tuple[tuple[int, ...], str]]  # input name -> (shape, dtype) as compiled (batch 1)
    outputs: tuple[str, ...] = ("output",)
    opset: int = 17
    dynamic_batch: bool = False  # exported with a symbolic batch axis on every input and output
    note: str = ""
    # Per input: float inputs are uniform in [low, high], integer inputs uniform in [low, high); default N(0, 1).
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def has_integer_inputs(self) -> bool:
        return any(np.dtype(dtype).kind in "iub" for _, dtype in self.inputs.values())

    def sample_inputs(self, count: int, seed: int) -> dict[str, np.ndarray]:
        """`count` samples per input, stacked: (count, *shape), in realistic ranges."""
        rng = np.random.default_rng(seed)
        samples = {}
        for name, (shape, dtype) in self.inputs.items():
            full = (count, *shape)
            low_high = self.ranges.get(name)
            if np.dtype(dtype).kind in "iub":
                low, high = low_high or (0, 2)
                samples[name] = rng.integers(int(low), int(high), full).astype(dtype)
            elif low_high is None:
                samples[name] = rng.standard_normal(full).astype(dtype)
            else:
                samples[name] = rng.uniform(low_high[0], low_high[1], full).astype(dtype)
        return samples

    def torch_inputs(self, seed: int = 0) -> tuple[torch.Tensor, ...]:
        """One sample per input as torch tensors, in input order (the export's example arguments)."""
        return tuple(torch.from_numpy(a[0]) for a in self.sample_inputs(1, seed).values())

    def export(self, path: Path) -> Path:
        """The legacy (TorchScript) exporter, as the farm uses, with input and output names set."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        dynamic_axes = None
        if self.dynamic_batch:
            dynamic_axes = {name: {0: "batch"} for name in (*self.inputs, *self.outputs)}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                self.build(), self.torch_inputs(), str(path), dynamo=False, opset_version=self.opset,
                input_names=list(self.inputs), output_names=list(self.outputs), dynamic_axes=dynamic_axes,
                do_constant_folding=True,
            )
        return path


def _prepare(model: nn.Module, entry: CorpusModel) -> nn.Module:
    """Random but non-trivial batch-norm / layer-norm parameters and statistics, then eval mode."""
    generator = torch.Generator().manual_seed(1234)
    norms = [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm))]
    with torch.no_grad():
        for m in norms:
            if getattr(m, "weight", None) is not None:
                m.weight.copy_(torch.empty_like(m.weight).uniform_(0.6, 1.4, generator=generator))
                m.bias.copy_(torch.randn(m.bias.shape, generator=generator) * 0.1)
    batch_norms = [m for m in norms if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    if batch_norms:
        for m in batch_norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
        model.train()
        with torch.no_grad():
            for step in range(3):
                batch = entry.sample_inputs(4, seed=100 + step)
                model(*(torch.from_numpy(a.reshape(-1, *a.shape[2:])) for a in batch.values()))
        for m in batch_norms:
            m.momentum = 0.1
    return model.eval()


def _init(model: nn.Module) -> nn.Module:
    """Variance-preserving weights, so deep nets without batch norm (VGG, AlexNet, transformers) stay in range."""
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.normal_(m.bias, std=0.05)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=1.0 / math.sqrt(m.in_features))
            if m.bias is not None:
                nn.init.normal_(m.bias, std=0.05)
    return model


CORPUS: list[CorpusModel] = []


def _add(name: str, family: str, make: Callable[[], nn.Module], inputs: dict, **kwargs) -> None:
    def build() -> nn.Module:
        torch.manual_seed(0)
        return _prepare(_init(make()), entry)

    entry = CorpusModel(name=name, family=family, build=build, inputs=inputs, **kwargs)
    CORPUS.append(entry)


def by_name(name: str) -> CorpusModel:
    for entry in CORPUS:
        if entry.name == name:
            return entry
    raise KeyError(f"no corpus model {name!r}; known: {', '.join(m.name for m in CORPUS)}")


def image(size: int | tuple[int, int], channels: int = 3) -> dict:
    h, w = (size, size) if isinstance(size, int) else size
    return {"image": ((1, channels, h, w), "float32")}


# ----------------------------------------------------------------------------------------------------------------
# Shared blocks


def conv_bn(cin, cout, k=3, s=1, g=1, act=nn.ReLU, d=1) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, k, s, (k - 1) // 2 * d, dilation=d, groups=g, bias=False), nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


def divisible(v: float, d: int = 8) -> int:
    """MobileNet's channel rounding."""
    new = max(d, int(v + d / 2) // d * d)
    return new + d if new < 0.9 * v else new


class SqueezeExcite(nn.Module):
    def __init__(self, c: int, squeeze: int, act=nn.ReLU, gate=nn.Sigmoid) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2, self.gate = nn.Conv2d(c, squeeze, 1), act(), nn.Conv2d(squeeze, c, 1), gate()

    def forward(self, x):
        return x * self.gate(self.fc2(self.act(self.fc1(F.adaptive_avg_pool2d(x, 1)))))


class Classifier(nn.Module):
    """features → global average pool → flatten → (hidden) → logits."""

    def __init__(self, features: nn.Module, channels: int, classes: int = 1000, hidden: int = 0, act=nn.ReLU):
        super().__init__()
        self.features = features
        layers: list[nn.Module] = [nn.Linear(channels, hidden), act(), nn.Dropout(0.2)] if hidden else []
        self.head = nn.Sequential(*layers, nn.Linear(hidden or channels, classes))

    def forward(self, x):
        return self.head(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


# ---- ResNet family ----


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, c, s=1, d=1):
        super().__init__()
        self.conv1, self.conv2 = conv_bn(cin, c, 3, s, d=d), conv_bn(c, c, 3, act=None, d=d)
        self.down = conv_bn(cin, c, 1, s, act=None) if s != 1 or cin != c else None

    def forward(self, x):
        return F.relu(self.conv2(self.conv1(x)) + (x if self.down is None else self.down(x)))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, c, s=1, d=1):
        super().__init__()
        self.body = nn.Sequential(conv_bn(cin, c, 1), conv_bn(c, c, 3, s, d=d), conv_bn(c, c * 4, 1, act=None))
        self.down = conv_bn(cin, c * 4, 1, s, act=None) if s != 1 or cin != c * 4 else None

    def forward(self, x):
        return F.relu(self.body(x) + (x if self.down is None else self.down(x)))


class ResNet(nn.Module):
    """torchvision's ResNet at a reduced base width; `stages()` gives C2..C5 for the dense-prediction models."""

    def __init__(self, block, layers, width=64, classes=1000, dilate_last=False):
        super().__init__()
        self.stem = nn.Sequential(conv_bn(3, width, 7, 2), nn.MaxPool2d(3, 2, 1))
        cin, stages = width, []
        for i, n in enumerate(layers):
            c = width * 2**i
            dilated = dilate_last and i == len(layers) - 1
            s, d = (1, 2) if dilated else (1 if i == 0 else 2, 1)
            blocks = []
            for j in range(n):
                blocks.append(block(cin, c, s if j == 0 else 1, d))
                cin = c * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layers = nn.ModuleList(stages)
        self.channels = [width * 2**i * block.expansion for i in range(len(layers))]
        self.fc = nn.Linear(cin, classes)

    def stages(self, x) -> list[torch.Tensor]:
        x, out = self.stem(x), []
        for layer in self.layers:
            x = layer(x)
            out.append(x)
        return out

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.stages(x)[-1], 1), 1))


# ---- Inverted residuals: MobileNetV2/V3, MNASNet, EfficientNet ----


class InvertedResidual(nn.Module):
    def __init__(self, cin, hidden, cout, k=3, s=1, act=nn.ReLU6, se: int = 0, gate=nn.Sigmoid, se_act=nn.ReLU):
        super().__init__()
        layers = [] if hidden == cin else [conv_bn(cin, hidden, 1, act=act)]
        layers.append(conv_bn(hidden, hidden, k, s, g=hidden, act=act))
        if se:
            layers.append(SqueezeExcite(hidden, se, se_act, gate))
        layers.append(conv_bn(hidden, cout, 1, act=None))
        self.block, self.residual = nn.Sequential(*layers), s == 1 and cin == cout

    def forward(self, x):
        return x + self.block(x) if self.residual else self.block(x)


def mbnet(stem: int, blocks: list, head: int, act=nn.ReLU6, classes=1000, hidden=0, head_act=None) -> nn.Module:
    """stem conv → inverted residuals (cin → hidden → cout, k, s, act, se, gate) → 1×1 head conv → classifier."""
    layers, cin = [conv_bn(3, stem, 3, 2, act=act)], stem
    for hid, cout, k, s, block_act, se, gate in blocks:
        layers.append(InvertedResidual(cin, hid, cout, k, s, block_act, se, gate))
        cin = cout
    layers.append(conv_bn(cin, head, 1, act=head_act or act))
    return Classifier(nn.Sequential(*layers), head, classes, hidden, head_act or act)


def mobilenet_v2(width=1.0) -> nn.Module:
    settings = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1)]
    blocks, cin = [], divisible(32 * width)
    for t, c, n, s in settings:
        cout = divisible(c * width)
        for i in range(n):
            blocks.append((cin * t, cout, 3, s if i == 0 else 1, nn.ReLU6, 0, None))
            cin = cout
    return mbnet(divisible(32 * width), blocks, 1280)


def mobilenet_v2_features(width=0.5) -> nn.Sequential:
    return mobilenet_v2(width).features


def mobilenet_v3_small() -> nn.Module:
    hs, re = nn.Hardswish, nn.ReLU
    cfg = [(3, 16, 16, True, re, 2), (3, 72, 24, False, re, 2), (3, 88, 24, False, re, 1), (5, 96, 40, True, hs, 2),
           (5, 240, 40, True, hs, 1), (5, 240, 40, True, hs, 1), (5, 120, 48, True, hs, 1),
           (5, 144, 48, True, hs, 1), (5, 288, 96, True, hs, 2), (5, 576, 96, True, hs, 1),
           (5, 576, 96, True, hs, 1)]
    blocks = [(exp, out, k, s, act, divisible(exp // 4) if se else 0, nn.Hardsigmoid)
              for k, exp, out, se, act, s in cfg]
    return mbnet(16, blocks, 576, act=hs, hidden=1024)


def efficientnet(width: float, se: bool, act, head: int = 1280, fixed_ends: bool = False) -> nn.Module:
    """EfficientNet-B0 (SiLU + squeeze-excite) and -Lite0 (ReLU6, no SE, fixed stem and head)."""
    settings = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
                (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]
    stem = 32 if fixed_ends else divisible(32 * width)
    blocks, cin = [], stem
    for t, k, s, c, n in settings:
        cout = divisible(c * width)
        for i in range(n):
            blocks.append((cin * t, cout, k, s if i == 0 else 1, act, max(1, cin // 4) if se else 0, nn.Sigmoid))
            cin = cout
    return mbnet(stem, blocks, head if fixed_ends else divisible(head * max(1.0, width)), act=act)


def mnasnet(width=0.5) -> nn.Module:
    """MNASNet-B1: 3×3 and 5×5 inverted residuals with expansions 3 and 6, no squeeze-excite."""
    c = [divisible(x * width) for x in (32, 16, 24, 40, 80, 96, 192, 320)]
    stem = nn.Sequential(conv_bn(3, c[0], 3, 2), conv_bn(c[0], c[0], 3, g=c[0]), conv_bn(c[0], c[1], 1, act=None))
    settings = [(3, 3, 2, c[2], 3), (3, 5, 2, c[3], 3), (6, 5, 2, c[4], 3), (6, 3, 1, c[5], 2), (6, 5, 2, c[6], 4),
                (6, 3, 1, c[7], 1)]
    layers, cin = [stem], c[1]
    for t, k, s, cout, n in settings:
        for i in range(n):
            layers.append(InvertedResidual(cin, cin * t, cout, k, s if i == 0 else 1, nn.ReLU))
            cin = cout
    layers.append(conv_bn(cin, 1280, 1))
    return Classifier(nn.Sequential(*layers), 1280)


def mobilenet_v1(width=0.5) -> nn.Module:
    """Depthwise-separable convolutions only."""
    cfg = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
    cin = int(32 * width)
    layers = [conv_bn(3, cin, 3, 2)]
    for c, s in cfg:
        c = int(c * width)
        layers += [conv_bn(cin, cin, 3, s, g=cin), conv_bn(cin, c, 1)]
        cin = c
    return Classifier(nn.Sequential(*layers), cin)


# ---- Channel shuffle: ShuffleNet V1 / V2 ----


def channel_shuffle(x, groups: int):
    b, c, h, w = x.size()
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).contiguous().view(b, c, h, w)


class ShuffleV2Block(nn.Module):
    def __init__(self, cin, cout, s):
        super().__init__()
        half = cout // 2
        self.s = s
        if s > 1:
            self.branch1 = nn.Sequential(conv_bn(cin, cin, 3, s, g=cin, act=None), conv_bn(cin, half, 1))
        bin_ = cin if s > 1 else half
        self.branch2 = nn.Sequential(conv_bn(bin_, half, 1), conv_bn(half, half, 3, s, g=half, act=None),
                                     conv_bn(half, half, 1))

    def forward(self, x):
        if self.s == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


def shufflenet_v2(stage_out=(24, 48, 96, 192, 1024), repeats=(4, 8, 4)) -> nn.Module:
    layers = [conv_bn(3, stage_out[0], 3, 2), nn.MaxPool2d(3, 2, 1)]
    cin = stage_out[0]
    for cout, n in zip(stage_out[1:4], repeats):
        for i in range(n):
            layers.append(ShuffleV2Block(cin, cout, 2 if i == 0 else 1))
            cin = cout
    layers.append(conv_bn(cin, stage_out[-1], 1))
    return Classifier(nn.Sequential(*layers), stage_out[-1])


class ShuffleV1Unit(nn.Module):
    def __init__(self, cin, cout, s, groups, first_group=True):
        super().__init__()
        self.s, self.groups = s, groups
        branch = cout - cin if s == 2 else cout
        mid = cout // 4
        self.compress = conv_bn(cin, mid, 1, g=groups if first_group else 1)
        self.depthwise = conv_bn(mid, mid, 3, s, g=mid, act=None)
        self.expand = conv_bn(mid, branch, 1, g=groups, act=None)

    def forward(self, x):
        y = self.expand(self.depthwise(channel_shuffle(self.compress(x), self.groups)))
        if self.s == 2:
            return F.relu(torch.cat((F.avg_pool2d(x, 3, 2, 1), y), dim=1))
        return F.relu(x + y)


def shufflenet_v1(groups=3, stage_out=(120, 240, 480), repeats=(4, 8, 4)) -> nn.Module:
    layers, cin = [conv_bn(3, 24, 3, 2), nn.MaxPool2d(3, 2, 1)], 24
    for stage, (cout, n) in enumerate(zip(stage_out, repeats)):
        for i in range(n):
            layers.append(ShuffleV1Unit(cin, cout, 2 if i == 0 else 1, groups, first_group=stage > 0 or i > 0))
            cin = cout
    return Classifier(nn.Sequential(*layers), cin)


# ---- Classic CNNs ----


class Fire(nn.Module):
    def __init__(self, cin, squeeze, e1, e3):
        super().__init__()
        self.squeeze, self.e1, self.e3 = nn.Conv2d(cin, squeeze, 1), nn.Conv2d(squeeze, e1, 1), nn.Conv2d(
            squeeze, e3, 3, padding=1)

    def forward(self, x):
        x = F.relu(self.squeeze(x))
        return torch.cat((F.relu(self.e1(x)), F.relu(self.e3(x))), dim=1)


class SqueezeNet11(nn.Module):
    """SqueezeNet 1.1 as the ONNX model zoo has it: ceil-mode pooling, and Softmax over the channel axis of the
    (N, 1000, 1, 1) map before the flatten (a 4-D softmax whose axis moves under a layout change)."""

    def __init__(self, classes=1000):
        super().__init__()
        pool = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 3, 2), nn.ReLU(), pool, Fire(64, 16, 64, 64), Fire(128, 16, 64, 64), pool,
            Fire(128, 32, 128, 128), Fire(256, 32, 128, 128), pool, Fire(256, 48, 192, 192),
            Fire(384, 48, 192, 192), Fire(384, 64, 256, 256), Fire(512, 64, 256, 256))
        self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(512, classes, 1), nn.ReLU(),
                                        nn.AdaptiveAvgPool2d(1))

    def forward(self, x):
        return torch.flatten(torch.softmax(self.classifier(self.features(x)), dim=1), 1)


class Inception(nn.Module):
    def __init__(self, cin, c1, c3r, c3, c5r, c5, pool):
        super().__init__()
        self.b1 = conv_bn(cin, c1, 1)
        self.b2 = nn.Sequential(conv_bn(cin, c3r, 1), conv_bn(c3r, c3, 3))
        self.b3 = nn.Sequential(conv_bn(cin, c5r, 1), conv_bn(c5r, c5, 5))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), conv_bn(cin, pool, 1))

    def forward(self, x):
        return torch.cat((self.b1(x), self.b2(x), self.b3(x), self.b4(x)), dim=1)


def googlenet(div: int = 2) -> nn.Module:
    spec = {"3a": (192, 64, 96, 128, 16, 32, 32), "3b": (256, 128, 128, 192, 32, 96, 64),
            "4a": (480, 192, 96, 208, 16, 48, 64), "4b": (512, 160, 112, 224, 24, 64, 64),
            "4c": (512, 128, 128, 256, 24, 64, 64), "4d": (512, 112, 144, 288, 32, 64, 64),
            "4e": (528, 256, 160, 320, 32, 128, 128), "5a": (832, 256, 160, 320, 32, 128, 128),
            "5b": (832, 384, 192, 384, 48, 128, 128)}
    m = {k: Inception(*(v // div for v in spec[k])) for k in spec}
    pool = nn.MaxPool2d(3, 2, ceil_mode=True)
    features = nn.Sequential(
        conv_bn(3, 64 // div, 7, 2), nn.MaxPool2d(3, 2, ceil_mode=True), conv_bn(64 // div, 64 // div, 1),
        conv_bn(64 // div, 192 // div, 3), nn.MaxPool2d(3, 2, ceil_mode=True), m["3a"], m["3b"], pool, m["4a"],
        m["4b"], m["4c"], m["4d"], m["4e"], nn.MaxPool2d(2, 2, ceil_mode=True), m["5a"], m["5b"])
    return Classifier(features, 1024 // div)


class DenseLayer(nn.Module):
    def __init__(self, cin, growth, bn_size=4):
        super().__init__()
        self.body = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, bn_size * growth, 1, bias=False),
                                  nn.BatchNorm2d(bn_size * growth), nn.ReLU(),
                                  nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False))

    def forward(self, x):
        return torch.cat((x, self.body(x)), dim=1)


def densenet(growth=16, blocks=(6, 12, 24, 16), init=32) -> nn.Module:
    layers: list[nn.Module] = [nn.Conv2d(3, init, 7, 2, 3, bias=False), nn.BatchNorm2d(init), nn.ReLU(),
                               nn.MaxPool2d(3, 2, 1)]
    c = init
    for i, n in enumerate(blocks):
        for _ in range(n):
            layers.append(DenseLayer(c, growth))
            c += growth
        if i < len(blocks) - 1:
            layers += [nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, c // 2, 1, bias=False), nn.AvgPool2d(2, 2)]
            c //= 2
    layers += [nn.BatchNorm2d(c), nn.ReLU()]
    return Classifier(nn.Sequential(*layers), c)


class RegNetBlock(nn.Module):
    """X block: 1×1 → 3×3 group conv (group width g) → 1×1, residual; Y adds squeeze-excite."""

    def __init__(self, cin, cout, s, group_width, se: bool):
        super().__init__()
        layers = [conv_bn(cin, cout, 1), conv_bn(cout, cout, 3, s, g=cout // group_width)]
        if se:
            layers.append(SqueezeExcite(cout, max(1, cin // 4)))
        layers.append(conv_bn(cout, cout, 1, act=None))
        self.body = nn.Sequential(*layers)
        self.down = conv_bn(cin, cout, 1, s, act=None) if s != 1 or cin != cout else None

    def forward(self, x):
        return F.relu(self.body(x) + (x if self.down is None else self.down(x)))


def regnet(se: bool, widths=(24, 56, 152, 368), depths=(1, 1, 4, 7), group_width=8) -> nn.Module:
    layers, cin = [conv_bn(3, 32, 3, 2)], 32
    for w, d in zip(widths, depths):
        for i in range(d):
            layers.append(RegNetBlock(cin, w, 2 if i == 0 else 1, group_width, se))
            cin = w
    return Classifier(nn.Sequential(*layers), cin)


def vgg(cfg: list, batch_norm: bool, hidden: int, size: int) -> nn.Module:
    layers, cin = [], 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), *([nn.BatchNorm2d(v)] if batch_norm else []), nn.ReLU()]
            cin = v
    side = size // 32
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(cin * side * side, hidden), nn.ReLU(), nn.Dropout(),
                         nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(), nn.Linear(hidden, 1000))


def alexnet(div=2, hidden=512) -> nn.Module:
    c = [64 // div, 192 // div, 384 // div, 256 // div, 256 // div]
    return nn.Sequential(
        nn.Conv2d(3, c[0], 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2), nn.Conv2d(c[0], c[1], 5, padding=2), nn.ReLU(),
        nn.MaxPool2d(3, 2), nn.Conv2d(c[1], c[2], 3, padding=1), nn.ReLU(), nn.Conv2d(c[2], c[3], 3, padding=1),
        nn.ReLU(), nn.Conv2d(c[3], c[4], 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2), nn.AdaptiveAvgPool2d((6, 6)),
        nn.Flatten(), nn.Dropout(), nn.Linear(c[4] * 36, hidden), nn.ReLU(), nn.Dropout(), nn.Linear(hidden, hidden),
        nn.ReLU(), nn.Linear(hidden, 1000))


class GhostModule(nn.Module):
    def __init__(self, cin, cout, relu=True):
        super().__init__()
        self.cout, init = cout, math.ceil(cout / 2)
        act = nn.ReLU if relu else None
        self.primary = conv_bn(cin, init, 1, act=act)
        self.cheap = conv_bn(init, init, 3, g=init, act=act)

    def forward(self, x):
        y = self.primary(x)
        return torch.cat((y, self.cheap(y)), dim=1)[:, : self.cout]


class GhostBottleneck(nn.Module):
    def __init__(self, cin, mid, cout, k, s, se):
        super().__init__()
        layers: list[nn.Module] = [GhostModule(cin, mid)]
        if s > 1:
            layers.append(conv_bn(mid, mid, k, s, g=mid, act=None))
        if se:
            layers.append(SqueezeExcite(mid, divisible(mid * se / 4, 4), gate=nn.Hardsigmoid))
        layers.append(GhostModule(mid, cout, relu=False))
        self.body = nn.Sequential(*layers)
        self.short = None
        if s != 1 or cin != cout:
            self.short = nn.Sequential(conv_bn(cin, cin, k, s, g=cin, act=None), conv_bn(cin, cout, 1, act=None))

    def forward(self, x):
        return self.body(x) + (x if self.short is None else self.short(x))


def ghostnet(width=0.5) -> nn.Module:
    cfg = [(3, 16, 16, 0, 1), (3, 48, 24, 0, 2), (3, 72, 24, 0, 1), (5, 72, 40, 1, 2), (5, 120, 40, 1, 1),
           (3, 240, 80, 0, 2), (3, 200, 80, 0, 1), (3, 184, 80, 0, 1), (3, 184, 80, 0, 1), (3, 480, 112, 1, 1),
           (3, 672, 112, 1, 1), (5, 672, 160, 1, 2), (5, 960, 160, 0, 1), (5, 960, 160, 1, 1), (5, 960, 160, 0, 1),
           (5, 960, 160, 1, 1)]
    cin = divisible(16 * width, 4)
    layers: list[nn.Module] = [conv_bn(3, cin, 3, 2)]
    for k, exp, c, se, s in cfg:
        cout = divisible(c * width, 4)
        layers.append(GhostBottleneck(cin, divisible(exp * width, 4), cout, k, s, se))
        cin = cout
    layers.append(conv_bn(cin, divisible(960 * width, 4), 1))
    return Classifier(nn.Sequential(*layers), divisible(960 * width, 4), hidden=1280)


class SeparableConv(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__(nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False), nn.Conv2d(cin, cout, 1, bias=False),
                         nn.BatchNorm2d(cout))


class XceptionBlock(nn.Module):
    def __init__(self, cin, cout, reps, s, relu_first=True):
        super().__init__()
        layers, c = [], cin
        for i in range(reps):
            if relu_first or i > 0:
                layers.append(nn.ReLU())
            layers.append(SeparableConv(c, cout))
            c = cout
        if s > 1:
            layers.append(nn.MaxPool2d(3, s, 1))
        self.body = nn.Sequential(*layers)
        self.skip = conv_bn(cin, cout, 1, s, act=None) if s != 1 or cin != cout else None

    def forward(self, x):
        return self.body(x) + (x if self.skip is None else self.skip(x))


def xception(middle=4) -> nn.Module:
    layers = [conv_bn(3, 16, 3, 2), conv_bn(16, 32, 3), XceptionBlock(32, 64, 2, 2, relu_first=False),
              XceptionBlock(64, 128, 2, 2), XceptionBlock(128, 256, 2, 2)]
    layers += [XceptionBlock(256, 256, 3, 1) for _ in range(middle)]
    layers += [XceptionBlock(256, 384, 2, 2), SeparableConv(384, 512), nn.ReLU(), SeparableConv(512, 640), nn.ReLU()]
    return Classifier(nn.Sequential(*layers), 640)


# ---- Transformers ----


class Attention(nn.Module):
    """timm/HF style: one qkv projection, heads split by reshape/permute, softmax(q kᵀ / √d [+ bias/mask]) v."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv, self.proj = nn.Linear(dim, dim * 3), nn.Linear(dim, dim)

    def forward(self, x, bias=None):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        attn = (q @ k.transpose(-2, -1)) * self.scale
        if bias is not None:
            attn = attn + bias
        return self.proj((attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, c))


class TransformerBlock(nn.Module):
    """Pre-norm block (ViT, Whisper); post_norm=True gives BERT's order. The MLP's activation is exact (erf)
    GELU as in ViT/BERT/Whisper unless told (GPT-2's tanh GELU, MobileViT's SiLU)."""

    def __init__(self, dim, heads, mlp_ratio=4.0, post_norm=False, act: Callable[[], nn.Module] = nn.GELU):
        super().__init__()
        self.post_norm = post_norm
        self.norm1, self.attn, self.norm2 = nn.LayerNorm(dim), Attention(dim, heads), nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), act(), nn.Linear(hidden, dim))

    def forward(self, x, bias=None):
        if self.post_norm:
            x = self.norm1(x + self.attn(x, bias))
            return self.norm2(x + self.mlp(x))
        x = x + self.attn(self.norm1(x), bias)
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """ViT/DeiT: conv patch embedding, class (+ distillation) token, learned positions, pre-norm blocks."""

    def __init__(self, size=96, patch=16, dim=192, depth=6, heads=3, classes=1000, distilled=False):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, patch, patch)
        tokens = 2 if distilled else 1
        self.tokens = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, (size // patch) ** 2 + tokens, dim) * 0.02)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads) for _ in range(depth))
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, classes)
        self.head_dist = nn.Linear(dim, classes) if distilled else None

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat((self.tokens.expand(x.shape[0], -1, -1), x), dim=1) + self.pos
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        if self.head_dist is None:
            return self.head(x[:, 0])
        return (self.head(x[:, 0]) + self.head_dist(x[:, 1])) / 2


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over channels of an NCHW map (ConvNeXt's downsampling), by permuting to channel-last."""

    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm, self.fc1, self.fc2 = nn.LayerNorm(dim), nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), 0.5))

    def forward(self, x):
        y = self.dw(x).permute(0, 2, 3, 1)
        y = self.gamma * self.fc2(F.gelu(self.fc1(self.norm(y))))
        return x + y.permute(0, 3, 1, 2)


def convnext(dims=(32, 64, 128, 256), depths=(2, 2, 4, 2)) -> nn.Module:
    layers: list[nn.Module] = [nn.Conv2d(3, dims[0], 4, 4), LayerNorm2d(dims[0])]
    for i, (dim, depth) in enumerate(zip(dims, depths)):
        if i:
            layers += [LayerNorm2d(dims[i - 1]), nn.Conv2d(dims[i - 1], dim, 2, 2)]
        layers += [ConvNeXtBlock(dim) for _ in range(depth)]
    features = nn.Sequential(*layers)
    return nn.Sequential(features, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.LayerNorm(dims[-1]),
                         nn.Linear(dims[-1], 1000))


class MobileViTBlock(nn.Module):
    """Local 3×3/1×1 convs, unfold into 2×2 patches (Apple's 4-D reshape/transpose), transformer, fold, fuse."""

    def __init__(self, c, dim, depth, heads=4):
        super().__init__()
        self.local = nn.Sequential(conv_bn(c, c, 3, act=nn.SiLU), nn.Conv2d(c, dim, 1, bias=False))
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, 2.0, act=nn.SiLU) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.proj, self.fuse = conv_bn(dim, c, 1, act=nn.SiLU), conv_bn(2 * c, c, 3, act=nn.SiLU)

    def forward(self, x):
        y = self.local(x)
        b, d, h, w = y.shape
        nh, nw = h // 2, w // 2
        y = y.reshape(b * d * nh, 2, nw, 2).transpose(1, 2).reshape(b, d, nh * nw, 4).transpose(1, 3)
        y = y.reshape(b * 4, nh * nw, d)
        for block in self.blocks:
            y = block(y)
        y = self.norm(y).reshape(b, 4, nh * nw, d).transpose(1, 3).reshape(b * d * nh, nw, 2, 2)
        y = y.transpose(1, 2).reshape(b, d, h, w)
        return self.fuse(torch.cat((x, self.proj(y)), dim=1))


def mobilevit_xxs() -> nn.Module:
    mv2 = lambda cin, cout, s: InvertedResidual(cin, cin * 2, cout, 3, s, nn.SiLU)  # noqa: E731
    features = nn.Sequential(
        conv_bn(3, 16, 3, 2, act=nn.SiLU), mv2(16, 16, 1), mv2(16, 24, 2), mv2(24, 24, 1), mv2(24, 24, 1),
        mv2(24, 48, 2), MobileViTBlock(48, 64, 2), mv2(48, 64, 2), MobileViTBlock(64, 80, 4), mv2(64, 80, 2),
        MobileViTBlock(80, 96, 3), conv_bn(80, 320, 1, act=nn.SiLU))
    return Classifier(features, 320)


def window_partition(x, ws: int):
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def window_reverse(windows, ws: int, h: int, w: int):
    c = windows.shape[-1]
    x = windows.view(-1, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


class SwinBlock(nn.Module):
    """Window attention with a relative position bias table; shifted windows via torch.roll and a fixed mask."""

    def __init__(self, dim, heads, res, ws, shift):
        super().__init__()
        self.ws, self.shift, self.res, self.heads = ws, shift, res, heads
        self.norm1, self.attn, self.norm2 = nn.LayerNorm(dim), Attention(dim, heads), nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.table = nn.Parameter(torch.randn((2 * ws - 1) ** 2, heads) * 0.5)
        coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (ws - 1)
        self.register_buffer("index", rel[..., 0] * (2 * ws - 1) + rel[..., 1], persistent=False)
        mask = None
        if shift:
            region = torch.zeros(1, res, res, 1)
            cuts = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
            for n, (hs, wsl) in enumerate((a, b) for a in cuts for b in cuts):
                region[:, hs, wsl, :] = n
            ids = window_partition(region, ws).squeeze(-1)
            mask = (ids[:, None, :] - ids[:, :, None]).ne(0).float() * -100.0
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x):
        b, n, c = x.shape
        y = self.norm1(x).view(b, self.res, self.res, c)
        if self.shift:
            y = torch.roll(y, (-self.shift, -self.shift), (1, 2))
        windows = window_partition(y, self.ws)
        bias = self.table[self.index.reshape(-1)].reshape(self.ws**2, self.ws**2, -1).permute(2, 0, 1)[None]
        if self.mask is not None:
            nw = self.mask.shape[0]
            bias = (bias + self.mask[:, None]).repeat(b, 1, 1, 1)
            bias = bias.reshape(b * nw, self.heads, self.ws**2, self.ws**2)
        y = window_reverse(self.attn(windows, bias), self.ws, self.res, self.res)
        if self.shift:
            y = torch.roll(y, (self.shift, self.shift), (1, 2))
        x = x + y.reshape(b, n, c)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    def __init__(self, dim, res):
        super().__init__()
        self.res, self.norm, self.reduce = res, nn.LayerNorm(4 * dim), nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x):
        b, _, c = x.shape
        x = x.view(b, self.res, self.res, c)
        x = torch.cat((x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]), -1)
        return self.reduce(self.norm(x.reshape(b, -1, 4 * c)))


class Swin(nn.Module):
    def __init__(self, size=64, dims=(48, 96, 192), depths=(2, 2, 2), heads=(2, 4, 8), ws=4):
        super().__init__()
        self.embed, self.embed_norm = nn.Conv2d(3, dims[0], 4, 4), nn.LayerNorm(dims[0])
        res, layers = size // 4, []
        for i, (dim, depth, h) in enumerate(zip(dims, depths, heads)):
            layers += [SwinBlock(dim, h, res, ws, (ws // 2) if j % 2 and res > ws else 0) for j in range(depth)]
            if i < len(dims) - 1:
                layers.append(PatchMerging(dim, res))
                res //= 2
        self.layers = nn.Sequential(*layers)
        self.norm, self.head = nn.LayerNorm(dims[-1]), nn.Linear(dims[-1], 1000)

    def forward(self, x):
        x = self.embed_norm(self.embed(x).flatten(2).transpose(1, 2))
        return self.head(self.norm(self.layers(x)).mean(1))


class MixerBlock(nn.Module):
    def __init__(self, tokens, dim):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.token_mlp = nn.Sequential(nn.Linear(tokens, tokens * 2), nn.GELU(), nn.Linear(tokens * 2, tokens))
        self.channel_mlp = nn.Sequential(nn.Linear(dim, dim * 4), nn.GELU(), nn.Linear(dim * 4, dim))

    def forward(self, x):
        x = x + self.token_mlp(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channel_mlp(self.norm2(x))


def mlp_mixer(size=64, patch=8, dim=128, depth=4) -> nn.Module:
    tokens = (size // patch) ** 2

    class Mixer(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, dim, patch, patch)
            self.blocks = nn.Sequential(*(MixerBlock(tokens, dim) for _ in range(depth)))
            self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, 1000)

        def forward(self, x):
            return self.head(self.norm(self.blocks(self.stem(x).flatten(2).transpose(1, 2))).mean(1))

    return Mixer()


class Bert(nn.Module):
    """BERT encoder (bert-tiny's sizes): word + position + type embeddings, extended attention mask, post-norm
    layers, tanh pooler. Inputs are int64 token ids and an int64 attention mask."""

    def __init__(self, vocab=30522, dim=128, layers=2, heads=2, max_len=512):
        super().__init__()
        self.word, self.pos = nn.Embedding(vocab, dim), nn.Embedding(max_len, dim)
        self.token_type = nn.Embedding(2, dim)
        self.norm = nn.LayerNorm(dim, eps=1e-12)
        self.layers = nn.ModuleList(TransformerBlock(dim, heads, post_norm=True) for _ in range(layers))
        self.pooler = nn.Linear(dim, dim)

    def forward(self, input_ids, attention_mask):
        n = input_ids.shape[1]
        positions = torch.arange(n, device=input_ids.device).unsqueeze(0)
        x = self.norm(self.word(input_ids) + self.pos(positions) + self.token_type(torch.zeros_like(input_ids)))
        bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * -10000.0
        for layer in self.layers:
            x = layer(x, bias)
        return x, torch.tanh(self.pooler(x[:, 0]))


class GptTiny(nn.Module):
    """GPT-2's layout: token + learned position embeddings, causal mask via masked_fill, tanh-approximate GELU,
    tied output head."""

    def __init__(self, vocab=5000, dim=128, layers=2, heads=4, max_len=64):
        super().__init__()
        self.word, self.pos = nn.Embedding(vocab, dim), nn.Parameter(torch.randn(1, max_len, dim) * 0.02)
        gelu = lambda: nn.GELU(approximate="tanh")  # noqa: E731
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, act=gelu) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.register_buffer("causal", torch.triu(torch.ones(max_len, max_len, dtype=torch.bool), 1), persistent=False)

    def forward(self, input_ids):
        n = input_ids.shape[1]
        x = self.word(input_ids) + self.pos[:, :n]
        bias = torch.zeros(n, n).masked_fill(self.causal[:n, :n], torch.finfo(torch.float32).min)
        for block in self.blocks:
            x = block(x, bias)
        return self.norm(x) @ self.word.weight.t()


class WhisperEncoder(nn.Module):
    """Whisper's audio encoder: log-mel (N, 80, T) → two GELU conv1d (the second strided) → sinusoidal positions
    → pre-norm transformer → final LayerNorm."""

    def __init__(self, mels=80, frames=200, dim=256, layers=4, heads=4):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv1d(mels, dim, 3, padding=1), nn.Conv1d(dim, dim, 3, 2, padding=1)
        n, half = frames // 2, dim // 2
        inv = torch.exp(-math.log(10000) / (half - 1) * torch.arange(half))
        t = torch.arange(n)[:, None] * inv[None]
        self.register_buffer("positions", torch.cat((t.sin(), t.cos()), dim=1)[None], persistent=False)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads) for _ in range(layers))
        self.ln_post = nn.LayerNorm(dim)

    def forward(self, mel):
        x = F.gelu(self.conv2(F.gelu(self.conv1(mel)))).permute(0, 2, 1) + self.positions
        for block in self.blocks:
            x = block(x)
        return self.ln_post(x)


# ---- Detection ----


def cbs(cin, cout, k=1, s=1):
    """YOLO's Conv: conv + BN + SiLU."""
    return conv_bn(cin, cout, k, s, act=nn.SiLU)


class YoloBottleneck(nn.Module):
    """YOLOv5's bottleneck opens with a 1×1 conv, YOLOv8's (in C2f) with a 3×3."""

    def __init__(self, c, shortcut=True, k1=1):
        super().__init__()
        self.cv1, self.cv2, self.add = cbs(c, c, k1), cbs(c, c, 3), shortcut

    def forward(self, x):
        return x + self.cv2(self.cv1(x)) if self.add else self.cv2(self.cv1(x))


class C3(nn.Module):
    def __init__(self, cin, cout, n=1, shortcut=True):
        super().__init__()
        h = cout // 2
        self.cv1, self.cv2, self.cv3 = cbs(cin, h), cbs(cin, h), cbs(2 * h, cout)
        self.m = nn.Sequential(*(YoloBottleneck(h, shortcut) for _ in range(n)))

    def forward(self, x):
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class C2f(nn.Module):
    def __init__(self, cin, cout, n=1, shortcut=False):
        super().__init__()
        self.c = cout // 2
        self.cv1, self.cv2 = cbs(cin, 2 * self.c), cbs((2 + n) * self.c, cout)
        self.m = nn.ModuleList(YoloBottleneck(self.c, shortcut, k1=3) for _ in range(n))

    def forward(self, x):
        y = list(self.cv1(x).split((self.c, self.c), 1))
        y.extend(m(y[-1]) for m in self.m)
        return self.cv2(torch.cat(y, 1))


class SPPF(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.cv1, self.cv2, self.pool = cbs(cin, cin // 2), cbs(cin // 2 * 4, cout), nn.MaxPool2d(5, 1, 2)

    def forward(self, x):
        x = self.cv1(x)
        y1 = self.pool(x)
        y2 = self.pool(y1)
        return self.cv2(torch.cat((x, y1, y2, self.pool(y2)), 1))


class YoloV5(nn.Module):
    """YOLOv5n's layout: CSP (C3) backbone + SPPF, PAN neck (nearest upsample + concat), anchor-based Detect head
    decoded in the graph: 5-D view/permute, sigmoid, grid/anchor arithmetic, concat of the three levels."""

    anchors = ((10, 13, 16, 30, 33, 23), (30, 61, 62, 45, 59, 119), (116, 90, 156, 198, 373, 326))

    def __init__(self, size=128, classes=80, w=16):
        super().__init__()
        self.b0 = nn.Sequential(cbs(3, w, 6, 2), cbs(w, 2 * w, 3, 2), C3(2 * w, 2 * w), cbs(2 * w, 4 * w, 3, 2),
                                C3(4 * w, 4 * w, 2))
        self.b1 = nn.Sequential(cbs(4 * w, 8 * w, 3, 2), C3(8 * w, 8 * w, 3))
        self.b2 = nn.Sequential(cbs(8 * w, 16 * w, 3, 2), C3(16 * w, 16 * w), SPPF(16 * w, 16 * w))
        self.h1, self.c1 = cbs(16 * w, 8 * w), C3(16 * w, 8 * w, shortcut=False)
        self.h2, self.c2 = cbs(8 * w, 4 * w), C3(8 * w, 4 * w, shortcut=False)
        self.d3, self.c3 = cbs(4 * w, 4 * w, 3, 2), C3(8 * w, 8 * w, shortcut=False)
        self.d4, self.c4 = cbs(8 * w, 8 * w, 3, 2), C3(16 * w, 16 * w, shortcut=False)
        self.no, self.na = classes + 5, 3
        self.heads = nn.ModuleList(nn.Conv2d(c, self.na * self.no, 1) for c in (4 * w, 8 * w, 16 * w))
        for i, s in enumerate((8, 16, 32)):
            ny = nx = size // s
            yv, xv = torch.meshgrid(torch.arange(ny), torch.arange(nx), indexing="ij")
            self.register_buffer(f"grid{i}", (torch.stack((xv, yv), 2).expand(1, 3, ny, nx, 2) - 0.5).float(),
                                 persistent=False)
            anchor = torch.tensor(self.anchors[i], dtype=torch.float32).view(1, 3, 1, 1, 2)
            self.register_buffer(f"anchor{i}", anchor.expand(1, 3, ny, nx, 2).contiguous(), persistent=False)

    def forward(self, x):
        p3 = self.b0(x)
        p4 = self.b1(p3)
        p5 = self.b2(p4)
        h1 = self.h1(p5)
        x4 = self.c1(torch.cat((F.interpolate(h1, scale_factor=2.0, mode="nearest"), p4), 1))
        h2 = self.h2(x4)
        out3 = self.c2(torch.cat((F.interpolate(h2, scale_factor=2.0, mode="nearest"), p3), 1))
        out4 = self.c3(torch.cat((self.d3(out3), h2), 1))
        out5 = self.c4(torch.cat((self.d4(out4), h1), 1))
        z = []
        for i, (feat, s) in enumerate(zip((out3, out4, out5), (8, 16, 32))):
            y = self.heads[i](feat)
            bs, _, ny, nx = y.shape
            y = y.view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous().sigmoid()
            xy = (y[..., :2] * 2 + getattr(self, f"grid{i}")) * s
            wh = (y[..., 2:4] * 2) ** 2 * getattr(self, f"anchor{i}")
            z.append(torch.cat((xy, wh, y[..., 4:]), -1).view(bs, -1, self.no))
        return torch.cat(z, 1)


class YoloV8(nn.Module):
    """YOLOv8n's layout: C2f (split + concat) backbone + SPPF, PAN neck, anchor-free decoupled head with DFL
    (softmax over 16 bins + a fixed 1×1 conv), dist2bbox; outputs boxes (N, 4, A) and class scores (N, 80, A)."""

    def __init__(self, size=128, classes=80, w=16, reg_max=16):
        super().__init__()
        self.b0 = nn.Sequential(cbs(3, w, 3, 2), cbs(w, 2 * w, 3, 2), C2f(2 * w, 2 * w, 1, True),
                                cbs(2 * w, 4 * w, 3, 2), C2f(4 * w, 4 * w, 2, True))
        self.b1 = nn.Sequential(cbs(4 * w, 8 * w, 3, 2), C2f(8 * w, 8 * w, 2, True))
        self.b2 = nn.Sequential(cbs(8 * w, 16 * w, 3, 2), C2f(16 * w, 16 * w, 1, True), SPPF(16 * w, 16 * w))
        self.c1, self.c2 = C2f(24 * w, 8 * w), C2f(12 * w, 4 * w)
        self.d3, self.c3 = cbs(4 * w, 4 * w, 3, 2), C2f(12 * w, 8 * w)
        self.d4, self.c4 = cbs(8 * w, 8 * w, 3, 2), C2f(24 * w, 16 * w)
        self.reg_max, self.classes = reg_max, classes
        c2, c3 = max(16, 4 * w // 4, reg_max * 4), max(4 * w, min(classes, 100))
        chans = (4 * w, 8 * w, 16 * w)
        self.box = nn.ModuleList(nn.Sequential(cbs(c, c2, 3), cbs(c2, c2, 3), nn.Conv2d(c2, 4 * reg_max, 1))
                                 for c in chans)
        self.cls = nn.ModuleList(nn.Sequential(cbs(c, c3, 3), cbs(c3, c3, 3), nn.Conv2d(c3, classes, 1))
                                 for c in chans)
        # DFL: the expected bin, as ultralytics' fixed 1×1 conv with weights 0..reg_max-1.
        self.register_buffer("dfl", torch.arange(reg_max, dtype=torch.float32).view(1, reg_max, 1, 1),
                             persistent=False)
        anchors, strides = [], []
        for s in (8, 16, 32):
            n = size // s
            sy, sx = torch.meshgrid(torch.arange(n) + 0.5, torch.arange(n) + 0.5, indexing="ij")
            anchors.append(torch.stack((sx, sy), -1).view(-1, 2))
            strides.append(torch.full((n * n, 1), float(s)))
        self.register_buffer("anchors", torch.cat(anchors).t()[None], persistent=False)
        self.register_buffer("strides", torch.cat(strides).t()[None], persistent=False)

    def forward(self, x):
        p3 = self.b0(x)
        p4 = self.b1(p3)
        p5 = self.b2(p4)
        x4 = self.c1(torch.cat((F.interpolate(p5, scale_factor=2.0, mode="nearest"), p4), 1))
        out3 = self.c2(torch.cat((F.interpolate(x4, scale_factor=2.0, mode="nearest"), p3), 1))
        out4 = self.c3(torch.cat((self.d3(out3), x4), 1))
        out5 = self.c4(torch.cat((self.d4(out4), p5), 1))
        b = x.shape[0]
        feats = [torch.cat((self.box[i](f), self.cls[i](f)), 1).view(b, 4 * self.reg_max + self.classes, -1)
                 for i, f in enumerate((out3, out4, out5))]
        box, cls = torch.cat(feats, 2).split((4 * self.reg_max, self.classes), 1)
        a = box.shape[-1]
        dist = F.conv2d(box.view(b, 4, self.reg_max, a).transpose(2, 1).softmax(1), self.dfl).view(b, 4, a)
        lt, rb = dist.chunk(2, 1)
        x1y1, x2y2 = self.anchors - lt, self.anchors + rb
        boxes = torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), 1) * self.strides
        return boxes, cls.sigmoid()


class SSDLite(nn.Module):
    """SSDLite: MobileNetV2 features at strides 16 and 32, extra inverted-residual layers, separable heads per map,
    permute(0, 2, 3, 1) + reshape + concat; boxes (N, A, 4) and softmax scores (N, A, 91)."""

    def __init__(self, classes=91, anchors=6):
        super().__init__()
        features = mobilenet_v2_features(0.5)
        self.stage16, self.stage32 = features[:14], features[14:]
        extras = [(1280, 256), (256, 128), (128, 128)]
        self.extras = nn.ModuleList(nn.Sequential(conv_bn(cin, cout // 2, 1, act=nn.ReLU6),
                                                  conv_bn(cout // 2, cout // 2, 3, 2, g=cout // 2, act=nn.ReLU6),
                                                  conv_bn(cout // 2, cout, 1, act=nn.ReLU6)) for cin, cout in extras)
        chans = [48, 1280, 256, 128, 128]
        head = lambda c, out: nn.Sequential(conv_bn(c, c, 3, g=c, act=nn.ReLU6), nn.Conv2d(c, out, 1))  # noqa: E731
        self.reg = nn.ModuleList(head(c, anchors * 4) for c in chans)
        self.cls = nn.ModuleList(head(c, anchors * classes) for c in chans)
        self.classes = classes

    def forward(self, x):
        f16 = self.stage16(x)
        maps = [f16, self.stage32(f16)]
        for extra in self.extras:
            maps.append(extra(maps[-1]))
        b = x.shape[0]
        boxes = torch.cat([r(m).permute(0, 2, 3, 1).reshape(b, -1, 4) for r, m in zip(self.reg, maps)], 1)
        logits = torch.cat([c(m).permute(0, 2, 3, 1).reshape(b, -1, self.classes) for c, m in zip(self.cls, maps)], 1)
        return boxes, logits.softmax(-1)


# ---- Segmentation, pose, super-resolution ----


class UNet(nn.Module):
    """Four max-pool downs, ConvTranspose2d ups, skip concatenations."""

    def __init__(self, base=16, classes=2):
        super().__init__()
        double = lambda cin, cout: nn.Sequential(conv_bn(cin, cout), conv_bn(cout, cout))  # noqa: E731
        c = [base * 2**i for i in range(5)]
        self.downs = nn.ModuleList([double(3, c[0])] + [double(c[i], c[i + 1]) for i in range(4)])
        self.ups = nn.ModuleList(nn.ConvTranspose2d(c[i + 1], c[i], 2, 2) for i in reversed(range(4)))
        self.fuse = nn.ModuleList(double(2 * c[i], c[i]) for i in reversed(range(4)))
        self.out = nn.Conv2d(c[0], classes, 1)

    def forward(self, x):
        skips = []
        for i, down in enumerate(self.downs):
            x = down(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for up, fuse, skip in zip(self.ups, self.fuse, reversed(skips[:-1])):
            x = fuse(torch.cat((skip, up(x)), 1))
        return self.out(x)


class DeepLabV3(nn.Module):
    """ResNet backbone with a dilated last stage (output stride 16), ASPP (1×1, 3×3 at rates 6/12/18, image
    pooling upsampled back), concat, bilinear upsampling to the input size."""

    def __init__(self, classes=21, rates=(6, 12, 18), c=64):
        super().__init__()
        self.backbone = ResNet(BasicBlock, [2, 2, 2, 2], width=32, dilate_last=True)
        cin = self.backbone.channels[-1]
        self.aspp = nn.ModuleList([conv_bn(cin, c, 1)] + [conv_bn(cin, c, 3, d=r) for r in rates])
        self.pool = conv_bn(cin, c, 1)
        self.project = conv_bn(c * (len(rates) + 2), c, 1)
        self.head = nn.Sequential(conv_bn(c, c, 3), nn.Conv2d(c, classes, 1))

    def forward(self, x):
        f = self.backbone.stages(x)[-1]
        size = f.shape[-2:]
        pooled = F.interpolate(self.pool(F.adaptive_avg_pool2d(f, 1)), size=size, mode="bilinear", align_corners=False)
        y = self.project(torch.cat([branch(f) for branch in self.aspp] + [pooled], 1))
        return F.interpolate(self.head(y), size=x.shape[-2:], mode="bilinear", align_corners=False)


class FpnSegmenter(nn.Module):
    """Semantic FPN: ResNet C2..C5, lateral 1×1 + nearest top-down adds, per-level 3×3 + bilinear upsampling to
    1/4, sum, classes, ×4 bilinear."""

    def __init__(self, classes=21, c=64):
        super().__init__()
        self.backbone = ResNet(BasicBlock, [2, 2, 2, 2], width=32)
        self.lateral = nn.ModuleList(nn.Conv2d(ch, c, 1) for ch in self.backbone.channels)
        self.smooth = nn.ModuleList(conv_bn(c, c // 2) for _ in self.backbone.channels)
        self.out = nn.Conv2d(c // 2, classes, 1)

    def forward(self, x):
        feats = self.backbone.stages(x)
        p = [lat(f) for lat, f in zip(self.lateral, feats)]
        for i in range(len(p) - 1, 0, -1):
            p[i - 1] = p[i - 1] + F.interpolate(p[i], scale_factor=2.0, mode="nearest")
        size = p[0].shape[-2:]
        y = self.smooth[0](p[0])
        for smooth, q in zip(self.smooth[1:], p[1:]):
            y = y + F.interpolate(smooth(q), size=size, mode="bilinear", align_corners=False)
        return F.interpolate(self.out(y), scale_factor=4.0, mode="bilinear", align_corners=False)


class PoseResNet(nn.Module):
    """SimpleBaseline pose estimation: ResNet C5, three 4×4 stride-2 deconvolutions, 17 keypoint heatmaps."""

    def __init__(self, joints=17, c=64):
        super().__init__()
        self.backbone = ResNet(BasicBlock, [2, 2, 2, 2], width=32)
        layers, cin = [], self.backbone.channels[-1]
        for _ in range(3):
            layers += [nn.ConvTranspose2d(cin, c, 4, 2, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU()]
            cin = c
        self.deconv, self.final = nn.Sequential(*layers), nn.Conv2d(c, joints, 1)

    def forward(self, x):
        return self.final(self.deconv(self.backbone.stages(x)[-1]))


class ESPCN(nn.Module):
    """The ONNX model zoo's super-resolution net: tanh convs on the Y channel, PixelShuffle ×3 (DepthToSpace)."""

    def __init__(self, scale=3):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 64, 5, padding=2), nn.Tanh(), nn.Conv2d(64, 32, 3, padding=1),
                                  nn.Tanh(), nn.Conv2d(32, scale**2, 3, padding=1), nn.PixelShuffle(scale))

    def forward(self, x):
        return self.body(x)


# ---- Audio and sequences ----


class TCResNet(nn.Module):
    """Keyword spotting on MFCCs (N, 40, T): temporal conv1d residual blocks, global average pool, 12 keywords."""

    def __init__(self, mfcc=40, channels=(16, 24, 32, 48), keywords=12):
        super().__init__()
        self.stem = nn.Conv1d(mfcc, channels[0], 3, padding=1, bias=False)
        self.blocks = nn.ModuleList()
        for cin, cout in zip(channels, channels[1:]):
            self.blocks.append(nn.ModuleDict({
                "body": nn.Sequential(nn.Conv1d(cin, cout, 9, 2, 4, bias=False), nn.BatchNorm1d(cout), nn.ReLU(),
                                      nn.Conv1d(cout, cout, 9, 1, 4, bias=False), nn.BatchNorm1d(cout)),
                "skip": nn.Sequential(nn.Conv1d(cin, cout, 1, 2, bias=False), nn.BatchNorm1d(cout))}))
        self.fc = nn.Linear(channels[-1], keywords)

    def forward(self, mfcc):
        x = self.stem(mfcc)
        for block in self.blocks:
            x = F.relu(block["body"](x) + block["skip"](x))
        return self.fc(x.mean(-1))


class LstmTagger(nn.Module):
    """Two stacked LSTM layers over (N, T, 40) features, a per-step linear head."""

    def __init__(self, features=40, hidden=128, classes=10):
        super().__init__()
        self.lstm, self.fc = nn.LSTM(features, hidden, num_layers=2, batch_first=True), nn.Linear(hidden, classes)

    def forward(self, x):
        return self.fc(self.lstm(x)[0])


class BiGru(nn.Module):
    """A bidirectional GRU over (N, T, 32), per-step head, plus the last step's summary: two outputs."""

    def __init__(self, features=32, hidden=64, classes=5):
        super().__init__()
        self.gru = nn.GRU(features, hidden, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * hidden, classes)

    def forward(self, x):
        y, h = self.gru(x)
        return self.fc(y), torch.cat((h[0], h[1]), -1)


class CRNN(nn.Module):
    """Text-line OCR: a VGG-ish conv stack on a 32×128 gray crop down to height 1, squeeze, permute to (N, W, C),
    bidirectional LSTM, per-column log-softmax over 37 symbols (CTC)."""

    def __init__(self, symbols=37, hidden=64):
        super().__init__()
        self.cnn = nn.Sequential(
            conv_bn(1, 32), nn.MaxPool2d(2, 2), conv_bn(32, 64), nn.MaxPool2d(2, 2), conv_bn(64, 128),
            conv_bn(128, 128), nn.MaxPool2d((2, 1), (2, 1)), conv_bn(128, 128), nn.MaxPool2d((2, 1), (2, 1)),
            conv_bn(128, 128), nn.MaxPool2d((2, 1), (2, 1)))
        self.rnn = nn.LSTM(128, hidden, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * hidden, symbols)

    def forward(self, x):
        f = self.cnn(x).squeeze(2).permute(0, 2, 1)
        return F.log_softmax(self.fc(self.rnn(f)[0]), -1)


# ---- Interface cases: several inputs/outputs, NHWC input, plain MLP, siamese ----


class MultiIO(nn.Module):
    """An image and a metadata vector in; class logits and a box out (sigmoid)."""

    def __init__(self):
        super().__init__()
        self.cnn = nn.Sequential(conv_bn(3, 16, 3, 2), conv_bn(16, 32, 3, 2), conv_bn(32, 64, 3, 2),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.meta = nn.Sequential(nn.Linear(8, 32), nn.ReLU())
        self.cls, self.box = nn.Linear(96, 10), nn.Linear(96, 4)

    def forward(self, image, meta):
        z = torch.cat((self.cnn(image), self.meta(meta)), 1)
        return self.cls(z), torch.sigmoid(self.box(z))


class NhwcClassifier(nn.Module):
    """Takes an NHWC [0, 1] image, as TF-trained pipelines feed it: normalises and permutes to NCHW inside."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 1, 1, 3), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 1, 1, 3), persistent=False)
        self.net = mobilenet_v2(0.35)

    def forward(self, image):
        return self.net(((image - self.mean) / self.std).permute(0, 3, 1, 2))


class Siamese(nn.Module):
    """Two images through one shared tower; L2-normalised embeddings and their cosine similarity."""

    def __init__(self):
        super().__init__()
        self.tower = nn.Sequential(conv_bn(3, 16, 3, 2), conv_bn(16, 32, 3, 2), conv_bn(32, 64, 3, 2),
                                   nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 32))

    def forward(self, left, right):
        a, b = F.normalize(self.tower(left), dim=1), F.normalize(self.tower(right), dim=1)
        return (a * b).sum(1, keepdim=True), a


# ----------------------------------------------------------------------------------------------------------------
# The corpus

CLS = "classification"
_ids = lambda n: ((1, n), "int64")  # noqa: E731

_add("resnet18", CLS, lambda: ResNet(BasicBlock, [2, 2, 2, 2], width=32), image(96), opset=13,
     note="basic residual blocks; base width 32 (of 64), 96 px")
_add("resnet50", CLS, lambda: ResNet(Bottleneck, [3, 4, 6, 3], width=16), image(96), opset=13,
     note="bottleneck blocks; base width 16 (of 64), 96 px")
_add("mobilenet_v2", CLS, lambda: mobilenet_v2(0.5), image(96), opset=13,
     note="inverted residuals, depthwise convs, ReLU6; width 0.5, 96 px")
_add("mobilenet_v3_small", CLS, mobilenet_v3_small, image(96), opset=14,
     note="hard-swish, SE with hard-sigmoid (HardSwish op at opset 14); full width, 96 px")
_add("efficientnet_b0", CLS, lambda: efficientnet(1.0, True, nn.SiLU), image(96),
     note="MBConv with SiLU and squeeze-excite, 5x5 depthwise; full width (5.3 M), 96 px")
_add("efficientnet_lite0", CLS, lambda: efficientnet(1.0, False, nn.ReLU6, fixed_ends=True), image(96), opset=14,
     note="EfficientNet without SE, ReLU6 (the edge variant); full width, 96 px")
_add("shufflenet_v2", CLS, shufflenet_v2, image(96), opset=13,
     note="x0.5: chunk, concat and channel shuffle (5-D view + transpose); 96 px")
_add("squeezenet1_1", CLS, SqueezeNet11, image(128), opset=11,
     note="fire modules, ceil-mode max pool, 4-D Softmax(dim=1) over (N,1000,1,1) before flatten (model zoo); 128 px")
_add("googlenet", CLS, googlenet, image(96), opset=13,
     note="inception branches (1x1/3x3/5x5/pool) + concat, ceil-mode pools; channels halved, 96 px")
_add("densenet121", CLS, densenet, image(64), opset=16,
     note="121 layers of dense blocks (concat growth), avg-pool transitions; growth 16, init 32, 64 px")
_add("regnetx_200mf", CLS, lambda: regnet(False), image(96), opset=16,
     note="group convs with group width 8; RegNetX-200MF widths, 96 px")
_add("regnety_200mf", CLS, lambda: regnet(True), image(96),
     note="RegNetY-200MF: group convs + squeeze-excite; 96 px")
_add("convnext_tiny", CLS, convnext, image(64), opset=18,
     note="7x7 depthwise, channel-last LayerNorm + Linear via permutes, GELU, layer scale; dims /3, "
          "depths 2-2-4-2, 64 px")
_add("vgg11", CLS, lambda: vgg([16, "M", 32, "M", 64, 64, "M", 128, 128, "M", 128, 128, "M"], False, 512, 64),
     image(64), opset=11, note="plain 3x3 conv stack, no BN, big Linear head; widths /4, 64 px, head 512")
_VGG16 = [16, 16, "M", 32, 32, "M", 64, 64, 64, "M", 128, 128, 128, "M", 128, 128, 128, "M"]
_add("vgg16_bn", CLS, lambda: vgg(_VGG16, True, 512, 64), image(64), opset=16,
     note="VGG-16 with BN; widths /4, 64 px, head 512")
_add("alexnet", CLS, alexnet, image(224), opset=11,
     note="11x11 stride-4 conv, overlapping max pools, adaptive avg pool (6x6), dropout + Linear; channels /2")
_add("mnasnet0_5", CLS, mnasnet, image(96), opset=17,
     note="MNASNet-B1 x0.5: 3x3/5x5 inverted residuals, expansion 3 and 6; 96 px")
_add("ghostnet", CLS, ghostnet, image(96), opset=14,
     note="ghost modules (conv + cheap depthwise, concat, channel slice), SE with hard-sigmoid; width 0.5, 96 px")
_add("xception", CLS, xception, image(96), opset=16,
     note="separable convs, strided max-pool residuals with 1x1 skips; channels reduced, 4 middle blocks, 96 px")
_add("shufflenet_v1", CLS, shufflenet_v1, image(96), opset=13,
     note="g=3 group 1x1 convs + channel shuffle, avg-pool concat shortcut at stride 2; x0.5, 96 px")
_add("mobilenet_v1", CLS, mobilenet_v1, image(96), opset=13, dynamic_batch=True,
     note="depthwise-separable stack, exported with a symbolic batch axis (compiled with batch 1); x0.5, 96 px")
_add("vit_tiny", CLS, ViT, image(96), opset=18,
     note="patch conv, class token concat, learned positions, MHA via reshape/permute, GELU, LayerNorm; "
          "dim 192/3 heads, depth 6 (of 12), 96 px")
_add("deit_tiny", CLS, lambda: ViT(distilled=True), image(96), opset=17,
     note="ViT with a distillation token and two averaged heads; depth 6 (of 12), 96 px")
_add("mobilevit_xxs", CLS, mobilevit_xxs, image(128), opset=17,
     note="MV2 blocks + MobileViT blocks (unfold 2x2 patches by reshape/transpose, transformer, fold, concat); 128 px")
_add("swin_tiny", CLS, Swin, image(64), opset=18,
     note="window attention (6-D window partition), relative position bias gather, torch.roll shifts, patch "
          "merging; dims 48-96-192, depths 2-2-2, 64 px")
_add("mlp_mixer", CLS, mlp_mixer, image(64), opset=18,
     note="token-mixing MLP over transposed tokens + channel MLP; patch 8, dim 128, depth 4, 64 px")
_add("nhwc_classifier", CLS, NhwcClassifier, {"image": ((1, 96, 96, 3), "float32")}, opset=17,
     ranges={"image": (0.0, 1.0)}, note="NHWC [0,1] input normalised and permuted inside; MobileNetV2 x0.35")
_add("mlp", CLS, lambda: nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                                       nn.Linear(256, 10)), {"x": ((1, 784), "float32")}, opset=13,
     dynamic_batch=True, note="plain MLP on a flat 784 vector, symbolic batch axis")
_add("multi_io", CLS, MultiIO, {"image": ((1, 3, 64, 64), "float32"), "meta": ((1, 8), "float32")},
     outputs=("class_logits", "box"), note="two inputs (image + vector), two outputs")
_add("siamese", "embedding", Siamese, {"left": ((1, 3, 64, 64), "float32"), "right": ((1, 3, 64, 64), "float32")},
     outputs=("similarity", "embedding"), opset=16, note="two image inputs through one shared tower, two outputs")
_add("bert_tiny", "nlp", Bert, {"input_ids": _ids(32), "attention_mask": _ids(32)},
     outputs=("last_hidden_state", "pooler_output"), opset=14,
     ranges={"input_ids": (0, 30522), "attention_mask": (1, 2)},
     note="bert-tiny sizes (vocab 30522, dim 128, 2 layers): int64 ids + mask, Gather embeddings, extended mask")
_add("gpt_tiny", "nlp", GptTiny, {"input_ids": _ids(32)}, outputs=("logits",), opset=16,
     ranges={"input_ids": (0, 5000)},
     note="GPT-2 style causal decoder: masked_fill causal mask, tanh GELU, tied output embedding; 2 layers")
_add("whisper_tiny_encoder", "audio", WhisperEncoder, {"mel": ((1, 80, 200), "float32")},
     outputs=("last_hidden_state",), opset=17,
     note="log-mel (1,80,T) → GELU conv1d stem (stride 2) → sinusoidal positions → 4 pre-norm layers; "
          "dim 256 (of 384), T=200 (of 3000)")
_add("kws_tcresnet", "audio", TCResNet, {"mfcc": ((1, 40, 101), "float32")}, outputs=("logits",), opset=11,
     note="1-D temporal convs (k=9, stride 2) with residuals on MFCCs, 12 keywords")
_add("lstm_tagger", "sequence", LstmTagger, {"features": ((1, 50, 40), "float32")}, outputs=("logits",), opset=11,
     note="2-layer LSTM, batch_first, per-step head")
_add("gru_bidirectional", "sequence", BiGru, {"features": ((1, 50, 32), "float32")}, outputs=("logits", "summary"),
     opset=13, note="bidirectional GRU, per-step head + final states concatenated: two outputs")
_add("crnn_ocr", "ocr", CRNN, {"image": ((1, 1, 32, 128), "float32")}, outputs=("log_probs",), opset=17,
     note="conv stack to height 1, squeeze + permute, BiLSTM, log-softmax (CTC); gray 32x128")
_add("yolov5n", "detection", YoloV5, image(128), outputs=("predictions",), opset=14,
     note="C3/SPPF backbone, PAN neck, Detect head decoded in graph (5-D view/permute, grid/anchors), "
          "3 levels concatenated; n width, 128 px")
_add("yolov8n", "detection", YoloV8, image(128), outputs=("boxes", "scores"), opset=18,
     note="C2f/SPPF, anchor-free decoupled head, DFL softmax + fixed conv, dist2bbox; n width, 128 px, two outputs")
_add("ssdlite", "detection", SSDLite, image(128), outputs=("boxes", "scores"), opset=13,
     note="MobileNetV2 x0.5 + extra layers, separable heads, permute/reshape/concat, softmax scores; 128 px")
_add("unet", "segmentation", UNet, image(128), outputs=("mask",), opset=16,
     note="4 levels, ConvTranspose2d ups + skip concat; base 16 (of 64), 128 px")
_add("deeplabv3", "segmentation", DeepLabV3, image(128), outputs=("mask",), opset=16,
     note="ResNet-18/2 with dilated last stage, ASPP rates 6/12/18 + image pooling, bilinear upsampling; 128 px")
_add("fpn_segmenter", "segmentation", FpnSegmenter, image(128), outputs=("mask",), opset=17,
     note="ResNet-18/2 + FPN top-down (nearest adds), bilinear merge at 1/4, x4 upsampling; 128 px")
_add("pose_resnet", "pose", PoseResNet, image((128, 96)), outputs=("heatmaps",), opset=17,
     note="SimpleBaseline: ResNet-18/2 + 3 stride-2 deconvs → 17 heatmaps; non-square 128x96 input")
_add("espcn_superres", "super-resolution", ESPCN, {"image": ((1, 1, 64, 64), "float32")}, outputs=("upscaled",),
     opset=11, ranges={"image": (0.0, 1.0)}, note="model-zoo super resolution: tanh convs + PixelShuffle x3 "
                                                  "(DepthToSpace); Y channel 64x64 → 192x192")
