"""Timing statistics against hand-computed values, and the memory probe."""

from __future__ import annotations

import math

import pytest
from edgefarm_agent.measure import PeakMemory, latency_stats, time_iterations


def test_stats_match_hand_computed_values():
    # 1..10: median (5+6)/2; p90 at rank 0.9*9 = 8.1 → 9 + 0.1*(10-9); p99 at rank 8.91 → 9.91;
    # population variance = (n²-1)/12 = 8.25.
    stats = latency_stats([7, 1, 10, 3, 5, 2, 9, 4, 6, 8])
    assert (stats.min, stats.median, stats.mean) == (1, 5.5, 5.5)
    assert stats.p90 == pytest.approx(9.1) and stats.p99 == pytest.approx(9.91)
    assert stats.std == pytest.approx(math.sqrt(8.25))


def test_stats_of_one_iteration():
    stats = latency_stats([42.0])
    assert stats.min == stats.median == stats.p99 == 42.0 and stats.std == 0.0


def test_no_iterations_is_an_error():
    with pytest.raises(ValueError):
        latency_stats([])


def test_time_iterations_stops_at_the_count_and_sets_inputs_untimed():
    seen = []
    times = time_iterations(lambda: None, max_iterations=7, max_seconds=60, before_each=seen.append)
    assert len(times) == 7 and seen == list(range(7)) and all(t >= 0 for t in times)


def test_time_iterations_stops_at_the_time_budget_but_runs_once():
    assert len(time_iterations(lambda: None, max_iterations=10**9, max_seconds=0.05)) < 10**9
    assert len(time_iterations(lambda: None, max_iterations=5, max_seconds=0)) == 1


def test_peak_memory_sees_an_allocation():
    memory = PeakMemory()
    block = bytearray(64 * 1024 * 1024)
    block[::4096] = b"\1" * len(block[::4096])  # touch every page so it is resident
    assert memory.peak_bytes() >= 60 * 1024 * 1024
    assert "method" in memory.describe()
