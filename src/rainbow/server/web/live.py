"""One reader of the event tail for every dashboard viewer of a server.

``WatchJobs`` streams each read the shared tail when they wake; a dashboard
may have many more viewers, and a person does not need each event the moment
it is written. So one task reads the new events (through the same
``EventHub.events_since`` as ``WatchJobs``) at most once per ``interval`` and
hands each batch to every viewer, which keeps what it may see. A viewer that
falls too far behind is dropped; its browser reconnects and resumes from its
last event id.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from rainbow.server.events import EventHub, Fetch
from rainbow.store import JobEvent

QUEUED_BATCHES = 64


class Lagging(Exception):
    """The viewer did not keep up; its stream ends."""


class Broadcast:
    def __init__(self, hub: EventHub, fetch: Fetch, last: Callable[[], Awaitable[int]], interval: float) -> None:
        self.hub = hub
        self._fetch = fetch
        self._last = last
        self.interval = interval
        self.seq: int | None = None  # the newest event handed out
        self._viewers: set[asyncio.Queue] = set()
        self._task: asyncio.Task | None = None

    async def subscribe(self) -> tuple[asyncio.Queue, int]:
        """A queue of event batches, and the seq after which its batches start."""
        if self.seq is None:
            self.seq = await self._last()
        queue: asyncio.Queue = asyncio.Queue(QUEUED_BATCHES)
        self._viewers.add(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        return queue, self.seq

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self._viewers.discard(queue)

    async def _run(self) -> None:
        while self._viewers:
            version = self.hub.version
            assert self.seq is not None
            events = await self.hub.events_since(self.seq, None, None, 5000, self._fetch, self._last)
            if events:
                self.seq = events[-1].seq
                for queue in list(self._viewers):
                    try:
                        queue.put_nowait(events)
                    except asyncio.QueueFull:
                        self._viewers.discard(queue)
                        with contextlib.suppress(asyncio.QueueEmpty):
                            queue.get_nowait()
                        queue.put_nowait(Lagging())
                if len(events) == 5000:
                    continue
                await asyncio.sleep(self.interval)
            else:
                await self.hub.wait(version, timeout=1.0)

    async def close(self) -> None:
        self._viewers.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def visible(
    events: list[JobEvent], scope: set[str] | None, job_id: int | None, after: int, owner: str | None = None
) -> list[JobEvent]:
    """The events of a batch one viewer may see (of ``owner``'s jobs when given) and has not seen."""
    return [e for e in events if e.seq > after and (job_id is None or e.job_id == job_id)
            and (scope is None or e.cluster in scope) and (owner is None or e.user == owner)]
