"""Wake waiting streams when the scheduler writes job events.

The scheduler runs in worker threads; streams wait on the event loop. The hub
counts publications: a stream notes ``version`` before it looks at the store
and then waits for a newer one, so an event written in between is never missed.
Waits time out so that streams also notice what other replicas wrote.
"""

from __future__ import annotations

import asyncio


class EventHub:
    def __init__(self) -> None:
        self.version = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Event | None = None
        self._scheduled = False

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._changed = asyncio.Event()

    def publish(self, _events: object = None) -> None:
        """Thread-safe: note that something changed.

        Publications before a pending bump runs share it (one wake-up of the
        loop, not one per job): the bump clears the flag before it counts, so
        whatever was published before it ran is covered by it.
        """
        if self._scheduled:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._scheduled = True
            try:
                self._loop.call_soon_threadsafe(self._bump)
            except RuntimeError:
                self._scheduled = False

    def _bump(self) -> None:
        self._scheduled = False
        self.version += 1
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()

    async def wait(self, seen: int, timeout: float) -> None:
        """Return once ``version`` is past ``seen``, or after ``timeout`` seconds."""
        if self.version != seen or self._changed is None:
            return
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except asyncio.TimeoutError:
            return
