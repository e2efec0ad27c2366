"""A pipeline report as the tables a team puts in a review: what the compile did to size and accuracy on each
device, the device's latency and memory, every gate with measured value, threshold and verdict, then the outcome.

Shared by `edgefarm pipeline run|show` and the examples, so the verdict reads the same everywhere. Pure: a report
dict in, a rich renderable out (`render_report_text` gives plain text for logs and tests).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

MIB = 1024 * 1024


def render_report(report: dict[str, Any], *, name: str = "") -> Group:
    parts: list[Any] = []
    if report.get("devices"):
        parts.append(_devices_table(report, name))
    if report.get("gates"):
        parts.append(_gates_table(report["gates"]))
    parts.append(_verdict(report, name))
    return Group(*parts)


def render_report_text(report: dict[str, Any], *, name: str = "", width: int = 120) -> str:
    """render_report() as plain text, without colours."""
    console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
    console.print(render_report(report, name=name))
    return console.file.getvalue()


def _devices_table(report: dict[str, Any], name: str) -> Table:
    """One column per device pool, one row per number: reads the same for one device or five."""
    metric = report.get("metric") or {}
    label = "IoU" if metric.get("name") == "iou" else metric.get("name", "metric")
    source = report.get("source_model") or {}
    devices = report["devices"]
    title = f"{name or 'model'}: {label} on output {metric.get('output', '?')!s}"
    table = Table(title=title, title_justify="left")
    table.add_column("")
    for device in devices:
        table.add_column(str(device.get("device", "?")), justify="right")

    def row(title: str, cell: Callable[[dict, dict, dict], str]) -> None:
        table.add_row(title, *(cell(d.get("metrics") or {}, d.get("profile") or {}, d.get("target_model") or {})
                               for d in devices))

    source_format = (source.get("format") or "source").upper()
    row(f"model size ({source_format} → compiled)", lambda m, p, t: _size_change(source.get("size"), t))
    if any((d.get("metrics") or {}).get("fp32_vs_truth") is not None for d in devices):
        row(f"{label} FP32 vs truth", lambda m, p, t: _number(m.get("fp32_vs_truth")))
        row(f"{label} device vs truth", lambda m, p, t: _number(m.get("device_vs_truth")))
    row(f"{label} device vs FP32", lambda m, p, t: _number(m.get("device_vs_fp32")))
    row("agreement with FP32", lambda m, p, t: _agreement(m))
    row("latency median / p90", lambda m, p, t: f"{_ms(p.get('median_ms'))} / {_ms(p.get('p90_ms'))}")
    row("peak memory", lambda m, p, t: _mib(p.get("peak_memory_mb")))
    row("runtime / delegate", lambda m, p, t: _runtime(p))
    return table


def _gates_table(gates: list[dict]) -> Table:
    table = Table(title="gates", title_justify="left")
    for column in ("gate", "device", "measured", "threshold", "verdict", "what"):
        # Only the explanation wraps on a narrow terminal: a truncated gate name or number is no verdict.
        table.add_column(column, justify="right" if column in ("measured", "threshold") else "left",
                         no_wrap=column != "what")
    for gate in gates:
        kind = str(gate.get("gate"))
        sign = "≥" if kind.startswith("min_") else "≤"
        verdict = Text("pass", style="green") if gate.get("passed") else Text("FAIL", style="bold red")
        table.add_row(kind, gate.get("device") or "—", _gate_value(kind, gate.get("measured")),
                      f"{sign} {_gate_value(kind, gate.get('threshold'))}", verdict, gate.get("detail", ""))
    return table


def _verdict(report: dict[str, Any], name: str) -> Text:
    if report.get("version") is not None:
        return Text(f"registered as {name or 'the model'} v{report['version']}", style="bold green")
    state = str(report.get("state", ""))
    if state in ("PENDING", "RUNNING"):
        return Text(f"no verdict yet ({state})", style="yellow")
    return Text(f"not registered ({state}): {report.get('failure_reason') or 'no reason recorded'}",
                style="bold red")


def _size_change(source_size: int | None, target: dict) -> str:
    size = target.get("size")
    if not source_size or size is None:
        return "—"
    kind = (target.get("format") or "").upper()
    return f"{source_size / MIB:.2f} → {size / MIB:.2f} MiB {kind} ({100 * size / source_size:.0f} %)"


def _agreement(scores: dict) -> str:
    """Pixel agreement for masks, top-1 for classifiers, cosine otherwise: whichever the metric reported."""
    for key, title in (("pixel_agreement", "pixels"), ("top1", "top-1")):
        if scores.get(key) is not None:
            return f"{title} {100 * scores[key]:.2f} %"
    return f"cosine {_number(scores.get('cosine'))}"


def _runtime(profile: dict) -> str:
    parts = [profile.get("runtime"), profile.get("delegate"), profile.get("compute_unit")]
    text = " / ".join(str(part) for part in parts if part) or "—"
    return f"{text} (CPU fallback)" if profile.get("cpu_fallback") else text


def _gate_value(gate: str, value: Any) -> str:
    """Latency and size gates in their units; metric gates in the metric's own terms."""
    if value is None or isinstance(value, str):
        return _number(value)
    if gate.endswith("_ms"):
        return f"{value:.2f} ms"
    if gate.endswith("_mb"):
        return f"{value:.2f} MiB"
    return _number(value)


def _number(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value  # "inf": identical outputs have an infinite PSNR
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} ms"


def _mib(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} MiB"
