"""The host backend with real ONNX Runtime (CPU) on this machine."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from edgefarm.wire import JobType
from edgefarm_agent.backends import InferenceOutcome, JobFailure, ProfileOutcome

from tests.agent.conftest import host_device, images, run_job


def test_profile_has_per_node_times_from_the_profiler(tmp_path, models):
    outcome = run_job(tmp_path, models.onnx, JobType.PROFILE,
                      "--max_profiler_iterations 25 --tflite_options number_of_threads=1")
    assert isinstance(outcome, ProfileOutcome)
    p = outcome.profile
    s = p.execution_summary
    assert p.runtime == f"onnxruntime {ort.__version__}" and s.threads == 1
    assert s.iterations == len(s.all_inference_times) == 25
    assert s.inference_stats.min <= s.estimated_inference_time <= max(s.all_inference_times)
    assert s.estimated_inference_peak_memory > 0 and s.first_load_time > 0 and s.warm_load_time > 0
    assert s.delegate is None and not s.cpu_fallback and s.total_ops == len(p.execution_detail) > 0
    # The optimised graph ONNX Runtime ran: its convolutions are real Conv kernels, each with a time.
    source_types = {node.op_type for node in onnx.load(str(models.onnx)).graph.node}
    assert "Conv" in {op.type for op in p.execution_detail} and {"Conv", "Gemm"} <= source_types
    assert all(op.compute_unit == "CPU" and op.execution_time > 0 for op in p.execution_detail)
    assert "onnxruntime" in p.environment and "profiler" in p.environment["execution_detail"]


def test_tflite_delegates_on_an_onnx_model_are_ignored_with_a_warning(tmp_path, models):
    outcome = run_job(tmp_path, models.onnx, JobType.PROFILE, "--tflite_delegates xnnpack --max_profiler_iterations 2")
    assert "ignored for this ONNX model" in outcome.profile.warnings[0]


def test_inference_equals_a_direct_session_run(tmp_path, models):
    data = images(3, seed=7)
    outcome = run_job(tmp_path, models.onnx, JobType.INFERENCE, inputs={"image": data})
    assert isinstance(outcome, InferenceOutcome) and outcome.conversions == []
    session = ort.InferenceSession(str(models.onnx), providers=["CPUExecutionProvider"])
    with np.load(outcome.outputs_path, allow_pickle=False) as out:
        assert set(out.files) == {"features", "logits"}
        for i, sample in enumerate(data):
            features, logits = session.run(["features", "logits"], {"image": sample})
            np.testing.assert_allclose(out["features"][i], features, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(out["logits"][i], logits, rtol=1e-5, atol=1e-6)


def test_float64_data_is_narrowed_and_said_so(tmp_path, models):
    outcome = run_job(tmp_path, models.onnx, JobType.INFERENCE, inputs={"image": images(1, seed=8).astype("f8")})
    assert outcome.conversions == ["image: float64 → float32"]


def test_shape_mismatch_fails_with_the_runtimes_message(tmp_path, models):
    with pytest.raises(JobFailure) as failure:
        run_job(tmp_path, models.onnx, JobType.INFERENCE, inputs={"image": np.zeros((1, 1, 4, 32, 32), "f4")})
    assert "onnxruntime 1.23.0 could not run the model on sample 0" in failure.value.reason
    assert "Got invalid dimensions for input: image" in failure.value.reason


def test_npu_on_an_onnx_model_is_refused_naming_the_device(tmp_path, models):
    with pytest.raises(JobFailure) as failure:
        run_job(tmp_path, models.onnx, JobType.PROFILE, "--compute_unit npu", device=host_device())
    assert "device 'Test Host' (serial host-1) runs ONNX models with ONNX Runtime on its CPU only" in \
        failure.value.reason
