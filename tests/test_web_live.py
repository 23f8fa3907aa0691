"""The dashboard's broadcast of the event tail: every viewer gets every batch, a stalled one is dropped."""

from __future__ import annotations

import asyncio

from rainbow.lifecycle import JobState
from rainbow.server.events import EventHub
from rainbow.server.web import live
from rainbow.store import JobEvent


def event(seq: int, cluster: str = "a", job: int | None = None) -> JobEvent:
    return JobEvent(seq, job or seq, cluster, f"job-{seq}", JobState.ASSIGNED, float(seq))


class Log:
    """An event log in memory, read the way the store is."""

    def __init__(self) -> None:
        self.events: list[JobEvent] = []
        self.reads = 0

    async def fetch(self, after, clusters, job, limit):
        self.reads += 1
        return [e for e in self.events if e.seq > after][:limit]

    async def last(self) -> int:
        return self.events[-1].seq if self.events else 0


def test_every_viewer_gets_every_new_event_once_and_a_stalled_viewer_is_dropped():
    async def main() -> None:
        hub = EventHub()
        hub.bind(asyncio.get_running_loop())
        log = Log()
        log.events = [event(1)]
        broadcast = live.Broadcast(hub, log.fetch, log.last, interval=0.0)
        readers = [await broadcast.subscribe() for _ in range(3)]
        assert [start for _, start in readers] == [1, 1, 1]  # batches start after what was there
        stalled, _ = await broadcast.subscribe()
        got: list[list[int]] = [[], [], []]
        for n in range(2, 2 + live.QUEUED_BATCHES + 2):
            log.events.append(event(n, "ab"[n % 2]))
            hub.publish()
            for i, (queue, _) in enumerate(readers):
                got[i] += [e.seq for e in await asyncio.wait_for(queue.get(), 5)]
        wanted = list(range(2, 2 + live.QUEUED_BATCHES + 2))
        assert got == [wanted, wanted, wanted]
        batches = [stalled.get_nowait() for _ in range(stalled.qsize())]
        assert isinstance(batches[-1], live.Lagging)  # the stream ends; the browser resumes from the store
        await broadcast.close()

    asyncio.run(main())


def test_a_viewer_keeps_only_what_it_may_see_and_has_not_seen():
    batch = [event(5, "a"), event(6, "b"), event(7, "a", job=3), event(8, "c")]
    assert [e.seq for e in live.visible(batch, {"a", "b"}, None, 5)] == [6, 7]
    assert [e.seq for e in live.visible(batch, None, 3, 0)] == [7]
    assert [e.seq for e in live.visible(batch, None, None, 0)] == [5, 6, 7, 8]
