"""A pass that the gateway repeats in a daemon thread (the reconciler, the pipeline driver)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Periodic:
    """Calls `step()` every `interval` seconds until stopped; a failing pass is logged and the next one runs."""

    def __init__(self, name: str, interval: float, step: Callable[[], object]) -> None:
        self._name, self._interval, self._step = name, interval, step
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"edgefarm-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._step()
            except Exception:  # a database hiccup must not end the loop
                log.exception("%s pass failed; trying again in %.1f s", self._name, self._interval)
