"""The store interface on both backends (a SQLite file, a PostgreSQL database): transactions,
leases, acceptance, events, persistence, migrations."""

from __future__ import annotations

import threading

import pytest

from rainbow.lifecycle import JobState
from rainbow.store import DependsOn, NewJob, open_store


@pytest.fixture
def store(new_store_target):
    store = open_store(new_store_target)
    yield store
    store.close()


def test_cluster_lifecycle(store):
    assert store.add_cluster("a", "{}", "sh", "th", 1.0)
    assert not store.add_cluster("a", "{other}", "x", "y", 2.0)
    record = store.get_cluster("a")
    assert (record.secret_hash, record.token_hash, record.version) == ("sh", "th", 1)
    assert store.get_nodes("a") == "{}"
    store.put_subsystem("a", "io", "{io}", 3.0)
    store.put_subsystem("a", "io", "{io2}", 4.0)
    assert store.list_subsystems("a") == {"io": "{io2}"}
    assert store.get_cluster("a").version == 3
    assert store.merge_state("a", {"x": 1}, 5.0) == {"x": 1}
    assert store.merge_state("a", {"y": "z"}, 6.0) == {"x": 1, "y": "z"}
    assert not store.delete_subsystem("a", "nope", 7.0)
    assert store.delete_subsystem("a", "io", 7.0)
    store.add_job("a", "j", "spec", "cmd", 8.0)
    assert store.delete_cluster("a")
    assert store.get_cluster("a") is None
    assert store.count_jobs() == 0
    assert not store.delete_cluster("a")


def test_meta_set_and_add_once(store):
    assert store.get_meta("k") is None
    assert store.add_meta("k", "first")
    assert not store.add_meta("k", "second")
    assert store.get_meta("k") == "first"
    store.set_meta("k", "third")
    assert store.get_meta("k") == "third"


def test_idempotency_key_stores_a_job_once(store):
    store.add_cluster("a", "{}", "s", "t", 0.0)
    key = "request-1\x00🌈"
    first, event = store.add_job("a", "j", "spec", "cmd", 1.0, key=key)
    again, none = store.add_job("a", "other", "spec2", "cmd2", 2.0, key=key)
    assert event is not None and none is None
    assert again.id == first.id and again.name == "j"
    assert store.job_by_key(key).id == first.id
    assert store.job_by_key("request-2") is None
    assert store.count_jobs() == 1 and len(store.job_history(first.id)) == 1


def test_merge_state_unknown_cluster(store):
    with pytest.raises(KeyError):
        store.merge_state("ghost", {"a": 1}, 1.0)


def test_lease_accept_and_redelivery(store):
    store.add_cluster("a", "{}", "s", "t", 0.0)
    store.add_cluster("b", "{}", "s", "t", 0.0)
    ids = [store.add_job("a", f"j{i}", "spec", "cmd", float(i))[0].id for i in range(5)]
    other = store.add_job("b", "x", "spec", "cmd", 0.0)[0].id
    assert ids == sorted(ids) and len(set([*ids, other])) == 6

    first, events = store.lease_jobs("a", "agent-1", 2, lease_seconds=10, now=100.0)
    assert [e.state for e in events] == [JobState.LEASED, JobState.LEASED]
    assert [j.id for j in first] == ids[:2]
    assert all(j.state == JobState.LEASED and j.lease_owner == "agent-1" for j in first)
    # a second caller gets only what is not leased
    second, _ = store.lease_jobs("a", "agent-2", 0, lease_seconds=10, now=101.0)
    assert [j.id for j in second] == ids[2:]
    assert store.lease_jobs("a", "agent-3", 0, lease_seconds=10, now=105.0) == ([], [])

    assert store.accept_jobs("a", [ids[0], ids[0], other, 99999], now=106.0)[0] == [ids[0]]
    # lease of ids[1] runs out at 110: redelivered, ids[0] never again
    again, _ = store.lease_jobs("a", "agent-3", 0, lease_seconds=10, now=111.5)
    assert [j.id for j in again] == ids[1:]
    assert store.get_job(ids[0]).state == JobState.ACCEPTED
    assert store.get_job(ids[0]).accepted == 106.0
    assert store.get_job(other).state == JobState.ASSIGNED
    assert store.count_jobs("a", JobState.LEASED) == 4


def test_concurrent_leases_never_share_a_job(store):
    store.add_cluster("a", "{}", "s", "t", 0.0)
    for i in range(200):
        store.add_job("a", f"j{i}", "spec", "cmd", 0.0)
    got: list[list[int]] = []

    def take(owner):
        mine = []
        while batch := store.lease_jobs("a", owner, 7, 60, 1.0)[0]:
            mine.extend(j.id for j in batch)
        got.append(mine)

    threads = [threading.Thread(target=take, args=(f"agent-{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [i for mine in got for i in mine]
    assert len(every) == 200 and len(set(every)) == 200


def test_persistence_and_migration_version(new_store_target):
    path = new_store_target
    store = open_store(path)
    store.add_cluster("a", "{}", "s", "t", 0.0)
    job, _ = store.add_job("a", "n", "spec", "cmd", 0.0)
    store.set_meta("k", "v")
    store.close()
    store = open_store(path)
    assert store.get_meta("k") == "v"
    assert store.get_job(job.id).name == "n"
    assert store.add_job("a", "m", "spec", "cmd", 1.0)[0].id > job.id
    store.close()


def test_text_round_trips_unchanged(store):
    name = "a'; DROP TABLE jobs; --\"🌈\x00end"
    assert store.add_cluster(name, "{}", "s", "t", 0.0)
    job, _ = store.add_job(name, name, name, name, 0.0)
    fetched = store.get_job(job.id)
    assert (fetched.cluster, fetched.name, fetched.jobspec, fetched.command) == (name, name, name, name)
    assert [c.name for c in store.list_clusters()] == [name]


def test_events_record_every_transition_in_order(store):
    store.add_cluster("a", "{}", "s", "t", 0.0)
    job, first = store.add_job("a", "n", "spec", "cmd", 1.0, candidates=["a", "b"])
    assert job.candidates == ("a", "b") and first.state == JobState.ASSIGNED
    store.lease_jobs("a", "agent", 0, 60, 2.0)
    store.accept_jobs("a", [job.id], 3.0)
    updated, events = store.report_state("a", job.id, JobState.RUNNING, 4.0, local_id="f123")
    assert updated.state == JobState.RUNNING and updated.local_id == "f123" and len(events) == 1
    # a report never moves a job backwards, and a repeat changes nothing
    same, none = store.report_state("a", job.id, JobState.SUBMITTED, 5.0)
    assert same.state == JobState.RUNNING and none == []
    assert store.report_state("b", job.id, JobState.COMPLETED, 5.0) == (None, [])
    done, _ = store.report_state("a", job.id, JobState.COMPLETED, 6.0, exit_code=0)
    assert done.exit_code == 0
    history = store.job_history(job.id)
    assert [e.state for e in history] == [
        JobState.ASSIGNED, JobState.LEASED, JobState.ACCEPTED, JobState.RUNNING, JobState.COMPLETED]
    seqs = [e.seq for e in history]
    assert seqs == sorted(seqs)
    assert [e.seq for e in store.events_since(seqs[1], ["a"])] == seqs[2:]
    assert store.events_since(0, ["zzz"]) == []
    assert store.last_event_seq() == seqs[-1]


def test_cancel_waiting_and_on_cluster_jobs(store):
    store.add_cluster("a", "{}", "s", "t", 0.0)
    waiting, _ = store.add_job("a", "w", "spec", "cmd", 1.0)
    held, _ = store.add_job("a", "h", "spec", "cmd", 1.0)
    store.lease_jobs("a", "agent", 0, 60, 2.0)
    store.accept_jobs("a", [held.id], 3.0)
    later, _ = store.add_job("a", "l", "spec", "cmd", 4.0)

    cancelled, events = store.request_cancel(later.id, "no longer needed", 5.0)
    assert cancelled.state == JobState.CANCELLED and events[0].state == JobState.CANCELLED
    flagged, events = store.request_cancel(held.id, "stop", 5.0)
    assert flagged.state == JobState.ACCEPTED and flagged.cancel_requested and events == []
    # the leased job: flagged, and when its lease runs out it is cancelled instead of redelivered
    store.request_cancel(waiting.id, "stop", 5.0)
    assert store.lease_jobs("a", "agent", 0, 60, 100.0)[0] == []
    assert store.get_job(waiting.id).state == JobState.CANCELLED
    cancel, _ = store.heartbeat("a", [], 101.0)
    assert cancel == [held.id]


def test_unreachable_cluster_jobs_become_unknown_then_reconcile(store):
    store.add_cluster("a", "{}", "s", "t", 0.0)
    running, _ = store.add_job("a", "r", "spec", "cmd", 0.0)
    lost, _ = store.add_job("a", "x", "spec", "cmd", 0.0)
    waiting, _ = store.add_job("a", "w", "spec", "cmd", 0.0)
    store.lease_jobs("a", "agent", 2, 60, 1.0)
    store.accept_jobs("a", [running.id, lost.id], 2.0)
    store.report_state("a", running.id, JobState.RUNNING, 3.0)
    silent, events = store.mark_unreachable(cutoff=50.0, now=100.0)
    assert silent == ["a"] and {e.job_id for e in events} == {running.id, lost.id}
    assert store.get_job(running.id).state == JobState.UNKNOWN
    assert not store.get_cluster("a").reachable
    assert [j.id for j in store.waiting_jobs("a", 100.0)] == [waiting.id]
    store.add_cluster("b", "{}", "s", "t", 0.0)
    assert store.reassign_job(waiting.id, "a", "b", 101.0, "moved").cluster == "b"
    assert store.reassign_job(waiting.id, "a", "b", 101.0, "moved") is None

    from rainbow.store import HeldJob

    store.heartbeat("a", [HeldJob(running.id, JobState.RUNNING, "f1")], 200.0)
    assert store.get_job(running.id).state == JobState.RUNNING
    assert store.get_job(lost.id).state == JobState.FAILED
    assert store.get_cluster("a").reachable


def test_job_pages_are_keyset_paginated_filtered_and_ordered(store):
    from rainbow.store import PAGE_SORTS, JobPage, NewJob

    for name in ("a", "b"):
        store.add_cluster(name, "{}", "s", "t", 0.0)
    names = ["x%y", "x_y", "xyz", "alpha", "beta", "x%y"]
    outcomes = store.add_jobs([NewJob("ab"[i % 2], names[i % len(names)], "spec", "cmd", float(i), ("a", "b"),
                                      placement='{"chosen": "a"}' if i == 0 else None) for i in range(30)])
    jobs = [job for job, _ in outcomes]
    store.accept_jobs("a", [jobs[2].id], 39.0)
    store.accept_jobs("b", [jobs[3].id], 39.0)
    store.report_state("a", jobs[2].id, JobState.RUNNING, 40.0)
    store.report_state("b", jobs[3].id, JobState.FAILED, 41.0, exit_code=1)
    current = {job.id: store.get_job(job.id) for job in jobs}

    def pages(query: JobPage) -> list[int]:
        seen, after = [], None
        while True:
            page = store.page_jobs(JobPage(**{**query.__dict__, "after": after, "limit": 7}))
            seen += [job.id for job in page]
            if len(page) < 7:
                return seen
            last = page[-1]
            value = getattr(last, query.sort)
            after = (value.value if isinstance(value, JobState) else value, last.id)

    for sort in PAGE_SORTS:
        for descending in (False, True):
            def key(job, sort=sort):
                value = getattr(job, sort)
                return (value.value if isinstance(value, JobState) else value, job.id)

            expected = [j.id for j in sorted(current.values(), key=key, reverse=descending)]
            assert pages(JobPage(sort=sort, descending=descending)) == expected, (sort, descending)
    assert pages(JobPage(clusters=("a",))) == sorted((j.id for j in jobs if j.cluster == "a"), reverse=True)
    assert pages(JobPage(clusters=())) == []
    assert pages(JobPage(state=JobState.FAILED)) == [jobs[3].id]
    # A name prefix is a prefix: % and _ are plain characters.
    assert {current[i].name for i in pages(JobPage(name="x%*"))} == {"x%y"}
    assert {current[i].name for i in pages(JobPage(name="x*"))} == {"x%y", "x_y", "xyz"}
    assert {current[i].name for i in pages(JobPage(name="x_y"))} == {"x_y"}
    assert store.job_placement(jobs[0].id) == '{"chosen": "a"}'
    assert store.job_placement(jobs[1].id) is None and store.job_placement(999_999) is None
    counts = store.job_counts_by_cluster()
    assert counts[("a", JobState.RUNNING)] == 1 and counts[("b", JobState.FAILED)] == 1
    assert sum(counts.values()) == 30 and counts[("a", JobState.ASSIGNED)] == 14


def test_many_ids_in_one_accept_and_renewal(store):
    """More ids than a statement lists one by one (SQLite then sends them as one JSON array)."""
    store.add_cluster("a", "{}", "s", "t", 0.0)
    store.add_jobs([NewJob("a", f"j{i}", "spec", "cmd", 0.0) for i in range(700)])
    leased, _ = store.lease_jobs("a", "agent-1", 0, 60.0, 1.0)
    assert len(leased) == 700
    tokens = {job.id: job.lease_token for job in leased}
    assert store.renew_leases("a", "agent-1", tokens, 500.0, 2.0) == []
    assert {job.lease_expires for job in store.list_jobs(["a"], JobState.LEASED, limit=0)} == {500.0}
    moved, events, fenced = store.accept_jobs("a", list(tokens), 3.0, "agent-1", tokens)
    assert (sorted(moved), fenced) == (sorted(tokens), {})
    assert [e.job_id for e in events] == moved and {e.state for e in events} == {JobState.ACCEPTED}
    assert store.count_jobs("a", JobState.ACCEPTED) == 700
    assert store.list_jobs(["a", "b"], limit=0)[0].id == max(tokens)


def test_rejection_moves_a_job_that_never_ran_and_records_why(store):
    from rainbow.errors import Aborted

    for name in ("a", "b", "c"):
        store.add_cluster(name, "{}", "s", "t", 0.0)
    job = store.add_job("a", "j", "spec", "cmd", 1.0, candidates=("a", "b", "c"))[0]
    (leased,), _ = store.lease_jobs("a", "agent-a", 1, lease_seconds=10, now=2.0)
    store.accept_jobs("a", [job.id], now=3.0)
    store.report_state("a", job.id, JobState.SUBMITTED, 4.0, local_id="f1")
    with pytest.raises(Aborted):
        store.reject_job("a", job.id, "no", 5.0, "b", "", owner="intruder", token=leased.lease_token + 5)
    assert store.reject_job("b", job.id, "no", 5.0, "c", "") == (None, [])  # b does not hold it

    moved, events = store.reject_job("a", job.id, "queue closed", 6.0, "b", "", owner="agent-a",
                                     token=leased.lease_token)
    assert (moved.cluster, moved.state, moved.local_id, moved.lease_owner) == ("b", JobState.ASSIGNED, None, None)
    assert moved.candidates == ("b", "c")
    assert [(e.cluster, e.state, e.message) for e in events] == [
        ("b", JobState.ASSIGNED, "rejected by a: queue closed; re-placed on b")]
    stored = store.get_job(job.id)
    assert stored == moved
    assert [(r.cluster, r.reason, r.time) for r in stored.rejections] == [("a", "queue closed", 6.0)]

    # b leases it and its scheduler refuses too, with nowhere left: it fails with the message given
    store.lease_jobs("b", "agent-b", 1, lease_seconds=10, now=7.0)
    failed, events = store.reject_job("b", job.id, "too big", 8.0, None, "no cluster can run this job: ...")
    assert (failed.state, failed.cluster, failed.message) == (JobState.FAILED, "b", "no cluster can run this job: ...")
    assert [r.cluster for r in store.get_job(job.id).rejections] == ["a", "b"]
    assert [e.state for e in events] == [JobState.FAILED]


def test_a_job_that_ran_cannot_be_rejected(store):
    store.add_cluster("a", "{}", "s", "t", 0.0)
    job = store.add_job("a", "j", "spec", "cmd", 1.0, candidates=("a",))[0]
    store.lease_jobs("a", "agent-a", 1, lease_seconds=10, now=2.0)
    store.report_state("a", job.id, JobState.RUNNING, 3.0, local_id="f1")
    unchanged, events = store.reject_job("a", job.id, "late", 4.0, None, "failed")
    assert (unchanged.state, events, unchanged.rejections) == (JobState.RUNNING, [], ())


def test_a_graph_answers_its_jobs_as_stored(store):
    store.add_cluster("a", "{}", "sh", "th", 1.0)
    owned = {"user": "alice", "group": "physics", "nodes": 4, "priority": 5}
    stored = store.add_graph([NewJob("a", "first", "spec", "cmd", 1.0, ("a",), **owned),
                              NewJob("a", "then", "spec", "cmd", 1.0, ("a",), depends=(DependsOn("afterok", step=0),),
                                     **owned)])
    for job, event in stored:
        assert event is not None
        assert (job.user, job.group, job.nodes, job.priority) == ("alice", "physics", 4, 5)
        assert job == store.get_job(job.id)
