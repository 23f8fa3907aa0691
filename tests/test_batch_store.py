"""Store.add_batch on both stores: many rows at once (COPY on PostgreSQL), keys, events, any text."""

from __future__ import annotations

from rainbow.lifecycle import JobState
from rainbow.store import NewJob, open_store

from conftest import BOTH_STORES


@BOTH_STORES
def test_a_large_batch_stores_every_job_once_with_its_event_and_text(store_target, tmp_path):
    store = open_store(store_target(tmp_path / "batch.db"))
    try:
        store.add_cluster("c", '{"graph": {"nodes": {}}}', "s", "t", 1.0)
        earlier, _ = store.add_job("c", "earlier", "{}", "true", 1.0, ("c",), key="k-21")
        odd = "nul\x00and\x01one"
        jobs = [NewJob("c", f"{odd}-{i}", f'{{"i": {i}}}', f"app {odd} {i}", 2.0, ("c",),
                       f"k-{i % 60}" if i % 3 == 0 else None, f'{{"chosen": "c", "i": {i}}}', "feedc0ffee000001")
                for i in range(150)]
        results = store.add_batch(jobs)
        assert len(results) == 150
        fresh = [(job, event) for job, event in results if event is not None]
        ids = [job.id for job, _ in fresh]
        assert len(set(ids)) == len(ids) and earlier.id not in ids
        # key k-21 was stored before (i = 21, 81, 141 use it); other keys repeat within the batch (i and i + 60)
        for i, (job, event) in enumerate(results):
            if i % 3 == 0 and (i % 60) == 21:
                assert job.id == earlier.id and event is None
            elif i % 3 == 0 and i >= 60:
                assert job.id == results[i - 60][0].id and event is None
            else:
                assert event is not None and event.job_id == job.id and event.state is JobState.ASSIGNED
                stored = store.get_job(job.id)
                assert (stored.name, stored.command, stored.jobspec) == (f"{odd}-{i}", f"app {odd} {i}",
                                                                         f'{{"i": {i}}}')
                assert store.job_placement(job.id) == f'{{"chosen": "c", "i": {i}}}'
        seqs = [event.seq for _, event in fresh]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        history = store.job_history(fresh[-1][0].id)
        assert [(e.state, e.name) for e in history] == [(JobState.ASSIGNED, fresh[-1][0].name)]
        assert len(store.list_jobs(None, limit=0, batch="feedc0ffee000001")) == len(fresh)
        again = store.add_batch(jobs)  # resent: every keyed job answers the stored one, the others are new
        assert all(event is None for (job, event), new in zip(again, jobs, strict=True) if new.key is not None)
    finally:
        store.close()


@BOTH_STORES
def test_a_batch_larger_than_one_insert_statement_keeps_every_column_and_the_order(store_target, tmp_path):
    store = open_store(store_target(tmp_path / "many.db"))
    try:
        for name in ("a", "b"):
            store.add_cluster(name, '{"graph": {"nodes": {}}}', "s", "t", 1.0)
        count = 1_234  # SQLite: two statements of 500 rows, then the last 234 one by one
        jobs = [NewJob("ab"[i % 2], f"job-{i}", f'{{"i": {i}}}', f"app {i}", 3.0 + i, ("a", "b")[: 1 + i % 2],
                       f"key-{i}" if i % 7 == 0 else None, f'{{"i": {i}}}' if i % 5 else None, "feedc0ffee000002",
                       user=f"user-{i % 3}", group=f"group-{i % 4}", nodes=1 + i % 9, priority=i % 11)
                for i in range(count)]
        results = store.add_batch(jobs)
        ids = [job.id for job, _ in results]
        assert ids == sorted(ids) and len(set(ids)) == count
        events = [event for _, event in results]
        assert all(event is not None and event.job_id == job_id for event, job_id in zip(events, ids, strict=True))
        assert [event.seq for event in events] == sorted(event.seq for event in events)
        for i in (0, 1, 499, 500, 501, 999, 1000, 1001, 1233):
            new, stored = jobs[i], store.get_job(ids[i])
            assert (stored.cluster, stored.name, stored.jobspec, stored.command, stored.created, stored.candidates,
                    stored.user, stored.group, stored.nodes, stored.priority, stored.state) == (
                new.cluster, new.name, new.jobspec, new.command, new.now, new.candidates, new.user, new.group,
                new.nodes, new.priority, JobState.ASSIGNED)
            assert store.job_placement(ids[i]) == new.placement
            assert [(e.seq, e.state) for e in store.job_history(ids[i])] == [(events[i].seq, JobState.ASSIGNED)]
        assert store.job_by_key("key-1001").id == ids[1001]
        assert len(store.list_jobs(None, limit=0, batch="feedc0ffee000002")) == count
    finally:
        store.close()
