"""The statements both SQL backends run alike, written once over a small dialect.

``SQLStore`` holds every method whose SQL is the same on SQLite and PostgreSQL
but for what the backend's ``Transaction`` and three dialect hooks settle:

- statements use the ``%s`` placeholder (SQLite's transaction turns it into ``?``);
- ``ROW_LOCK`` / ``KEY_LOCK`` end a SELECT whose rows the transaction changes
  (PostgreSQL's ``FOR UPDATE`` / ``FOR NO KEY UPDATE``; SQLite locks the whole
  database for a write transaction, so nothing);
- ``_in(column, values)`` tests membership (``IN (...)`` / ``= ANY(array)``);
- ``NO_LIMIT`` is the LIMIT that means none.

A backend provides ``_read`` (one statement outside a transaction) and
``_transaction`` (run a function in one transaction, with events written and
cluster changes announced on commit), and keeps what really differs: adding
and leasing jobs (group commit, ``SKIP LOCKED``), accepts and renewals over many
ids, connections, notifications. The rules of each change are pure functions of
``rows``.

No SQL toolkit: the dialects differ only in the hooks above, the statements
that set the speed (SQLite's group commit of new jobs, PostgreSQL's
``SKIP LOCKED`` leases and event counter) are dialect-specific text a toolkit
would pass through anyway, and building statements per call would add to the
submit path without adding safety (every statement here is parameterised).
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Protocol, TypeVar

from rainbow.errors import Aborted
from rainbow.jgf import digest
from rainbow.lifecycle import FINAL_STATES, REJECTABLE, JobState, fence
from rainbow.store.base import ClusterRecord, HeldJob, JobEvent, JobPage, JobRecord, Store, StoredGraph
from rainbow.store.rows import (
    CLUSTER_COLUMNS,
    EVENT_COLUMNS,
    FINAL,
    HOLDER_COLUMNS,
    JOB_COLUMNS,
    ON_CLUSTER,
    accept_plan,
    cancels_now,
    cluster_from_row,
    event_from_row,
    job_from_row,
    page_query,
    reconciled,
    rejection_changes,
    rejections_json,
    renew_plan,
    report_outcome,
)

T = TypeVar("T")

# Jobs nobody holds: assigned, or leased with the lease run out (one parameter: now).
WAITING = "(state = 'assigned' OR (state = 'leased' AND lease_expires <= %s))"


class Transaction(Protocol):
    """One write transaction of a backend."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple | None: ...

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]: ...

    def log(self, job_id: int, cluster: str, name: str, state: JobState, now: float, message: str = "") -> None:
        """Write a job event when the transaction ends (numbered in the order of these calls)."""

    def notify(self, cluster: str) -> None:
        """Tell the other servers, on commit, that the cluster changed."""


class SQLStore(Store):
    ROW_LOCK: ClassVar[str] = ""
    KEY_LOCK: ClassVar[str] = ""
    NO_LIMIT: ClassVar[int | None] = None

    @abstractmethod
    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Rows of one statement outside a write transaction."""

    @abstractmethod
    def _transaction(self, body: Callable[[Transaction], T]) -> tuple[T, list[JobEvent]]:
        """Run ``body`` in one write transaction; its result and the events it wrote."""

    @staticmethod
    @abstractmethod
    def _in(column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """A WHERE term true when ``column`` is one of ``values`` (not empty), with its parameters."""

    # -- metadata ---------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM meta WHERE key = %s", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        self._transaction(lambda tx: tx.execute(
            "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        ))

    def add_meta(self, key: str, value: str) -> bool:
        return self._transaction(lambda tx: tx.one(
            "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING RETURNING key", (key, value)
        ))[0] is not None

    def remove_meta(self, key: str, value: str) -> bool:
        return self._transaction(lambda tx: tx.one(
            "DELETE FROM meta WHERE key = %s AND value = %s RETURNING key", (key, value)
        ))[0] is not None

    # -- clusters ---------------------------------------------------------
    def add_cluster(self, name: str, nodes: str, secret_hash: str, token_hash: str, now: float) -> bool:
        def insert_cluster(tx: Transaction) -> bool:
            added = tx.one(
                "INSERT INTO clusters (name, secret_hash, token_hash, nodes, state, created, updated, version, "
                "last_seen, reachable) VALUES (%s, %s, %s, %s, '{}', %s, %s, 1, %s, TRUE) "
                "ON CONFLICT (name) DO NOTHING RETURNING name",
                (name, secret_hash, token_hash, nodes, now, now, now),
            )
            if added is not None:
                tx.execute("INSERT INTO cluster_graphs (cluster, nodes_sha256) VALUES (%s, %s)", (name, digest(nodes)))
                tx.notify(name)
            return added is not None

        return self._transaction(insert_cluster)[0]

    def get_cluster(self, name: str) -> ClusterRecord | None:
        rows = self._read(f"SELECT {CLUSTER_COLUMNS} FROM clusters WHERE name = %s", (name,))  # noqa: S608
        return cluster_from_row(rows[0]) if rows else None

    def list_clusters(self) -> list[ClusterRecord]:
        rows = self._read(f"SELECT {CLUSTER_COLUMNS} FROM clusters ORDER BY name")  # noqa: S608
        return [cluster_from_row(row) for row in rows]

    def get_nodes(self, name: str) -> str | None:
        rows = self._read("SELECT nodes FROM clusters WHERE name = %s", (name,))
        return rows[0][0] if rows else None

    def replace_nodes(self, name: str, nodes: str, now: float) -> None:
        def replace(tx: Transaction) -> None:
            tx.execute(
                "UPDATE clusters SET nodes = %s, version = version + 1, updated = %s WHERE name = %s",
                (nodes, now, name),
            )
            _set_digest(tx, name, digest(nodes))
            tx.notify(name)

        self._transaction(replace)

    def get_graph(self, name: str) -> StoredGraph | None:
        rows = self._read(
            "SELECT c.name, g.nodes_sha256, g.built_from, g.data FROM clusters c "
            "LEFT JOIN cluster_graphs g ON g.cluster = c.name WHERE c.name = %s",
            (name,),
        )
        if not rows:
            return None
        _, current, built_from, data = rows[0]
        return StoredGraph(current, built_from, bytes(data) if data is not None else None)

    def put_graph(self, name: str, built_from: str, data: bytes) -> bool:
        def put(tx: Transaction) -> bool:
            if tx.one(f"SELECT name FROM clusters WHERE name = %s{self.KEY_LOCK}", (name,)) is None:  # noqa: S608
                return False
            row = tx.one("SELECT nodes_sha256 FROM cluster_graphs WHERE cluster = %s", (name,))
            if row is not None:
                current = row[0]
            else:  # registered before digests were kept: the digest of the JGF as it is now, once
                current = digest(tx.one("SELECT nodes FROM clusters WHERE name = %s", (name,))[0])
                _set_digest(tx, name, current)
            if current != built_from:
                return False
            tx.execute("UPDATE cluster_graphs SET built_from = %s, data = %s WHERE cluster = %s",
                       (built_from, data, name))
            return True

        return self._transaction(put)[0]

    def delete_cluster(self, name: str) -> bool:
        def delete(tx: Transaction) -> bool:
            # The cluster row first: every writer locks a cluster before its jobs.
            if tx.one(f"SELECT name FROM clusters WHERE name = %s{self.ROW_LOCK}", (name,)) is None:  # noqa: S608
                return False
            tx.execute("DELETE FROM job_events WHERE cluster = %s", (name,))
            tx.execute("DELETE FROM jobs WHERE cluster = %s", (name,))
            tx.execute("DELETE FROM subsystems WHERE cluster = %s", (name,))
            tx.execute("DELETE FROM cluster_graphs WHERE cluster = %s", (name,))
            tx.execute("DELETE FROM clusters WHERE name = %s", (name,))
            tx.notify(name)
            return True

        return self._transaction(delete)[0]

    def put_subsystem(self, cluster: str, name: str, nodes: str, now: float) -> None:
        def put(tx: Transaction) -> None:
            tx.execute(
                "INSERT INTO subsystems (cluster, name, nodes) VALUES (%s, %s, %s) "
                "ON CONFLICT (cluster, name) DO UPDATE SET nodes = excluded.nodes",
                (cluster, name, nodes),
            )
            tx.execute("UPDATE clusters SET version = version + 1, updated = %s WHERE name = %s", (now, cluster))
            tx.notify(cluster)

        self._transaction(put)

    def delete_subsystem(self, cluster: str, name: str, now: float) -> bool:
        def delete(tx: Transaction) -> bool:
            gone = tx.one("DELETE FROM subsystems WHERE cluster = %s AND name = %s RETURNING name", (cluster, name))
            if gone is not None:
                tx.execute(
                    "UPDATE clusters SET version = version + 1, updated = %s WHERE name = %s", (now, cluster)
                )
                tx.notify(cluster)
            return gone is not None

        return self._transaction(delete)[0]

    def list_subsystems(self, cluster: str) -> dict[str, str]:
        rows = self._read("SELECT name, nodes FROM subsystems WHERE cluster = %s ORDER BY name", (cluster,))
        return dict(rows)

    def merge_state(self, cluster: str, updates: Mapping[str, Any], now: float) -> dict[str, Any]:
        def merge(tx: Transaction) -> dict[str, Any]:
            row = tx.one(f"SELECT state FROM clusters WHERE name = %s{self.KEY_LOCK}", (cluster,))  # noqa: S608
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

        return self._transaction(merge)[0]

    # -- reachability -----------------------------------------------------
    def heartbeat(self, cluster: str, held: Sequence[HeldJob], now: float) -> tuple[list[int], list[JobEvent]]:
        inventory = {entry.job_id: entry for entry in held}
        final, final_params = self._in("state", FINAL)

        def record_contact(tx: Transaction) -> list[int]:
            row = tx.one(
                f"SELECT reachable FROM clusters WHERE name = %s{self.KEY_LOCK}", (cluster,)  # noqa: S608
            )
            if row is None:
                raise KeyError(cluster)
            tx.execute("UPDATE clusters SET last_seen = %s, reachable = TRUE WHERE name = %s", (now, cluster))
            if not row[0]:
                tx.notify(cluster)
            unknown = tx.all(
                "SELECT id, name FROM jobs WHERE cluster = %s AND state = 'unknown' "  # noqa: S608 - constants
                f"ORDER BY id{self.ROW_LOCK}",
                (cluster,),
            )
            for job_id, name in unknown:
                entry = inventory.get(job_id)
                new_state, message = reconciled(entry)
                tx.execute(
                    "UPDATE jobs SET state = %s, updated = %s, message = %s, local_id = COALESCE(%s, local_id) "
                    "WHERE id = %s",
                    (new_state.value, now, message, entry.local_id if entry else None, job_id),
                )
                tx.log(job_id, cluster, name, new_state, now, message)
            return [
                r[0] for r in tx.all(
                    f"SELECT id FROM jobs WHERE cluster = %s AND cancel_requested AND NOT ({final}) "  # noqa: S608
                    "ORDER BY id",
                    (cluster, *final_params),
                )
            ]

        return self._transaction(record_contact)

    def mark_unreachable(self, cutoff: float, now: float) -> tuple[list[str], list[JobEvent]]:
        on_cluster, on_cluster_params = self._in("state", ON_CLUSTER)

        def mark(tx: Transaction) -> list[str]:
            # Locked: a replica doing the same waits, then sees the clusters already marked.
            silent = [
                r[0] for r in tx.all(
                    "SELECT name FROM clusters WHERE reachable AND last_seen IS NOT NULL "  # noqa: S608 - constants
                    f"AND last_seen < %s ORDER BY name{self.KEY_LOCK}",
                    (cutoff,),
                )
            ]
            message = "cluster stopped reporting"
            for cluster in silent:
                tx.execute("UPDATE clusters SET reachable = FALSE WHERE name = %s", (cluster,))
                tx.notify(cluster)
                rows = tx.all(
                    "UPDATE jobs SET state = 'unknown', updated = %s, message = %s "  # noqa: S608
                    f"WHERE cluster = %s AND {on_cluster} RETURNING id, name",
                    (now, message, cluster, *on_cluster_params),
                )
                for job_id, name in sorted(rows):
                    tx.log(job_id, cluster, name, JobState.UNKNOWN, now, message)
            return silent

        return self._transaction(mark)

    # -- jobs -------------------------------------------------------------
    def job_by_key(self, key: str) -> JobRecord | None:
        rows = self._read(f"SELECT {JOB_COLUMNS} FROM jobs WHERE submit_key = %s", (key,))  # noqa: S608
        return job_from_row(rows[0]) if rows else None

    def accept_jobs(
        self, cluster: str, ids: Sequence[int], now: float, owner: str = "", tokens: Mapping[int, int] | None = None
    ) -> tuple[list[int], list[JobEvent], dict[int, str]]:
        if not ids:
            return [], [], {}
        wanted = list(dict.fromkeys(ids))
        fenced: dict[int, str] = {}

        def accept(tx: Transaction) -> list[int]:
            fenced.clear()  # a retried transaction starts over
            tx.execute("UPDATE clusters SET last_seen = %s WHERE name = %s", (now, cluster))
            rows = self._holders(tx, wanted)
            moving, refused = accept_plan(cluster, wanted, rows, owner, tokens or {})
            if refused:
                fenced.update(refused)
                return []
            if moving:
                among, among_params = self._in("id", moving)
                tx.execute(
                    "UPDATE jobs SET state = 'accepted', accepted = %s, updated = %s, lease_expires = NULL, "  # noqa: S608
                    f"lease_owner = COALESCE(NULLIF(%s, ''), lease_owner) WHERE {among}",
                    (now, now, owner, *among_params),
                )
            for job_id in moving:
                tx.log(job_id, cluster, rows[job_id][1], JobState.ACCEPTED, now)
            return moving

        moved, events = self._transaction(accept)
        return moved, events, fenced

    def renew_leases(
        self, cluster: str, owner: str, held: Mapping[int, int] | None, expires: float, now: float
    ) -> list[int]:
        def renew(tx: Transaction) -> list[int]:
            if held is None:
                tx.execute(
                    "UPDATE jobs SET lease_expires = %s WHERE cluster = %s AND state = 'leased' AND lease_owner = %s",
                    (expires, cluster, owner),
                )
                return []
            renewing, revoked = renew_plan(cluster, held, self._holders(tx, list(held)), owner)
            if renewing:
                among, among_params = self._in("id", renewing)
                tx.execute(
                    f"UPDATE jobs SET lease_expires = %s, lease_owner = %s WHERE {among} AND state = 'leased'",  # noqa: S608
                    (expires, owner, *among_params),
                )
            return revoked

        return self._transaction(renew)[0]

    def _holders(self, tx: Transaction, ids: Sequence[int]) -> dict[int, tuple]:
        """Rows of HOLDER_COLUMNS by job id (what fencing reads), locked for the transaction."""
        among, params = self._in("id", ids)
        return {row[0]: row for row in tx.all(
            f"SELECT {HOLDER_COLUMNS} FROM jobs WHERE {among} ORDER BY id{self.ROW_LOCK}", params  # noqa: S608
        )}

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
        def apply_report(tx: Transaction) -> JobRecord | None:
            tx.execute("UPDATE clusters SET last_seen = %s WHERE name = %s", (now, cluster))
            row = tx.one(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = %s AND cluster = %s{self.ROW_LOCK}",  # noqa: S608
                (job_id, cluster),
            )
            if row is None:
                return None
            job = job_from_row(row)
            after, changes = report_outcome(job, state, now, local_id, exit_code, message, output, owner, token)
            if changes is None:
                return job
            tx.execute(
                "UPDATE jobs SET state = %s, updated = %s, local_id = %s, exit_code = %s, message = %s, "
                "accepted = %s, output = %s, lease_expires = NULL WHERE id = %s",
                (state.value, now, changes["local_id"], changes["exit_code"], changes["message"],
                 changes["accepted"], changes["output"], job_id),
            )
            if state != job.state:
                tx.log(job_id, cluster, job.name, state, now, message or "")
            return after

        return self._transaction(apply_report)

    def request_cancel(self, job_id: int, reason: str, now: float) -> tuple[JobRecord | None, list[JobEvent]]:
        def cancel(tx: Transaction) -> JobRecord | None:
            row = tx.one(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = %s{self.ROW_LOCK}", (job_id,))  # noqa: S608
            if row is None:
                return None
            job = job_from_row(row)
            if job.state in FINAL_STATES:
                return job
            return _cancel(tx, job, reason, now)

        return self._transaction(cancel)

    def batch_states(self, batch: str, clusters: Sequence[str]) -> dict[str, int]:
        if not clusters:
            return {}
        term, values = self._in("cluster", clusters)
        rows = self._read(
            f"SELECT state, COUNT(*) FROM jobs WHERE batch_id = %s AND {term} GROUP BY state",  # noqa: S608
            [batch, *values],
        )
        return {state: count for state, count in rows}

    def cancel_batch(
        self, batch: str, clusters: Sequence[str], reason: str, now: float
    ) -> tuple[list[JobRecord], list[JobEvent]]:
        if not clusters:
            return [], []
        term, values = self._in("cluster", clusters)
        ended = sorted(state.value for state in FINAL_STATES)

        def cancel(tx: Transaction) -> list[JobRecord]:
            rows = tx.all(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE batch_id = %s AND {term} "  # noqa: S608 - constants
                f"AND state NOT IN ({', '.join(['%s'] * len(ended))}) ORDER BY id{self.ROW_LOCK}",
                [batch, *values, *ended],
            )
            return [_cancel(tx, job_from_row(row), reason, now) for row in rows]

        return self._transaction(cancel)

    def reject_job(
        self,
        cluster: str,
        job_id: int,
        reason: str,
        now: float,
        target: str | None,
        failure: str,
        owner: str = "",
        token: int = 0,
    ) -> tuple[JobRecord | None, list[JobEvent]]:
        def apply_rejection(tx: Transaction) -> JobRecord | None:
            tx.execute("UPDATE clusters SET last_seen = %s WHERE name = %s", (now, cluster))
            row = tx.one(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = %s AND cluster = %s{self.ROW_LOCK}",  # noqa: S608
                (job_id, cluster),
            )
            if row is None:
                return None
            job = job_from_row(row)
            fenced = fence(job.state, job.lease_owner, job.lease_token, owner, token)
            if fenced is not None:
                raise Aborted(f"job {job_id}: {fenced}; drop this copy", field="jobid")
            if job.state not in REJECTABLE:
                return job
            changes, message = rejection_changes(job, cluster, reason, now, target, failure)
            tx.execute(
                "UPDATE jobs SET cluster = %s, state = %s, updated = %s, message = %s, local_id = %s, "
                "exit_code = %s, accepted = %s, output = %s, lease_owner = NULL, lease_expires = NULL, "
                "candidates = %s, rejections = %s WHERE id = %s",
                (changes["cluster"], changes["state"].value, now, message, changes["local_id"],
                 changes["exit_code"], changes["accepted"], changes["output"],
                 json.dumps(list(changes["candidates"])), rejections_json(changes["rejections"]), job_id),
            )
            tx.log(job_id, changes["cluster"], job.name, changes["state"], now, message)
            return JobRecord(**{**job.__dict__, **changes})

        return self._transaction(apply_rejection)

    def reassign_job(
        self, job_id: int, from_cluster: str, to_cluster: str, now: float, message: str
    ) -> JobEvent | None:
        def reassign(tx: Transaction) -> None:
            row = tx.one(
                "UPDATE jobs SET cluster = %s, state = 'assigned', lease_owner = NULL, lease_expires = NULL, "  # noqa: S608
                f"updated = %s, message = %s WHERE id = %s AND cluster = %s AND NOT cancel_requested AND {WAITING} "
                "RETURNING name",
                (to_cluster, now, message, job_id, from_cluster, now),
            )
            if row is not None:
                tx.log(job_id, to_cluster, row[0], JobState.ASSIGNED, now, message)

        events = self._transaction(reassign)[1]
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
        batch: str | None = None,
    ) -> list[JobRecord]:
        where, params = self._filters(clusters, job_id=None)
        if where is None:
            return []
        if batch:
            where.append("batch_id = %s")
            params.append(batch)
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
        params.append(limit if limit > 0 else self.NO_LIMIT)
        return [job_from_row(row) for row in self._read(sql, params)]

    def job_history(self, job_id: int) -> list[JobEvent]:
        rows = self._read(
            f"SELECT {EVENT_COLUMNS} FROM job_events WHERE job_id = %s ORDER BY seq", (job_id,)  # noqa: S608
        )
        return [event_from_row(row) for row in rows]

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

    def events_since(
        self, seq: int, clusters: Sequence[str] | None = None, job_id: int | None = None, limit: int = 1000
    ) -> list[JobEvent]:
        where, params = self._filters(clusters, job_id)
        if where is None:
            return []
        where.append("seq > %s")
        params.append(seq)
        sql = (f"SELECT {EVENT_COLUMNS} FROM job_events WHERE {' AND '.join(where)} "  # noqa: S608
               "ORDER BY seq LIMIT %s")
        params.append(limit)
        return [event_from_row(row) for row in self._read(sql, params)]

    def count_jobs(self, cluster: str | None = None, state: JobState | None = None) -> int:
        rows = self._read(
            "SELECT COUNT(*) FROM jobs WHERE (CAST(%s AS TEXT) IS NULL OR cluster = %s) "
            "AND (CAST(%s AS TEXT) IS NULL OR state = %s)",
            (cluster, cluster, state and state.value, state and state.value),
        )
        return rows[0][0]

    def _filters(self, clusters: Sequence[str] | None, job_id: int | None) -> tuple[list[str] | None, list[Any]]:
        """WHERE terms for an optional cluster list and job id; (None, []) when nothing can match."""
        where: list[str] = []
        params: list[Any] = []
        if clusters is not None:
            if not clusters:
                return None, []
            term, values = self._in("cluster", clusters)
            where.append(term)
            params.extend(values)
        if job_id:
            where.append("job_id = %s")
            params.append(job_id)
        return where, params


def _cancel(tx: Transaction, job: JobRecord, reason: str, now: float) -> JobRecord:
    """Cancel a job that has not ended: at once if nobody holds it, else flag it for its agent."""
    if cancels_now(job, now):
        tx.execute(
            "UPDATE jobs SET state = 'cancelled', updated = %s, message = %s, cancel_requested = TRUE, "
            "lease_expires = NULL WHERE id = %s",
            (now, reason, job.id),
        )
        tx.log(job.id, job.cluster, job.name, JobState.CANCELLED, now, reason)
        return JobRecord(**{**job.__dict__, "state": JobState.CANCELLED, "updated": now,
                            "message": reason, "cancel_requested": True})
    tx.execute(
        "UPDATE jobs SET cancel_requested = TRUE, message = %s, updated = %s WHERE id = %s",
        (reason, now, job.id),
    )
    return JobRecord(**{**job.__dict__, "cancel_requested": True, "message": reason, "updated": now})


def _set_digest(tx: Transaction, cluster: str, nodes_sha256: str) -> None:
    """The digest of the cluster's JGF as now stored; a compact graph of another JGF goes."""
    tx.execute(
        "INSERT INTO cluster_graphs (cluster, nodes_sha256) VALUES (%s, %s) ON CONFLICT (cluster) DO UPDATE "
        "SET nodes_sha256 = excluded.nodes_sha256, built_from = NULL, data = NULL",
        (cluster, nodes_sha256),
    )
