"""Group commit of new jobs, the event-loop job writer, and the shared event tail of WatchJobs."""

from __future__ import annotations

import asyncio
import threading

import pytest

from rainbow.lifecycle import JobState
from rainbow.scheduler import PendingSubmit
from rainbow.selection import Selection
from rainbow.server.events import EventHub
from rainbow.server.writer import JobWriter
from rainbow.store import JobEvent, NewJob, open_store


@pytest.fixture
def store(new_store_target):
    """A store with clusters a and b, on each store."""
    store = open_store(new_store_target)
    store.add_cluster("a", "{}", "s", "t", 0.0)
    store.add_cluster("b", "{}", "s", "t", 0.0)
    yield store
    store.close()


def test_add_jobs_one_transaction_with_events(store):
    outcomes = store.add_jobs([NewJob("a", f"j{i}", "spec", "cmd", float(i), ("a", "b")) for i in range(5)])
    jobs = [job for job, _ in outcomes]
    events = [event for _, event in outcomes]
    assert [j.id for j in jobs] == list(range(jobs[0].id, jobs[0].id + 5))
    assert [e.job_id for e in events] == [j.id for j in jobs]
    assert all(e.state == JobState.ASSIGNED for e in events)
    assert [e.seq for e in store.events_since(0)] == [e.seq for e in events]
    stored = store.get_job(jobs[2].id)
    assert (stored.name, stored.candidates, stored.state) == ("j2", ("a", "b"), JobState.ASSIGNED)
    assert store.add_job("b", "next", "spec", "cmd", 9.0)[0].id == jobs[-1].id + 1


def test_add_jobs_keeps_every_character_and_key(store):
    odd = "nul\x00 one\x01 rainbow 🌈"
    first, again, other = store.add_jobs([NewJob("a", odd, odd, odd, 1.0, ("a",), key=odd, placement=odd,
                                                 user=odd, group=odd),
                                          NewJob("b", "same key", "s", "c", 1.0, key=odd),
                                          NewJob("b", "plain", "s", "c", 1.0, key="k2")])
    assert first[1] is not None and again == (first[0], None) and other[1] is not None
    stored = store.get_job(first[0].id)
    assert (stored.name, stored.jobspec, stored.command, stored.user, stored.group) == (odd,) * 5
    assert store.job_by_key(odd).id == first[0].id and store.count_jobs() == 2


def test_add_jobs_a_bad_job_fails_alone(store):
    outcomes = store.add_jobs([NewJob("a", "good", "s", "c", 1.0), NewJob("ghost", "bad", "s", "c", 1.0),
                               NewJob("b", "good too", "s", "c", 1.0)])
    assert isinstance(outcomes[1], Exception)
    assert [o[0].name for o in (outcomes[0], outcomes[2])] == ["good", "good too"]
    assert store.count_jobs() == 2
    assert len(store.events_since(0)) == 2
    with pytest.raises(Exception, match=r"(?i)foreign key"):
        store.add_job("ghost", "n", "s", "c", 1.0)


def test_concurrent_add_job_all_stored_once(store):
    ids: list[int] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        for i in range(25):
            job, _ = store.add_job("a", f"{k}-{i}", "spec", "cmd", 0.0)
            with lock:
                ids.append(job.id)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == len(set(ids)) == 200 == store.count_jobs()
    assert sorted(e.job_id for e in store.events_since(0, limit=1000)) == sorted(ids)


class _Scheduler:
    """What JobWriter uses of a Scheduler: its store and complete_submits."""

    def __init__(self, store) -> None:
        self.store = store
        self.calls: list[int] = []

    def complete_submits(self, prepared, stored):
        self.calls.append(len(prepared))
        return list(stored)


def _pending(cluster: str, name: str) -> PendingSubmit:
    return PendingSubmit(NewJob(cluster, name, "spec", "cmd", 0.0, (cluster,)), Selection([cluster], "", "test"), {})


def test_job_writer_batches_concurrent_submits(store):
    scheduler = _Scheduler(store)
    writer = JobWriter(scheduler)  # type: ignore[arg-type]

    async def main():
        return await asyncio.gather(*(writer.submit(_pending("a" if i != 7 else "ghost", f"j{i}")) for i in range(40)),
                                    return_exceptions=True)

    try:
        results = asyncio.run(main())
    finally:
        writer.close()
    assert isinstance(results[7], Exception)
    good = [r for i, r in enumerate(results) if i != 7]
    assert len({job.id for job, _ in good}) == 39 == store.count_jobs()
    assert sum(scheduler.calls) == 40 and len(scheduler.calls) < 40  # several jobs per transaction


def _event(seq: int, cluster: str = "a", job_id: int = 1) -> JobEvent:
    return JobEvent(seq, job_id, cluster, "n", JobState.ASSIGNED, 0.0)


def test_event_tail_serves_watchers_with_one_store_read():
    log = [_event(s, "a" if s % 2 else "b", job_id=s) for s in range(1, 101)]
    reads: list[tuple[int, object, object]] = []

    async def fetch(after, clusters, job_id, limit):
        reads.append((after, clusters, job_id))
        out = [e for e in log if e.seq > after and (clusters is None or e.cluster in clusters)
               and (not job_id or e.job_id == job_id)]
        return out[:limit]

    async def last():
        return 50

    async def main():
        hub = EventHub()
        hub.bind(asyncio.get_running_loop())
        hub.publish()
        await asyncio.sleep(0)
        # three watchers past the tail's start share one read; a replay from 0 reads the store itself
        a = await hub.events_since(60, ["a"], None, 500, fetch, last)
        b = await hub.events_since(50, None, None, 500, fetch, last)
        one = await hub.events_since(50, ["a", "b"], 77, 500, fetch, last)
        old = await hub.events_since(0, ["b"], None, 10, fetch, last)
        return a, b, one, old

    a, b, one, old = asyncio.run(main())
    assert [e.seq for e in a] == [s for s in range(61, 101) if s % 2]
    assert [e.seq for e in b] == list(range(51, 101))
    assert [e.seq for e in one] == [77]
    assert [e.seq for e in old] == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
    assert reads == [(50, None, None), (0, ["b"], None)]
