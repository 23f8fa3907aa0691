"""What only the PostgreSQL store has to get right: several processes at once, outages, NUL-safe text."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rainbow.errors import Unavailable
from rainbow.lifecycle import JobState
from rainbow.store import open_store, redact
from rainbow.store.postgres import decode_text, encode_text
from rainbow.store.schema import POSTGRES_MIGRATIONS


@given(st.text(alphabet=st.sampled_from(["\x00", "\x01", "0", "a", "\\", "🌈"])))
def test_text_escape_round_trips_and_has_no_nul(text):
    stored = encode_text(text)
    assert "\x00" not in stored
    assert decode_text(stored) == text


def test_plain_text_is_stored_unchanged():
    text = '{"graph": {"nodes": []}} ünïcode \\x00'
    assert encode_text(text) is text and decode_text(text) is text


def test_store_urls_are_shown_without_password():
    assert redact("postgresql://rainbow:s3cr%40t@db.example:5432/rainbow") == (
        "postgresql://rainbow:***@db.example:5432/rainbow")
    assert redact("postgresql://rainbow@127.0.0.1/rainbow") == "postgresql://rainbow@127.0.0.1/rainbow"
    assert redact("/var/lib/rainbow/rainbow.db") == "/var/lib/rainbow/rainbow.db"


needs_postgres = pytest.mark.postgres


@needs_postgres
def test_replicas_starting_together_migrate_once(postgres_database):
    url = postgres_database()
    stores, errors = [], []

    def open_one():
        try:
            stores.append(open_store(url))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and len(stores) == 4
    assert {s.schema_version() for s in stores} == {len(POSTGRES_MIGRATIONS)}
    for s in stores:
        s.close()


@needs_postgres
def test_two_stores_lease_disjoint_jobs_and_ids_stay_unique(postgres_database):
    url = postgres_database()
    a, b = open_store(url), open_store(url)
    try:
        a.add_cluster("c", "{}", "s", "t", 0.0)
        ids: list[int] = []
        lock = threading.Lock()

        def submit(store, n):
            for i in range(n):
                job, _ = store.add_job("c", f"j{i}", "spec", "cmd", 0.0)
                with lock:
                    ids.append(job.id)

        threads = [threading.Thread(target=submit, args=(s, 60)) for s in (a, b, a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(ids) == 240 and len(set(ids)) == 240

        taken: list[int] = []

        def lease(store, owner):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                batch, _ = store.lease_jobs("c", owner, 5, 60, 1.0)
                if not batch:
                    return
                with lock:
                    taken.extend(j.id for j in batch)

        threads = [threading.Thread(target=lease, args=(s, f"agent-{n}")) for n, s in enumerate((a, b, a, b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(taken) == sorted(ids)
    finally:
        a.close()
        b.close()


@needs_postgres
def test_one_key_submitted_through_two_stores_at_once_is_stored_once(postgres_database):
    url = postgres_database()
    a, b = open_store(url), open_store(url)
    try:
        a.add_cluster("c", "{}", "s", "t", 0.0)
        ids: list[int] = []
        barrier = threading.Barrier(6)

        def submit(store):
            barrier.wait(10)
            ids.append(store.add_job("c", "j", "spec", "cmd", 0.0, key="same")[0].id)

        threads = [threading.Thread(target=submit, args=(s,)) for s in (a, b) * 3]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(ids) == 6 and len(set(ids)) == 1
        assert a.count_jobs() == 1 and len(a.job_history(ids[0])) == 1
    finally:
        a.close()
        b.close()


@needs_postgres
def test_event_pollers_never_miss_a_late_commit(postgres_database):
    """Concurrent writers on two stores; a poller that follows ``seq > last`` sees every event once, in order."""
    url = postgres_database()
    a, b, reader = open_store(url), open_store(url), open_store(url)
    try:
        clusters = [f"c{n}" for n in range(4)]
        for name in clusters:
            a.add_cluster(name, "{}", "s", "t", 0.0)
        stop = threading.Event()
        seen: list[int] = []

        def poll():
            last = 0
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                done = stop.is_set()
                for event in reader.events_since(last, clusters, None, 500):
                    seen.append(event.seq)
                    last = event.seq
                if done:
                    return

        def write(store, cluster):
            for i in range(40):
                job, _ = store.add_job(cluster, f"j{i}", "spec", "cmd", 0.0)
                store.lease_jobs(cluster, "agent", 1, 60, 1.0)
                store.accept_jobs(cluster, [job.id], 2.0)

        poller = threading.Thread(target=poll)
        poller.start()
        writers = [threading.Thread(target=write, args=(s, c)) for s, c in zip((a, b, a, b), clusters, strict=True)]
        for t in writers:
            t.start()
        for t in writers:
            t.join(60)
        stop.set()
        poller.join(60)
        total = reader.last_event_seq()
        assert seen == list(range(1, total + 1))
        assert len(seen) == 4 * 40 * 3
    finally:
        for s in (a, b, reader):
            s.close()


@needs_postgres
def test_cluster_changes_reach_a_watcher(postgres_database):
    url = postgres_database()
    watcher, writer = open_store(url), open_store(url)
    heard: list[str | None] = []
    changed = threading.Condition()

    def callback(name):
        with changed:
            heard.append(name)
            changed.notify_all()

    def wait_for(name):
        with changed:
            assert changed.wait_for(lambda: name in heard, timeout=5), f"no notification for {name!r}: {heard}"
            heard.clear()

    try:
        watcher.watch_clusters(callback)
        wait_for(None)  # the first call: reload everything
        odd = "odd\x00name\x01"
        writer.add_cluster(odd, "{}", "s", "t", 0.0)
        wait_for(odd)
        writer.merge_state(odd, {"cost": 3}, 1.0)
        wait_for(odd)
        writer.put_subsystem(odd, "io", "{}", 2.0)
        wait_for(odd)
        writer.replace_nodes(odd, "{}", 3.0)
        wait_for(odd)
        writer.mark_unreachable(cutoff=10.0, now=10.0)
        wait_for(odd)
        writer.heartbeat(odd, [], 11.0)
        wait_for(odd)
        assert writer.delete_cluster(odd)
        wait_for(odd)
        # nothing for plain job traffic: notifications arrive in commit order, so any for the
        # job would come before the one of the cluster added after it
        writer.add_cluster("quiet", "{}", "s", "t", 0.0)
        wait_for("quiet")
        writer.add_job("quiet", "j", "spec", "cmd", 1.0)
        writer.add_cluster("after-the-job", "{}", "s", "t", 2.0)
        with changed:
            assert changed.wait_for(lambda: "after-the-job" in heard, timeout=5), heard
            assert heard == ["after-the-job"]
    finally:
        watcher.close()
        writer.close()


@needs_postgres
def test_outage_is_unavailable_and_recovers_without_loss(postgres_database, postgres_proxy):
    url = postgres_proxy.url(postgres_database())
    store = open_store(url, timeout=2.0)
    try:
        store.add_cluster("c", "{}", "s", "t", 0.0)
        before, _ = store.add_job("c", "acknowledged", "spec", "cmd", 1.0)
        store.ping()
        postgres_proxy.cut()
        with pytest.raises(Unavailable, match="unreachable"):
            store.ping()
        with pytest.raises(Unavailable):
            store.add_job("c", "during", "spec", "cmd", 2.0)
        with pytest.raises(Unavailable):
            store.get_job(before.id)
        postgres_proxy.restore()
        deadline = time.monotonic() + 30
        while True:
            try:
                store.ping()
                after, _ = store.add_job("c", "after", "spec", "cmd", 3.0)
                break
            except Unavailable:
                assert time.monotonic() < deadline, "the store did not recover after the database came back"
                time.sleep(0.2)
        assert store.get_job(before.id).name == "acknowledged"
        assert after.id > before.id
        assert [j.name for j in store.list_jobs(["c"])] in (["after", "acknowledged"],
                                                            ["after", "during", "acknowledged"])
        assert store.count_jobs("c", JobState.ASSIGNED) >= 2
    finally:
        store.close()


@needs_postgres
def test_names_are_stored_readably(postgres_database):
    """Other tools reading the database see ordinary names (only U+0000/U+0001 are escaped)."""
    url = postgres_database()
    store = open_store(url)
    try:
        store.add_cluster("plain-name", "{}", "s", "t", 0.0)
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT name FROM clusters").fetchall() == [("plain-name",)]
    finally:
        store.close()


def test_jobs_gathered_by_the_writer_commit_together_and_a_bad_one_alone(postgres_database):
    """``add_jobs`` (the server's group commit) writes its jobs in one transaction; when one of them cannot be
    written, the others still are, each in its own."""
    from rainbow.store import NewJob

    url = postgres_database()
    store = open_store(url)
    try:
        store.add_cluster("a", "{}", "s", "t", 0.0)
        together = store.add_jobs([NewJob("a", f"j{i}", "spec", "cmd", 1.0) for i in range(6)])
        alone = store.add_jobs([NewJob("a", "k0", "spec", "cmd", 2.0), NewJob("ghost", "bad", "spec", "cmd", 2.0),
                                NewJob("a", "k2", "spec", "cmd", 2.0)])
        assert isinstance(alone[1], Exception)
        with psycopg.connect(url) as conn:
            def transactions(*names: str) -> int:
                return conn.execute("SELECT count(DISTINCT xmin::text) FROM jobs WHERE name = ANY(%s)",
                                    (list(names),)).fetchone()[0]

            assert transactions(*(job.name for job, _ in together)) == 1
            assert transactions("k0", "k2") == 2
    finally:
        store.close()
