"""A pipeline report as the tables a team puts in a review: the model, each device's numbers, every gate.

Shared by `edgefarm pipeline show` and the examples, so the verdict reads the same everywhere.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

MIB = 1024 * 1024


def render_report(report: dict[str, Any], *, name: str = "") -> Group:
    parts: list[Any] = []
    source = report.get("source_model")
    metric = report.get("metric") or {}
    devices = report.get("devices") or []
    if source and devices:
        parts.append(_devices_table(source, metric, devices))
    if report.get("gates"):
        parts.append(_gates_table(report["gates"]))
    parts.append(_verdict(report, name))
    return Group(*parts)


def _devices_table(source: dict, metric: dict, devices: list[dict]) -> Table:
    label = metric.get("name", "metric")
    truth = metric.get("truth", "")
    table = Table(title=f"{label} on {metric.get('output', '')!s} (truth: {truth})", title_justify="left")
    for column in ("device", "model size", f"{label} FP32", f"{label} device", f"{label} device vs FP32",
                   "agreement", "latency median / p90", "peak memory", "runtime"):
        table.add_column(column, justify="left" if column in ("device", "runtime") else "right")
    for device in devices:
        scores, profile, target = device["metrics"], device["profile"], device["target_model"]
        agreement = next((f"{k.replace('_', ' ')} {_fmt(scores[k])}" for k in ("pixel_agreement", "top1")
                          if k in scores), f"cosine {_fmt(scores.get('cosine'))}")
        table.add_row(
            device["device"],
            f"{_mb(source['size'])} → {_mb(target['size'])} ({100 * target['size'] / source['size']:.0f} %)",
            _fmt(scores.get("fp32_vs_truth")), _fmt(scores.get("device_vs_truth")),
            _fmt(scores.get("device_vs_fp32")), agreement,
            f"{profile['median_ms']:.2f} / {profile['p90_ms']:.2f} ms", f"{profile['peak_memory_mb']:.1f} MiB",
            f"{profile.get('runtime', '')} {profile.get('delegate') or ''}".strip())
    return table


def _gates_table(gates: list[dict]) -> Table:
    table = Table(title="gates", title_justify="left")
    for column in ("gate", "device", "measured", "threshold", "verdict", "what"):
        table.add_column(column, justify="right" if column in ("measured", "threshold") else "left")
    for gate in gates:
        verdict = Text("pass", style="green") if gate["passed"] else Text("FAIL", style="bold red")
        table.add_row(gate["gate"], gate.get("device") or "—", _fmt(gate.get("measured")), _fmt(gate["threshold"]),
                      verdict, gate.get("detail", ""))
    return table


def _verdict(report: dict[str, Any], name: str) -> Text:
    if report.get("version") is not None:
        return Text(f"registered as {name or 'the model'} v{report['version']}", style="bold green")
    state = report.get("state", "")
    if state == "RUNNING":
        return Text("still running", style="yellow")
    return Text(f"not registered ({state}): {report.get('failure_reason') or 'no reason recorded'}",
                style="bold red")


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value  # "inf": identical outputs have an infinite PSNR
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"


def _mb(size: int) -> str:
    return f"{size / MIB:.2f} MiB"
