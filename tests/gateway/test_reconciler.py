"""What a compile job says when every worker that took it died."""

from __future__ import annotations

from types import SimpleNamespace

from edgefarm import wire
from edgefarm_gateway.jobs.reconciler import _workers_lost


def _job(*messages: str) -> SimpleNamespace:
    return SimpleNamespace(attempts=3, type="compile", events=[SimpleNamespace(message=m) for m in messages])


def test_the_failure_names_the_strategies_the_workers_died_in():
    # Two deaths in default (so attempt 3 skipped it, as crashed), then one in the next strategy.
    job = _job("submitted", wire.strategy_started("default"), "attempt 2 of 3", wire.strategy_started("default"),
               "attempt 3 of 3", wire.strategy_started("unroll-rnn"))
    message = _workers_lost(job)
    assert message.startswith("the worker was lost 3 times while running this compile job")
    assert "it died during strategy default (2 times), strategy unroll-rnn (1 time)" in message
    assert message.endswith("check the worker logs, then submit again")


def test_deaths_are_counted_per_strategy_and_a_clean_end_is_none():
    assert wire.strategy_deaths([wire.strategy_started("a"), wire.strategy_started("a"), wire.strategy_started("a")]) \
        == {"a": 3}
    assert wire.strategy_deaths([wire.strategy_started("a"), wire.strategy_ended("a", "failed")]) == {}
    assert "died during" not in _workers_lost(_job("submitted", "attempt 2 of 3"))


def test_an_unclaimed_job_is_sent_again_with_doubling_waits():
    """With no worker for a day, one job is sent 30 times, not every 30 s (2,880 times)."""
    from datetime import datetime, timedelta

    from edgefarm_gateway.jobs.reconciler import resend_due

    queued = datetime(2026, 12, 3)
    sent, sends = queued, []
    for second in range(0, 24 * 3600, 5):  # the reconciler's passes, every 5 s
        now = queued + timedelta(seconds=second)
        if resend_due(queued, sent, now, first_after=30):
            sent = now
            sends.append(second)
    assert sends[:5] == [30, 60, 120, 240, 480]
    assert len(sends) == 30 and max(b - a for a, b in zip(sends, sends[1:])) <= 3600
    assert resend_due(queued, None, queued, first_after=30)  # never sent: at once
