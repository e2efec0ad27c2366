"""What the templates show, shaped from the wire types the REST API returns (no queries here)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from edgefarm.wire import DeviceOut, JobOut, JobState, Profile

QUEUED = (JobState.CREATED,)


def aware(at: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; every timestamp the farm writes is UTC.
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


def _number(value) -> bool:
    # Profiles come from agents of any version: a missing field shows as blank, never as an error page.
    return isinstance(value, int | float) and not isinstance(value, bool)


def seconds_text(seconds: float | None) -> str:
    if not _number(seconds):
        return ""
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def bytes_text(size: int | float | None) -> str:
    if not _number(size):
        return ""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""


def micros_text(us: float | None) -> str:
    if not _number(us):
        return ""
    return f"{us / 1000:.3f} ms" if us >= 1000 else f"{us:.1f} µs"


def timing(job: JobOut, now: datetime | None = None) -> tuple[str, str]:
    """(label, text): how long a queued job has waited, a running job has run, a finished job took."""
    now = now or datetime.now(UTC)
    created, started, finished = aware(job.created_at), aware(job.started_at), aware(job.finished_at)
    if job.state in QUEUED:
        return "waiting", seconds_text((now - created).total_seconds())
    if job.state.finished:
        return "took", seconds_text((finished - (started or created)).total_seconds()) if finished else ""
    return "running", seconds_text((now - (started or created)).total_seconds())


def device_label(job: JobOut) -> str:
    parts = [job.device.name or "any device"]
    if job.device.os:
        parts.append(job.device.os)
    parts.extend(job.device.attributes)
    return " · ".join(parts)


def latency_of(job: JobOut) -> float | None:
    if job.type.value == "profile" and job.state == JobState.SUCCESS and job.result:
        return job.result.get("execution_summary", {}).get("estimated_inference_time")
    return None


def profile_view(result: dict[str, Any]) -> dict[str, Any]:
    """The per-op table with each op's share of the summed op time, slowest first."""
    try:  # through the wire type, so every optional field is there (as None) for the template
        result = Profile.model_validate(result).model_dump(mode="json")
    except ValidationError:
        pass
    ops = [{"execution_time": None, "delegate": None, **op} for op in result.get("execution_detail") or []]
    total = sum(op.get("execution_time") or 0.0 for op in ops)
    rows = [{**op, "share": (op.get("execution_time") or 0.0) / total if total else None} for op in ops]
    rows.sort(key=lambda op: -(op.get("execution_time") or 0.0))
    summary = result.get("execution_summary") or {}
    units: dict[str, int] = {}
    for op in ops:
        units[op.get("compute_unit") or "?"] = units.get(op.get("compute_unit") or "?", 0) + 1
    return {"ops": rows, "ops_total_time": total, "summary": summary, "stats": summary.get("inference_stats") or {},
            "units": units, "warnings": list(result.get("warnings") or []),
            "cpu_fallback": bool(summary.get("cpu_fallback"))}


def log_tail(log: str | None, lines: int = 40) -> str:
    return "\n".join((log or "").splitlines()[-lines:])


def pools(devices: list[DeviceOut]) -> list[dict[str, Any]]:
    """Devices grouped by pool name (what users ask for), with a count per state."""
    grouped: dict[str, list[DeviceOut]] = {}
    for device in devices:
        grouped.setdefault(device.name, []).append(device)
    return [{"name": name, "members": members,
             "online": sum(d.state != "offline" for d in members),
             "busy": sum(d.state == "busy" for d in members)}
            for name, members in sorted(grouped.items())]


def output_stats(npz_path, max_bytes: int = 256 * 1024**2) -> dict[str, dict[str, float]]:
    """min / max / mean / std of each output over all samples, read with allow_pickle=False. Outputs too large
    to summarise on a page request are left out (the download still has them)."""
    import numpy as np

    stats: dict[str, dict[str, float]] = {}
    with np.load(npz_path, allow_pickle=False) as archive:
        for name in archive.files:
            values = archive[name]
            if values.nbytes > max_bytes:
                continue
            values = values.astype(np.float64)
            stats[name] = {"min": float(values.min()), "max": float(values.max()), "mean": float(values.mean()),
                           "std": float(values.std())}
    return stats
