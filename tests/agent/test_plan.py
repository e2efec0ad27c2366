"""How the host backend picks runtime, unit and delegate from a job's options and the device's config."""

from __future__ import annotations

import pytest
from edgefarm.wire import JobType
from edgefarm_agent.backends import JobFailure, JobSpec
from edgefarm_agent.backends.host import plan

from tests.agent.conftest import host_device

NPU = '[devices.backend]\ntype = "host"\nthreads = 3\n[devices.backend.npu]\nlibrary = "/usr/lib/libvx_delegate.so"'


def tflite(options: str = "") -> JobSpec:
    return JobSpec(JobType.PROFILE, "tflite", options)


def test_cpu_is_xnnpack_with_the_runtimes_default_threads():
    chosen = plan(host_device(), tflite("--compute_unit cpu"))
    assert (chosen.runtime, chosen.unit, chosen.delegate, chosen.xnnpack, chosen.threads) == (
        "litert", "cpu", None, True, None)


def test_all_takes_the_best_unit_the_device_has():
    chosen = plan(host_device(NPU), tflite())
    assert chosen.unit == "npu" and chosen.delegate.label == "libvx_delegate.so" and chosen.threads == 3
    assert plan(host_device(), tflite()).unit == "cpu"


def test_threads_from_the_job_beat_the_devices_default():
    assert plan(host_device(NPU), tflite("--tflite_options number_of_threads=2")).threads == 2


def test_tflite_delegates_none_turns_xnnpack_off():
    chosen = plan(host_device(NPU), tflite("--tflite_delegates none"))
    assert chosen.unit == "cpu" and chosen.delegate is None and not chosen.xnnpack
    chosen = plan(host_device(NPU), tflite("--tflite_delegates none --compute_unit npu"))
    assert chosen.unit == "npu" and chosen.delegate is not None and not chosen.xnnpack


def test_tflite_delegates_are_tried_in_order_and_external_means_the_npu():
    assert plan(host_device(NPU), tflite("--tflite_delegates gpu,external")).unit == "npu"
    assert plan(host_device(NPU), tflite("--tflite_delegates xnnpack,external")).unit == "cpu"


def test_gpu_on_a_device_without_one_names_the_device_and_what_it_offers():
    with pytest.raises(JobFailure) as failure:
        plan(host_device(NPU), tflite("--compute_unit gpu"))
    reason = failure.value.reason
    assert "device 'Test Host' (serial host-1)" in reason and "--compute_unit gpu" in reason
    assert "cpu (XNNPACK or plain kernels), npu (libvx_delegate.so)" in reason


def test_compute_unit_and_delegates_that_disagree_are_refused():
    with pytest.raises(JobFailure, match="--compute_unit npu --tflite_delegates xnnpack"):
        plan(host_device(NPU), tflite("--compute_unit npu --tflite_delegates xnnpack"))


def test_nnapi_is_android_only():
    with pytest.raises(JobFailure, match="cannot run this job as asked"):
        plan(host_device(NPU), tflite("--tflite_delegates nnapi"))


def test_a_torchscript_model_must_be_compiled_first():
    with pytest.raises(JobFailure, match="compile the model first"):
        plan(host_device(), JobSpec(JobType.PROFILE, "torchscript"))


def test_unreadable_options_are_a_failure():
    with pytest.raises(JobFailure, match="unknown option --turbo"):
        plan(host_device(), tflite("--turbo"))
