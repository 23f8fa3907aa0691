"""SQLite store: one file in WAL mode, the embedded default.

Every statement is parameterized; every change is one transaction, and the
event rows of a change are written in the same transaction. A single
connection serialised by a lock is enough for SQLite (it has one writer anyway).

New jobs are group-committed: concurrent ``add_job`` calls queue their rows,
and whichever caller holds the connection next writes every queued job in one
transaction (one fsync for all of them). A caller returns only once the
transaction holding its job has committed, so an acknowledged job is durable.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rainbow.errors import Aborted
from rainbow.lifecycle import FINAL_STATES, JobState, can_report, fence
from rainbow.store.base import ClusterRecord, HeldJob, JobEvent, JobPage, JobRecord, NewJob, Store
from rainbow.store.rows import (
    CLUSTER_COLUMNS,
    EVENT_COLUMNS,
    FINAL,
    HOLDER_COLUMNS,
    JOB_COLUMNS,
    ON_CLUSTER,
    accept_plan,
    cluster_from_row,
    event_from_row,
    job_from_row,
    page_query,
    renew_plan,
    report_changes,
)
from rainbow.store.schema import SQLITE_MIGRATIONS

_HOLDERS_SQL = f"SELECT {HOLDER_COLUMNS} FROM jobs WHERE id IN ({{}})"  # noqa: S608 - constants





@dataclass
class _QueuedJob:
    """A new job waiting for the group commit that makes it durable."""

    job: NewJob
    result: tuple[JobRecord, JobEvent | None] | None = None
    error: Exception | None = None


class SQLiteStore(Store):
    def __init__(self, path: str | Path, synchronous: str = "FULL") -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"unknown synchronous mode {synchronous!r}")
        self._lock = threading.RLock()
        self._queue_lock = threading.Lock()
        self._queue: list[_QueuedJob] = []
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._migrate()

    # -- plumbing ---------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _migrate(self) -> None:
        with self._write() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for number, statements in enumerate(SQLITE_MIGRATIONS[version:], start=version + 1):
                for statement in statements:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={int(number)}")

    @staticmethod
    def _log(
        db: sqlite3.Connection, job_id: int, cluster: str, name: str, state: JobState, now: float, message: str = ""
    ) -> JobEvent:
        cursor = db.execute(
            "INSERT INTO job_events (job_id, cluster, name, state, time, message) VALUES (?, ?, ?, ?, ?, ?)",
            (job_id, cluster, name, state.value, now, message),
        )
        return JobEvent(cursor.lastrowid, job_id, cluster, name, state, now, message)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def ping(self) -> None:
        self._read("SELECT 1")

    def watch_clusters(self, callback: Callable[[str | None], None]) -> None:
        """Nothing to watch: one server process owns the file, and it changes its cache itself."""

    # -- metadata ---------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def add_meta(self, key: str, value: str) -> bool:
        with self._write() as db:
            cursor = db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING", (key, value))
            return cursor.rowcount == 1

    def remove_meta(self, key: str, value: str) -> bool:
        with self._write() as db:
            return db.execute("DELETE FROM meta WHERE key = ? AND value = ?", (key, value)).rowcount == 1

    # -- clusters ---------------------------------------------------------
    def add_cluster(self, name: str, nodes: str, secret_hash: str, token_hash: str, now: float) -> bool:
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO clusters (name, secret_hash, token_hash, nodes, state, created, updated, version, "
                "last_seen, reachable) VALUES (?, ?, ?, ?, '{}', ?, ?, 1, ?, 1) ON CONFLICT(name) DO NOTHING",
                (name, secret_hash, token_hash, nodes, now, now, now),
            )
            return cursor.rowcount == 1

    def get_cluster(self, name: str) -> ClusterRecord | None:
        rows = self._read(f"SELECT {CLUSTER_COLUMNS} FROM clusters WHERE name = ?", (name,))  # noqa: S608
        return cluster_from_row(rows[0]) if rows else None

    def list_clusters(self) -> list[ClusterRecord]:
        rows = self._read(f"SELECT {CLUSTER_COLUMNS} FROM clusters ORDER BY name")  # noqa: S608
        return [cluster_from_row(row) for row in rows]

    def get_nodes(self, name: str) -> str | None:
        rows = self._read("SELECT nodes FROM clusters WHERE name = ?", (name,))
        return rows[0][0] if rows else None

    def replace_nodes(self, name: str, nodes: str, now: float) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE clusters SET nodes = ?, version = version + 1, updated = ? WHERE name = ?",
                (nodes, now, name),
            )

    def delete_cluster(self, name: str) -> bool:
        with self._write() as db:
            db.execute("DELETE FROM job_events WHERE cluster = ?", (name,))
            db.execute("DELETE FROM jobs WHERE cluster = ?", (name,))
            db.execute("DELETE FROM subsystems WHERE cluster = ?", (name,))
            return db.execute("DELETE FROM clusters WHERE name = ?", (name,)).rowcount == 1

    def put_subsystem(self, cluster: str, name: str, nodes: str, now: float) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO subsystems (cluster, name, nodes) VALUES (?, ?, ?) "
                "ON CONFLICT(cluster, name) DO UPDATE SET nodes = excluded.nodes",
                (cluster, name, nodes),
            )
            db.execute("UPDATE clusters SET version = version + 1, updated = ? WHERE name = ?", (now, cluster))

    def delete_subsystem(self, cluster: str, name: str, now: float) -> bool:
        with self._write() as db:
            gone = db.execute("DELETE FROM subsystems WHERE cluster = ? AND name = ?", (cluster, name)).rowcount
            if gone:
                db.execute(
                    "UPDATE clusters SET version = version + 1, updated = ? WHERE name = ?", (now, cluster)
                )
            return gone == 1

    def list_subsystems(self, cluster: str) -> dict[str, str]:
        rows = self._read("SELECT name, nodes FROM subsystems WHERE cluster = ? ORDER BY name", (cluster,))
        return dict(rows)

    def merge_state(self, cluster: str, updates: Mapping[str, Any], now: float) -> dict[str, Any]:
        with self._write() as db:
            row = db.execute("SELECT state FROM clusters WHERE name = ?", (cluster,)).fetchone()
            if row is None:
                raise KeyError(cluster)
            state = json.loads(row[0])
            state.update(updates)
            db.execute(
                "UPDATE clusters SET state = ?, updated = ?, last_seen = ? WHERE name = ?",
                (json.dumps(state), now, now, cluster),
            )
            return state

    # -- reachability -----------------------------------------------------
    def heartbeat(self, cluster: str, held: Sequence[HeldJob], now: float) -> tuple[list[int], list[JobEvent]]:
        events: list[JobEvent] = []
        inventory = {entry.job_id: entry for entry in held}
        with self._write() as db:
            row = db.execute("SELECT reachable FROM clusters WHERE name = ?", (cluster,)).fetchone()
            if row is None:
                raise KeyError(cluster)
            db.execute("UPDATE clusters SET last_seen = ?, reachable = 1 WHERE name = ?", (now, cluster))
            unknown = db.execute(
                "SELECT id, name FROM jobs WHERE cluster = ? AND state = 'unknown'", (cluster,)
            ).fetchall()
            for job_id, name in unknown:
                entry = inventory.get(job_id)
                if entry is None:
                    message = "the cluster no longer holds this job after it came back"
                    new_state = JobState.FAILED
                else:
                    new_state = entry.state or JobState.ACCEPTED
                    message = "reconciled from the cluster's inventory"
                db.execute(
                    "UPDATE jobs SET state = ?, updated = ?, message = ?, local_id = COALESCE(?, local_id) "
                    "WHERE id = ?",
                    (new_state.value, now, message, entry.local_id if entry else None, job_id),
                )
                events.append(self._log(db, job_id, cluster, name, new_state, now, message))
            cancel = [
                r[0]
                for r in db.execute(
                    "SELECT id FROM jobs WHERE cluster = ? AND cancel_requested = 1 AND state NOT IN (?, ?, ?)",
                    (cluster, *FINAL),
                )
            ]
        return cancel, events

    def mark_unreachable(self, cutoff: float, now: float) -> tuple[list[str], list[JobEvent]]:
        events: list[JobEvent] = []
        with self._write() as db:
            silent = [
                r[0]
                for r in db.execute(
                    "SELECT name FROM clusters WHERE reachable = 1 AND last_seen IS NOT NULL AND last_seen < ?",
                    (cutoff,),
                )
            ]
            for cluster in silent:
                db.execute("UPDATE clusters SET reachable = 0 WHERE name = ?", (cluster,))
                rows = db.execute(
                    "SELECT id, name FROM jobs WHERE cluster = ? AND state IN (?, ?, ?)", (cluster, *ON_CLUSTER)
                ).fetchall()
                message = "cluster stopped reporting"
                for job_id, name in rows:
                    db.execute(
                        "UPDATE jobs SET state = 'unknown', updated = ?, message = ? WHERE id = ?",
                        (now, message, job_id),
                    )
                    events.append(self._log(db, job_id, cluster, name, JobState.UNKNOWN, now, message))
        return silent, events

    # -- jobs -------------------------------------------------------------
    def add_job(
        self,
        cluster: str,
        name: str,
        jobspec: str,
        command: str,
        now: float,
        candidates: Sequence[str] = (),
        key: str | None = None,
        placement: str | None = None,
    ) -> tuple[JobRecord, JobEvent | None]:
        outcome = self.add_jobs([NewJob(cluster, name, jobspec, command, now, tuple(candidates), key, placement)])[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def add_jobs(self, jobs: Sequence[NewJob]) -> list[tuple[JobRecord, JobEvent | None] | Exception]:
        queued = [_QueuedJob(job) for job in jobs]
        with self._queue_lock:
            self._queue.extend(queued)
        with self._lock:
            if any(q.result is None and q.error is None for q in queued):
                self._commit_queued()
        return [q.result or q.error or RuntimeError("the job was not written") for q in queued]

    def _commit_queued(self) -> None:
        """Write every queued job in one transaction (caller holds ``_lock``).

        If the batch fails, each job is retried in its own transaction so that
        one bad row (e.g. its cluster was just deleted) fails alone.
        """
        with self._queue_lock:
            batch, self._queue = self._queue, []
        if not batch:
            return
        try:
            with self._write() as db:
                results = self._insert_jobs(db, batch)
        except Exception as exc:
            if len(batch) == 1:
                batch[0].error = exc
                return
            for queued in batch:
                try:
                    with self._write() as db:
                        queued.result = self._insert_jobs(db, [queued])[0]
                except Exception as one:
                    queued.error = one
            return
        for queued, result in zip(batch, results, strict=True):
            queued.result = result

    @staticmethod
    def _next_id(db: sqlite3.Connection, table: str, column: str) -> int:
        """The id AUTOINCREMENT would give the next row (the caller holds the write transaction)."""
        row = db.execute(
            f"SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = '{table}'), 0), "  # noqa: S608
            f"COALESCE((SELECT MAX({column}) FROM {table}), 0))"
        ).fetchone()
        return int(row[0]) + 1

    def _insert_jobs(
        self, db: sqlite3.Connection, batch: Sequence[_QueuedJob]
    ) -> list[tuple[JobRecord, JobEvent | None]]:
        """Insert jobs with their ``assigned`` events, ids given in order (one statement per table).

        A job whose idempotency key is already stored (or used earlier in the
        batch) is not inserted: its outcome is the stored job, with no event.
        """
        keys = [q.job.key for q in batch if q.job.key is not None]
        known: dict[str, JobRecord] = {}
        if keys:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                rows = db.execute(
                    f"SELECT {JOB_COLUMNS}, submit_key FROM jobs "  # noqa: S608 - only placeholders interpolated
                    f"WHERE submit_key IN ({', '.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
                known.update((row[-1], job_from_row(row)) for row in rows)
        job_id = self._next_id(db, "jobs", "id")
        seq = self._next_id(db, "job_events", "seq")
        job_rows, event_rows = [], []
        results: list[tuple[JobRecord, JobEvent | None]] = []
        for queued in batch:
            new = queued.job
            if new.key is not None and new.key in known:
                results.append((known[new.key], None))
                continue
            now = new.now
            job_rows.append((job_id, new.cluster, new.name, new.jobspec, new.command, now, now,
                             json.dumps(list(new.candidates)), new.key, new.placement))
            event_rows.append((seq, job_id, new.cluster, new.name, now))
            job = JobRecord(job_id, new.cluster, new.name, new.jobspec, new.command, JobState.ASSIGNED,
                            now, now, candidates=new.candidates)
            results.append((job, JobEvent(seq, job_id, new.cluster, new.name, JobState.ASSIGNED, now, "")))
            if new.key is not None:
                known[new.key] = job
            job_id += 1
            seq += 1
        db.executemany(
            "INSERT INTO jobs (id, cluster, name, jobspec, command, state, created, updated, candidates, submit_key, "
            "placement) VALUES (?, ?, ?, ?, ?, 'assigned', ?, ?, ?, ?, ?)",
            job_rows,
        )
        db.executemany(
            "INSERT INTO job_events (seq, job_id, cluster, name, state, time, message) "
            "VALUES (?, ?, ?, ?, 'assigned', ?, '')",
            event_rows,
        )
        return results

    def job_by_key(self, key: str) -> JobRecord | None:
        rows = self._read(f"SELECT {JOB_COLUMNS} FROM jobs WHERE submit_key = ?", (key,))  # noqa: S608
        return job_from_row(rows[0]) if rows else None

    def lease_jobs(
        self, cluster: str, owner: str, max_jobs: int, lease_seconds: float, now: float, window: int = 0
    ) -> tuple[list[JobRecord], list[JobEvent]]:
        limit = max_jobs if max_jobs >= 1 else -1
        leased: list[JobRecord] = []
        cancelled: list[int] = []
        entries: list[tuple[int, str, str, JobState, float, str]] = []  # events, in job id order
        expires = now + lease_seconds
        with self._write() as db:
            db.execute("UPDATE clusters SET last_seen = ? WHERE name = ?", (now, cluster))
            if window > 0:
                live = db.execute(
                    "SELECT COUNT(*) FROM jobs WHERE cluster = ? AND state = 'leased' AND lease_owner = ? "
                    "AND lease_expires > ?", (cluster, owner, now),
                ).fetchone()[0]
                room = window - live
                if room <= 0:
                    return [], []
                limit = room if limit < 0 else min(limit, room)
            rows = self._waiting(db, cluster, now, limit)
            candidates: dict[str, tuple[str, ...]] = {}  # the same few lists, parsed once
            for row in rows:
                if row[14]:  # cancel_requested: a waiting job whose cancel was asked is cancelled instead
                    cancelled.append(row[0])
                    entries.append((row[0], cluster, row[2], JobState.CANCELLED, now, row[13] or ""))
                    continue
                listed = candidates.get(row[15])
                if listed is None:
                    listed = candidates[row[15]] = tuple(json.loads(row[15]))
                leased.append(JobRecord(
                    row[0], row[1], row[2], row[3], row[4], JobState.LEASED, row[6], now, owner, expires,
                    row[10], row[11], row[12], row[13], False, listed, row[16], row[17] + 1,
                ))
                entries.append((row[0], cluster, row[2], JobState.LEASED, now, f"leased to {owner}"))
            db.executemany(
                "UPDATE jobs SET state = 'cancelled', updated = ?, lease_expires = NULL WHERE id = ?",
                [(now, job_id) for job_id in cancelled],
            )
            db.executemany(
                "UPDATE jobs SET state = 'leased', lease_owner = ?, lease_expires = ?, updated = ?, lease_token = ? "
                "WHERE id = ?",
                [(owner, expires, now, job.lease_token, job.id) for job in leased],
            )
            events = self._log_many(db, entries)
        return leased, events

    def _log_many(
        self, db: sqlite3.Connection, entries: Sequence[tuple[int, str, str, JobState, float, str]]
    ) -> list[JobEvent]:
        """Write many events with one statement; seq numbers follow the order of ``entries``."""
        if not entries:
            return []
        seq = self._next_id(db, "job_events", "seq")
        events = [JobEvent(seq + i, *entry) for i, entry in enumerate(entries)]
        db.executemany(
            "INSERT INTO job_events (seq, job_id, cluster, name, state, time, message) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(e.seq, e.job_id, e.cluster, e.name, e.state.value, e.time, e.message) for e in events],
        )
        return events

    def accept_jobs(
        self, cluster: str, ids: Sequence[int], now: float, owner: str = "", tokens: Mapping[int, int] | None = None
    ) -> tuple[list[int], list[JobEvent], dict[int, str]]:
        if not ids:
            return [], [], {}
        wanted = list(dict.fromkeys(ids))
        tokens = tokens or {}
        with self._write() as db:
            db.execute("UPDATE clusters SET last_seen = ? WHERE name = ?", (now, cluster))
            rows: dict[int, tuple] = {}
            for start in range(0, len(wanted), 500):
                chunk = wanted[start:start + 500]
                sql = _HOLDERS_SQL.format(", ".join("?" * len(chunk)))  # only placeholders are interpolated
                rows.update((row[0], row) for row in db.execute(sql, chunk))
            moving, fenced = accept_plan(cluster, wanted, rows, owner, tokens)
            if fenced:
                return [], [], fenced
            db.executemany(
                "UPDATE jobs SET state = 'accepted', accepted = ?, updated = ?, lease_expires = NULL, "
                "lease_owner = COALESCE(NULLIF(?, ''), lease_owner) WHERE id = ?",
                [(now, now, owner, job_id) for job_id in moving],
            )
            events = self._log_many(db, [(job_id, cluster, rows[job_id][1], JobState.ACCEPTED, now, "")
                                         for job_id in moving])
        return moving, events, {}

    def renew_leases(
        self, cluster: str, owner: str, held: Mapping[int, int] | None, expires: float, now: float
    ) -> list[int]:
        with self._write() as db:
            if held is None:
                db.execute(
                    "UPDATE jobs SET lease_expires = ? WHERE cluster = ? AND state = 'leased' AND lease_owner = ?",
                    (expires, cluster, owner),
                )
                return []
            wanted = list(held)
            rows: dict[int, tuple] = {}
            for start in range(0, len(wanted), 500):
                chunk = wanted[start:start + 500]
                sql = _HOLDERS_SQL.format(", ".join("?" * len(chunk)))  # only placeholders are interpolated
                rows.update((row[0], row) for row in db.execute(sql, chunk))
            renew, revoked = renew_plan(cluster, held, rows, owner)
            db.executemany(
                "UPDATE jobs SET lease_expires = ?, lease_owner = ? WHERE id = ? AND state = 'leased'",
                [(expires, owner, job_id) for job_id in renew],
            )
        return revoked

    def report_state(
        self,
        cluster: str,
        job_id: int,
        state: JobState,
        now: float,
        local_id: str | None = None,
        exit_code: int | None = None,
        message: str | None = None,
        output: str | None = None,
        owner: str = "",
        token: int = 0,
    ) -> tuple[JobRecord | None, list[JobEvent]]:
        with self._write() as db:
            db.execute("UPDATE clusters SET last_seen = ? WHERE name = ?", (now, cluster))
            row = db.execute(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ? AND cluster = ?", (job_id, cluster)  # noqa: S608
            ).fetchone()
            if row is None:
                return None, []
            job = job_from_row(row)
            reason = fence(job.state, job.lease_owner, job.lease_token, owner, token)
            if reason is not None:
                raise Aborted(f"job {job_id}: {reason}; drop this copy", field="jobid")
            if not can_report(job.state, state):
                return job, []
            changes = report_changes(job, state, now, local_id, exit_code, message, output)
            db.execute(
                "UPDATE jobs SET state = ?, updated = ?, local_id = ?, exit_code = ?, message = ?, accepted = ?, "
                "output = ?, lease_expires = NULL WHERE id = ?",
                (state.value, now, changes["local_id"], changes["exit_code"], changes["message"],
                 changes["accepted"], changes["output"], job_id),
            )
            events = []
            if state != job.state:
                events.append(self._log(db, job_id, cluster, job.name, state, now, message or ""))
        return JobRecord(**{**job.__dict__, **changes}), events

    def request_cancel(self, job_id: int, reason: str, now: float) -> tuple[JobRecord | None, list[JobEvent]]:
        with self._write() as db:
            row = db.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()  # noqa: S608
            if row is None:
                return None, []
            job = job_from_row(row)
            if job.state in FINAL_STATES:
                return job, []
            if job.state == JobState.ASSIGNED or (
                job.state == JobState.LEASED and job.lease_expires is not None and job.lease_expires <= now
            ):
                db.execute(
                    "UPDATE jobs SET state = 'cancelled', updated = ?, message = ?, cancel_requested = 1, "
                    "lease_expires = NULL WHERE id = ?",
                    (now, reason, job_id),
                )
                event = self._log(db, job_id, job.cluster, job.name, JobState.CANCELLED, now, reason)
                return JobRecord(**{**job.__dict__, "state": JobState.CANCELLED, "updated": now,
                                    "message": reason, "cancel_requested": True}), [event]
            db.execute(
                "UPDATE jobs SET cancel_requested = 1, message = ?, updated = ? WHERE id = ?", (reason, now, job_id)
            )
            return JobRecord(**{**job.__dict__, "cancel_requested": True, "message": reason, "updated": now}), []

    def waiting_jobs(self, cluster: str, now: float) -> list[JobRecord]:
        with self._lock:
            return [job_from_row(row) for row in self._waiting(self._db, cluster, now, -1)]

    @staticmethod
    def _waiting(db: sqlite3.Connection, cluster: str, now: float, limit: int) -> list[tuple]:
        """The oldest ``limit`` (all when < 0) waiting jobs of a cluster: assigned, or leased with the lease run out.

        Two range scans of the (cluster, state, id) index, each already in id
        order, merged here: one query with OR would read every job the cluster
        ever had (completed ones included) and sort them.
        """
        assigned = db.execute(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE cluster = ? AND state = 'assigned' "  # noqa: S608
            "ORDER BY id LIMIT ?",
            (cluster, limit),
        ).fetchall()
        expired = db.execute(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE cluster = ? AND state = 'leased' "  # noqa: S608
            "AND lease_expires <= ? ORDER BY id LIMIT ?",
            (cluster, now, limit),
        ).fetchall()
        if not expired:
            return assigned
        rows = sorted(assigned + expired, key=lambda row: row[0])
        return rows if limit < 0 else rows[:limit]

    def reassign_job(
        self, job_id: int, from_cluster: str, to_cluster: str, now: float, message: str
    ) -> JobEvent | None:
        with self._write() as db:
            row = db.execute(
                "UPDATE jobs SET cluster = ?, state = 'assigned', lease_owner = NULL, lease_expires = NULL, "
                "updated = ?, message = ? WHERE id = ? AND cluster = ? AND cancel_requested = 0 AND "
                "(state = 'assigned' OR (state = 'leased' AND lease_expires <= ?)) RETURNING name",
                (to_cluster, now, message, job_id, from_cluster, now),
            ).fetchone()
            if row is None:
                return None
            return self._log(db, job_id, to_cluster, row[0], JobState.ASSIGNED, now, message)

    def get_job(self, job_id: int) -> JobRecord | None:
        rows = self._read(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,))  # noqa: S608
        return job_from_row(rows[0]) if rows else None

    def list_jobs(
        self,
        clusters: Sequence[str] | None = None,
        state: JobState | None = None,
        name: str | None = None,
        limit: int = 1000,
    ) -> list[JobRecord]:
        where, params = [], []
        if clusters is not None:
            if not clusters:
                return []
            where.append(f"cluster IN ({', '.join('?' * len(clusters))})")
            params.extend(clusters)
        if state is not None:
            where.append("state = ?")
            params.append(state.value)
        if name:
            where.append("name = ?")
            params.append(name)
        sql = f"SELECT {JOB_COLUMNS} FROM jobs"  # noqa: S608 - only placeholders are interpolated
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit if limit > 0 else -1)
        return [job_from_row(row) for row in self._read(sql, params)]

    def job_history(self, job_id: int) -> list[JobEvent]:
        rows = self._read(
            f"SELECT {EVENT_COLUMNS} FROM job_events WHERE job_id = ? ORDER BY seq", (job_id,)  # noqa: S608
        )
        return [event_from_row(row) for row in rows]

    def job_placement(self, job_id: int) -> str | None:
        rows = self._read("SELECT placement FROM jobs WHERE id = ?", (job_id,))
        return rows[0][0] if rows else None

    def page_jobs(self, query: JobPage) -> list[JobRecord]:
        built = page_query(query, "?")
        if built is None:
            return []
        return [job_from_row(row) for row in self._read(*built)]

    def job_counts_by_cluster(self) -> dict[tuple[str, JobState], int]:
        rows = self._read("SELECT cluster, state, COUNT(*) FROM jobs GROUP BY cluster, state")
        return {(cluster, JobState(state)): count for cluster, state, count in rows}

    def events_since(
        self, seq: int, clusters: Sequence[str] | None = None, job_id: int | None = None, limit: int = 1000
    ) -> list[JobEvent]:
        where, params = ["seq > ?"], [seq]
        if clusters is not None:
            if not clusters:
                return []
            where.append(f"cluster IN ({', '.join('?' * len(clusters))})")
            params.extend(clusters)
        if job_id:
            where.append("job_id = ?")
            params.append(job_id)
        sql = f"SELECT {EVENT_COLUMNS} FROM job_events WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?"  # noqa: S608
        params.append(limit)
        return [event_from_row(row) for row in self._read(sql, params)]

    def last_event_seq(self) -> int:
        return self._read("SELECT COALESCE(MAX(seq), 0) FROM job_events")[0][0]

    def count_jobs(self, cluster: str | None = None, state: JobState | None = None) -> int:
        rows = self._read(
            "SELECT COUNT(*) FROM jobs WHERE (? IS NULL OR cluster = ?) AND (? IS NULL OR state = ?)",
            (cluster, cluster, state and state.value, state and state.value),
        )
        return rows[0][0]
