"""Small deterministic models for the converter and farm tests.

Every builder seeds torch, so the same call gives the same weights on every machine. The convnet and the
segmenter are briefly trained on synthetic shapes (a few seconds on 2 cores): with trained weights the outputs
carry signal, so an INT8-vs-FP32 comparison measures quantization and not noise around zero.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnx.helper
import torch
from torch import nn
from torch.nn import functional as F

IMAGE_SIZE = 32
# ONNX Runtime 1.23 reads IR version <= 11; onnx 1.19 writes 12 by default for hand-built graphs.
ONNX_IR_VERSION = 9


def shapes(n: int, seed: int, size: int = IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Synthetic images of one rectangle or disk on a textured background.

    Returns (images (n,3,size,size) float32 in [0, 1], masks (n,1,size,size) float32, labels (n,) int64:
    0 rectangle, 1 disk). Different seeds give independent sets, so calibration and held-out data never overlap.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    images = np.empty((n, 3, size, size), np.float32)
    masks = np.empty((n, 1, size, size), np.float32)
    labels = rng.integers(0, 2, n)
    for i in range(n):
        background = rng.uniform(0.0, 0.4, 3)[:, None, None] + 0.1 * rng.standard_normal((3, size, size))
        background += 0.2 * (xx / size)[None] * rng.uniform(-1, 1)
        cy, cx = rng.uniform(size * 0.25, size * 0.75, 2)
        r = rng.uniform(size * 0.12, size * 0.3)
        if labels[i] == 0:
            mask = (np.abs(yy - cy) < r) & (np.abs(xx - cx) < r * rng.uniform(0.6, 1.4))
        else:
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        color = rng.uniform(0.6, 1.0, 3)[:, None, None]
        images[i] = np.clip(np.where(mask[None], color, background), 0.0, 1.0)
        masks[i, 0] = mask
    return images, masks, labels.astype(np.int64)


class TinyConvNet(nn.Module):
    """NCHW (1,3,32,32) → features (1,8,8,8) and logits (1,2).

    The feature map is 8×8×8 on purpose: its NCHW and NHWC shapes are equal, so only the numbers can tell the
    layouts apart — the converter's layout detection must get it right without a shape hint.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.down1 = nn.Sequential(nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.down2 = nn.Sequential(nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.head = nn.Linear(8, 2)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.down2(self.down1(self.stem(image)))
        return features, self.head(features.mean(dim=(2, 3)))


class TinySegmenter(nn.Module):
    """Conv encoder-decoder with a skip connection: (1,3,H,W) → (1,1,H,W) mask logits."""

    def __init__(self) -> None:
        super().__init__()
        self.enc1 = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.enc2 = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.enc3 = nn.Sequential(nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.ReLU())
        self.dec2 = nn.Sequential(nn.Conv2d(32, 16, 3, padding=1), nn.ReLU())
        self.dec1 = nn.Sequential(nn.Conv2d(24, 8, 3, padding=1), nn.ReLU())
        self.out = nn.Conv2d(8, 1, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(image)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        d2 = self.dec2(torch.cat([F.interpolate(e3, scale_factor=2.0, mode="bilinear"), e2], dim=1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, scale_factor=2.0, mode="bilinear"), e1], dim=1))
        return self.out(d1)


class ConstSubgraphNet(nn.Module):
    """A conv whose weights are computed in the graph (w * exp(log_scale), reshaped), as weight-normalised and
    re-parameterised models export: without constant folding the Conv's weight input is not an initializer."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(8 * 3 * 3 * 3) * 0.3)
        self.log_scale = nn.Parameter(torch.randn(8, 1, 1, 1) * 0.1)
        self.b = nn.Parameter(torch.randn(8) * 0.1)
        self.proj = nn.Conv2d(8, 4, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        weight = self.w.reshape(8, 3, 3, 3) * torch.exp(self.log_scale)
        return self.proj(torch.relu(F.conv2d(image, weight, self.b, padding=1)))


class TwoInputNet(nn.Module):
    """Two same-shaped image inputs whose order matters (the graph lists `z_first` before `a_second`, against
    the alphabet) → a 4-D difference map and a per-channel vector."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Conv2d(3, 4, 3, padding=1)
        self.second = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, z_first: torch.Tensor, a_second: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        diff = self.first(z_first) - 2.0 * self.second(a_second)
        return diff, diff.amax(dim=(2, 3))


class ImageAndVectorNet(nn.Module):
    """An image and a feature vector (inputs of different ranks, as a detector with camera metadata) → class
    logits and a box."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.meta = nn.Linear(8, 8)
        self.classes = nn.Linear(16, 10)
        self.box = nn.Linear(16, 4)

    def forward(self, image: torch.Tensor, meta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = torch.cat([torch.relu(self.conv(image)).mean(dim=(2, 3)), torch.relu(self.meta(meta))], dim=1)
        return self.classes(features), self.box(features)


def write_image_and_vector_onnx(path: Path) -> Path:
    torch.manual_seed(0)
    return write_onnx(path, ImageAndVectorNet().eval(), {"image": (1, 3, IMAGE_SIZE, IMAGE_SIZE), "meta": (1, 8)},
                      ["class_logits", "box"])


class LstmNet(nn.Module):
    """A one-layer LSTM over a short sequence with a per-step head, as in sequence taggers and keyword spotters."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(8, 16, batch_first=True)
        self.head = nn.Linear(16, 4)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(features)[0])


def write_lstm_onnx(path: Path) -> Path:
    """onnx2tf converts the ONNX LSTM into a loop, on which TensorFlow's INT8 calibrator segfaults (in
    FeedTensor); unrolled (enable_rnn_unroll) it calibrates."""
    torch.manual_seed(0)
    with warnings.catch_warnings():  # the exporter's advice on batch sizes other than 1: this one is 1
        warnings.simplefilter("ignore", UserWarning)
        return write_onnx(path, LstmNet().eval(), {"features": (1, 12, 8)}, ["logits"], opset=13)


class FileReader(nn.Module):
    """Hostile: `forward` reads a file the worker can read (the data dir's admin token, in a security sweep) into
    its output, so the compiled model carries the file's bytes to whoever downloads it."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        stolen = torch.from_file(self.path, shared=False, size=16, dtype=torch.uint8)
        return image + stolen.float().reshape(1, 1, 4, 4)


class ReadsOnLoad(nn.Module):
    """Hostile: its `__setstate__` runs inside torch.jit.load and reads a file into a weight."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.weight = torch.ones(1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return image * self.weight

    @torch.jit.export
    def __getstate__(self) -> tuple[str, torch.Tensor, bool]:
        return (self.path, self.weight, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, torch.Tensor, bool]) -> None:
        self.path = state[0]
        self.weight = state[1] + torch.from_file(self.path, shared=False, size=1, dtype=torch.uint8).float()
        self.training = state[2]


def write_hostile_torchscript(path: Path, target: Path, on_load: bool = False) -> Path:
    """A scripted module that reads `target` in forward (or, with on_load, while being loaded)."""
    torch.jit.script((ReadsOnLoad if on_load else FileReader)(str(target))).save(str(path))
    return Path(path)


def two_input_net() -> TwoInputNet:
    torch.manual_seed(0)
    return TwoInputNet().eval()


def _train(model: nn.Module, loss_fn, steps: int, seed: int) -> nn.Module:
    # One thread: these nets are too small to gain from more, the result is the same on every machine, and once
    # TensorFlow is loaded (its thread pools spin) multi-threaded torch training runs 4-6x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        images, masks, labels = shapes(256, seed=seed)
        x, m, y = torch.from_numpy(images), torch.from_numpy(masks), torch.from_numpy(labels)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        model.train()
        for step in range(steps):
            idx = torch.arange(step * 32, step * 32 + 32) % len(x)
            opt.zero_grad()
            loss_fn(model, x[idx], m[idx], y[idx]).backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


@functools.cache
def tiny_convnet() -> TinyConvNet:
    """The convnet, trained 150 steps to tell rectangles from disks (deterministic)."""
    torch.manual_seed(0)
    model = TinyConvNet()
    return _train(model, lambda net, x, m, y: F.cross_entropy(net(x)[1], y), steps=150, seed=1000)


@functools.cache
def tiny_segmenter() -> TinySegmenter:
    """The segmenter, trained 120 steps to segment the shape (deterministic)."""
    torch.manual_seed(0)
    model = TinySegmenter()
    return _train(model, lambda net, x, m, y: F.binary_cross_entropy_with_logits(net(x), m), steps=120, seed=2000)


def const_subgraph_net() -> ConstSubgraphNet:
    torch.manual_seed(0)
    return ConstSubgraphNet().eval()


def write_onnx(
    path: Path,
    model: nn.Module,
    input_shapes: dict[str, Sequence[int]],
    output_names: Sequence[str],
    *,
    fold_constants: bool = True,
    opset: int = 17,
) -> Path:
    """Export `model` with the legacy (TorchScript-based) exporter, fixed shapes, deterministic bytes."""
    args = tuple(torch.zeros(*shape) for shape in input_shapes.values())
    torch.onnx.export(
        model, args, str(path), input_names=list(input_shapes), output_names=list(output_names),
        opset_version=opset, do_constant_folding=fold_constants, dynamo=False,
    )
    return Path(path)


def write_torchscript(path: Path, model: nn.Module, input_shapes: Sequence[Sequence[int]]) -> Path:
    traced = torch.jit.trace(model, tuple(torch.zeros(*shape) for shape in input_shapes))
    traced.save(str(path))
    return Path(path)


def write_convnet_onnx(path: Path) -> Path:
    return write_onnx(path, tiny_convnet(), {"image": (1, 3, IMAGE_SIZE, IMAGE_SIZE)}, ["features", "logits"])


def write_segmenter_onnx(path: Path) -> Path:
    return write_onnx(path, tiny_segmenter(), {"image": (1, 3, IMAGE_SIZE, IMAGE_SIZE)}, ["mask"])


def write_const_subgraph_onnx(path: Path) -> Path:
    """ONNX whose conv weights come from Reshape/Exp/Mul nodes (constant folding left off on purpose)."""
    return write_onnx(
        path, const_subgraph_net(), {"image": (1, 3, IMAGE_SIZE, IMAGE_SIZE)}, ["out"], fold_constants=False
    )


def write_two_input_onnx(path: Path) -> Path:
    shape = (1, 3, IMAGE_SIZE, IMAGE_SIZE)
    return write_onnx(path, two_input_net(), {"z_first": shape, "a_second": shape}, ["diff", "peak"])


def write_unconvertible_onnx(path: Path) -> Path:
    """Conv → com.microsoft QuickGelu → output.

    QuickGelu is a real ONNX Runtime contrib op (its transformer optimiser emits it), so ONNX Runtime and onnxsim
    accept the model, but onnx2tf has no implementation for it: the conversion must fail at node "act/QuickGelu".
    """
    rng = np.random.default_rng(0)
    weight = onnx.numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.3, "conv.weight")
    nodes = [
        onnx.helper.make_node("Conv", ["image", "conv.weight"], ["conv_out"], name="conv/Conv", pads=[1, 1, 1, 1]),
        onnx.helper.make_node("QuickGelu", ["conv_out"], ["out"], name="act/QuickGelu", domain="com.microsoft",
                              alpha=1.702),
    ]
    graph = onnx.helper.make_graph(
        nodes, "unconvertible",
        [onnx.helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, [1, 3, IMAGE_SIZE, IMAGE_SIZE])],
        [onnx.helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, [1, 4, IMAGE_SIZE, IMAGE_SIZE])],
        initializer=[weight],
    )
    model = onnx.helper.make_model(
        graph, ir_version=ONNX_IR_VERSION,
        opset_imports=[onnx.helper.make_opsetid("", 17), onnx.helper.make_opsetid("com.microsoft", 1)],
    )
    onnx.save(model, str(path))
    return Path(path)


def _small_graph(path: Path, name: str, nodes, channels: int, weight: np.ndarray, output_shape: list[int],
                 opset: int) -> Path:
    """`nodes` from "image" (1, channels, 8, 8) to "out", with `weight` as the initializer "conv.weight"."""
    graph = onnx.helper.make_graph(
        nodes, name, [onnx.helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, [1, channels, 8, 8])],
        [onnx.helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, output_shape)],
        initializer=[onnx.numpy_helper.from_array(weight, "conv.weight")],
    )
    model = onnx.helper.make_model(graph, ir_version=ONNX_IR_VERSION,
                                   opset_imports=[onnx.helper.make_opsetid("", opset)])
    onnx.save(model, str(path))
    return Path(path)


def write_opset11_channel_softmax_onnx(path: Path) -> Path:
    """Conv → Relu → Softmax(axis=1) at opset 11, over a (1, 10, 8, 8) tensor.

    Before opset 13, Softmax(axis=1) normalises over the flattened C·H·W tail, not over the channels. onnx2tf
    1.29's default path converts it to a softmax over one axis after its layout change: the SqueezeNet-style case
    that came back SUCCESS with wrong outputs (cosine ~0.19 against ONNX Runtime). Upgrading the graph to opset 17
    first spells the same computation as Flatten → Softmax → Reshape, which converts right.
    """
    rng = np.random.default_rng(3)
    nodes = [
        onnx.helper.make_node("Conv", ["image", "conv.weight"], ["conv_out"], name="conv/Conv", pads=[1, 1, 1, 1]),
        onnx.helper.make_node("Relu", ["conv_out"], ["relu_out"], name="act/Relu"),
        onnx.helper.make_node("Softmax", ["relu_out"], ["out"], name="head/Softmax", axis=1),
    ]
    weight = rng.standard_normal((10, 3, 3, 3)).astype(np.float32)
    return _small_graph(path, "opset11_softmax", nodes, 3, weight, [1, 10, 8, 8], opset=11)


def write_grouped_conv_onnx(path: Path) -> Path:
    """One grouped convolution (4 → 8 channels, 2 groups), as in ShuffleNet, RegNet and ResNeXt.

    onnx2tf 1.29 builds it as a grouped Conv2D, and the TFLite converter then writes a model without a serving
    signature, so its tensors cannot be tied to the source's names; splitting the groups
    (disable_group_convolution) converts right.
    """
    rng = np.random.default_rng(4)
    nodes = [onnx.helper.make_node("Conv", ["image", "conv.weight"], ["out"], name="conv/Conv", pads=[1, 1, 1, 1],
                                   group=2)]
    weight = rng.standard_normal((8, 2, 3, 3)).astype(np.float32)
    return _small_graph(path, "grouped_conv", nodes, 4, weight, [1, 8, 8, 8], opset=13)


def write_residual_deconv_onnx(path: Path) -> Path:
    """Relu(x) + x → ConvTranspose(k=4, s=2, p=1) on a (1, 16, 4, 3) input: SimpleBaseline's pose head after a
    residual block, reduced (found by bisecting the corpus' pose_resnet).

    onnx2tf 1.29's Add leaves the residual sum channel-first (its broadcast "rescue guard" compares a channel-last
    result with the ONNX shape), and ConvTranspose then settles on a wrong kernel permutation: relative error ~1
    against ONNX Runtime. Writing the Add as Sum converts right.
    """
    rng = np.random.default_rng(7)
    nodes = [
        onnx.helper.make_node("Relu", ["image"], ["relu_out"], name="block/Relu"),
        onnx.helper.make_node("Add", ["relu_out", "image"], ["sum_out"], name="block/Add"),
        onnx.helper.make_node("ConvTranspose", ["sum_out", "conv.weight"], ["out"], name="head/ConvTranspose",
                              kernel_shape=[4, 4], strides=[2, 2], pads=[1, 1, 1, 1]),
    ]
    weight = rng.standard_normal((16, 8, 4, 4)).astype(np.float32)
    graph = onnx.helper.make_graph(
        nodes, "residual_deconv", [onnx.helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, [1, 16, 4, 3])],
        [onnx.helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, [1, 8, 8, 6])],
        initializer=[onnx.numpy_helper.from_array(weight, "conv.weight")],
    )
    model = onnx.helper.make_model(graph, ir_version=ONNX_IR_VERSION,
                                   opset_imports=[onnx.helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return Path(path)


def write_loop_bomb_onnx(path: Path) -> Path:
    """Hostile, a few hundred bytes: a Loop of 10^13 iterations on a constant, which passes onnx.checker and is
    executed by whatever folds constants or runs the graph (onnxsim, ONNX Runtime)."""
    from onnx import TensorProto, helper

    body = helper.make_graph(
        [helper.make_node("Constant", [], ["cond_out"], value=helper.make_tensor("t", TensorProto.BOOL, [], [True])),
         helper.make_node("Add", ["acc_in", "one"], ["acc_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [1])],
        [helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])])
    return _save_constant_loop(path, "loop_bomb", body, ["count"], [helper.make_node("Add", ["x", "count"], ["y"])],
                               trips=10**13)


def _save_constant_loop(path: Path, name: str, body, loop_outputs: list[str], after: list, trips: int) -> Path:
    """A graph `y = f(x, Loop(trips, True, 0.0))`: the Loop's inputs are all constants, so whatever folds constants
    runs it."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Loop", ["trips", "cond", "start"], loop_outputs, body=body), *after],
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        [helper.make_tensor("trips", TensorProto.INT64, [], [trips]),
         helper.make_tensor("cond", TensorProto.BOOL, [], [True]),
         helper.make_tensor("start", TensorProto.FLOAT, [1], [0.0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return Path(path)


def write_memory_bomb_onnx(path: Path, iterations: int = 60) -> Path:
    """Hostile, a few hundred bytes: a Loop on constants whose every iteration emits a 64 MB block, so whatever
    folds constants or runs the graph grows by that much per iteration (3.75 GB of blocks, about 8 GB at its peak
    with their concatenation, over seconds: a watchdog that samples memory sees it grow)."""
    from onnx import TensorProto, helper

    block = 1 << 24  # float32 elements: 64 MB
    body = helper.make_graph(
        [helper.make_node("Constant", [], ["cond_out"], value=helper.make_tensor("t", TensorProto.BOOL, [], [True])),
         helper.make_node("ConstantOfShape", ["block_shape"], ["block"],
                          value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])),
         helper.make_node("Identity", ["acc_in"], ["acc_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [1]),
         helper.make_tensor_value_info("block", TensorProto.FLOAT, [block])],
        [helper.make_tensor("block_shape", TensorProto.INT64, [1], [block])])
    return _save_constant_loop(path, "memory_bomb", body, ["acc", "blocks"],
                               [helper.make_node("ReduceSum", ["blocks"], ["total"], keepdims=0),
                                helper.make_node("Add", ["x", "total"], ["y"])], trips=iterations)
