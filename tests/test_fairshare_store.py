"""What fair share reads from the store (both backends): runs with their reported start and end, kept up to
date by reading only what ended since, always equal to summing every run afresh; the lease order."""

from __future__ import annotations

import random

import pytest

from rainbow.fairshare import ROOT, Waiting, decayed_usage
from rainbow.lifecycle import JobState
from rainbow.scheduler.accounts import EndedUsage
from rainbow.store import NewJob, open_store

HOUR = 3600.0


@pytest.fixture
def store(new_store_target):
    store = open_store(new_store_target)
    store.add_cluster("keebler", "{}", "secret-hash", "token-hash", 0.0)
    yield store
    store.close()


def _run(store, user: str, nodes: int, start: float, end: float | None) -> int:
    """One job of ``user`` on ``nodes`` reported running at ``start`` and completed at ``end`` (None: runs on)."""
    (job, _), = store.add_jobs([NewJob("keebler", "job", "{}", "app", start - 10, user=user, nodes=nodes)])
    leased, _ = store.lease_jobs("keebler", "agent", 0, 300, start - 5)
    assert job.id in {j.id for j in leased}
    store.accept_jobs("keebler", [job.id], start - 1, "agent")
    store.report_state("keebler", job.id, JobState.RUNNING, start)
    if end is not None:
        store.report_state("keebler", job.id, JobState.COMPLETED, end)
    return job.id


def test_a_report_records_the_run_and_its_nodes(store):
    job_id = _run(store, "alice", 3, 1000.0, 1600.0)
    job = store.get_job(job_id)
    assert (job.nodes, job.started, job.ended) == (3, 1000.0, 1600.0)
    assert [(r.user, r.nodes, r.start, r.end) for _, r in store.ended_runs(0.0)] == [("alice", 3, 1000.0, 1600.0)]
    running = _run(store, "bob", 2, 2000.0, None)
    assert [(r.user, r.start, r.end) for r in store.open_runs()] == [("bob", 2000.0, None)]
    assert store.get_job(running).ended is None


def test_ended_usage_read_bit_by_bit_equals_everything_summed_afresh(store):
    rng = random.Random(7)
    tracker = EndedUsage()
    half_life = 5 * HOUR
    now = 100 * HOUR
    runs = []
    for step in range(6):
        before, now = now, now + rng.uniform(0.5, 3) * HOUR
        for _ in range(4):
            # a run ends when it is reported: after the last read, or a little before it (a late commit)
            end = rng.uniform(before - 200, now)
            start = end - rng.uniform(0.1, 30) * HOUR
            user = rng.choice(["alice", "bob", "carol"])
            nodes = rng.randint(1, 4)
            _run(store, user, nodes, start, end)
            runs.append((user, nodes, start, end))
        incremental = tracker.update(store, now, half_life)
        afresh = decayed_usage([r for _, r in store.ended_runs(-1.0)], now, half_life)
        assert incremental.keys() == afresh.keys(), step
        for key, value in afresh.items():
            assert incremental[key] == pytest.approx(value, rel=1e-9), (step, key)
    assert {user for user, *_ in runs} == {user for user, _ in incremental}
    assert all(bank == ROOT for _, bank in incremental)


def test_the_lease_takes_each_owners_best_jobs_in_the_orders_order(store):
    now = 5000.0
    jobs = [NewJob("keebler", f"a{i}", "{}", "app", now, user="alice", priority=i % 3) for i in range(20)]
    jobs += [NewJob("keebler", f"b{i}", "{}", "app", now, user="bob") for i in range(5)]
    ids = [job.id for job, _ in store.add_jobs(jobs)]
    seen: list[list[Waiting]] = []

    def order(waiting, held, limit):
        seen.append(waiting)
        return [w.id for w in sorted(waiting, key=lambda w: (-w.priority, w.id))][:limit]

    leased, _ = store.lease_jobs("keebler", "agent", 3, 300, now + 1, order=order)
    # each owner's first 3 by priority and id were offered: no more
    offered = sorted((w.user, w.priority, w.id) for w in seen[0])
    assert offered == sorted([("alice", 2, ids[2]), ("alice", 2, ids[5]), ("alice", 2, ids[8])]
                             + [("bob", 0, i) for i in ids[20:23]])
    assert [job.id for job in leased] == [ids[2], ids[5], ids[8]]
    assert all(job.state == JobState.LEASED and job.lease_owner == "agent" for job in leased)
