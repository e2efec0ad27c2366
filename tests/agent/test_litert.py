"""The host backend with real LiteRT on this CPU: profiles, inference, delegates, failures."""

from __future__ import annotations

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter, OpResolverType, load_delegate
from edgefarm.tensors import from_target, to_target
from edgefarm.wire import JobType
from edgefarm_agent.backends import InferenceOutcome, JobFailure, ProfileOutcome
from edgefarm_agent.backends.litert import _partition

from tests.agent.conftest import host_device, images, run_job


def op_types(path) -> list[str]:
    """The model's own op list, read without any delegate."""
    interpreter = Interpreter(model_path=str(path),
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    return [op["op_name"] for op in interpreter._get_ops_details()]


def profile(tmp_path, model, options="", **kwargs):
    outcome = run_job(tmp_path, model, JobType.PROFILE, options, **kwargs)
    assert isinstance(outcome, ProfileOutcome)
    return outcome.profile


def direct_run(path, nhwc_input: np.ndarray) -> list[np.ndarray]:
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], nhwc_input)
    interpreter.invoke()
    return {d["name"]: interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()}


def test_profile_fp32_default_is_xnnpack_with_consistent_numbers(tmp_path, models):
    p = profile(tmp_path, models.fp32.path,
                "--max_profiler_iterations 30 --warmup_iterations 3 --tflite_options number_of_threads=2")
    s = p.execution_summary
    assert p.runtime == "litert 2.1.0"
    assert s.iterations == len(s.all_inference_times) == 30 and s.warmup_iterations == 3
    stats = s.inference_stats
    assert stats.min <= stats.median <= max(s.all_inference_times)
    assert stats.min == min(s.all_inference_times) and stats.median <= stats.p90 <= stats.p99
    assert s.estimated_inference_time == stats.median
    assert s.estimated_inference_peak_memory > 0
    assert s.first_load_time > 0 and s.warm_load_time > 0 and s.first_inference_time > 0
    assert s.threads == 2 and s.compute_unit == "all"
    assert s.delegate == "XNNPACK" and s.delegated_ops == s.total_ops == len(op_types(models.fp32.path))
    assert not s.cpu_fallback and not p.warnings
    assert [op.type for op in p.execution_detail] == op_types(models.fp32.path)
    assert {(op.compute_unit, op.delegate, op.execution_time) for op in p.execution_detail} == {
        ("CPU", "XNNPACK", None)}
    assert all(op.name for op in p.execution_detail)  # named after their output tensors
    assert p.device.serial == "host-1"
    assert {"ai_edge_litert", "python", "cpu", "cpu_count", "agent_version", "memory"} <= set(p.environment)


def test_profile_without_delegates_reports_none(tmp_path, models):
    p = profile(tmp_path, models.fp32.path, "--tflite_delegates none --max_profiler_iterations 5")
    s = p.execution_summary
    assert s.delegate is None and s.delegated_ops == 0 and s.total_ops == len(op_types(models.fp32.path))
    assert {op.delegate for op in p.execution_detail} == {None}
    assert s.threads == 1  # the Interpreter's own default, reported as such


def test_profile_int8_with_random_int8_inputs(tmp_path, models):
    p = profile(tmp_path, models.int8.path, "--max_profiler_iterations 10 --compute_unit cpu")
    assert p.execution_summary.delegate == "XNNPACK" and p.execution_summary.compute_unit == "cpu"
    assert [op.type for op in p.execution_detail] == op_types(models.int8.path)
    assert "random" in p.environment["inputs"]


def test_profile_time_budget_stops_the_loop(tmp_path, models):
    p = profile(tmp_path, models.fp32.path, "--max_profiler_iterations 100000 --max_profiler_time 0.2")
    assert 1 <= p.execution_summary.iterations < 100000


def test_profile_with_an_input_dataset_feeds_the_source_data(tmp_path, models):
    p = profile(tmp_path, models.int8.path, "--max_profiler_iterations 6", inputs={"image": images(3, seed=1)},
                compile_result=models.int8.compile_result)
    assert p.environment["inputs"] == "the input dataset" and p.execution_summary.iterations == 6


def test_inference_fp32_equals_a_direct_interpreter_run(tmp_path, models):
    data = images(4, seed=2)
    outcome = run_job(tmp_path, models.fp32.path, JobType.INFERENCE, inputs={"image": data},
                      compile_result=models.fp32.compile_result)
    assert isinstance(outcome, InferenceOutcome) and outcome.runtime == "litert 2.1.0"
    with np.load(outcome.outputs_path, allow_pickle=False) as out:
        assert set(out.files) == {"features", "logits"}
        assert out["features"].shape == (4, 1, 8, 16, 16) and out["features"].dtype == np.float32
        record = models.fp32.compile_result
        for i, sample in enumerate(data):
            direct = direct_run(models.fp32.path, sample.transpose(0, 2, 3, 1))
            for target in record.target_outputs:
                np.testing.assert_allclose(out[target.source_name][i], from_target(direct[target.name], target),
                                           rtol=1e-6, atol=1e-6)
    assert any("NCHW [1, 3, 32, 32] → float32 NHWC [1, 32, 32, 3]" in c for c in outcome.conversions)


def test_inference_int8_io_quantizes_with_the_models_parameters(tmp_path, models):
    data = images(4, seed=3)
    record = models.int8.compile_result
    outcome = run_job(tmp_path, models.int8.path, JobType.INFERENCE, inputs={"image": data}, compile_result=record)
    (image,) = record.target_inputs
    q = image.quantization
    assert f"image → {image.name}: float32 NCHW [1, 3, 32, 32] → int8 NHWC [1, 32, 32, 3] " \
           f"(scale {q.scale:.6g}, zero point {q.zero_point})" in outcome.conversions
    assert any(c.startswith(f"{record.target_outputs[0].name} → features: int8 NHWC") for c in outcome.conversions)
    with np.load(outcome.outputs_path, allow_pickle=False) as out:
        for i, sample in enumerate(data):
            # Exactly what the int8 model gives for the same quantized input…
            direct = direct_run(models.int8.path, to_target(sample, image))
            for target in record.target_outputs:
                np.testing.assert_array_equal(out[target.source_name][i], from_target(direct[target.name], target))
            # …and close to the FP32 model: the difference is quantization error, not a layout mix-up.
            fp32 = direct_run(models.fp32.path, sample.transpose(0, 2, 3, 1))
            for target in models.fp32.compile_result.target_outputs:
                reference = from_target(fp32[target.name], target)
                step = next(t for t in record.target_outputs if t.source_name == target.source_name).quantization.scale
                assert np.max(np.abs(out[target.source_name][i] - reference)) < 6 * step


def test_int8_input_round_trips_within_half_a_step(models):
    (image,) = models.int8.compile_result.target_inputs
    x = images(2, seed=4)[0]
    back = (to_target(x, image).astype(np.float32) - image.quantization.zero_point) * image.quantization.scale
    assert np.max(np.abs(back.transpose(0, 3, 1, 2) - x)) <= image.quantization.scale / 2 + 1e-6


def test_dataset_without_the_source_input_names_it(tmp_path, models):
    with pytest.raises(JobFailure) as failure:
        run_job(tmp_path, models.fp32.path, JobType.INFERENCE, inputs={"picture": images(1, seed=0)},
                compile_result=models.fp32.compile_result)
    assert "the input dataset has no 'image'" in failure.value.reason and "picture" in failure.value.reason


def test_wrong_shape_as_given_fails_with_the_runtimes_message(tmp_path, models):
    name = Interpreter(model_path=str(models.fp32.path)).get_input_details()[0]["name"]
    with pytest.raises(JobFailure) as failure:
        run_job(tmp_path, models.fp32.path, JobType.INFERENCE, inputs={name: np.zeros((2, 1, 3, 32, 32), "f4")})
    assert "litert 2.1.0 could not take the inputs of sample 0" in failure.value.reason
    assert "Dimension mismatch" in failure.value.reason


def test_a_model_litert_refuses_fails_with_its_message(tmp_path):
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"this is not a flatbuffer" * 10)
    with pytest.raises(JobFailure) as failure:
        run_job(tmp_path, broken, JobType.PROFILE)
    assert "litert 2.1.0 could not load the model" in failure.value.reason
    assert "TFL3" in failure.value.reason  # LiteRT's own words about the file identifier


def test_missing_delegate_library_is_a_clear_failure(tmp_path, models):
    device = host_device('[devices.backend]\ntype = "host"\n[devices.backend.npu]\nlibrary = "/opt/vendor/libvx.so"')
    with pytest.raises(JobFailure) as failure:
        run_job(tmp_path, models.fp32.path, JobType.PROFILE, "--compute_unit npu", device=device)
    assert "/opt/vendor/libvx.so" in failure.value.reason and "does not exist" in failure.value.reason
    assert "Test Host" in failure.value.reason


def test_delegate_that_fails_to_load_is_a_failure_never_a_cpu_run(tmp_path, models, noop_delegate):
    device = host_device(f'[devices.backend]\ntype = "host"\n[devices.backend.npu]\nlibrary = "{noop_delegate}"\n'
                         'options = { fail = "NPU driver missing: /dev/galcore" }')
    with pytest.raises(JobFailure) as failure:
        run_job(tmp_path, models.fp32.path, JobType.PROFILE, "--compute_unit npu", device=device)
    assert "NPU driver missing: /dev/galcore" in failure.value.reason and str(noop_delegate) in failure.value.reason


def test_npu_delegate_that_takes_nothing_shows_cpu_fallback(tmp_path, models, noop_delegate):
    device = host_device(f'[devices.backend]\ntype = "host"\n[devices.backend.npu]\nlibrary = "{noop_delegate}"')
    p = profile(tmp_path, models.fp32.path, "--compute_unit npu --max_profiler_iterations 5", device=device)
    s = p.execution_summary
    total = len(op_types(models.fp32.path))
    assert s.compute_unit == "npu" and s.cpu_fallback and s.total_ops == total
    # The external delegate took nothing; XNNPACK, applied after it, took the CPU's share.
    assert s.delegate == "XNNPACK" and s.delegated_ops == total
    assert {(op.compute_unit, op.delegate) for op in p.execution_detail} == {("CPU", "XNNPACK")}
    assert p.warnings and f"{total} of {total} ops ran on the CPU" in p.warnings[0]
    assert "libnoop_delegate.so" in p.warnings[0]


def test_litert_applies_external_delegates_at_construction_and_xnnpack_at_allocation(models, noop_delegate):
    """The LiteRT behaviour the delegate attribution relies on (ai-edge-litert 2.1.0)."""
    interpreter = Interpreter(model_path=str(models.fp32.path), experimental_delegates=[load_delegate(
        str(noop_delegate))])
    before = [op["op_name"] for op in interpreter._get_ops_details()]
    interpreter.allocate_tensors()
    after = [op["op_name"] for op in interpreter._get_ops_details()]
    assert "DELEGATE" not in before and after == before + ["DELEGATE"]


def test_partition_walks_back_from_delegate_outputs_to_its_inputs():
    # t0 → A → t1 → B → t2 → C → t3; partition 1 = {A, B} (node 3), C stays on the CPU.
    ops = [{"index": 0, "op_name": "A", "inputs": [0, 10], "outputs": [1]},
           {"index": 1, "op_name": "B", "inputs": [1, -1], "outputs": [2]},
           {"index": 2, "op_name": "C", "inputs": [2], "outputs": [3]}]
    assert _partition({"index": 3, "op_name": "DELEGATE", "inputs": [0, 10], "outputs": [2]}, ops) == {0, 1}
    assert _partition({"index": 4, "op_name": "DELEGATE", "inputs": [2], "outputs": [3]}, ops) == {2}
