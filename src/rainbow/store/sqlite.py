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

import functools
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from rainbow.fairshare import Held, Waiting
from rainbow.lifecycle import JobState
from rainbow.store.base import JobEvent, JobRecord, LeaseOrder, NewJob
from rainbow.store.rows import JOB_COLUMNS, NEW_JOB_COLUMNS, job_from_row, job_rejections, new_job_state
from rainbow.store.schema import SQLITE_MIGRATIONS
from rainbow.store.sql import SQLStore

T = TypeVar("T")

# Longer lists of values go to SQLite as one JSON array (a statement takes at most 32,766 parameters).
_MAX_LISTED = 500


@functools.lru_cache(maxsize=512)
def _qmark(sql: str) -> str:
    """A statement of ``SQLStore`` (``%s`` placeholders) in SQLite's ``?`` style."""
    return sql.replace("%s", "?")


def _next_id(db: sqlite3.Connection, table: str, column: str) -> int:
    """The id AUTOINCREMENT would give the next row (the caller holds the write transaction)."""
    row = db.execute(
        f"SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = '{table}'), 0), "  # noqa: S608
        f"COALESCE((SELECT MAX({column}) FROM {table}), 0))"
    ).fetchone()
    return int(row[0]) + 1


def _log_many(db: sqlite3.Connection, entries: Sequence[tuple[int, str, str, JobState, float, str]]) -> list[JobEvent]:
    """Write many events with one statement; seq numbers follow the order of ``entries``."""
    if not entries:
        return []
    seq = _next_id(db, "job_events", "seq")
    events = [JobEvent(seq + i, *entry) for i, entry in enumerate(entries)]
    db.executemany(
        "INSERT INTO job_events (seq, job_id, cluster, name, state, time, message) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(e.seq, e.job_id, e.cluster, e.name, e.state.value, e.time, e.message) for e in events],
    )
    return events


# Rows of one multi-row INSERT: the rows of a large batch are bound together and inserted by one statement
# (executemany runs one statement per row).
_ROWS_PER_INSERT = 500

_JOB_INSERT = f"INSERT INTO jobs ({NEW_JOB_COLUMNS}) VALUES "  # noqa: S608 - constants only
_JOB_VALUES = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_EVENT_INSERT = "INSERT INTO job_events (seq, job_id, cluster, name, state, time, message) VALUES "
_EVENT_VALUES = "(?, ?, ?, ?, ?, ?, ?)"


@functools.lru_cache(maxsize=8)
def _values(head: str, values: str, rows: int) -> str:
    return head + ", ".join([values] * rows)


def _insert_rows(db: sqlite3.Connection, head: str, values: str, rows: Sequence[tuple]) -> None:
    """Insert ``rows``: each full group of ``_ROWS_PER_INSERT`` with one multi-row statement, the rest one by one."""
    per = min(_ROWS_PER_INSERT, db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(rows[0])) if rows else 0
    whole = len(rows) - len(rows) % per if per > 1 else 0
    if whole:
        statement = _values(head, values, per)
        for start in range(0, whole, per):
            db.execute(statement, [value for row in rows[start : start + per] for value in row])
    if whole < len(rows):
        db.executemany(head + values, rows[whole:])


class _Transaction:
    """``SQLStore``'s transaction on the connection: events are written when it ends, nobody to notify."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self._pending: list[tuple[int, str, str, JobState, float, str]] = []

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self.db.execute(_qmark(sql), params)

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple | None:
        return self.execute(sql, params).fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self.execute(sql, params).fetchall()

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.db.executemany(_qmark(sql), rows)

    def log(self, job_id: int, cluster: str, name: str, state: JobState, now: float, message: str = "") -> None:
        self._pending.append((job_id, cluster, name, state, now, message))

    def notify(self, cluster: str) -> None:
        """One process owns the file: nobody else caches its clusters."""

    def finish(self) -> list[JobEvent]:
        if len(self._pending) != 1:
            return _log_many(self.db, self._pending)
        # One event (most changes): its seq is the row id SQLite gives it, no look-up of the next one.
        job_id, cluster, name, state, now, message = self._pending[0]
        cursor = self.db.execute(
            "INSERT INTO job_events (job_id, cluster, name, state, time, message) VALUES (?, ?, ?, ?, ?, ?)",
            (job_id, cluster, name, state.value, now, message),
        )
        return [JobEvent(cursor.lastrowid, job_id, cluster, name, state, now, message)]


@dataclass
class _QueuedJob:
    """A new job waiting for the group commit that makes it durable."""

    job: NewJob
    result: tuple[JobRecord, JobEvent | None] | None = None
    error: Exception | None = None


class SQLiteStore(SQLStore):
    NO_LIMIT = -1

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
            return self._db.execute(_qmark(sql), params).fetchall()

    def _transaction(self, body: Callable[[_Transaction], T]) -> tuple[T, list[JobEvent]]:
        with self._write() as db:
            tx = _Transaction(db)
            result = body(tx)
            return result, tx.finish()

    @staticmethod
    def _in(column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        if len(values) > _MAX_LISTED:
            return f"{column} IN (SELECT value FROM json_each(%s))", [json.dumps(list(values))]  # noqa: S608
        return f"{column} IN ({', '.join(['%s'] * len(values))})", list(values)

    def _migrate(self) -> None:
        with self._write() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for number, statements in enumerate(SQLITE_MIGRATIONS[version:], start=version + 1):
                for statement in statements:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={int(number)}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def ping(self) -> None:
        self._read("SELECT 1")

    def watch_clusters(self, callback: Callable[[str | None], None]) -> None:
        """Nothing to watch: one server process owns the file, and it changes its cache itself."""

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
        user: str = "",
        group: str = "",
        nodes: int = 1,
        priority: int = 0,
    ) -> tuple[JobRecord, JobEvent | None]:
        new = NewJob(cluster, name, jobspec, command, now, tuple(candidates), key, placement, user=user, group=group,
                     nodes=nodes, priority=priority)
        outcome = self.add_jobs([new])[0]
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

    def add_batch(self, jobs: Sequence[NewJob]) -> list[tuple[JobRecord, JobEvent | None]]:
        with self._lock, self._write() as db:
            return self._insert_jobs(db, [_QueuedJob(job) for job in jobs])

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

    def _insert_jobs(
        self, db: sqlite3.Connection, batch: Sequence[_QueuedJob]
    ) -> list[tuple[JobRecord, JobEvent | None]]:
        """Insert jobs with their first events (assigned, or held), ids given in order (one statement per table).

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
        job_id = _next_id(db, "jobs", "id")
        seq = _next_id(db, "job_events", "seq")
        job_rows, event_rows = [], []
        listed: dict[tuple[str, ...], str] = {}  # candidates -> their JSON (the jobs of a batch share a few)
        results: list[tuple[JobRecord, JobEvent | None]] = []
        for queued in batch:
            new = queued.job
            if new.key is not None and new.key in known:
                results.append((known[new.key], None))
                continue
            now = new.now
            candidates = listed.get(new.candidates)
            if candidates is None:
                candidates = listed[new.candidates] = json.dumps(list(new.candidates))
            state, message = new_job_state(new)
            job_rows.append((job_id, new.cluster, new.name, new.jobspec, new.command, state.value, now, now,
                             candidates, new.key, new.placement, new.batch, new.user, new.group, new.nodes,
                             new.priority))
            event_rows.append((seq, job_id, new.cluster, new.name, state.value, now, message))
            job = JobRecord(job_id, new.cluster, new.name, new.jobspec, new.command, state, now, now,
                            candidates=new.candidates, user=new.user, group=new.group, nodes=new.nodes,
                            priority=new.priority)
            results.append((job, JobEvent(seq, job_id, new.cluster, new.name, state, now, message,
                                          new.user, new.group)))
            if new.key is not None:
                known[new.key] = job
            job_id += 1
            seq += 1
        _insert_rows(db, _JOB_INSERT, _JOB_VALUES, job_rows)
        _insert_rows(db, _EVENT_INSERT, _EVENT_VALUES, event_rows)
        return results

    def lease_jobs(
        self, cluster: str, owner: str, max_jobs: int, lease_seconds: float, now: float, window: int = 0,
        order: LeaseOrder | None = None,
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
            rows = self._waiting(db, cluster, now, limit) if order is None else _ordered(db, cluster, now, limit, order)
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
                    job_rejections(row[18]), row[19], row[20], row[21], row[22], row[23], row[24],
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
            events = _log_many(db, entries)
        return leased, events

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

    def last_event_seq(self) -> int:
        return self._read("SELECT COALESCE(MAX(seq), 0) FROM job_events")[0][0]


_LIGHT = 'id, "user", grp, priority, nodes, cancel_requested'  # what a lease order sees of a waiting job


def _candidates(db: sqlite3.Connection, cluster: str, now: float, limit: int) -> list[tuple]:
    """What a lease order chooses from: of the assigned jobs, each owner's first ``limit`` by priority and id
    (all when < 1; no owner can give more), from the (cluster, state, owner, priority, id) index; and every
    leased job whose lease ran out."""
    expired = db.execute(
        f"SELECT {_LIGHT} FROM jobs WHERE cluster = ? AND state = 'leased' AND lease_expires <= ?",  # noqa: S608
        (cluster, now),
    ).fetchall()
    if limit < 1:
        return db.execute(f"SELECT {_LIGHT} FROM jobs WHERE cluster = ? AND state = 'assigned'",  # noqa: S608
                          (cluster,)).fetchall() + expired
    owners = db.execute('SELECT DISTINCT "user", grp FROM jobs WHERE cluster = ? AND state = \'assigned\'',
                        (cluster,)).fetchall()
    rows: list[tuple] = []
    for user, group in owners:
        rows += db.execute(
            f"SELECT {_LIGHT} FROM jobs WHERE cluster = ? AND state = 'assigned' AND \"user\" = ? AND grp = ? "  # noqa: S608
            "ORDER BY priority DESC, id LIMIT ?",
            (cluster, user, group, limit),
        ).fetchall()
    return rows + expired


def _ordered(db: sqlite3.Connection, cluster: str, now: float, limit: int, order: LeaseOrder) -> list[tuple]:
    """The waiting jobs ``order`` picks (in its order), after those whose cancel was requested."""
    light = _candidates(db, cluster, now, limit)
    cancelled = [row[0] for row in light if row[5]]
    waiting = [Waiting(row[0], row[1], row[2], row[3], row[4]) for row in light if not row[5]]
    held = [Held(*row) for row in db.execute(
        'SELECT "user", grp, cluster, COUNT(*), SUM(nodes) FROM jobs WHERE (state = \'leased\' AND lease_expires > ?) '
        "OR state IN ('accepted', 'submitted', 'running') GROUP BY \"user\", grp, cluster",
        (now,),
    ).fetchall()]
    ids = [*cancelled, *order(waiting, held, limit)] if waiting else cancelled
    found: dict[int, tuple] = {}
    if len(ids) * 2 > len(light) and limit < 1:  # all of them: the two range scans are cheaper than look-ups
        found.update((row[0], row) for row in SQLiteStore._waiting(db, cluster, now, -1))
    else:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            found.update((row[0], row) for row in db.execute(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE id IN ({', '.join('?' * len(chunk))})", chunk  # noqa: S608
            ).fetchall())
    return [found[job_id] for job_id in ids if job_id in found]
