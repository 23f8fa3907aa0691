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
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool, PoolTimeout

from rainbow.errors import Aborted, Unavailable
from rainbow.lifecycle import FINAL_STATES, JobState, can_report, fence
from rainbow.store import redact
from rainbow.store.base import ClusterRecord, HeldJob, JobEvent, JobPage, JobRecord, Store
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
from rainbow.store.schema import POSTGRES_MIGRATIONS

log = logging.getLogger("rainbow.store")

T = TypeVar("T")

CLUSTER_CHANNEL = "rainbow_clusters"
# pg_advisory_xact_lock key that serialises schema migrations of replicas starting together.
MIGRATION_LOCK = 0x5241494E424F57  # "RAINBOW"
# NOTIFY payloads are limited to 8000 bytes; a longer name asks listeners to reload everything.
_MAX_PAYLOAD = 7000

_WAITING = "(state = 'assigned' OR (state = 'leased' AND lease_expires <= %s))"
_RETRY_ATTEMPTS = 4


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
        self.cursor.executemany(
            "INSERT INTO job_events (seq, job_id, cluster, name, state, time, message) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [(e.seq, e.job_id, encode_text(e.cluster), encode_text(e.name), e.state.value, e.time,
              encode_text(e.message)) for e in events],
        )
        return events


class PostgresStore(Store):
    """The Store on PostgreSQL (psycopg 3, a connection pool); safe for several processes at once.

    ``url`` is a libpq URL. ``pool_size`` caps the pooled connections (give it
    the number of worker threads); ``timeout`` is how long a call waits for a
    connection before it fails with Unavailable; ``connect_timeout`` bounds
    each connection attempt.
    """

    shared = True

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

    def _write(self, body: Callable[[_Tx], T]) -> tuple[T, list[JobEvent]]:
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

    # -- metadata ---------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM meta WHERE key = %s", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        self._write(lambda tx: tx.execute(
            "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        ))

    def add_meta(self, key: str, value: str) -> bool:
        return self._write(lambda tx: tx.one(
            "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING RETURNING key", (key, value)
        ))[0] is not None

    def remove_meta(self, key: str, value: str) -> bool:
        return self._write(lambda tx: tx.one(
            "DELETE FROM meta WHERE key = %s AND value = %s RETURNING key", (key, value)
        ))[0] is not None

    # -- clusters ---------------------------------------------------------
    def add_cluster(self, name: str, nodes: str, secret_hash: str, token_hash: str, now: float) -> bool:
        def body(tx: _Tx) -> bool:
            added = tx.one(
                "INSERT INTO clusters (name, secret_hash, token_hash, nodes, state, created, updated, version, "
                "last_seen, reachable) VALUES (%s, %s, %s, %s, '{}', %s, %s, 1, %s, TRUE) "
                "ON CONFLICT (name) DO NOTHING RETURNING name",
                (name, secret_hash, token_hash, nodes, now, now, now),
            )
            if added is not None:
                tx.notify(name)
            return added is not None

        return self._write(body)[0]

    def get_cluster(self, name: str) -> ClusterRecord | None:
        rows = self._read(f"SELECT {CLUSTER_COLUMNS} FROM clusters WHERE name = %s", (name,))  # noqa: S608
        return cluster_from_row(rows[0]) if rows else None

    def list_clusters(self) -> list[ClusterRecord]:
        rows = self._read(f"SELECT {CLUSTER_COLUMNS} FROM clusters ORDER BY name")  # noqa: S608
        return [cluster_from_row(row) for row in rows]

    def cluster_versions(self, names: Sequence[str] | None = None) -> dict[str, tuple[float, int, float]]:
        if names is None:
            rows = self._read("SELECT name, created, version, updated FROM clusters")
        else:
            rows = self._read("SELECT name, created, version, updated FROM clusters WHERE name = ANY(%s)",
                              (list(names),))
        return {name: (created, version, updated) for name, created, version, updated in rows}

    def get_nodes(self, name: str) -> str | None:
        rows = self._read("SELECT nodes FROM clusters WHERE name = %s", (name,))
        return rows[0][0] if rows else None

    def replace_nodes(self, name: str, nodes: str, now: float) -> None:
        def body(tx: _Tx) -> None:
            tx.execute(
                "UPDATE clusters SET nodes = %s, version = version + 1, updated = %s WHERE name = %s",
                (nodes, now, name),
            )
            tx.notify(name)

        self._write(body)

    def delete_cluster(self, name: str) -> bool:
        def body(tx: _Tx) -> bool:
            # The cluster row first: every writer locks a cluster before its jobs.
            if tx.one("SELECT name FROM clusters WHERE name = %s FOR UPDATE", (name,)) is None:
                return False
            tx.execute("DELETE FROM job_events WHERE cluster = %s", (name,))
            tx.execute("DELETE FROM jobs WHERE cluster = %s", (name,))
            tx.execute("DELETE FROM subsystems WHERE cluster = %s", (name,))
            tx.execute("DELETE FROM clusters WHERE name = %s", (name,))
            tx.notify(name)
            return True

        return self._write(body)[0]

    def put_subsystem(self, cluster: str, name: str, nodes: str, now: float) -> None:
        def body(tx: _Tx) -> None:
            tx.execute(
                "INSERT INTO subsystems (cluster, name, nodes) VALUES (%s, %s, %s) "
                "ON CONFLICT (cluster, name) DO UPDATE SET nodes = excluded.nodes",
                (cluster, name, nodes),
            )
            tx.execute("UPDATE clusters SET version = version + 1, updated = %s WHERE name = %s", (now, cluster))
            tx.notify(cluster)

        self._write(body)

    def delete_subsystem(self, cluster: str, name: str, now: float) -> bool:
        def body(tx: _Tx) -> bool:
            gone = tx.one("DELETE FROM subsystems WHERE cluster = %s AND name = %s RETURNING name", (cluster, name))
            if gone is not None:
                tx.execute(
                    "UPDATE clusters SET version = version + 1, updated = %s WHERE name = %s", (now, cluster)
                )
                tx.notify(cluster)
            return gone is not None

        return self._write(body)[0]

    def list_subsystems(self, cluster: str) -> dict[str, str]:
        rows = self._read("SELECT name, nodes FROM subsystems WHERE cluster = %s ORDER BY name", (cluster,))
        return dict(rows)

    def merge_state(self, cluster: str, updates: Mapping[str, Any], now: float) -> dict[str, Any]:
        def body(tx: _Tx) -> dict[str, Any]:
            row = tx.one("SELECT state FROM clusters WHERE name = %s FOR NO KEY UPDATE", (cluster,))
            if row is None:
                raise KeyError(cluster)
            state = json.loads(row[0])
            state.update(updates)
            tx.execute(
                "UPDATE clusters SET state = %s, updated = %s, last_seen = %s WHERE name = %s",
                (json.dumps(state), now, now, cluster),
            )
            tx.notify(cluster)
            return state

        return self._write(body)[0]

    # -- reachability -----------------------------------------------------
    def heartbeat(self, cluster: str, held: Sequence[HeldJob], now: float) -> tuple[list[int], list[JobEvent]]:
        inventory = {entry.job_id: entry for entry in held}

        def body(tx: _Tx) -> list[int]:
            row = tx.one("SELECT reachable FROM clusters WHERE name = %s FOR NO KEY UPDATE", (cluster,))
            if row is None:
                raise KeyError(cluster)
            tx.execute("UPDATE clusters SET last_seen = %s, reachable = TRUE WHERE name = %s", (now, cluster))
            if not row[0]:
                tx.notify(cluster)
            unknown = tx.all(
                "SELECT id, name FROM jobs WHERE cluster = %s AND state = 'unknown' ORDER BY id FOR UPDATE",
                (cluster,),
            )
            for job_id, name in unknown:
                entry = inventory.get(job_id)
                if entry is None:
                    message = "the cluster no longer holds this job after it came back"
                    new_state = JobState.FAILED
                else:
                    new_state = entry.state or JobState.ACCEPTED
                    message = "reconciled from the cluster's inventory"
                tx.execute(
                    "UPDATE jobs SET state = %s, updated = %s, message = %s, local_id = COALESCE(%s, local_id) "
                    "WHERE id = %s",
                    (new_state.value, now, message, entry.local_id if entry else None, job_id),
                )
                tx.log(job_id, cluster, name, new_state, now, message)
            return [
                r[0] for r in tx.all(
                    "SELECT id FROM jobs WHERE cluster = %s AND cancel_requested AND NOT (state = ANY(%s)) "
                    "ORDER BY id",
                    (cluster, list(FINAL)),
                )
            ]

        return self._write(body)

    def mark_unreachable(self, cutoff: float, now: float) -> tuple[list[str], list[JobEvent]]:
        def body(tx: _Tx) -> list[str]:
            # FOR NO KEY UPDATE: a replica doing the same waits, then sees the clusters already marked.
            silent = [
                r[0] for r in tx.all(
                    "SELECT name FROM clusters WHERE reachable AND last_seen IS NOT NULL AND last_seen < %s "
                    "ORDER BY name FOR NO KEY UPDATE",
                    (cutoff,),
                )
            ]
            message = "cluster stopped reporting"
            for cluster in silent:
                tx.execute("UPDATE clusters SET reachable = FALSE WHERE name = %s", (cluster,))
                tx.notify(cluster)
                rows = tx.all(
                    "UPDATE jobs SET state = 'unknown', updated = %s, message = %s "
                    "WHERE cluster = %s AND state = ANY(%s) RETURNING id, name",
                    (now, message, cluster, list(ON_CLUSTER)),
                )
                for job_id, name in sorted(rows):
                    tx.log(job_id, cluster, name, JobState.UNKNOWN, now, message)
            return silent

        return self._write(body)

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
        def body(tx: _Tx) -> JobRecord:
            # ON CONFLICT: two replicas given the same key at once store it once (the loser waits, then reads).
            row = tx.one(
                "INSERT INTO jobs (cluster, name, jobspec, command, state, created, updated, candidates, submit_key, "
                "placement) VALUES (%s, %s, %s, %s, 'assigned', %s, %s, %s, %s, %s) "
                "ON CONFLICT (submit_key) WHERE submit_key IS NOT NULL DO NOTHING RETURNING id",
                (cluster, name, jobspec, command, now, now, json.dumps(list(candidates)), key, placement),
            )
            if row is None:
                return job_from_row(tx.one(f"SELECT {JOB_COLUMNS} FROM jobs WHERE submit_key = %s", (key,)))  # noqa: S608
            tx.log(row[0], cluster, name, JobState.ASSIGNED, now)
            return JobRecord(
                row[0], cluster, name, jobspec, command, JobState.ASSIGNED, now, now, candidates=tuple(candidates)
            )

        job, events = self._write(body)
        return job, events[0] if events else None

    def job_by_key(self, key: str) -> JobRecord | None:
        rows = self._read(f"SELECT {JOB_COLUMNS} FROM jobs WHERE submit_key = %s", (key,))  # noqa: S608
        return job_from_row(rows[0]) if rows else None

    def lease_jobs(
        self, cluster: str, owner: str, max_jobs: int, lease_seconds: float, now: float, window: int = 0
    ) -> tuple[list[JobRecord], list[JobEvent]]:
        expires = now + lease_seconds

        def body(tx: _Tx) -> list[JobRecord]:
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
            rows = tx.all(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE cluster = %s AND {_WAITING} "  # noqa: S608 - constants
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

        return self._write(body)

    def accept_jobs(
        self, cluster: str, ids: Sequence[int], now: float, owner: str = "", tokens: Mapping[int, int] | None = None
    ) -> tuple[list[int], list[JobEvent], dict[int, str]]:
        if not ids:
            return [], [], {}
        wanted = list(dict.fromkeys(ids))
        fenced: dict[int, str] = {}

        def body(tx: _Tx) -> list[int]:
            tx.execute("UPDATE clusters SET last_seen = %s WHERE name = %s", (now, cluster))
            rows = {row[0]: row for row in tx.all(
                f"SELECT {HOLDER_COLUMNS} FROM jobs WHERE id = ANY(%s) ORDER BY id FOR UPDATE",  # noqa: S608
                (wanted,),
            )}
            moving, refused = accept_plan(cluster, wanted, rows, owner, tokens or {})
            if refused:
                fenced.update(refused)
                return []
            if moving:
                tx.execute(
                    "UPDATE jobs SET state = 'accepted', accepted = %s, updated = %s, lease_expires = NULL, "
                    "lease_owner = COALESCE(NULLIF(%s, ''), lease_owner) WHERE id = ANY(%s)",
                    (now, now, owner, moving),
                )
            for job_id in moving:
                tx.log(job_id, cluster, rows[job_id][1], JobState.ACCEPTED, now)
            return moving

        moved, events = self._write(body)
        return moved, events, fenced

    def renew_leases(
        self, cluster: str, owner: str, held: Mapping[int, int] | None, expires: float, now: float
    ) -> list[int]:
        def body(tx: _Tx) -> list[int]:
            if held is None:
                tx.execute(
                    "UPDATE jobs SET lease_expires = %s WHERE cluster = %s AND state = 'leased' AND lease_owner = %s",
                    (expires, cluster, owner),
                )
                return []
            rows = {row[0]: row for row in tx.all(
                f"SELECT {HOLDER_COLUMNS} FROM jobs WHERE id = ANY(%s) ORDER BY id FOR UPDATE",  # noqa: S608
                (list(held),),
            )}
            renew, revoked = renew_plan(cluster, held, rows, owner)
            if renew:
                tx.execute(
                    "UPDATE jobs SET lease_expires = %s, lease_owner = %s WHERE id = ANY(%s) AND state = 'leased'",
                    (expires, owner, renew),
                )
            return revoked

        return self._write(body)[0]

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
        def body(tx: _Tx) -> JobRecord | None:
            tx.execute("UPDATE clusters SET last_seen = %s WHERE name = %s", (now, cluster))
            row = tx.one(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = %s AND cluster = %s FOR UPDATE",  # noqa: S608
                (job_id, cluster),
            )
            if row is None:
                return None
            job = job_from_row(row)
            reason = fence(job.state, job.lease_owner, job.lease_token, owner, token)
            if reason is not None:
                raise Aborted(f"job {job_id}: {reason}; drop this copy", field="jobid")
            if not can_report(job.state, state):
                return job
            changes = report_changes(job, state, now, local_id, exit_code, message, output)
            tx.execute(
                "UPDATE jobs SET state = %s, updated = %s, local_id = %s, exit_code = %s, message = %s, "
                "accepted = %s, output = %s, lease_expires = NULL WHERE id = %s",
                (state.value, now, changes["local_id"], changes["exit_code"], changes["message"],
                 changes["accepted"], changes["output"], job_id),
            )
            if state != job.state:
                tx.log(job_id, cluster, job.name, state, now, message or "")
            return JobRecord(**{**job.__dict__, **changes})

        return self._write(body)

    def request_cancel(self, job_id: int, reason: str, now: float) -> tuple[JobRecord | None, list[JobEvent]]:
        def body(tx: _Tx) -> JobRecord | None:
            row = tx.one(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = %s FOR UPDATE", (job_id,))  # noqa: S608
            if row is None:
                return None
            job = job_from_row(row)
            if job.state in FINAL_STATES:
                return job
            if job.state == JobState.ASSIGNED or (
                job.state == JobState.LEASED and job.lease_expires is not None and job.lease_expires <= now
            ):
                tx.execute(
                    "UPDATE jobs SET state = 'cancelled', updated = %s, message = %s, cancel_requested = TRUE, "
                    "lease_expires = NULL WHERE id = %s",
                    (now, reason, job_id),
                )
                tx.log(job_id, job.cluster, job.name, JobState.CANCELLED, now, reason)
                return JobRecord(**{**job.__dict__, "state": JobState.CANCELLED, "updated": now,
                                    "message": reason, "cancel_requested": True})
            tx.execute(
                "UPDATE jobs SET cancel_requested = TRUE, message = %s, updated = %s WHERE id = %s",
                (reason, now, job_id),
            )
            return JobRecord(**{**job.__dict__, "cancel_requested": True, "message": reason, "updated": now})

        return self._write(body)

    def waiting_jobs(self, cluster: str, now: float) -> list[JobRecord]:
        rows = self._read(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE cluster = %s AND {_WAITING} ORDER BY id",  # noqa: S608
            (cluster, now),
        )
        return [job_from_row(row) for row in rows]

    def reassign_job(
        self, job_id: int, from_cluster: str, to_cluster: str, now: float, message: str
    ) -> JobEvent | None:
        def body(tx: _Tx) -> None:
            row = tx.one(
                "UPDATE jobs SET cluster = %s, state = 'assigned', lease_owner = NULL, lease_expires = NULL, "  # noqa: S608
                f"updated = %s, message = %s WHERE id = %s AND cluster = %s AND NOT cancel_requested AND {_WAITING} "
                "RETURNING name",
                (to_cluster, now, message, job_id, from_cluster, now),
            )
            if row is not None:
                tx.log(job_id, to_cluster, row[0], JobState.ASSIGNED, now, message)

        events = self._write(body)[1]
        return events[0] if events else None

    def get_job(self, job_id: int) -> JobRecord | None:
        rows = self._read(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = %s", (job_id,))  # noqa: S608
        return job_from_row(rows[0]) if rows else None

    def list_jobs(
        self,
        clusters: Sequence[str] | None = None,
        state: JobState | None = None,
        name: str | None = None,
        limit: int = 1000,
    ) -> list[JobRecord]:
        where, params = _filters(clusters, job_id=None)
        if where is None:
            return []
        if state is not None:
            where.append("state = %s")
            params.append(state.value)
        if name:
            where.append("name = %s")
            params.append(name)
        sql = f"SELECT {JOB_COLUMNS} FROM jobs"  # noqa: S608 - only placeholders are interpolated
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT %s"
        params.append(limit if limit > 0 else None)
        return [job_from_row(row) for row in self._read(sql, params)]

    def job_placement(self, job_id: int) -> str | None:
        rows = self._read("SELECT placement FROM jobs WHERE id = %s", (job_id,))
        return rows[0][0] if rows else None

    def page_jobs(self, query: JobPage) -> list[JobRecord]:
        built = page_query(query, "%s")
        if built is None:
            return []
        return [job_from_row(row) for row in self._read(*built)]

    def job_counts_by_cluster(self) -> dict[tuple[str, JobState], int]:
        rows = self._read("SELECT cluster, state, COUNT(*) FROM jobs GROUP BY cluster, state")
        return {(cluster, JobState(state)): count for cluster, state, count in rows}

    def job_history(self, job_id: int) -> list[JobEvent]:
        rows = self._read(
            f"SELECT {EVENT_COLUMNS} FROM job_events WHERE job_id = %s ORDER BY seq", (job_id,)  # noqa: S608
        )
        return [event_from_row(row) for row in rows]

    def events_since(
        self, seq: int, clusters: Sequence[str] | None = None, job_id: int | None = None, limit: int = 1000
    ) -> list[JobEvent]:
        """Events above ``seq`` in order; gap-free for pollers because of how seqs are handed out (module doc)."""
        where, params = _filters(clusters, job_id)
        if where is None:
            return []
        where.append("seq > %s")
        params.append(seq)
        sql = (f"SELECT {EVENT_COLUMNS} FROM job_events WHERE {' AND '.join(where)} "  # noqa: S608
               "ORDER BY seq LIMIT %s")
        params.append(limit)
        return [event_from_row(row) for row in self._read(sql, params)]

    def last_event_seq(self) -> int:
        return self._read("SELECT seq FROM event_counter")[0][0]

    def count_jobs(self, cluster: str | None = None, state: JobState | None = None) -> int:
        rows = self._read(
            "SELECT COUNT(*) FROM jobs WHERE (%s::text IS NULL OR cluster = %s) AND (%s::text IS NULL OR state = %s)",
            (cluster, cluster, state and state.value, state and state.value),
        )
        return rows[0][0]

    def job_counts(self) -> dict[JobState, int]:
        rows = self._read("SELECT state, COUNT(*) FROM jobs GROUP BY state")
        counts = dict.fromkeys(JobState, 0)
        counts.update({JobState(state): count for state, count in rows})
        return counts


def _filters(clusters: Sequence[str] | None, job_id: int | None) -> tuple[list[str] | None, list[Any]]:
    """WHERE terms for an optional cluster list and job id; (None, []) when nothing can match."""
    where: list[str] = []
    params: list[Any] = []
    if clusters is not None:
        if not clusters:
            return None, []
        where.append("cluster = ANY(%s)")
        params.append(list(clusters))
    if job_id:
        where.append("job_id = %s")
        params.append(job_id)
    return where, params


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
