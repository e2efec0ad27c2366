"""The pipeline's verdict: device outputs against the FP32 reference (and the ground truth), the profiles
against the budgets, every gate with its measured value, threshold and verdict.

Everything here is computed from stored artifacts (the reference and device outputs are datasets, the
profiles are job results), so a report can be recomputed from the evidence the registry keeps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from edgefarm import metrics
from edgefarm.wire import GateResult, Gates, PipelineIn, PipelineJobs, Profile
from edgefarm_gateway.orm import Dataset, Job, Model
from edgefarm_gateway.storage import ArtifactStore

MIB = 1024 * 1024
# Compared between device and FP32 outputs besides the chosen metric, by the kind of task the metric implies.
SEGMENTATION = ("iou", "miou", "pixel_agreement")
CLASSIFICATION = ("top1", "top5")
ALWAYS = ("cosine", "psnr", "max_abs_error")


class EvaluationError(Exception):
    """The outputs cannot be compared as the spec asks (a missing output, mismatched shapes…)."""


@dataclass(frozen=True)
class DeviceEvidence:
    name: str
    device_id: str | None
    profile: Profile
    outputs: Path  # the inference job's output dataset (.npz)
    profile_job: str
    inference_job: str


@dataclass(frozen=True)
class Evidence:
    """What a verdict is computed from: rows read in one short transaction. The arrays are loaded and compared
    afterwards, outside any transaction, because on SQLite every transaction holds the database's write lock and
    agents, workers and uploads would wait for the comparison."""
    spec: PipelineIn
    ids: PipelineJobs
    source: dict[str, Any]
    target: dict[str, Any]
    reference: Path
    truth: Path | None
    devices: list[DeviceEvidence]


def gather(session: Session, store: ArtifactStore, spec: PipelineIn, ids: PipelineJobs,
           rows: dict[str, Job]) -> Evidence:
    reference_id = rows[ids.reference].result["output_dataset_id"] if ids.reference else spec.reference_dataset_id
    devices = [DeviceEvidence(
        name=d.name, device_id=rows[ids.profile[d.name]].device_id, profile=Profile(**rows[ids.profile[d.name]].result),
        outputs=_path(session, store, rows[ids.inference[d.name]].result["output_dataset_id"], f"{d.name}'s outputs"),
        profile_job=ids.profile[d.name], inference_job=ids.inference[d.name]) for d in spec.devices]
    truth = spec.ground_truth_dataset_id
    return Evidence(spec=spec, ids=ids, source=_model_facts(session.get(Model, spec.model_id)),
                    target=_model_facts(session.get(Model, rows[ids.compile].target_model_id)),
                    reference=_path(session, store, reference_id, "the FP32 reference"),
                    truth=_path(session, store, truth, "the ground truth") if truth else None, devices=devices)


def build_report(evidence: Evidence) -> dict[str, Any]:
    """The report from the evidence: numpy and the profiles only, no database."""
    spec = evidence.spec
    reference = _load(evidence.reference, "the FP32 reference")
    output = spec.metric.output or _only_output(reference)
    if output not in reference:
        raise EvaluationError(f"the FP32 reference has no output {output!r}; it has {', '.join(reference)}")
    truth = _load(evidence.truth, "the ground truth")[output] if evidence.truth else None
    metric = metrics.METRICS[spec.metric.name]
    devices = []
    gates: list[GateResult] = []
    for device in evidence.devices:
        outputs = _load(device.outputs, f"{device.name}'s outputs")
        if output not in outputs:
            raise EvaluationError(f"the outputs from {device.name} have no {output!r}; they have "
                                  f"{', '.join(outputs)}")
        scores = _scores(spec, outputs[output], reference[output], truth)
        summary = device.profile.execution_summary
        latency = {p: getattr(summary.inference_stats, p) / 1000 for p in ("min", "median", "mean", "p90", "p99")}
        devices.append({
            "device": device.name, "device_id": device.device_id,
            "target_model": evidence.target,
            "profile": {"median_ms": latency["median"], "p90_ms": latency["p90"], "p99_ms": latency["p99"],
                        "peak_memory_mb": summary.estimated_inference_peak_memory / MIB,
                        "delegate": summary.delegate, "compute_unit": summary.compute_unit,
                        "cpu_fallback": summary.cpu_fallback, "runtime": device.profile.runtime,
                        "iterations": summary.iterations},
            "metrics": scores,
            "jobs": {"profile": device.profile_job, "inference": device.inference_job},
        })
        gates += _device_gates(spec.gates, spec.metric.name, device.name, scores,
                               latency[spec.gates.latency_percentile], summary.estimated_inference_peak_memory / MIB)
    if spec.gates.max_model_size_mb is not None:
        size = evidence.target["size"] / MIB
        gates.append(_gate("max_model_size_mb", None, size, spec.gates.max_model_size_mb,
                           size <= spec.gates.max_model_size_mb, "the compiled target's size in MiB"))
    return _json_safe({
        "source_model": evidence.source,
        "compile_job": evidence.ids.compile, "reference_job": evidence.ids.reference,
        "metric": {"name": metric.name, "output": output, "params": spec.metric.params,
                   "higher_is_better": metric.higher_is_better,
                   "truth": "ground truth" if truth is not None else "the FP32 reference outputs"},
        "samples": int(len(reference[output])),
        "devices": devices,
        "gates": [g.model_dump() for g in gates],
        "passed": all(g.passed for g in gates),
    })


def _scores(spec: PipelineIn, device: np.ndarray, fp32: np.ndarray, truth: np.ndarray | None) -> dict[str, Any]:
    """The chosen metric three ways (FP32 and device against the truth, device against FP32), plus the
    agreement measures that suit the task, device against FP32."""
    name, params = spec.metric.name, spec.metric.params
    try:
        scores: dict[str, Any] = {
            "fp32_vs_truth": metrics.evaluate(name, fp32, truth, params) if truth is not None else None,
            "device_vs_truth": metrics.evaluate(name, device, truth, params) if truth is not None else None,
            "device_vs_fp32": metrics.agreement(name, device, fp32, params),
            "fp32_self": metrics.agreement(name, fp32, fp32, params),  # the best score there is
        }
        extra = ALWAYS + (("pixel_agreement",) if name in SEGMENTATION else ("top1",) if name in CLASSIFICATION
                          else ())
        for other in extra:
            if other != name:
                scores[other] = metrics.agreement(other, device, fp32, _shared_params(other, params))
    except ValueError as exc:
        raise EvaluationError(str(exc)) from None
    return scores


def _shared_params(metric: str, params: dict[str, Any]) -> dict[str, Any]:
    """The main metric's parameters that the other metric also takes (a threshold, a class axis)."""
    accepted = metrics.METRICS[metric].params
    return {k: v for k, v in params.items() if k in accepted}


def _device_gates(gates: Gates, metric: str, device: str, scores: dict[str, Any], latency_ms: float,
                  peak_mb: float) -> list[GateResult]:
    results = []
    # Against the ground truth when there is one; else the FP32 outputs are the truth and FP32 scores perfectly.
    reference_score = scores["fp32_vs_truth"] if scores["fp32_vs_truth"] is not None else scores["fp32_self"]
    device_score = scores["device_vs_truth"] if scores["device_vs_truth"] is not None else scores["device_vs_fp32"]
    better = metrics.METRICS[metric].higher_is_better
    if gates.max_metric_drop is not None:
        drop = metrics.drop(metric, reference_score, device_score)
        results.append(_gate("max_metric_drop", device, drop, gates.max_metric_drop, drop <= gates.max_metric_drop,
                             f"{metric}: FP32 {_show(reference_score)} → device {_show(device_score)}"))
    if gates.min_metric is not None:
        passed = device_score >= gates.min_metric if better else device_score <= gates.min_metric
        results.append(_gate("min_metric", device, device_score, gates.min_metric, passed,
                             f"{metric} on the device ({'at least' if better else 'at most'} the threshold)"))
    if gates.max_latency_ms is not None:
        results.append(_gate("max_latency_ms", device, latency_ms, gates.max_latency_ms,
                             latency_ms <= gates.max_latency_ms, f"{gates.latency_percentile} latency in ms"))
    if gates.max_peak_memory_mb is not None:
        results.append(_gate("max_peak_memory_mb", device, peak_mb, gates.max_peak_memory_mb,
                             peak_mb <= gates.max_peak_memory_mb, "peak memory while profiling, MiB"))
    return results


def _gate(gate: str, device: str | None, measured: float, threshold: float, passed: bool, detail: str) -> GateResult:
    return GateResult(gate=gate, device=device, measured=measured, threshold=threshold, passed=bool(passed),
                      detail=detail)


def failed_gates(report: dict[str, Any]) -> str:
    """`max_metric_drop on Host CPU: 0.031 > 0.01; …` for the pipeline's failure reason."""
    lines = []
    for gate in report["gates"]:
        if not gate["passed"]:
            where = f" on {gate['device']}" if gate["device"] else ""
            lines.append(f"{gate['gate']}{where}: measured {_show(gate['measured'])}, threshold "
                         f"{_show(gate['threshold'])} ({gate['detail']})")
    return "; ".join(lines)


def _path(session: Session, store: ArtifactStore, dataset_id: str, what: str) -> Path:
    dataset = session.get(Dataset, dataset_id)
    if dataset is None:
        raise EvaluationError(f"{what} (dataset {dataset_id}) is gone")
    return store.path(dataset.sha256)


def _load(path: Path, what: str) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise EvaluationError(f"{what} ({path.name}) is missing from the artifact store") from None


def _only_output(outputs: dict[str, np.ndarray]) -> str:
    if len(outputs) != 1:
        raise EvaluationError(f"the model has several outputs ({', '.join(outputs)}): name one in metric.output")
    return next(iter(outputs))


def _model_facts(model: Model) -> dict[str, Any]:
    return {"id": model.id, "format": model.format, "size": model.size, "sha256": model.sha256}


def _show(value: float | str | None) -> str:
    if value is None:
        return "n/a"
    return value if isinstance(value, str) else f"{value:.4g}"


def _json_safe(value: Any) -> Any:
    """JSON (and PostgreSQL's json type) has no infinity: identical outputs have an infinite PSNR, kept as
    the string "inf"; NaN becomes null."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float | np.floating):
        value = float(value)
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    return value
