"""The peers the benchmarks measure the farm against, and the model they share.

The model is the MobileNetV2-style FPN segmenter of examples/portrait_segmentation at 256×256 (3.07 M parameters),
built from torch with fixed seeds: no downloads, no pretrained weights, no training. Both sides run offline (onnx2tf
finds its sample file in its cwd).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np

SIZE = 256
# The onnx2tf CLI looks for this file in its cwd before it tries to download it.
ONNX2TF_SAMPLE_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"
SEGMENTER_FILE = Path(__file__).resolve().parents[1] / "examples" / "portrait_segmentation" / "segmenter.py"


def free_port() -> int:
    """A port for the benchmark's own farm, so it never meets a farm `make run` started."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_segmenter_module() -> ModuleType:
    """examples/portrait_segmentation/segmenter.py, the one definition of the model (examples/ is no package).

    Loaded by path under the name `segmenter`, the name the example's own scripts import it by, so a process that
    runs both sees one module (and one `FpnSegmenter` class).
    """
    loaded = sys.modules.get("segmenter")
    if loaded is not None and Path(getattr(loaded, "__file__", "") or "").resolve() == SEGMENTER_FILE:
        return loaded
    spec = importlib.util.spec_from_file_location("segmenter", SEGMENTER_FILE)
    module = importlib.util.module_from_spec(spec)
    sys.modules["segmenter"] = module
    spec.loader.exec_module(module)
    return module


def build_segmenter_onnx(path: Path) -> Path:
    """The example's FpnSegmenter (MobileNetV2 + FPN → (1,1,256,256) mask logits), untrained: seeded weights and
    batch-norm statistics from synthetic shapes, so the benchmarks need no training run."""
    import torch

    from tests.nets import shapes

    segmenter = load_segmenter_module()
    torch.manual_seed(0)
    model = segmenter.FpnSegmenter()
    # Batch-norm statistics from synthetic images, so activations have realistic ranges for INT8 calibration.
    images, _, _ = shapes(32, seed=7, size=SIZE)
    model.train()
    with torch.no_grad():
        for start in range(0, len(images), 8):
            model(torch.from_numpy(images[start:start + 8]))
    return segmenter.export_onnx(model, path)


def onnx2tf_cli_int8(onnx_path: Path, calib_npy: Path, workdir: Path) -> float:
    """Run `onnx2tf -oiqt -cind ...` the way a user gets a full-INT8 model with their own calibration data.

    `calib_npy` holds float32 samples already normalised and in TF (NHWC) order, as onnx2tf requires; mean 0 and
    std 1 leave them as they are. Returns wall seconds; raises if `*_full_integer_quant.tflite` is missing.
    The CLI runs on a copy in `workdir`: it saves its onnxsim-simplified model over its input, which would hand
    whoever uses `onnx_path` next (the farm, in bench/compile.py) a pre-simplified model.
    """
    import onnx

    workdir.mkdir(parents=True, exist_ok=True)
    onnx_path = Path(shutil.copyfile(onnx_path, workdir / f"cli_input_{Path(onnx_path).name}"))
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
