"""Every compile verifies its target against the source and falls back to the next strategy when a conversion
fails or converts wrongly. The graphs are the smallest that reproduce what the corpus found (tests/nets.py says
which architectures they stand for); each target is also run here, through what its CompileResult records, and
compared with ONNX Runtime on the source, so the farm's verdict is checked by a second, independent run."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from edgefarm.options import CompileOptions
from edgefarm.wire import TensorInfo
from edgefarm_worker.convert import (CompileRequest, ConversionError, compile_model, rewrites, strategies, verify,
                                     warm_up)
from edgefarm_worker.convert.tensors import tflite_io

from tests import nets
from tests.runtimes import reference, run_target


@pytest.fixture(scope="module", autouse=True)
def stack():
    warm_up()


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    d = tmp_path_factory.mktemp("graphs")
    return {"softmax": nets.write_opset11_channel_softmax_onnx(d / "softmax.onnx"),
            "grouped": nets.write_grouped_conv_onnx(d / "grouped.onnx"),
            "convnet": nets.write_convnet_onnx(d / "convnet.onnx"),
            "residual_deconv": nets.write_residual_deconv_onnx(d / "residual_deconv.onnx"),
            "unconvertible": nets.write_unconvertible_onnx(d / "unconvertible.onnx")}


def compile_(source, workdir, options="", calibration=None, **extra):
    return compile_model(CompileRequest(source_path=source, source_format="onnx", options=CompileOptions.parse(options),
                                        input_specs=None, calibration=calibration, workdir=workdir, **extra))


def independent_error(source, compiled, channels: int) -> float:
    """max |target - source| / max |source| on fresh inputs, the target fed through its recorded facts."""
    rng = np.random.default_rng(123)
    worst = 0.0
    for _ in range(3):
        feeds = {"image": rng.standard_normal((1, channels, 8, 8)).astype(np.float32)}
        expected = reference(source, feeds)["out"]
        got = run_target(compiled.path, compiled.result, feeds)["out"]
        worst = max(worst, float(np.abs(got - expected).max() / np.abs(expected).max()))
    return worst


def test_a_wrong_conversion_is_caught_and_rescued_by_a_later_strategy(graphs, tmp_path):
    compiled = compile_(graphs["softmax"], tmp_path)
    result = compiled.result
    first, last = result.attempts[0], result.attempts[-1]
    assert (first.strategy, first.outcome) == ("default", "mismatch")
    assert "output 'out' differs from the source" in first.reason and "tolerance 1e-03" in first.reason
    assert (last.strategy, last.outcome) == ("opset-upgrade", "verified") and result.strategy == "opset-upgrade"
    assert result.verification.verdict == "verified" and result.verification.outputs[0].passed
    assert independent_error(graphs["softmax"], compiled, 3) < 1e-4
    assert "strategy default: mismatch" in result.log


def test_a_residual_sum_before_a_deconvolution_is_rescued_by_a_graph_rewrite(graphs, tmp_path):
    compiled = compile_(graphs["residual_deconv"], tmp_path)
    attempts = [(a.strategy, a.outcome) for a in compiled.result.attempts]
    assert attempts[0] == ("default", "mismatch") and attempts[-1] == ("residual-add-as-sum", "verified")
    assert all(outcome == "mismatch" for _, outcome in attempts[:-1])
    rng = np.random.default_rng(9)
    for _ in range(3):
        feeds = {"image": rng.standard_normal((1, 16, 4, 3)).astype(np.float32)}
        expected = reference(graphs["residual_deconv"], feeds)["out"]
        got = run_target(compiled.path, compiled.result, feeds)["out"]
        assert np.abs(got - expected).max() / np.abs(expected).max() < 1e-4

    # The rewrite keeps the values: ONNX Runtime gives the same outputs before and after it.
    model = onnx.load(str(graphs["residual_deconv"]))
    rewritten = rewrites.residual_adds_as_sum(model)
    assert [n.op_type for n in rewritten.graph.node] == ["Relu", "Sum", "ConvTranspose"]
    assert [n.op_type for n in model.graph.node] == ["Relu", "Add", "ConvTranspose"]  # the input is untouched
    onnx.save(rewritten, str(tmp_path / "rewritten.onnx"))
    feeds = {"image": rng.standard_normal((1, 16, 4, 3)).astype(np.float32)}
    np.testing.assert_array_equal(reference(tmp_path / "rewritten.onnx", feeds)["out"],
                                  reference(graphs["residual_deconv"], feeds)["out"])


def test_a_model_without_a_signature_is_a_named_cause_and_rescued(graphs, tmp_path):
    compiled = compile_(graphs["grouped"], tmp_path)
    attempts = compiled.result.attempts
    assert [(a.strategy, a.outcome) for a in attempts] == [("default", "failed"), ("split-grouped-conv", "verified")]
    assert "has no serving signature" in attempts[0].reason
    assert independent_error(graphs["grouped"], compiled, 4) < 1e-4

    # The default attempt's own output, read directly: a named ConversionError, never a KeyError or an
    # "internal error".
    with pytest.raises(ConversionError, match="no serving signature"):
        tflite_io(tmp_path / "default" / "model.tflite", {"image": "image"}, {"out": "out"}, set())


def test_the_winning_strategy_is_tried_first_on_resubmission(graphs, tmp_path):
    compiled = compile_(graphs["grouped"], tmp_path, preferred_strategy="split-grouped-conv")
    assert [(a.strategy, a.outcome) for a in compiled.result.attempts] == [("split-grouped-conv", "verified")]


def test_a_model_no_strategy_converts_fails_with_every_strategys_reason(graphs, tmp_path):
    with pytest.raises(ConversionError) as caught:
        compile_(graphs["unconvertible"], tmp_path)
    message = str(caught.value)
    tried = [s.name for s in strategies.chain(CompileOptions(), onnx.load(str(graphs["unconvertible"])))]
    assert tried == ["default", "onnxruntime-folding"]  # opset 17, no grouped conv, no op with a pseudo-op
    assert message.startswith(f"no conversion strategy produced a verified target ({len(tried)} tried):")
    for name in tried:
        line = next(line for line in message.splitlines() if line.startswith(f"- {name}: "))
        assert "failed" in line and "QuickGelu" in line, line


def test_verification_uses_the_users_inputs_and_the_chain_fits_the_graph(graphs, tmp_path):
    images = nets.shapes(3, seed=5)[0][:, None]  # three (1, 3, 32, 32) samples
    compiled = compile_(graphs["convnet"], tmp_path, verification={"image": images})
    check = compiled.result.verification
    assert (check.inputs, check.samples, check.precision) == ("verification data", 3, "float32")
    assert "LiteRT" in check.runtime and "ONNX Runtime" in check.runtime
    assert [s.name for s in strategies.chain(CompileOptions(), onnx.load(str(graphs["grouped"])))] == [
        "default", "split-grouped-conv", "opset-upgrade", "onnxruntime-folding"]
    assert "split-grouped-conv" not in [s.name for s in strategies.chain(
        CompileOptions.parse("--target_runtime onnx"), onnx.load(str(graphs["grouped"])))]


def test_quantized_targets_are_measured_not_judged(graphs, tmp_path):
    images = nets.shapes(16, seed=6)[0][:, None]
    compiled = compile_(graphs["convnet"], tmp_path, "--quantize_full_type int8", calibration={"image": images})
    check = compiled.result.verification
    assert check.precision == "int8" and check.inputs == "calibration data" and check.tolerance is None
    assert check.verdict in ("verified", "warning")
    for output in check.outputs:
        assert output.passed is None and output.snr_db is not None and output.cosine > 0.9
    logits = next(o for o in check.outputs if o.name == "logits")
    assert logits.top1_agreement is not None


# --- the comparison itself, on arrays with known answers -------------------------------------------------------

OUT = [TensorInfo(name="out", shape=[1, 4, 4, 4], dtype="float32")]


def _samples(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return [{"out": rng.standard_normal((1, 4, 4, 4))} for _ in range(n)]


def test_a_transposed_output_is_a_mismatch_even_with_an_equal_shape():
    ref = _samples()
    swapped = [{"out": r["out"].transpose(0, 2, 3, 1)} for r in ref]  # NHWC where NCHW belongs: same shape
    check = verify.compare(ref, swapped, OUT, "float32", "seeded random inputs", "test")
    assert check.verdict == "mismatch" and check.outputs[0].passed is False
    assert "output 'out' differs from the source" in verify.describe_failure(check)


def test_float16_tolerance_and_quantized_warnings():
    ref = _samples()
    close = [{"out": (r["out"] * (1 + 1e-3)).astype(np.float16).astype(np.float64)} for r in ref]
    assert verify.compare(ref, close, OUT, "float16", "x", "test").verdict == "verified"
    assert verify.compare(ref, close, OUT, "float32", "x", "test").verdict == "mismatch"
    swapped = [{"out": r["out"].transpose(0, 2, 3, 1)} for r in ref]
    assert verify.compare(ref, swapped, OUT, "float16", "x", "test").verdict == "mismatch"
    noise = [{"out": r["out"] + np.random.default_rng(1).standard_normal(r["out"].shape) * 2} for r in ref]
    noisy = verify.compare(ref, noise, OUT, "int8", "x", "test")
    assert noisy.verdict == "warning" and noisy.outputs[0].snr_db < verify.LOW_SNR_DB
    assert any("SNR" in w for w in noisy.warnings)
    wrong_shape = verify.compare(ref, [{"out": r["out"][:, :2]} for r in ref], OUT, "int8", "x", "test")
    assert wrong_shape.verdict == "warning" and "has shape (1, 2, 4, 4) on the target" in wrong_shape.warnings[0]


def test_a_strategy_is_named_crashed_after_two_deaths_not_one():
    # What the next attempt reads when it claims the job: every start without an end is a process that died.
    one_death = ["submitted", "strategy default: started", "attempt 2 of 3"]
    assert strategies.crashed(one_death) == []
    assert strategies.crashed(one_death + ["strategy default: started", "attempt 3 of 3"]) == ["default"]
    recovered = ["strategy default: started", "strategy default: failed", "strategy pseudo-ops: started",
                 "strategy pseudo-ops: started"]
    assert strategies.crashed(recovered) == ["pseudo-ops"]
    assert strategies.crashed(["strategy nonsense: started"] * 3) == []


def test_a_target_that_aborts_litert_fails_its_attempt_not_the_worker(tmp_path):
    """The corpus' ResNet-18 (bench/corpus_models.py) at full INT8: on the default path the TFLite converter writes
    a residual ADD whose quantization LiteRT's builtin kernels abort on (SIGABRT in allocate_tensors, inside
    QuantizeMultiplierSmallerThanOneExp). Run in the worker, that would have killed it; the verification child
    dies instead, the attempt says how, and the residual-Add rewrite (ADD_N) gives a model LiteRT runs."""
    from bench.corpus_models import by_name

    entry = by_name("resnet18")
    source = entry.export(tmp_path / "resnet18.onnx")
    compiled = compile_(source, tmp_path / "work", "--quantize_full_type int8",
                        calibration=entry.sample_inputs(8, seed=1))
    first, last = compiled.result.attempts[0], compiled.result.attempts[-1]
    assert (first.strategy, first.outcome) == ("default", "failed")
    assert "LiteRT failed allocating its tensors with the builtin kernels (killed by SIGABRT)" in first.reason
    assert last.strategy == "residual-add-as-sum" and last.outcome in ("verified", "warning")
    assert compiled.result.verification.outputs[0].snr_db is not None


def test_a_calibrator_segfault_is_one_crashed_attempt_and_unrolling_rescues_it(tmp_path):
    """TensorFlow's INT8 calibrator segfaults on onnx2tf's LSTM loop (as on the corpus's LSTM tagger, BiGRU and
    CRNN). It runs in a child process, so the worker lives, the attempt names the crash and where it happened,
    and the unrolled conversion quantizes; the target is checked again here on fresh inputs."""
    source = nets.write_lstm_onnx(tmp_path / "lstm.onnx")
    rng = np.random.default_rng(8)
    compiled = compile_(source, tmp_path / "work", "--quantize_full_type int8",
                        calibration={"features": rng.standard_normal((8, 1, 12, 8), np.float32)})
    first, last = compiled.result.attempts[0], compiled.result.attempts[-1]
    assert (first.strategy, first.outcome) == ("default", "crashed")
    assert "killed by SIGSEGV in optimize/calibrator.py:_feed_tensors" in first.reason
    assert (last.strategy, last.outcome) == ("unroll-rnn", "verified")
    feeds = {"features": rng.standard_normal((1, 12, 8), np.float32)}
    expected, got = reference(source, feeds)["logits"], run_target(compiled.path, compiled.result, feeds)["logits"]
    assert 10 * np.log10(np.sum(expected**2) / np.sum((got - expected) ** 2)) > 25
