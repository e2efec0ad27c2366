"""Wakes the agents' long polls the moment a job is queued, instead of making them poll the database.

Submissions run in worker threads; long polls wait on the event loop. `notify()` may be called from any thread.
A gateway only hears its own submissions: long polls also re-check the database every second, which is how
jobs submitted through another gateway are found.
"""

from __future__ import annotations

import asyncio


class JobNotifier:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop, self._event = loop, asyncio.Event()

    def notify(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        event, self._event = self._event, asyncio.Event()
        if event is not None:
            event.set()

    async def wait(self, timeout: float) -> None:
        if self._event is None:
            self.bind(asyncio.get_running_loop())
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            pass
