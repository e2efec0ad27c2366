"""The review table of a pipeline report (edgefarm.report), from report dicts shaped like the gateway's."""

from __future__ import annotations

import copy

import pytest

from edgefarm.report import render_report_text

REPORT = {
    "state": "SUCCESS", "failure_reason": None, "version": 3, "passed": True,
    "source_model": {"id": "m1", "size": 12_268_275, "format": "onnx"},
    "metric": {"name": "iou", "output": "mask", "params": {"threshold": 0.5}, "higher_is_better": True,
               "truth": "ground truth"},
    "devices": [{
        "device": "Host CPU",
        "target_model": {"id": "m2", "size": 3_310_592, "format": "tflite"},
        "profile": {"median_ms": 41.37, "p90_ms": 44.02, "p99_ms": 51.0, "peak_memory_mb": 38.4,
                    "delegate": "XNNPACK", "compute_unit": "cpu", "cpu_fallback": False, "runtime": "litert"},
        "metrics": {"fp32_vs_truth": 0.9012, "device_vs_truth": 0.8987, "device_vs_fp32": 0.9851,
                    "pixel_agreement": 0.99421, "psnr": 31.2, "cosine": 0.998, "max_abs_error": 2.41},
    }],
    "gates": [
        {"gate": "max_metric_drop", "device": "Host CPU", "measured": 0.0025, "threshold": 0.01, "passed": True,
         "detail": "iou drop vs FP32"},
        {"gate": "max_latency_ms", "device": "Host CPU", "measured": 41.37, "threshold": 200.0, "passed": True},
        {"gate": "min_metric", "device": "Host CPU", "measured": 0.8987, "threshold": 0.85, "passed": True},
    ],
}


def test_passed_report_reads_as_a_review():
    text = render_report_text(REPORT, name="portrait-segmenter", width=200)
    for expected in ("11.70 → 3.16 MiB TFLITE (27 %)", "IoU FP32 vs truth", "0.9012", "0.8987", "0.9851",
                     "pixels 99.42 %", "41.37 ms / 44.02 ms", "38.4 MiB", "litert / XNNPACK / cpu",
                     "max_metric_drop", "≤ 0.0100", "≤ 200.00 ms", "≥ 0.8500", "iou drop vs FP32",
                     "registered as portrait-segmenter v3"):
        assert expected in text, expected
    assert "FAIL" not in text and "CPU fallback" not in text


def test_one_column_per_device():
    report = copy.deepcopy(REPORT)
    second = copy.deepcopy(report["devices"][0])
    second.update(device="Pixel 8")
    second["profile"].update(median_ms=7.5, cpu_fallback=True, runtime="tflite")
    report["devices"].append(second)
    header = next(line for line in render_report_text(report, width=200).splitlines() if "Host CPU" in line)
    assert "Pixel 8" in header
    assert "(CPU fallback)" in render_report_text(report, width=200)


def test_without_ground_truth_the_truth_rows_are_left_out():
    report = copy.deepcopy(REPORT)
    report["metric"]["truth"] = "the FP32 reference outputs"
    report["devices"][0]["metrics"].update(fp32_vs_truth=None, device_vs_truth=None, pixel_agreement=None,
                                           top1=0.97)
    text = render_report_text(report, width=200)
    assert "vs truth" not in text and "IoU device vs FP32" in text and "top-1 97.00 %" in text


def test_failed_gate_names_the_reason():
    report = copy.deepcopy(REPORT)
    report.update(state="FAILED", version=None, passed=False,
                  failure_reason="gate failed, nothing registered: max_latency_ms on Host CPU")
    report["gates"][1].update(threshold=0.5, passed=False)
    text = render_report_text(report, name="portrait-segmenter", width=200)
    assert "FAIL" in text and "≤ 0.50 ms" in text
    assert "not registered (FAILED): gate failed, nothing registered: max_latency_ms on Host CPU" in text


@pytest.mark.parametrize("state, expected", [("RUNNING", "no verdict yet (RUNNING)"),
                                             ("CANCELLED", "not registered (CANCELLED): no reason recorded")])
def test_unfinished_or_cancelled(state, expected):
    text = render_report_text({"state": state, "devices": [], "gates": []})
    assert expected in text and "gates" not in text
