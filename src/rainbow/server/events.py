"""Wake waiting streams when the scheduler writes job events, and share the new events among them.

The scheduler runs in worker threads; streams wait on the event loop. The hub
counts publications: a stream notes ``version`` before it looks at the store
and then waits for a newer one, so an event written in between is never missed.
Waits time out so that streams also notice what other replicas wrote.

``EventHub.events_since`` serves every watcher from one shared tail of the
event log: after a publication, one store query fetches the new events for all
streams (instead of one query per stream); a stream that is further behind than
the tail holds (a replay from an old ``since``) reads the store itself until it
catches up. The store stays the source of truth: the tail is only ever filled
by reading it in ``seq`` order.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Awaitable, Callable, Sequence

from rainbow.store import JobEvent

# Store reader: (after seq, clusters or None, job id or None, limit[, user]) -> events in seq order.
Fetch = Callable[..., Awaitable[list[JobEvent]]]

# How many recent events the shared tail keeps, and how stale it may get without a publication.
TAIL_EVENTS = 20_000
TAIL_REFRESH_SECONDS = 0.5
_FETCH_BATCH = 5_000


class EventHub:
    def __init__(self) -> None:
        self.version = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Event | None = None
        self._scheduled = False
        # The shared tail: every event with floor < seq <= cursor, in order (when cursor is not None).
        self._seqs: list[int] = []
        self._events: list[JobEvent] = []
        self._floor = 0
        self._cursor: int | None = None
        self._tail_version = -1
        self._tail_time = 0.0
        self._refreshing: asyncio.Future | None = None

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

    # -- the shared tail ----------------------------------------------------
    async def events_since(
        self,
        seq: int,
        clusters: Sequence[str] | None,
        job_id: int | None,
        limit: int,
        fetch: Fetch,
        last: Callable[[], Awaitable[int]],
        user: str | None = None,
    ) -> list[JobEvent]:
        """Events after ``seq`` (of ``clusters``, or of one job; of ``user``'s jobs when given), in order, at
        most ``limit``.

        ``fetch`` reads the store (it takes ``user`` as a fifth argument when one is given); ``last`` gives its
        newest seq, where the tail starts the first time it is needed.
        """
        extra = () if user is None else (user,)
        if self._cursor is None:
            newest = await last()
            if self._cursor is None:
                self._cursor = self._floor = newest
        if seq < self._floor:
            return await fetch(seq, clusters, job_id, limit, *extra)
        await self._refresh(fetch)
        if seq < self._floor:  # the tail moved past this stream while it refreshed
            return await fetch(seq, clusters, job_id, limit, *extra)
        start = bisect.bisect_right(self._seqs, seq)
        wanted = set(clusters) if clusters is not None else None
        out: list[JobEvent] = []
        for event in self._events[start:]:
            if (job_id and event.job_id != job_id) or (wanted is not None and event.cluster not in wanted) or (
                    user is not None and event.user != user):
                continue
            out.append(event)
            if len(out) >= limit:
                break
        return out

    async def _refresh(self, fetch: Fetch) -> None:
        """Read what the store has after the tail, once per publication (or once in a while)."""
        now = time.monotonic()
        if self._tail_version == self.version and now - self._tail_time < TAIL_REFRESH_SECONDS:
            return
        if self._refreshing is not None:
            await asyncio.shield(self._refreshing)
            return
        self._refreshing = asyncio.get_running_loop().create_future()
        version = self.version
        try:
            while True:
                assert self._cursor is not None
                batch = await fetch(self._cursor, None, None, _FETCH_BATCH)
                for event in batch:
                    self._seqs.append(event.seq)
                    self._events.append(event)
                if batch:
                    self._cursor = batch[-1].seq
                if len(batch) < _FETCH_BATCH:
                    break
            self._tail_version = version
            self._tail_time = now
            if len(self._events) > 2 * TAIL_EVENTS:
                drop = len(self._events) - TAIL_EVENTS
                self._floor = self._seqs[drop - 1]
                del self._seqs[:drop]
                del self._events[:drop]
        finally:
            self._refreshing.set_result(None)
            self._refreshing = None
