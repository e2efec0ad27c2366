"""The benchmark_model parser against published outputs (tests/agent/data/benchmark_model/, each file names its
public source) and one synthetic file for the forms no published sample here shows."""

from __future__ import annotations

from pathlib import Path

import pytest
from edgefarm_agent.backends.benchmark_output import MIB, Delegation, parse_benchmark_output, strip_prefix

DATA = Path(__file__).parent / "data" / "benchmark_model"


def sample(name: str):
    return parse_benchmark_output((DATA / name).read_text())


def test_newer_form_on_a_raspberry_pi_with_memory():
    out = sample("rpi_xnnpack_int8.txt")
    assert (out.init_us, out.first_inference_us, out.warmup_avg_us, out.inference_avg_us) == (
        18777, 64791, 57758.2, 55043.2)
    assert out.warmup.count == 9 and out.warmup.avg == 57758.2
    assert out.inference.count == 50
    assert (out.inference.min, out.inference.max, out.inference.std) == (53077, 60727, 1562)
    assert out.init_memory_bytes == round(8.97656 * MIB) and out.overall_memory_bytes == round(18.7227 * MIB)
    assert out.peak_memory_bytes is None and out.delegations == [] and out.errors == []


def test_logcat_prefixes_are_stripped_and_partial_delegation_is_seen():
    out = sample("android_nnapi_logcat.txt")
    assert out.inference_avg_us == 12167.6 and out.inference.count == 75 and out.warmup.count == 40
    assert out.init_us == 126059
    assert out.explicit_delegation == {"NNAPI": "partial"}
    assert out.ops == []  # the initialization table is not the regular runs' table


def test_complete_gpu_delegation():
    out = sample("android_gpu_full.txt")
    assert out.explicit_delegation == {"GPU": "complete"}
    assert out.inference.avg == out.inference_avg_us == 119375 and out.first_inference_us == 130565


def test_older_average_form_with_no_stats_and_a_run_order_table():
    out = sample("deepspeech_older_format.txt")
    assert (out.warmup_avg_us, out.init_us, out.inference_avg_us) == (27917.4, 21528106, 23313.5)
    assert out.first_inference_us is None
    assert [op.node_type for op in out.ops] == ["DELEGATE", "SPLIT", "ADD"]
    first = out.ops[0]
    assert first.avg_us == pytest.approx(21287) and first.first_us == pytest.approx(21227)
    assert first.start_us == 0 and first.percent == 91.329 and first.times_called == 1 and first.memory_bytes == 0
    assert first.name == "cudnn_lstm/rnn/multi_rnn_cell/cell_0/cudnn_compatible_lstm_cell/BiasAdd"
    assert out.ops[1].name.endswith("split:1")


def test_tab_separated_op_table():
    (op,) = sample("nnapi_tab_separated_ops.txt").ops
    assert op.node_type == "TfLiteNnapiDelegate" and op.avg_us == pytest.approx(6549) and op.cdf_percent == 12.047


def test_kws_newer_form():
    out = sample("kws_newer_format.txt")
    assert out.inference.count == 1000 and out.inference_avg_us == 1039.66 and out.init_us == 17851


def test_synthetic_replacing_scientific_notation_peak_memory_and_spaced_node_types():
    out = sample("synthetic_qnn_partial.txt")
    assert out.delegations == [Delegation("QnnDelegate", 58, 64, 3)]
    assert out.init_us == 1.2345e6 and out.inference_avg_us == pytest.approx(2010.5)
    assert out.inference.min == 1950 and out.inference.extra == {"p5": 1960, "median": 2001, "p95": 2100}
    assert out.peak_memory_bytes == round(31.5 * MIB) and out.overall_memory_bytes == round(20.25 * MIB)
    assert [(op.node_type, op.name, op.times_called) for op in out.ops] == [
        ("QnnDelegate", "QnnDelegate/0", 1), ("Convolution (NHWC, F32)", "head/conv", 2)]
    assert out.ops[1].memory_bytes == 4096 and out.explicit_delegation == {"EXTERNAL": "partial"}


def test_delegate_not_executing_and_errors():
    out = parse_benchmark_output(
        "INFO: Though NNAPI delegate is explicitly applied, the model graph will not be executed by the delegate.\n"
        "ERROR: Failed to apply EXTERNAL delegate.\n"
        "Benchmarking failed.\n")
    assert out.explicit_delegation == {"NNAPI": "none"}
    assert out.errors == ["ERROR: Failed to apply EXTERNAL delegate.", "Benchmarking failed."]
    assert not out.has_timings


def test_prefixes():
    assert strip_prefix("INFO: count=1") == "count=1"
    assert strip_prefix("06-18 10:20:41.892  4669  4669 I tflite  : Min num runs: [50]") == "Min num runs: [50]"
    assert strip_prefix("count=1 first=2") == "count=1 first=2"


def test_empty_output_has_nothing():
    out = parse_benchmark_output("")
    assert out.inference is None and out.inference_avg_us is None and out.ops == []
