"""Real conversions of tiny models, each target run on held-out inputs and compared with ONNX Runtime on the source.

The target is always fed through what the CompileResult records (tensor name, layout, quantization, source_name),
so a wrong record fails the numbers, not only a field check.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from ai_edge_litert.interpreter import Interpreter
from edgefarm.options import CompileOptions
from edgefarm.wire import TensorSpec
from edgefarm_worker.convert import CompiledModel, CompileRequest, ConversionError, compile_model, warm_up
from edgefarm_worker.convert.onnx_prep import fold_constants_with_onnxruntime

from tests import nets, runtimes
from tests.runtimes import run_onnx, run_tflite

CALIBRATION_SEED, HELD_OUT_SEED = 11, 99


@pytest.fixture(scope="module", autouse=True)
def stack():
    warm_up()


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("models")
    return {
        "convnet": nets.write_convnet_onnx(d / "convnet.onnx"),
        "segmenter": nets.write_segmenter_onnx(d / "segmenter.onnx"),
        "const": nets.write_const_subgraph_onnx(d / "const.onnx"),
        "unconvertible": nets.write_unconvertible_onnx(d / "unconvertible.onnx"),
        "segmenter_pt": nets.write_torchscript(d / "segmenter.pt", nets.tiny_segmenter(), [(1, 3, 32, 32)]),
    }


@pytest.fixture(scope="module")
def calibration() -> dict[str, np.ndarray]:
    images, _, _ = nets.shapes(48, seed=CALIBRATION_SEED)
    return {"image": images[:, None]}  # (N, 1, 3, 32, 32): N samples of the (1, 3, 32, 32) input


@pytest.fixture(scope="module")
def held_out() -> list[np.ndarray]:
    images, _, _ = nets.shapes(12, seed=HELD_OUT_SEED)
    return [image[None] for image in images]


def compile_(source: Path, options: str, workdir: Path, calibration=None, input_specs=None,
             source_format="onnx") -> CompiledModel:
    return compile_model(CompileRequest(
        source_path=source, source_format=source_format, options=CompileOptions.parse(options),
        input_specs=input_specs, calibration=calibration, workdir=workdir,
    ))


def reference(source: Path, image: np.ndarray) -> dict[str, np.ndarray]:
    return runtimes.reference(source, {"image": image})


def mask_agreement(source: Path, run, held_out) -> float:
    agree = [np.mean((run({"image": x})[_only_output(source)] > 0) == (reference(source, x)[_only_output(source)] > 0))
             for x in held_out]
    return float(np.mean(agree))


def _only_output(source: Path) -> str:
    (output,) = onnx.load(str(source)).graph.output
    return output.name


def relative_error(got: np.ndarray, expected: np.ndarray) -> float:
    return float(np.linalg.norm(got - expected) / np.linalg.norm(expected))


# --- ONNX → TFLite ------------------------------------------------------------------------------------------------

def test_fp32_keeps_source_layout_and_matches_onnxruntime(models, held_out, tmp_path):
    compiled = compile_(models["convnet"], "", tmp_path)
    result = compiled.result
    assert tmp_path in compiled.path.parents and compiled.path.suffix == ".tflite"
    assert [p.name for p in tmp_path.rglob("*.tflite")] == [compiled.path.name]  # only the variant asked for
    assert result.strategy == "default" and [(a.strategy, a.outcome) for a in result.attempts] == [
        ("default", "verified")]
    check = result.verification
    assert (check.verdict, check.precision, check.samples, check.inputs) == (
        "verified", "float32", 4, "seeded random inputs")
    assert [(o.name, o.shape, o.target_shape, o.passed) for o in check.outputs] == [
        ("features", [1, 8, 8, 8], [1, 8, 8, 8], True), ("logits", [1, 2], [1, 2], True)]
    assert all(o.relative_error < 1e-4 and o.cosine > 0.99999 for o in check.outputs)
    assert result.target_format == "tflite"
    assert "onnx2tf 1.29.24" in result.converter and "tensorflow 2.19.0" in result.converter
    assert result.source_size == models["convnet"].stat().st_size and result.target_size == compiled.path.stat().st_size
    assert [(t.name, t.shape, t.layout) for t in result.source_inputs] == [("image", [1, 3, 32, 32], "NCHW")]
    assert [(t.name, t.shape) for t in result.source_outputs] == [("features", [1, 8, 8, 8]), ("logits", [1, 2])]
    assert [(t.source_name, t.shape, t.dtype, t.layout, t.quantization) for t in result.target_inputs] == [
        ("image", [1, 3, 32, 32], "float32", "NCHW", None)]
    assert [(t.source_name, t.shape, t.layout) for t in result.target_outputs] == [
        ("features", [1, 8, 8, 8], "NCHW"), ("logits", [1, 2], None)]
    assert result.seconds > 0 and "onnx2tf" in result.log

    # Raw tensors, no help from the recorded layout: the target's NCHW output is the source's, value for value.
    interpreter = Interpreter(model_path=str(compiled.path))
    interpreter.allocate_tensors()
    for x in held_out[:4]:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        interpreter.invoke()
        got = {d["name"]: interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()}
        expected = reference(models["convnet"], x)
        for info in result.target_outputs:
            np.testing.assert_allclose(got[info.name], expected[info.source_name], rtol=1e-4, atol=1e-4)


def test_channel_last_options_make_nhwc_io(models, held_out, tmp_path):
    compiled = compile_(models["convnet"], "--force_channel_last_input image --force_channel_last_output features",
                        tmp_path)
    (image,) = compiled.result.target_inputs
    features, logits = compiled.result.target_outputs
    assert (image.shape, image.layout) == ([1, 32, 32, 3], "NHWC")
    assert (features.source_name, features.layout, logits.layout) == ("features", "NHWC", None)
    interpreter = Interpreter(model_path=str(compiled.path))
    interpreter.allocate_tensors()
    outputs = {d["name"]: d["index"] for d in interpreter.get_output_details()}
    for x in held_out[:4]:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x.transpose(0, 2, 3, 1))
        interpreter.invoke()
        expected = reference(models["convnet"], x)
        np.testing.assert_allclose(interpreter.get_tensor(outputs[features.name]),
                                   expected["features"].transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(interpreter.get_tensor(outputs[logits.name]), expected["logits"],
                                   rtol=1e-4, atol=1e-4)


def test_inputs_and_outputs_map_by_name_not_position(held_out, tmp_path):
    """Two same-shaped inputs (graph order against the alphabet), one made channel-last: each target tensor is
    fed and read through its recorded source_name/layout, and the numbers match ONNX Runtime."""
    source = nets.write_two_input_onnx(tmp_path / "two.onnx")
    compiled = compile_(source, "--force_channel_last_input a_second", tmp_path / "out")
    assert [(t.source_name, t.layout, t.shape) for t in compiled.result.target_inputs] == [
        ("z_first", "NCHW", [1, 3, 32, 32]), ("a_second", "NHWC", [1, 32, 32, 3])]
    assert [t.source_name for t in compiled.result.target_outputs] == ["diff", "peak"]
    feeds = {"z_first": held_out[0], "a_second": held_out[1]}
    got = run_tflite(compiled.path, compiled.result, feeds)
    session = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"])
    for name, expected in zip(["diff", "peak"], session.run(["diff", "peak"], feeds)):
        np.testing.assert_allclose(got[name], expected, rtol=1e-4, atol=1e-4)


def test_fp16(models, held_out, tmp_path):
    compiled = compile_(models["segmenter"], "--quantize_full_type float16", tmp_path)
    fp32_size = models["segmenter"].stat().st_size
    assert compiled.result.target_size < 0.75 * fp32_size  # weights stored as float16
    assert [t.dtype for t in compiled.result.target_inputs + compiled.result.target_outputs] == ["float32"] * 2
    for x in held_out[:4]:
        got = run_tflite(compiled.path, compiled.result, {"image": x})["mask"]
        assert relative_error(got, reference(models["segmenter"], x)["mask"]) < 2e-3


def test_int8_with_float_io(models, calibration, held_out, tmp_path):
    compiled = compile_(models["segmenter"], "--quantize_full_type int8", tmp_path, calibration=calibration)
    assert [(t.dtype, t.quantization) for t in compiled.result.target_inputs] == [("float32", None)]
    assert mask_agreement(models["segmenter"], lambda f: run_tflite(compiled.path, compiled.result, f),
                          held_out) >= 0.99


def test_int8_with_int8_io(models, calibration, held_out, tmp_path):
    compiled = compile_(models["segmenter"], "--quantize_full_type int8 --quantize_io", tmp_path,
                        calibration=calibration)
    (image,), (mask,) = compiled.result.target_inputs, compiled.result.target_outputs
    assert (image.dtype, mask.dtype) == ("int8", "int8")
    assert image.quantization.scale == pytest.approx(1 / 255, rel=0.02)  # inputs span [0, 1]
    assert mask.quantization is not None
    assert mask_agreement(models["segmenter"], lambda f: run_tflite(compiled.path, compiled.result, f),
                          held_out) >= 0.99


def assert_int8_convnet_close(source: Path, run, held_out) -> None:
    """INT8 bound for the trained convnet on held-out images.

    The int8 output grid alone is (range / 255) per step; three quantized conv layers add a few steps more. So:
    the worst feature error stays under 3 % of the features' range (~8 output steps), the mean relative L2 error
    under 5 %, and the predicted class agrees on at least 90 % of the images.
    """
    pairs = [(run({"image": x}), reference(source, x)) for x in held_out]
    span = max(float(e["features"].max() - e["features"].min()) for _, e in pairs)
    assert max(float(np.abs(g["features"] - e["features"]).max()) for g, e in pairs) < 0.03 * span
    assert np.mean([relative_error(g["features"], e["features"]) for g, e in pairs]) < 0.05
    assert np.mean([g["logits"].argmax() == e["logits"].argmax() for g, e in pairs]) >= 0.9


def test_int8_convnet_error_is_bounded(models, calibration, held_out, tmp_path):
    compiled = compile_(models["convnet"], "--quantize_full_type int8 --quantize_io", tmp_path,
                        calibration={"image": calibration["image"][:, 0]})  # the batch axis may be left out
    assert_int8_convnet_close(models["convnet"], lambda f: run_tflite(compiled.path, compiled.result, f), held_out)


def _snr_db(got: np.ndarray, expected: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(expected**2) / np.sum((got - expected) ** 2)))


def test_int8_calibrates_inputs_of_different_ranks_by_name(tmp_path):
    """An image and a vector input: the calibrator used to feed the samples in the converted graph's tensor
    order, which is not the argument order, and failed at the image's TRANSPOSE ("4 != 2")."""
    source = nets.write_image_and_vector_onnx(tmp_path / "multi.onnx")
    rng = np.random.default_rng(CALIBRATION_SEED)
    calibration = {"image": rng.standard_normal((16, 1, 3, 32, 32), np.float32),
                   "meta": rng.standard_normal((16, 1, 8), np.float32)}
    compiled = compile_(source, "--quantize_full_type int8", tmp_path / "out", calibration=calibration)
    assert compiled.result.verification.verdict == "verified"
    feeds = {"image": rng.standard_normal((1, 3, 32, 32), np.float32), "meta": rng.standard_normal((1, 8), np.float32)}
    got = run_tflite(compiled.path, compiled.result, feeds)
    for name, expected in runtimes.reference(source, feeds).items():
        assert _snr_db(got[name], expected) > 12, name  # an untrained net's small logits: 17.6 dB measured


def test_int8_calibrates_same_shaped_inputs_each_with_its_own_samples(tmp_path):
    """Two same-shaped inputs 2,500x apart in scale: calibrated with each other's samples, one would saturate and
    the other lose its resolution, and nothing would fail."""
    source = nets.write_two_input_onnx(tmp_path / "two.onnx")
    rng = np.random.default_rng(CALIBRATION_SEED)
    scales = {"z_first": 50.0, "a_second": 0.02}

    def samples(n: int) -> dict[str, np.ndarray]:
        return {name: scale * rng.standard_normal((n, 1, 3, 32, 32), np.float32) for name, scale in scales.items()}

    compiled = compile_(source, "--quantize_full_type int8", tmp_path / "out", calibration=samples(16))
    held_out = {name: value[0] for name, value in samples(1).items()}
    got = run_tflite(compiled.path, compiled.result, held_out)
    for name, expected in runtimes.reference(source, held_out).items():
        assert _snr_db(got[name], expected) > 25, name


def test_int16_activations(models, calibration, held_out, tmp_path):
    compiled = compile_(models["segmenter"], "--quantize_full_type int16 --quantize_io", tmp_path,
                        calibration=calibration)
    (image,), (mask,) = compiled.result.target_inputs, compiled.result.target_outputs
    assert (image.dtype, mask.dtype, image.quantization.zero_point) == ("int16", "int16", 0)  # symmetric int16
    for x in held_out[:4]:
        got = run_tflite(compiled.path, compiled.result, {"image": x})["mask"]
        assert relative_error(got, reference(models["segmenter"], x)["mask"]) < 0.01


def test_output_names_keeps_only_those(models, held_out, tmp_path):
    compiled = compile_(models["convnet"], "--output_names logits", tmp_path)
    assert [o.source_name for o in compiled.result.target_outputs] == ["logits"]
    got = run_tflite(compiled.path, compiled.result, {"image": held_out[0]})
    np.testing.assert_allclose(got["logits"], reference(models["convnet"], held_out[0])["logits"], atol=1e-4)


def test_constant_subgraph_weights_are_folded(models, held_out, tmp_path):
    compiled = compile_(models["const"], "", tmp_path)
    for x in held_out[:3]:
        got = run_tflite(compiled.path, compiled.result, {"image": x})["out"]
        np.testing.assert_allclose(got, reference(models["const"], x)["out"], rtol=1e-4, atol=1e-4)


def test_onnxruntime_fallback_folds_constant_subgraphs(models, tmp_path):
    """The fallback used when onnxsim cannot handle a graph: the Conv's weight becomes an initializer."""
    folded = fold_constants_with_onnxruntime(onnx.load(str(models["const"])), tmp_path)
    initializers = {init.name for init in folded.graph.initializer}
    convs = [n for n in folded.graph.node if n.op_type == "Conv"]
    assert convs and all(conv.input[1] in initializers for conv in convs)
    assert not {"Exp", "Mul", "Reshape"} & {n.op_type for n in folded.graph.node}


def test_dynamic_batch_needs_and_takes_input_specs(held_out, tmp_path):
    source = tmp_path / "dynamic.onnx"
    torch.onnx.export(nets.tiny_segmenter(), (torch.zeros(1, 3, 32, 32),), str(source), input_names=["image"],
                      output_names=["mask"], dynamic_axes={"image": {0: "batch"}, "mask": {0: "batch"}},
                      opset_version=17, dynamo=False)
    with pytest.raises(ConversionError, match=r"'image' has dynamic dimensions \(batch, 3, 32, 32\).*input_specs"):
        compile_(source, "", tmp_path / "a")
    compiled = compile_(source, "", tmp_path / "b", input_specs={"image": TensorSpec(shape=[1, 3, 32, 32])})
    assert compiled.result.source_inputs[0].shape == ["batch", 3, 32, 32]
    assert compiled.result.target_inputs[0].shape == [1, 3, 32, 32]
    got = run_tflite(compiled.path, compiled.result, {"image": held_out[0]})["mask"]
    np.testing.assert_allclose(got, reference(source, held_out[0])["mask"], rtol=1e-4, atol=1e-4)


# --- TorchScript ----------------------------------------------------------------------------------------------------

def test_torchscript_to_tflite(models, held_out, tmp_path):
    compiled = compile_(models["segmenter_pt"], "", tmp_path, source_format="torchscript",
                        input_specs={"image": TensorSpec(shape=[1, 3, 32, 32], dtype="float32")})
    assert compiled.result.converter.startswith("torch 2.13.0 / onnx2tf")
    assert [t.name for t in compiled.result.source_inputs] == ["image"]
    assert [t.source_name for t in compiled.result.target_outputs] == ["output_0"]
    module = torch.jit.load(str(models["segmenter_pt"]))
    for x in held_out[:3]:
        with torch.no_grad():
            expected = module(torch.from_numpy(x)).numpy()
        got = run_tflite(compiled.path, compiled.result, {"image": x})["output_0"]
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("on_load", [False, True], ids=["forward", "__setstate__"])
def test_torchscript_that_reads_a_file_is_refused_before_it_runs(tmp_path, on_load):
    secret = tmp_path / "secret"
    secret.write_bytes(b"a token nobody may read")
    source = nets.write_hostile_torchscript(tmp_path / "hostile.pt", secret, on_load=on_load)
    with pytest.raises(ConversionError, match="defines __setstate__" if on_load else "calls aten::from_file"):
        compile_(source, "", tmp_path / "out", source_format="torchscript",
                 input_specs={"image": TensorSpec(shape=[1, 1, 4, 4], dtype="float32")})
    assert not list((tmp_path / "out").glob("**/*.onnx"))  # nothing was exported


def test_torchscript_needs_input_specs(models, tmp_path):
    with pytest.raises(ConversionError, match="input_specs"):
        compile_(models["segmenter_pt"], "", tmp_path, source_format="torchscript")


# --- ONNX → ONNX ----------------------------------------------------------------------------------------------------

def test_onnx_fp32_is_the_simplified_source(models, held_out, tmp_path):
    compiled = compile_(models["convnet"], "--target_runtime onnx", tmp_path)
    assert compiled.path.suffix == ".onnx" and compiled.result.converter.startswith("onnxruntime")
    got = run_onnx(compiled.path, compiled.result, {"image": held_out[0]})
    for name, expected in reference(models["convnet"], held_out[0]).items():
        np.testing.assert_allclose(got[name], expected, rtol=1e-5, atol=1e-5)


def test_onnx_qdq_int8(models, calibration, held_out, tmp_path):
    compiled = compile_(models["segmenter"], "--target_runtime onnx --quantize_full_type int8", tmp_path,
                        calibration=calibration)
    ops = {n.op_type for n in onnx.load(str(compiled.path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert [t.dtype for t in compiled.result.target_inputs + compiled.result.target_outputs] == ["float32"] * 2
    assert mask_agreement(models["segmenter"], lambda f: run_onnx(compiled.path, compiled.result, f),
                          held_out) >= 0.99


def test_onnx_qdq_int8_io(models, calibration, held_out, tmp_path):
    compiled = compile_(models["convnet"], "--target_runtime onnx --quantize_full_type int8 --quantize_io",
                        tmp_path, calibration=calibration)
    infos = compiled.result.target_inputs + compiled.result.target_outputs
    assert [(t.dtype, t.quantization is not None) for t in infos] == [("int8", True)] * 3
    session = ort.InferenceSession(str(compiled.path), providers=["CPUExecutionProvider"])
    assert [i.type for i in session.get_inputs()] == ["tensor(int8)"]
    assert_int8_convnet_close(models["convnet"], lambda f: run_onnx(compiled.path, compiled.result, f), held_out)


# --- what the user gets wrong -----------------------------------------------------------------------------------------

def test_int8_without_calibration_is_refused(models, tmp_path):
    for options in ("--quantize_full_type int8", "--target_runtime onnx --quantize_full_type int8",
                    "--quantize_full_type int16"):
        with pytest.raises(ConversionError, match="needs calibration data.*calibration_data="):
            compile_(models["convnet"], options, tmp_path)


def test_calibration_for_unknown_input(models, calibration, tmp_path):
    with pytest.raises(ConversionError, match=r"has data for 'img'.*has no data for 'image'.*inputs are: 'image'"):
        compile_(models["convnet"], "--quantize_full_type int8", tmp_path, calibration={"img": calibration["image"]})


def test_calibration_with_wrong_shape(models, tmp_path):
    bad = np.zeros((4, 3, 16, 16), np.float32)
    with pytest.raises(ConversionError, match=r"input 'image': expected samples of shape \(1, 3, 32, 32\).*"
                                              r"got an array of shape \(4, 3, 16, 16\)"):
        compile_(models["convnet"], "--quantize_full_type int8", tmp_path, calibration={"image": bad})


def test_unknown_output_name(models, tmp_path):
    with pytest.raises(ConversionError, match=r"'probs'.*outputs are: 'features', 'logits'"):
        compile_(models["convnet"], "--output_names probs", tmp_path)


def test_channel_last_for_unknown_or_non_4d_tensor(models, tmp_path):
    with pytest.raises(ConversionError, match=r"'img', which is not a model input; the inputs are: 'image'"):
        compile_(models["convnet"], "--force_channel_last_input img", tmp_path)
    with pytest.raises(ConversionError, match=r"applies to 4-D tensors; output 'logits' has shape \(1, 2\)"):
        compile_(models["convnet"], "--force_channel_last_output logits", tmp_path)


# --- the worker survives ----------------------------------------------------------------------------------------------

def test_unconvertible_op_fails_cleanly_and_the_next_conversion_works(models, held_out, tmp_path):
    cwd = os.getcwd()
    with pytest.raises(ConversionError) as failure:
        compile_(models["unconvertible"], "", tmp_path / "bad")
    message = str(failure.value)
    assert "act/QuickGelu" in message and "QuickGelu OP is not yet implemented" in message
    assert "--target_runtime onnx" in message  # the way out
    assert os.getcwd() == cwd

    compiled = compile_(models["convnet"], "", tmp_path / "good")
    got = run_tflite(compiled.path, compiled.result, {"image": held_out[0]})
    np.testing.assert_allclose(got["logits"], reference(models["convnet"], held_out[0])["logits"], atol=1e-4)


@pytest.fixture()
def no_network(monkeypatch):
    """Every attempt to resolve a host or open a connection is recorded and refused."""
    attempts: list[object] = []

    def refuse(*args):
        attempts.append(args[1] if isinstance(args[0], socket.socket) else args[0])
        raise OSError(f"network disabled in this test: {args}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


def test_the_network_guard_catches_onnx2tf_downloads(no_network, tmp_path, monkeypatch):
    """Without the sample file onnx2tf goes to the internet, and the guard sees it."""
    from onnx2tf.utils.common_functions import download_test_image_data

    monkeypatch.chdir(tmp_path)
    with pytest.raises(OSError):  # requests' ConnectionError is an OSError
        download_test_image_data()
    assert "github.com" in no_network


def test_conversions_stay_offline(no_network, models, calibration, tmp_path):
    # A single 3-channel NHWC input is exactly when onnx2tf fetches its sample images.
    compile_(models["segmenter"], "--force_channel_last_input image --quantize_full_type int8", tmp_path / "a",
             calibration=calibration)
    compile_(models["convnet"], "--force_channel_last_input image", tmp_path / "b")
    assert no_network == []
    assert (tmp_path / "a" / "default" / "calibration_image_sample_data_20x128x128x3_float32.npy").is_file()
