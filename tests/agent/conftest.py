"""Real models for the agent's backends, built here: TFLite from a tiny Keras model (FP32, and full INT8 with
int8 inputs and outputs), ONNX from tests/nets.py. TensorFlow and torch are used to build them only; the
agent under test never imports either (test_light.py checks)."""

from __future__ import annotations

import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from edgefarm.datasets import write_npz
from edgefarm.wire import CompileResult, JobType, Quantization, TensorInfo
from edgefarm_agent.backends import Job, JobSpec, Outcome
from edgefarm_agent.backends.host import HostBackend
from edgefarm_agent.config import DeviceConfig, parse_config

from tests import nets

SIZE = nets.IMAGE_SIZE  # 32: the source takes NCHW (1, 3, 32, 32) images, as nets.shapes makes them


@dataclass(frozen=True)
class TfliteModel:
    path: Path
    compile_result: CompileResult  # as a compile job would record it for an NCHW float source


@dataclass(frozen=True)
class Models:
    fp32: TfliteModel
    int8: TfliteModel
    onnx: Path


def images(n: int, seed: int) -> np.ndarray:
    """(n, 1, 3, 32, 32): n samples of the source's (1, 3, 32, 32) NCHW input."""
    return nets.shapes(n, seed=seed)[0][:, None]


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> Models:
    import tensorflow as tf

    d = tmp_path_factory.mktemp("agent-models")
    tf.keras.utils.set_random_seed(0)
    image = tf.keras.Input((SIZE, SIZE, 3), batch_size=1)
    features = tf.keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(image)
    features = tf.keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(features)
    logits = tf.keras.layers.Dense(2)(tf.keras.layers.GlobalAveragePooling2D()(features))
    keras_model = tf.keras.Model(image, [features, logits])

    (d / "fp32.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(keras_model).convert())

    def representative():
        for sample in images(32, seed=5):
            yield [sample.transpose(0, 2, 3, 1)]

    converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    (d / "int8.tflite").write_bytes(converter.convert())
    return Models(fp32=_with_record(d / "fp32.tflite"), int8=_with_record(d / "int8.tflite"),
                  onnx=nets.write_convnet_onnx(d / "convnet.onnx"))


def _with_record(path: Path) -> TfliteModel:
    """The CompileResult a compile job would write: NCHW float source, NHWC (maybe int8) target."""
    interpreter = Interpreter(model_path=str(path))

    def info(detail, source_name: str) -> TensorInfo:
        scale, zero_point = detail["quantization"]
        shape = [int(n) for n in detail["shape"]]
        return TensorInfo(name=detail["name"], shape=shape, dtype=np.dtype(detail["dtype"]).name,
                          layout="NHWC" if len(shape) == 4 else None, source_name=source_name,
                          quantization=Quantization(scale=scale, zero_point=zero_point) if scale else None)

    (image,) = interpreter.get_input_details()
    outputs = {len(d["shape"]): d for d in interpreter.get_output_details()}  # 4-D features, 2-D logits
    record = CompileResult(
        target_format="tflite",
        source_inputs=[TensorInfo(name="image", shape=[1, 3, SIZE, SIZE], dtype="float32", layout="NCHW")],
        source_outputs=[TensorInfo(name="features", shape=[1, 8, SIZE // 2, SIZE // 2], dtype="float32",
                                   layout="NCHW"),
                        TensorInfo(name="logits", shape=[1, 2], dtype="float32")],
        target_inputs=[info(image, "image")],
        target_outputs=[info(outputs[4], "features"), info(outputs[2], "logits")],
        source_size=0, target_size=path.stat().st_size, converter="tf.lite.TFLiteConverter (test)", seconds=0.0,
    )
    return TfliteModel(path, record)


@pytest.fixture(scope="session")
def noop_delegate(tmp_path_factory) -> Path:
    """noop_delegate.c built into a shared library: a delegate that loads but takes no ops."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build the test delegate")
    library = tmp_path_factory.mktemp("delegate") / "libnoop_delegate.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(library),
                    str(Path(__file__).with_name("noop_delegate.c"))], check=True)
    return library


def host_device(backend: str = 'backend = "host"', *, attributes: str = "[]") -> DeviceConfig:
    return parse_config(f"""
[[devices]]
name = "Test Host"
serial = "host-1"
attributes = {attributes}
{backend}
""").devices[0]


def run_job(tmp_path: Path, model: Path, job_type: JobType, options: str = "", *, device: DeviceConfig | None = None,
            inputs: dict[str, np.ndarray] | None = None, compile_result: CompileResult | None = None) -> Outcome:
    """What the agent does with a leased job once its files are here: check, then run in a child process."""
    device = device or host_device()
    spec = JobSpec(job_type, model.suffix.lstrip("."), options, compile_result)
    inputs_path = None
    if inputs is not None:
        inputs_path = tmp_path / "inputs.npz"
        with inputs_path.open("wb") as file:
            write_npz(inputs, file)
    backend = HostBackend(device)
    backend.check(spec)
    job = Job(spec=spec, device=device.spec(), model_path=model, inputs_path=inputs_path, work_dir=tmp_path)
    return backend.run(job, cancelled=threading.Event(), progress=lambda message: None)
