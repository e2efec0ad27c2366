"""`edgefarm up`'s supervisor, on real child processes: an exit is restarted with a growing delay, and a process
that keeps exiting is handed back so the farm stops with its cause."""

from __future__ import annotations

import sys
import time

from edgefarm.farm import LocalFarm, supervise


def test_a_process_that_exits_is_started_again_until_it_keeps_failing(tmp_path):
    farm = LocalFarm(data_dir=tmp_path)
    farm.log_dir.mkdir(parents=True)
    counter = tmp_path / "starts"
    # Each start appends a line, says why it fails, and exits 3.
    farm._spawn("flaky", [sys.executable, "-c", f"open({str(counter)!r}, 'a').write('x\\n'); "
                                                "print('cannot bind port 8000'); raise SystemExit(3)"])
    said: list[str] = []
    started = time.monotonic()
    given_up = supervise(farm, said.append, interval=0.05, give_up_after=3, max_delay=1.5)
    took = time.monotonic() - started
    assert given_up is not None and given_up.name == "flaky" and given_up.popen.returncode == 3
    assert counter.read_text().count("x") == 3  # the first start and two restarts
    assert said[0].startswith("flaky exited with 3 (1 time(s) in 10 min); starting it again in 1 s")
    assert "cannot bind port 8000" in said[0]  # the cause, from its log
    assert said[1] == "flaky started again" and "(2 time(s)" in said[2] and "again in 1.5 s" in said[2]
    assert 2.5 <= took < 10  # waited 1 s, then the 1.5 s cap (not 2 s)
    assert farm.processes == [given_up]


def test_a_process_that_is_running_is_left_alone(tmp_path):
    farm = LocalFarm(data_dir=tmp_path)
    farm.log_dir.mkdir(parents=True)
    farm._spawn("steady", [sys.executable, "-c", "import time; time.sleep(30)"])
    said: list[str] = []

    def interrupt_soon(_signum=None, _frame=None):
        raise KeyboardInterrupt

    import signal
    previous = signal.signal(signal.SIGALRM, interrupt_soon)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    try:
        assert supervise(farm, said.append, interval=0.05) is None  # Ctrl-C: the caller stops the farm
    finally:
        signal.signal(signal.SIGALRM, previous)
        farm.stop()
    assert said == []
