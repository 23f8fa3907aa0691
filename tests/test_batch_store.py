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
