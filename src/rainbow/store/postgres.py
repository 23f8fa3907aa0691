"""PostgreSQL store: the shared source of truth for several server replicas.

The semantics are the SQLite store's (one call is one transaction, events are
written in the transaction that changes the job); what differs is what several
processes writing at once need:

- **Leases.** ``lease_jobs`` picks waiting jobs with ``SELECT ... FOR UPDATE
  SKIP LOCKED``: two replicas leasing for the same cluster at the same time get
  disjoint jobs, and neither waits for the other.
- **Ids.** Job ids come from an ``INTEGER GENERATED ALWAYS AS IDENTITY`` column
  (the wire carries int32), unique across replicas.
- **Event order.** ``WatchJobs`` readers poll ``seq > last``. With a plain
  sequence, a transaction can take seq 7, commit after another one took and
  committed seq 8, and a reader that already moved past 8 would never see 7.
  Here sequence numbers come from the single row of ``event_counter``, taken
  with ``UPDATE ... RETURNING`` as the last statement before commit: the row lock
  is held until commit, so transactions that write events commit in the order of
  their numbers and a reader never sees a gap that is filled later. The price is
  that event-writing commits are serialised (the lock is held only for the last
  statement and the commit itself); job hand-out stays correct and fast at the
  rates a scheduler sees. Reading the bound (``last_event_seq``) reads the counter.
- **Cluster cache.** Every change to a cluster (registration, graph, subsystems,
  state, reachability, deletion) sends ``NOTIFY rainbow_clusters`` with the
  cluster's name in the same transaction (delivered on commit only);
  ``watch_clusters`` listens on a dedicated connection so each replica refreshes
  its in-memory graphs within a fraction of a second.
- **Outages.** Connections come from a pool; a lost connection is retried on a
  fresh one when the transaction had not reached its commit, and an unreachable
  database becomes ``Unavailable`` (gRPC UNAVAILABLE) instead of an internal
  error. A commit whose outcome is unknown is reported, never silently retried.
- **NUL characters.** PostgreSQL text cannot hold U+0000, but names and texts
  must round-trip. Strings are escaped reversibly at the boundary of this
  module: U+0001 becomes U+0001 U+0001 and U+0000 becomes U+0001 ``0``. Strings
  without either character (all real ones) are stored unchanged, and equality
  lookups still work because the escaping is injective.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool, PoolTimeout

from rainbow.errors import Unavailable
from rainbow.fairshare import Held, Waiting
from rainbow.lifecycle import JobState
from rainbow.store import redact
from rainbow.store.accounts import HELD
from rainbow.store.base import JobEvent, JobRecord, LeaseOrder, NewJob
from rainbow.store.rows import JOB_COLUMNS, NEW_JOB_COLUMNS, job_from_row, new_job_state
from rainbow.store.schema import POSTGRES_MIGRATIONS
from rainbow.store.sql import WAITING, SQLStore

log = logging.getLogger("rainbow.store")

T = TypeVar("T")

CLUSTER_CHANNEL = "rainbow_clusters"
# pg_advisory_xact_lock key that serialises schema migrations of replicas starting together.
MIGRATION_LOCK = 0x5241494E424F57  # "RAINBOW"
# NOTIFY payloads are limited to 8000 bytes; a longer name asks listeners to reload everything.
_MAX_PAYLOAD = 7000

_RETRY_ATTEMPTS = 4
# From how many rows a transaction writes events or new jobs with COPY rather than INSERT (COPY pays off from a
# few dozen rows).
_COPY_FROM = 32


# -- NUL-safe text ---------------------------------------------------------
_ESCAPED = re.compile("\x01(.)", re.S)


def encode_text(value: str) -> str:
    """Reversible escape so that any Python string fits a PostgreSQL text value."""
    if "\x00" not in value and "\x01" not in value:
        return value
    return value.replace("\x01", "\x01\x01").replace("\x00", "\x010")


def decode_text(value: str) -> str:
    if "\x01" not in value:
        return value
    return _ESCAPED.sub(lambda m: "\x01" if m.group(1) == "\x01" else "\x00", value)


def _text_or_none(value: str | None) -> str | None:
    return encode_text(value) if value is not None else None


def _param(value: Any) -> Any:
    if isinstance(value, str):
        return encode_text(value)
    if isinstance(value, (list, tuple)):
        return [_param(v) for v in value]
    return value


def _row(row: Sequence[Any]) -> tuple:
    return tuple(decode_text(v) if isinstance(v, str) else v for v in row)


class _Tx:
    """One transaction: statements, then events and notifications written last."""

    def __init__(self, cursor: psycopg.Cursor) -> None:
        self.cursor = cursor
        self._pending: list[tuple[int, str, str, JobState, float, str]] = []
        self._notify: dict[str, None] = {}

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor:
        return self.cursor.execute(sql, [_param(p) for p in params])

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple | None:
        row = self.execute(sql, params).fetchone()
        return _row(row) if row is not None else None

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return [_row(r) for r in self.execute(sql, params).fetchall()]

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.cursor.executemany(sql, [[_param(p) for p in row] for row in rows])

    def log(self, job_id: int, cluster: str, name: str, state: JobState, now: float, message: str = "") -> None:
        self._pending.append((job_id, cluster, name, state, now, message))

    def notify(self, cluster: str) -> None:
        self._notify[cluster] = None

    def finish(self) -> list[JobEvent]:
        """Send notifications and number and write the events (the counter row is held until commit)."""
        for cluster in self._notify:
            payload = encode_text(cluster)
            if len(payload.encode()) > _MAX_PAYLOAD:
                payload = ""
            self.cursor.execute("SELECT pg_notify(%s, %s)", (CLUSTER_CHANNEL, payload))
        if not self._pending:
            return []
        last = self.cursor.execute(
            "UPDATE event_counter SET seq = seq + %s RETURNING seq", (len(self._pending),)
        ).fetchone()[0]
        first = last - len(self._pending) + 1
        events = [JobEvent(first + i, *pending) for i, pending in enumerate(self._pending)]
        rows = [(e.seq, e.job_id, encode_text(e.cluster), encode_text(e.name), e.state.value, e.time,
                 encode_text(e.message)) for e in events]
        if len(rows) >= _COPY_FROM:
            self.copy_rows("job_events (seq, job_id, cluster, name, state, time, message)", rows)
        else:
            self.cursor.executemany(
                "INSERT INTO job_events (seq, job_id, cluster, name, state, time, message) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)", rows,
            )
        return events

    def copy_rows(self, target: str, rows: Sequence[Sequence[Any]]) -> None:
        """Write rows (strings already NUL-escaped) with COPY: many rows cost one statement."""
        with self.cursor.copy(f"COPY {target} FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


# Keys another replica stored meanwhile are skipped; the ids returned are the jobs written.
_SKIP_STORED_KEYS = "ON CONFLICT (submit_key) WHERE submit_key IS NOT NULL DO NOTHING RETURNING id"


def _insert_new_jobs(tx: _Tx, rows: Sequence[tuple]) -> set[int]:
    """Insert new jobs, rows of (id, cluster, name, jobspec, command, state, time, candidates, key, placement,
    batch, user, group, nodes, priority) with their strings already escaped; returns the ids written.

    A few rows (a group commit of single submissions) go in one multi-row INSERT; more are copied into a
    scratch table first (COPY pays off from a few dozen rows, and creating the table costs catalog writes).
    """
    if len(rows) < _COPY_FROM:
        values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"] * len(rows))
        params = [value for row in rows for value in (*row[:7], row[6], *row[7:])]
        written = tx.cursor.execute(  # the rows are escaped already: not through _Tx's parameters
            f"INSERT INTO jobs ({NEW_JOB_COLUMNS}) OVERRIDING SYSTEM VALUE VALUES {values} {_SKIP_STORED_KEYS}",  # noqa: S608
            params,
        ).fetchall()
        return {row[0] for row in written}
    tx.execute("CREATE TEMP TABLE new_jobs (id INTEGER, cluster TEXT, name TEXT, jobspec TEXT, "
               "command TEXT, state TEXT, t DOUBLE PRECISION, candidates TEXT, submit_key TEXT, placement TEXT, "
               "batch_id TEXT, owner TEXT, grp TEXT, nodes INTEGER, priority INTEGER) ON COMMIT DROP")
    tx.copy_rows("new_jobs", rows)
    return {row[0] for row in tx.all(
        f"INSERT INTO jobs ({NEW_JOB_COLUMNS}) OVERRIDING SYSTEM VALUE "  # noqa: S608 - constants only
        "SELECT id, cluster, name, jobspec, command, state, t, t, candidates, submit_key, placement, "
        f"batch_id, owner, grp, nodes, priority FROM new_jobs ORDER BY id {_SKIP_STORED_KEYS}"
    )}


class PostgresStore(SQLStore):
    """The Store on PostgreSQL (psycopg 3, a connection pool); safe for several processes at once.

    ``url`` is a libpq URL. ``pool_size`` caps the pooled connections (give it
    the number of worker threads); ``timeout`` is how long a call waits for a
    connection before it fails with Unavailable; ``connect_timeout`` bounds
    each connection attempt.
    """

    shared = True
    ROW_LOCK = " FOR UPDATE"
    KEY_LOCK = " FOR NO KEY UPDATE"  # the row stays, so inserts referencing it need not wait
    NO_LIMIT = None

    def __init__(
        self,
        url: str,
        pool_size: int = 16,
        timeout: float = 3.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self.url = url
        # Keepalives and a TCP user timeout bound how long a call can hang on a silent network.
        self._connect_kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": max(1, int(connect_timeout)),
            "keepalives": 1,
            "keepalives_idle": 5,
            "keepalives_interval": 2,
            "keepalives_count": 3,
            "tcp_user_timeout": 10_000,
        }
        self._timeout = timeout
        self._closed = threading.Event()
        self._listener: threading.Thread | None = None
        self._ping_lock = threading.Lock()
        self._ping_conn: psycopg.Connection | None = None
        try:
            self._migrate()
        except psycopg.OperationalError as exc:
            raise Unavailable(f"cannot reach the PostgreSQL store {redact(url)}: {_reason(exc)}") from None
        self._pool = ConnectionPool(
            url,
            kwargs=self._connect_kwargs,
            min_size=1,
            max_size=max(2, pool_size),
            timeout=timeout,
            reconnect_timeout=max(2.0, timeout),
            name="rainbow",
            open=True,
        )

    # -- plumbing ---------------------------------------------------------
    def _migrate(self) -> None:
        with psycopg.connect(self.url, **self._connect_kwargs) as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                conn.execute("INSERT INTO schema_version (version) VALUES (0)")
                version = 0
            else:
                version = row[0]
            if version > len(POSTGRES_MIGRATIONS):
                log.warning("the database schema (version %d) is newer than this server knows (%d)",
                            version, len(POSTGRES_MIGRATIONS))
            for number, statements in enumerate(POSTGRES_MIGRATIONS[version:], start=version + 1):
                for statement in statements:
                    conn.execute(statement)
                conn.execute("UPDATE schema_version SET version = %s", (number,))
                log.info("PostgreSQL schema migrated to version %d", number)

    def schema_version(self) -> int:
        return self._read("SELECT version FROM schema_version")[0][0]

    @staticmethod
    def _in(column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return f"{column} = ANY(%s)", [list(values)]

    def _transaction(self, body: Callable[[_Tx], T]) -> tuple[T, list[JobEvent]]:
        """Run ``body`` in one transaction; return its result and the events it wrote.

        Deadlocks and connections lost before the commit are retried on a fresh
        connection; an unreachable database raises Unavailable.
        """
        for attempt in range(1, _RETRY_ATTEMPTS + 1):
            committing = False
            try:
                with self._pool.connection(timeout=self._timeout) as conn:
                    with conn.transaction(), conn.cursor() as cursor:
                        tx = _Tx(cursor)
                        result = body(tx)
                        events = tx.finish()
                        committing = True
                    return result, events
            except PoolTimeout as exc:
                raise Unavailable(f"the database is unreachable: {exc}") from None
            except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure) as exc:
                if attempt == _RETRY_ATTEMPTS:
                    raise Unavailable(f"the database is too busy: {_reason(exc)}") from None
                log.info("transaction retried after %s", type(exc).__name__)
            except psycopg.OperationalError as exc:
                if committing:
                    raise Unavailable(
                        f"the database connection was lost while committing; the outcome is unknown: {_reason(exc)}"
                    ) from None
                if attempt == _RETRY_ATTEMPTS:
                    raise Unavailable(f"the database is unreachable: {_reason(exc)}") from None
                self._pool.check()
        raise AssertionError("unreachable")

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """One statement in autocommit mode (a consistent snapshot of its own)."""
        for attempt in range(1, _RETRY_ATTEMPTS + 1):
            try:
                with self._pool.connection(timeout=self._timeout) as conn:
                    rows = conn.execute(sql, [_param(p) for p in params]).fetchall()
                return [_row(r) for r in rows]
            except PoolTimeout as exc:
                raise Unavailable(f"the database is unreachable: {exc}") from None
            except psycopg.OperationalError as exc:
                if attempt == _RETRY_ATTEMPTS:
                    raise Unavailable(f"the database is unreachable: {_reason(exc)}") from None
                self._pool.check()
        raise AssertionError("unreachable")

    def ping(self) -> None:
        """A round trip on a connection of its own (a busy pool does not make the store look down)."""
        with self._ping_lock:
            try:
                if self._ping_conn is None or self._ping_conn.closed:
                    self._ping_conn = psycopg.connect(self.url, **self._connect_kwargs)
                self._ping_conn.execute("SELECT 1")
            except psycopg.Error as exc:
                if self._ping_conn is not None:
                    self._ping_conn.close()
                    self._ping_conn = None
                raise Unavailable(f"the database is unreachable: {_reason(exc)}") from None

    def watch_clusters(self, callback: Callable[[str | None], None]) -> None:
        """Call ``callback(name)`` for each cluster changed by any replica; ``None``: reload all.

        A dedicated connection LISTENs on ``rainbow_clusters``. Notifications
        are lost while it is disconnected, so after every (re)connection the
        callback gets ``None``; the first call comes right after it starts.
        """
        if self._listener is not None:
            raise RuntimeError("watch_clusters was already called")
        self._listener = threading.Thread(
            target=self._listen, args=(callback,), name="rainbow-cluster-listener", daemon=True
        )
        self._listener.start()

    def _listen(self, callback: Callable[[str | None], None]) -> None:
        delay = 0.1
        while not self._closed.is_set():
            try:
                with psycopg.connect(self.url, **self._connect_kwargs) as conn:
                    conn.execute(f"LISTEN {CLUSTER_CHANNEL}")
                    delay = 0.1
                    resync = True
                    while not self._closed.is_set():
                        names: dict[str | None, None] = {}
                        if resync:
                            names[None] = None
                        for notice in conn.notifies(timeout=0.2):
                            names[decode_text(notice.payload) or None] = None
                        resync = not _deliver(callback, names if None not in names else {None: None})
            except psycopg.Error as exc:
                if not self._closed.is_set():
                    log.warning("cluster change listener lost its connection (%s); reconnecting", _reason(exc))
            self._closed.wait(delay)
            delay = min(delay * 2, 1.0)

    def close(self) -> None:
        self._closed.set()
        if self._listener is not None:
            self._listener.join(5)
        with self._ping_lock:
            if self._ping_conn is not None:
                self._ping_conn.close()
                self._ping_conn = None
        self._pool.close(timeout=5)

    # -- clusters ---------------------------------------------------------
    def cluster_versions(self, names: Sequence[str] | None = None) -> dict[str, tuple[float, int, float]]:
        if names is None:
            rows = self._read("SELECT name, created, version, updated FROM clusters")
        else:
            rows = self._read("SELECT name, created, version, updated FROM clusters WHERE name = ANY(%s)",
                              (list(names),))
        return {name: (created, version, updated) for name, created, version, updated in rows}

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
        def insert_job(tx: _Tx) -> JobRecord:
            # ON CONFLICT: two replicas given the same key at once store it once (the loser waits, then reads).
            row = tx.one(
                "INSERT INTO jobs (cluster, name, jobspec, command, state, created, updated, candidates, submit_key, "
                'placement, "user", grp, nodes, priority) VALUES (%s, %s, %s, %s, \'assigned\', %s, %s, %s, %s, %s, '
                "%s, %s, %s, %s) ON CONFLICT (submit_key) WHERE submit_key IS NOT NULL DO NOTHING RETURNING id",
                (cluster, name, jobspec, command, now, now, json.dumps(list(candidates)), key, placement, user,
                 group, nodes, priority),
            )
            if row is None:
                return job_from_row(tx.one(f"SELECT {JOB_COLUMNS} FROM jobs WHERE submit_key = %s", (key,)))  # noqa: S608
            tx.log(row[0], cluster, name, JobState.ASSIGNED, now)
            return JobRecord(
                row[0], cluster, name, jobspec, command, JobState.ASSIGNED, now, now, candidates=tuple(candidates),
                user=user, group=group, nodes=nodes, priority=priority,
            )

        job, events = self._transaction(insert_job)
        return job, events[0] if events else None

    def add_jobs(self, jobs: Sequence[NewJob]) -> list[tuple[JobRecord, JobEvent | None] | Exception]:
        """The jobs in one transaction (``add_batch``: one commit for all that the server's writer gathered);
        if that fails, each job in a transaction of its own, so that a bad job (its cluster was just
        deleted) fails alone."""
        if len(jobs) > 1:
            try:
                return list(self.add_batch(jobs))
            except Exception as exc:
                log.debug("writing %d jobs together failed (%s); writing each alone", len(jobs), exc)
        outcomes: list[tuple[JobRecord, JobEvent | None] | Exception] = []
        for job in jobs:
            try:
                outcomes.append(self.add_batch([job])[0])
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    def add_batch(self, jobs: Sequence[NewJob]) -> list[tuple[JobRecord, JobEvent | None]]:
        def insert_jobs(tx: _Tx) -> list[tuple[JobRecord, bool]]:
            """Jobs whose key is stored are read; the others get ids from the identity's sequence and are
            written by ``_insert_new_jobs``, which skips a key another replica stored meanwhile."""
            keys = list(dict.fromkeys(new.key for new in jobs if new.key is not None))
            known: dict[str, JobRecord] = {}
            if keys:
                rows = tx.all(f"SELECT {JOB_COLUMNS}, submit_key FROM jobs WHERE submit_key = ANY(%s)", (keys,))  # noqa: S608
                known = {row[-1]: job_from_row(row) for row in rows}
            fresh: list[int] = []
            claimed: set[str] = set()
            for index, new in enumerate(jobs):
                if new.key is not None:
                    if new.key in known or new.key in claimed:
                        continue
                    claimed.add(new.key)
                fresh.append(index)
            ids: dict[int, int] = {}
            inserted: set[int] = set()
            if fresh:
                drawn = tx.all("SELECT nextval(pg_get_serial_sequence('jobs', 'id')) FROM generate_series(1, %s)",
                               (len(fresh),))
                ids = {index: row[0] for index, row in zip(fresh, drawn, strict=True)}
                listed: dict[tuple[str, ...], str] = {}
                rows = []
                for index in fresh:
                    new = jobs[index]
                    candidates = listed.get(new.candidates)
                    if candidates is None:
                        candidates = listed[new.candidates] = encode_text(json.dumps(list(new.candidates)))
                    rows.append((ids[index], encode_text(new.cluster), encode_text(new.name), encode_text(new.jobspec),
                                 encode_text(new.command), new_job_state(new)[0].value, new.now, candidates,
                                 _text_or_none(new.key), _text_or_none(new.placement), _text_or_none(new.batch),
                                 encode_text(new.user), encode_text(new.group), new.nodes, new.priority))
                inserted = _insert_new_jobs(tx, rows)
            stored: list[tuple[JobRecord, bool]] = []
            for index, new in enumerate(jobs):
                job_id = ids.get(index)
                if job_id is not None and job_id in inserted:
                    state, message = new_job_state(new)
                    tx.log(job_id, new.cluster, new.name, state, new.now, message)
                    job = JobRecord(job_id, new.cluster, new.name, new.jobspec, new.command, state,
                                    new.now, new.now, candidates=new.candidates, user=new.user, group=new.group,
                                    nodes=new.nodes, priority=new.priority)
                    if new.key is not None:
                        known[new.key] = job
                    stored.append((job, True))
                    continue
                if new.key not in known:  # stored by another replica after the first read
                    row = tx.one(f"SELECT {JOB_COLUMNS} FROM jobs WHERE submit_key = %s", (new.key,))  # noqa: S608
                    known[new.key] = job_from_row(row)
                stored.append((known[new.key], False))
            return stored

        stored, events = self._transaction(insert_jobs)
        logged = iter(events)
        return [(job, next(logged) if fresh else None) for job, fresh in stored]

    def lease_jobs(
        self, cluster: str, owner: str, max_jobs: int, lease_seconds: float, now: float, window: int = 0,
        order: LeaseOrder | None = None,
    ) -> tuple[list[JobRecord], list[JobEvent]]:
        expires = now + lease_seconds

        def lease(tx: _Tx) -> list[JobRecord]:
            tx.execute("UPDATE clusters SET last_seen = %s WHERE name = %s", (now, cluster))
            limit = max_jobs if max_jobs >= 1 else None
            if window > 0:
                live = tx.one(
                    "SELECT COUNT(*) FROM jobs WHERE cluster = %s AND state = 'leased' AND lease_owner = %s "
                    "AND lease_expires > %s", (cluster, owner, now),
                )[0]
                if live >= window:
                    return []
                limit = window - live if limit is None else min(limit, window - live)
            if order is not None:
                rows = _ordered(tx, cluster, now, -1 if limit is None else limit, order)
            else:
                rows = tx.all(
                    f"SELECT {JOB_COLUMNS} FROM jobs WHERE cluster = %s AND {WAITING} "  # noqa: S608 - constants
                    "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                    (cluster, now, limit),
                )
            jobs = [job_from_row(row) for row in rows]
            cancelled = [job for job in jobs if job.cancel_requested]
            leased = [job for job in jobs if not job.cancel_requested]
            if cancelled:
                tx.execute(
                    "UPDATE jobs SET state = 'cancelled', updated = %s, lease_expires = NULL WHERE id = ANY(%s)",
                    (now, [job.id for job in cancelled]),
                )
            if leased:
                tx.execute(
                    "UPDATE jobs SET state = 'leased', lease_owner = %s, lease_expires = %s, updated = %s, "
                    "lease_token = lease_token + 1 WHERE id = ANY(%s)",
                    (owner, expires, now, [job.id for job in leased]),
                )
            for job in jobs:
                if job.cancel_requested:
                    tx.log(job.id, cluster, job.name, JobState.CANCELLED, now, job.message or "")
                else:
                    tx.log(job.id, cluster, job.name, JobState.LEASED, now, f"leased to {owner}")
            return [
                JobRecord(**{**job.__dict__, "state": JobState.LEASED, "lease_owner": owner,
                             "lease_expires": expires, "updated": now, "lease_token": job.lease_token + 1})
                for job in leased
            ]

        return self._transaction(lease)

    def waiting_jobs(self, cluster: str, now: float) -> list[JobRecord]:
        rows = self._read(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE cluster = %s AND {WAITING} ORDER BY id",  # noqa: S608
            (cluster, now),
        )
        return [job_from_row(row) for row in rows]

    def last_event_seq(self) -> int:
        return self._read("SELECT seq FROM event_counter")[0][0]

    def job_counts(self) -> dict[JobState, int]:
        rows = self._read("SELECT state, COUNT(*) FROM jobs GROUP BY state")
        counts = dict.fromkeys(JobState, 0)
        counts.update({JobState(state): count for state, count in rows})
        return counts


def _deliver(callback: Callable[[str | None], None], names: Iterable[str | None]) -> bool:
    """Hand changes to the callback; False when it failed (the caller then asks for a full reload)."""
    try:
        for name in names:
            callback(name)
    except Exception:
        log.exception("refreshing clusters after a change failed; reloading all on the next round")
        return False
    return True


def _reason(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


_LIGHT = 'id, "user", grp, priority, nodes, cancel_requested'  # what a lease order sees of a waiting job


def _candidates(tx: _Tx, cluster: str, now: float, limit: int) -> list[tuple]:
    """What a lease order chooses from: of the assigned jobs, each owner's first ``limit`` by priority and id
    (all when < 1), from the (cluster, state, owner, priority, id) index; and every leased job whose lease ran
    out."""
    expired = tx.all(
        f"SELECT {_LIGHT} FROM jobs WHERE cluster = %s AND state = 'leased' AND lease_expires <= %s",  # noqa: S608
        (cluster, now),
    )
    if limit < 1:
        return tx.all(f"SELECT {_LIGHT} FROM jobs WHERE cluster = %s AND state = 'assigned'",  # noqa: S608
                      (cluster,)) + expired
    return tx.all(
        f"SELECT {_LIGHT} FROM (SELECT DISTINCT \"user\" AS u, grp AS g FROM jobs "  # noqa: S608 - constants
        "WHERE cluster = %s AND state = 'assigned') owners CROSS JOIN LATERAL (SELECT * FROM jobs "
        "WHERE cluster = %s AND state = 'assigned' AND \"user\" = owners.u AND grp = owners.g "
        "ORDER BY priority DESC, id LIMIT %s) best",
        (cluster, cluster, limit),
    ) + expired


def _ordered(tx: _Tx, cluster: str, now: float, limit: int, order: LeaseOrder) -> list[tuple]:
    """The waiting jobs ``order`` picks, locked, in its order, after those whose cancel was requested.

    The candidates are read without locks; the picked ones are then locked with ``SKIP LOCKED`` (a job
    another replica leased meanwhile is left out: this hand-out is shorter by it).
    """
    light = _candidates(tx, cluster, now, limit)
    cancelled = [row[0] for row in light if row[5]]
    waiting = [Waiting(row[0], row[1], row[2], row[3], row[4]) for row in light if not row[5]]
    held = [Held(*row) for row in tx.all(
        f'SELECT "user", grp, cluster, COUNT(*), SUM(nodes) FROM jobs WHERE {HELD} GROUP BY "user", grp, cluster',  # noqa: S608
        (now,),
    )]
    ids = [*cancelled, *order(waiting, held, limit)] if waiting else cancelled
    if not ids:
        return []
    rows = {row[0]: row for row in tx.all(
        f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ANY(%s) AND {WAITING} FOR UPDATE SKIP LOCKED",  # noqa: S608
        (ids, now),
    )}
    return [rows[job_id] for job_id in ids if job_id in rows]
