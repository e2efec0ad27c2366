"""Timing statistics and memory: the numbers a profile reports, measured the same way for every runtime.

Memory: each job runs in a fresh child process (see backends/host.py), so the process's peak resident set
is the model's, not an earlier job's. At the start of the job the peak is reset to the current RSS
(Linux: `/proc/self/clear_refs`), the RSS then is the baseline, and the reported peak memory is the
high-water mark (`VmHWM`) minus that baseline: what loading and running the model added, without the
Python interpreter and the runtime's libraries. Where the reset is not available, the high-water mark since
the process started is used instead, and `method` says so.
"""

from __future__ import annotations

import gc
import resource
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from edgefarm.wire import LatencyStats

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def latency_stats(times_us: Sequence[float]) -> LatencyStats:
    """min/median/mean/p90/p99/std over the timed iterations. Percentiles interpolate linearly between the
    two nearest ranks (numpy's default); std is the population standard deviation."""
    if not times_us:
        raise ValueError("no timed iterations")
    t = np.asarray(times_us, dtype=np.float64)
    return LatencyStats(min=float(t.min()), median=float(np.median(t)), mean=float(t.mean()),
                        p90=float(np.percentile(t, 90)), p99=float(np.percentile(t, 99)), std=float(t.std()))


def microseconds_since(start_ns: int) -> float:
    return (time.perf_counter_ns() - start_ns) / 1000.0


def timed_us(action: Callable[[], object]) -> float:
    start = time.perf_counter_ns()
    action()
    return microseconds_since(start)


def time_iterations(
    invoke: Callable[[], object],
    *,
    max_iterations: int,
    max_seconds: float,
    before_each: Callable[[int], object] | None = None,
    on_progress: Callable[[int], object] | None = None,
) -> list[float]:
    """Time `invoke` (only it: `before_each(i)` sets inputs untimed) up to `max_iterations` times or until
    `max_seconds` have passed, whichever comes first; at least once. Returns µs per iteration.

    The garbage collector is paused so a collection triggered by the loop's own bookkeeping does not land
    inside a timed call."""
    times: list[float] = []
    deadline = time.monotonic() + max_seconds
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for i in range(max_iterations):
            if before_each is not None:
                before_each(i)
            start = time.perf_counter_ns()
            invoke()
            times.append(microseconds_since(start))
            if on_progress is not None:
                on_progress(i + 1)
            if time.monotonic() >= deadline:
                break
    finally:
        if was_enabled:
            gc.enable()
    return times


def _status_bytes(field: str) -> int | None:
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024  # the kernel reports kB
    except OSError:
        pass
    return None


def _max_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, kB elsewhere


class PeakMemory:
    """Start it just before the model is loaded; `peak_bytes()` is what the process grew by at its peak."""

    def __init__(self) -> None:
        self.reset = _reset_peak()
        self.baseline = _status_bytes("VmRSS") or _max_rss_bytes()

    def process_peak(self) -> int:
        return _status_bytes("VmHWM") or _max_rss_bytes()

    def peak_bytes(self) -> int:
        return max(0, self.process_peak() - self.baseline)

    def describe(self) -> dict[str, object]:
        how = ("peak RSS (VmHWM, reset at job start) minus the RSS before the first load" if self.reset else
               "peak RSS since the process started minus the RSS before the first load (no reset available)")
        return {"method": how, "baseline_rss": self.baseline, "process_peak_rss": self.process_peak()}


def _reset_peak() -> bool:
    try:
        CLEAR_REFS.write_text("5")  # "5": reset the peak RSS to the current RSS (Linux ≥ 4.0)
        return True
    except OSError:
        return False
