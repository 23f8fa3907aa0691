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

from rainbow.dependencies import Dependency, ParentFacts, Verdict, never_reason, verdict, waits_for
from rainbow.errors import Aborted
from rainbow.jgf import digest
from rainbow.lifecycle import FINAL_STATES, REJECTABLE, JobState, Urgency, fence
from rainbow.store.accounts import AccountsSQL
from rainbow.store.base import (
    AccessRule,
    ClusterRecord,
    HeldJob,
    JobEvent,
    JobPage,
    JobRecord,
    NewJob,
    ParentJob,
    Release,
    Store,
    StoredGraph,
    UserRecord,
    WorkflowRecord,
)
from rainbow.store.rows import (
    CLUSTER_COLUMNS,
    EVENT_COLUMNS,
    FINAL,
    HOLDER_COLUMNS,
    JOB_COLUMNS,
    ON_CLUSTER,
    OWNED_EVENT_COLUMNS,
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
    urgency_move,
)

T = TypeVar("T")

# Jobs nobody holds: assigned, or leased with the lease run out (one parameter: now).
WAITING = "(state = 'assigned' OR (state = 'leased' AND lease_expires <= %s))"


class Transaction(Protocol):
    """One write transaction of a backend."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple | None: ...

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]: ...

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """One statement run for each of ``rows`` (no results)."""

    def log(self, job_id: int, cluster: str, name: str, state: JobState, now: float, message: str = "") -> None:
        """Write a job event when the transaction ends (numbered in the order of these calls)."""

    def notify(self, cluster: str) -> None:
        """Tell the other servers, on commit, that the cluster changed."""


class SQLStore(AccountsSQL, Store):
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
            tx.execute("DELETE FROM job_dependencies WHERE job_id IN (SELECT id FROM jobs WHERE cluster = %s)",
                       (name,))
            tx.execute("DELETE FROM jobs WHERE cluster = %s", (name,))
            tx.execute("DELETE FROM subsystems WHERE cluster = %s", (name,))
            tx.execute("DELETE FROM cluster_access WHERE cluster = %s", (name,))
            tx.execute("DELETE FROM cluster_graphs WHERE cluster = %s", (name,))
            tx.execute("DELETE FROM clusters WHERE name = %s", (name,))
            tx.notify(name)
            return True

        return self._transaction(delete)[0]

    def set_cluster_credentials(self, name: str, secret_hash: str, token_hash: str, now: float) -> bool:
        def update(tx: Transaction) -> bool:
            found = tx.one("UPDATE clusters SET secret_hash = %s, token_hash = %s, updated = %s WHERE name = %s "
                           "RETURNING name", (secret_hash, token_hash, now, name))
            if found is not None:
                tx.notify(name)
            return found is not None

        return self._transaction(update)[0]

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
            job = self._reported_job(tx, cluster, job_id, now)
            if job is None:
                return None
            after, changes = report_outcome(job, state, now, local_id, exit_code, message, output, owner, token)
            if changes is None:
                return job
            tx.execute(
                "UPDATE jobs SET state = %s, updated = %s, local_id = %s, exit_code = %s, message = %s, "
                "accepted = %s, output = %s, lease_expires = NULL, started = %s, ended = %s WHERE id = %s",
                (state.value, now, changes["local_id"], changes["exit_code"], changes["message"],
                 changes["accepted"], changes["output"], changes["started"], changes["ended"], job_id),
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

    def batch_states(self, batch: str, clusters: Sequence[str] | None, user: str | None = None) -> dict[str, int]:
        where, values = self._filters(clusters, None, user)
        if where is None:
            return {}
        rows = self._read(
            "SELECT state, COUNT(*) FROM jobs WHERE "  # noqa: S608 - only placeholders are interpolated
            f"{' AND '.join(['batch_id = %s', *where])} GROUP BY state",
            [batch, *values],
        )
        return {state: count for state, count in rows}

    def cancel_batch(
        self, batch: str, clusters: Sequence[str] | None, reason: str, now: float, user: str | None = None
    ) -> tuple[list[JobRecord], list[JobEvent]]:
        found = self._batch_not_ended(batch, clusters, user)
        if found is None:
            return [], []
        terms, values = found

        def cancel(tx: Transaction) -> list[JobRecord]:
            rows = tx.all(f"SELECT {JOB_COLUMNS} FROM jobs WHERE {terms} ORDER BY id{self.ROW_LOCK}",  # noqa: S608
                          values)
            return [_cancel(tx, job_from_row(row), reason, now) for row in rows]

        return self._transaction(cancel)

    def _batch_not_ended(
        self, batch: str, clusters: Sequence[str] | None, user: str | None
    ) -> tuple[str, list[Any]] | None:
        """WHERE terms (and their values) for the jobs of a batch (on ``clusters``, of ``user``) not ended; None
        when none can match."""
        where, values = self._filters(clusters, None, user)
        if where is None:
            return None
        ended = sorted(state.value for state in FINAL_STATES)
        terms = " AND ".join(["batch_id = %s", *where, f"state NOT IN ({', '.join(['%s'] * len(ended))})"])
        return terms, [batch, *values, *ended]

    def set_urgency(
        self,
        urgency: Urgency,
        now: float,
        job_id: int | None = None,
        batch: str | None = None,
        clusters: Sequence[str] | None = None,
        user: str | None = None,
    ) -> tuple[list[tuple[JobRecord, bool, str]], list[JobEvent]]:
        found = ("id = %s", [job_id]) if job_id is not None else self._batch_not_ended(batch or "", clusters, user)
        if found is None:
            return [], []
        terms, values = found

        def apply(tx: Transaction) -> list[tuple[JobRecord, bool, str]]:
            rows = tx.all(f"SELECT {JOB_COLUMNS} FROM jobs WHERE {terms} ORDER BY id{self.ROW_LOCK}",  # noqa: S608
                          values)
            return [_set_urgency(tx, job_from_row(row), urgency, now) for row in rows]

        return self._transaction(apply)

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
            job = self._reported_job(tx, cluster, job_id, now)
            if job is None:
                return None
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

    # -- dependencies and workflows ------------------------------------------
    def add_graph(
        self, jobs: Sequence[NewJob], workflow: tuple[str, str, float] | None = None
    ) -> list[tuple[JobRecord, JobEvent | None]]:
        def insert_graph(tx: Transaction) -> list[tuple[JobRecord, bool]]:
            if workflow is not None and tx.one(
                "INSERT INTO workflows (id, name, created) VALUES (%s, %s, %s) ON CONFLICT (id) DO NOTHING "
                "RETURNING id", workflow,
            ) is None:
                rows = tx.all(f"SELECT {JOB_COLUMNS} FROM jobs WHERE batch_id = %s ORDER BY id",  # noqa: S608
                              (workflow[0],))
                return [(job_from_row(row), False) for row in rows]
            stored: list[tuple[JobRecord, bool]] = []
            for new in jobs:
                known = tx.one(f"SELECT {JOB_COLUMNS} FROM jobs WHERE submit_key = %s",  # noqa: S608
                               (new.key,)) if new.key else None
                if known is not None:
                    stored.append((job_from_row(known), False))
                    continue
                parents = [Dependency(d.scheme, d.job if d.step < 0 else stored[d.step][0].id) for d in new.depends]
                state = JobState.DEPEND if parents else JobState.ASSIGNED
                message = waits_for(parents) if parents else None
                edges = list(dict.fromkeys(parents))
                row = tx.one(
                    "INSERT INTO jobs (cluster, name, jobspec, command, state, created, updated, candidates, "
                    'submit_key, placement, batch_id, step, release, message, unsatisfied, "user", grp, nodes, '
                    "priority) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                    "RETURNING id",
                    (new.cluster, new.name, new.jobspec, new.command, state.value, new.now, new.now,
                     json.dumps(list(new.candidates)), new.key, new.placement, new.batch, new.step, new.release,
                     message, len(edges), new.user, new.group, new.nodes, new.priority),
                )
                job_id = row[0]
                for parent in edges:
                    tx.execute("INSERT INTO job_dependencies (job_id, parent_id, scheme) VALUES (%s, %s, %s)",
                               (job_id, parent.job_id, parent.scheme))
                tx.log(job_id, new.cluster, new.name, state, new.now, message or "")
                stored.append((JobRecord(job_id, new.cluster, new.name, new.jobspec, new.command, state, new.now,
                                         new.now, message=message, candidates=new.candidates, user=new.user,
                                         group=new.group, nodes=new.nodes, priority=new.priority), True))
            return stored

        stored, events = self._transaction(insert_graph)
        logged = iter(events)
        return [(job, next(logged) if fresh else None) for job, fresh in stored]

    def has_dependents(self, parents: Sequence[int]) -> bool:
        if not parents:
            return False
        among, params = self._in("d.parent_id", list(parents))
        return bool(self._read(
            "SELECT 1 FROM job_dependencies d JOIN jobs j ON j.id = d.job_id "  # noqa: S608
            f"WHERE {among} AND NOT d.satisfied AND j.state = 'depend' LIMIT 1", params,
        ))

    def waiting_dependents(self) -> list[int]:
        return [row[0] for row in self._read("SELECT id FROM jobs WHERE state = 'depend' ORDER BY id")]

    def settle_dependents(
        self, parents: Sequence[int], now: float, jobs: Sequence[int] = ()
    ) -> tuple[list[int], list[JobEvent]]:
        def settle(tx: Transaction) -> list[int]:
            ready: list[int] = []
            if jobs:
                # Every dependency of these was decided before a stop that came ahead of their release.
                among, params = self._in("id", sorted(set(jobs)))
                ready.extend(row[0] for row in tx.all(
                    f"SELECT id FROM jobs WHERE {among} AND state = 'depend' AND unsatisfied <= 0 "  # noqa: S608
                    f"ORDER BY id{self.ROW_LOCK}", params,
                ))
            by_parent, by_job = sorted(set(parents)), sorted(set(jobs))
            while by_parent or by_job:
                edges = self._open_edges(tx, by_parent, by_job)
                facts = self._parent_facts(tx, sorted({edge[1] for edge in edges}))
                cancelled: list[int] = []
                satisfied: list[tuple[int, int, str]] = []
                for job_id, parent, scheme, cluster, name in edges:
                    if job_id in cancelled:
                        continue
                    result = verdict(scheme, facts.get(parent))
                    if result == Verdict.SATISFIED:
                        satisfied.append((job_id, parent, scheme))
                    elif result == Verdict.NEVER:
                        reason = never_reason(Dependency(scheme, parent), facts.get(parent))
                        if tx.one("UPDATE jobs SET state = 'cancelled', updated = %s, message = %s "
                                  "WHERE id = %s AND state = 'depend' RETURNING id", (now, reason, job_id)):
                            tx.log(job_id, cluster, name, JobState.CANCELLED, now, reason)
                            cancelled.append(job_id)
                ready.extend(self._satisfy(tx, [edge for edge in satisfied if edge[0] not in cancelled]))
                # The cancelled jobs' own dependents are decided in turn, in this transaction.
                by_parent, by_job = cancelled, []
            return list(dict.fromkeys(ready))

        return self._transaction(settle)

    def _reported_job(self, tx: Transaction, cluster: str, job_id: int, now: float) -> JobRecord | None:
        """The job a cluster reports on (locked), if it is on that cluster; the cluster was seen now."""
        tx.execute("UPDATE clusters SET last_seen = %s WHERE name = %s", (now, cluster))
        row = tx.one(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = %s AND cluster = %s{self.ROW_LOCK}",  # noqa: S608
                     (job_id, cluster))
        return job_from_row(row) if row is not None else None

    def _open_edges(self, tx: Transaction, parents: Sequence[int], jobs: Sequence[int]) -> list[tuple]:
        """(job, parent, scheme, job's cluster, job's name) of the dependencies not yet satisfied on ``parents``
        or of ``jobs``, of jobs still waiting; the jobs' rows locked."""
        terms: list[str] = []
        params: list[Any] = []
        for column, values in (("d.parent_id", parents), ("d.job_id", jobs)):
            if values:
                term, values_params = self._in(column, list(values))
                terms.append(term)
                params.extend(values_params)
        return tx.all(
            "SELECT d.job_id, d.parent_id, d.scheme, j.cluster, j.name FROM job_dependencies d "  # noqa: S608
            f"JOIN jobs j ON j.id = d.job_id WHERE ({' OR '.join(terms)}) AND NOT d.satisfied "
            f"AND j.state = 'depend' ORDER BY d.job_id, d.parent_id, d.scheme{self.ROW_LOCK}", params,
        )

    def _satisfy(self, tx: Transaction, edges: Sequence[tuple[int, int, str]]) -> list[int]:
        """Mark dependencies (job, parent, scheme) satisfied, each once (``_open_edges`` read them open and
        locked their jobs); the jobs whose last unsatisfied one this was."""
        if not edges:
            return []
        tx.many("UPDATE job_dependencies SET satisfied = TRUE WHERE job_id = %s AND parent_id = %s AND scheme = %s",
                edges)
        counts: dict[int, int] = {}
        for job_id, _, _ in edges:
            counts[job_id] = counts.get(job_id, 0) + 1
        tx.many("UPDATE jobs SET unsatisfied = unsatisfied - %s WHERE id = %s AND state = 'depend'",
                [(count, job_id) for job_id, count in counts.items()])
        among, params = self._in("id", list(counts))
        return [row[0] for row in tx.all(
            f"SELECT id FROM jobs WHERE {among} AND state = 'depend' AND unsatisfied <= 0 ORDER BY id",  # noqa: S608
            params)]

    def _parent_facts(self, tx: Transaction, parents: Sequence[int]) -> dict[int, ParentFacts]:
        if not parents:
            return {}
        among, params = self._in("j.id", parents)
        rows = tx.all(
            "SELECT j.id, j.state, j.exit_code, EXISTS (SELECT 1 FROM job_events e "  # noqa: S608
            f"WHERE e.job_id = j.id AND e.state = 'running') FROM jobs j WHERE {among}", params,
        )
        return {row[0]: ParentFacts(JobState(row[1]), row[2], bool(row[3])) for row in rows}

    def release_jobs(self, releases: Sequence[Release], now: float) -> list[JobEvent]:
        def release(tx: Transaction) -> None:
            """The jobs still waiting are read (and locked) at once, then moved by two statements run per
            row: a job released meanwhile (by another server) is left as it is."""
            among, params = self._in("id", [item.job_id for item in releases])
            waiting = {row[0]: (row[1], row[2]) for row in tx.all(
                f"SELECT id, cluster, name FROM jobs WHERE {among} AND state = 'depend'{self.ROW_LOCK}",  # noqa: S608
                params)}
            moving = [item for item in releases if item.job_id in waiting]
            listed: dict[tuple[str, ...], str] = {}  # the released jobs share a few candidate lists
            placed = [(item.cluster, listed.setdefault(item.candidates, json.dumps(list(item.candidates))),
                       item.placement, now, item.message, item.job_id) for item in moving if item.cluster]
            if placed:
                tx.many("UPDATE jobs SET state = 'assigned', cluster = %s, candidates = %s, placement = %s, "
                        "updated = %s, message = %s WHERE id = %s", placed)
            failed = [(now, item.message, item.job_id) for item in moving if not item.cluster]
            if failed:
                tx.many("UPDATE jobs SET state = 'failed', updated = %s, message = %s WHERE id = %s", failed)
            for item in moving:
                home, name = waiting[item.job_id]
                state = JobState.ASSIGNED if item.cluster else JobState.FAILED
                tx.log(item.job_id, item.cluster or home, name, state, now, item.message)

        if not releases:
            return []
        return self._transaction(release)[1]

    def waiting_jobs_to_place(self, job_ids: Sequence[int]) -> list[tuple[int, str, str, str | None]]:
        if not job_ids:
            return []
        among, params = self._in("id", list(job_ids))
        return [tuple(row) for row in self._read(  # type: ignore[misc]
            f"SELECT id, name, jobspec, release FROM jobs WHERE {among} AND state = 'depend' ORDER BY id",  # noqa: S608
            params,
        )]

    def job_dependencies(self, job_ids: Sequence[int]) -> dict[int, list[tuple[str, int]]]:
        if not job_ids:
            return {}
        among, params = self._in("job_id", list(job_ids))
        needs: dict[int, list[tuple[str, int]]] = {}
        for job_id, parent, scheme in self._read(
            f"SELECT job_id, parent_id, scheme FROM job_dependencies WHERE {among} "  # noqa: S608
            "ORDER BY job_id, parent_id, scheme", params,
        ):
            needs.setdefault(job_id, []).append((scheme, parent))
        return needs

    def job_parents(self, job_ids: Sequence[int]) -> dict[int, list[ParentJob]]:
        needs = self.job_dependencies(job_ids)
        if not needs:
            return {}
        parents = sorted({parent for deps in needs.values() for _, parent in deps})
        among, params = self._in("id", parents)
        rows = {row[0]: row for row in self._read(
            f"SELECT id, name, step, cluster, local_id, state FROM jobs WHERE {among}", params  # noqa: S608
        )}
        return {
            job_id: [ParentJob(parent, row[1], row[2], row[3], row[4], JobState(row[5]), scheme)
                     for scheme, parent in deps if (row := rows.get(parent)) is not None]
            for job_id, deps in needs.items()
        }

    def job_step(self, job_id: int) -> tuple[str, str] | None:
        rows = self._read("SELECT batch_id, step FROM jobs WHERE id = %s AND step IS NOT NULL", (job_id,))
        return (rows[0][0], rows[0][1]) if rows else None

    def get_workflow(self, workflow_id: str) -> WorkflowRecord | None:
        rows = self._read("SELECT id, name, created FROM workflows WHERE id = %s", (workflow_id,))
        if not rows:
            return None
        steps = self._read("SELECT step, id FROM jobs WHERE batch_id = %s ORDER BY id", (workflow_id,))
        return WorkflowRecord(rows[0][0], rows[0][1], rows[0][2], tuple((step or "", job_id) for step, job_id in steps))

    def list_jobs(
        self,
        clusters: Sequence[str] | None = None,
        state: JobState | None = None,
        name: str | None = None,
        limit: int = 1000,
        batch: str | None = None,
        user: str | None = None,
    ) -> list[JobRecord]:
        where, params = self._filters(clusters, None, user)
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
        self, seq: int, clusters: Sequence[str] | None = None, job_id: int | None = None, limit: int = 1000,
        user: str | None = None,
    ) -> list[JobEvent]:
        where, params = self._filters(clusters, job_id, user, events=True)
        if where is None:
            return []
        where.append("e.seq > %s")
        params.append(seq)
        sql = (f"SELECT {OWNED_EVENT_COLUMNS} FROM job_events e LEFT JOIN jobs j ON j.id = e.job_id "  # noqa: S608
               f"WHERE {' AND '.join(where)} ORDER BY e.seq LIMIT %s")
        params.append(limit)
        return [event_from_row(row) for row in self._read(sql, params)]

    def count_jobs(self, cluster: str | None = None, state: JobState | None = None) -> int:
        rows = self._read(
            "SELECT COUNT(*) FROM jobs WHERE (CAST(%s AS TEXT) IS NULL OR cluster = %s) "
            "AND (CAST(%s AS TEXT) IS NULL OR state = %s)",
            (cluster, cluster, state and state.value, state and state.value),
        )
        return rows[0][0]

    def _filters(
        self, clusters: Sequence[str] | None, job_id: int | None, user: str | None = None, events: bool = False
    ) -> tuple[list[str] | None, list[Any]]:
        """WHERE terms for an optional cluster list, job id and owner; (None, []) when nothing can match.

        With ``events`` the terms are for job_events ``e`` joined with jobs ``j``.
        """
        where: list[str] = []
        params: list[Any] = []
        if clusters is not None:
            if not clusters:
                return None, []
            term, values = self._in("e.cluster" if events else "cluster", clusters)
            where.append(term)
            params.extend(values)
        if job_id:
            where.append("e.job_id = %s" if events else "job_id = %s")
            params.append(job_id)
        if user is not None:
            where.append('j."user" = %s' if events else '"user" = %s')
            params.append(user)
        return where, params

    # -- users, groups and cluster access ------------------------------------
    def add_user(self, name: str, token_hash: str, admin: bool, groups: Sequence[str], now: float) -> bool:
        def insert_user(tx: Transaction) -> bool:
            added = tx.one(
                "INSERT INTO users (name, token_hash, admin, created) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (name) DO NOTHING RETURNING name",
                (name, token_hash, bool(admin), now),
            )
            if added is None:
                return False
            for position, group in enumerate(dict.fromkeys(groups)):
                tx.execute("INSERT INTO groups (name) VALUES (%s) ON CONFLICT (name) DO NOTHING", (group,))
                tx.execute(
                    'INSERT INTO user_groups ("user", grp, position) VALUES (%s, %s, %s)', (name, group, position)
                )
            return True

        return self._transaction(insert_user)[0]

    def remove_user(self, name: str) -> bool:
        def delete(tx: Transaction) -> bool:
            tx.execute('DELETE FROM user_groups WHERE "user" = %s', (name,))
            return tx.one("DELETE FROM users WHERE name = %s RETURNING name", (name,)) is not None

        return self._transaction(delete)[0]

    def set_user_token(self, name: str, token_hash: str) -> bool:
        return self._transaction(lambda tx: tx.one(
            "UPDATE users SET token_hash = %s WHERE name = %s RETURNING name", (token_hash, name)
        ))[0] is not None

    def get_user(self, name: str) -> UserRecord | None:
        return self._user_where("name = %s", name)

    def user_by_token(self, token_hash: str) -> UserRecord | None:
        return self._user_where("token_hash = %s", token_hash)

    def _user_where(self, term: str, value: str) -> UserRecord | None:
        rows = self._read(f"SELECT name, admin, created FROM users WHERE {term}", (value,))  # noqa: S608 - constant
        if not rows:
            return None
        name, admin, created = rows[0]
        groups = self._read('SELECT grp FROM user_groups WHERE "user" = %s ORDER BY position', (name,))
        return UserRecord(name, tuple(row[0] for row in groups), bool(admin), created)

    def list_users(self) -> list[UserRecord]:
        groups: dict[str, list[str]] = {}
        for user, group in self._read('SELECT "user", grp FROM user_groups ORDER BY "user", position'):
            groups.setdefault(user, []).append(group)
        return [UserRecord(name, tuple(groups.get(name, ())), bool(admin), created)
                for name, admin, created in self._read("SELECT name, admin, created FROM users ORDER BY name")]

    def set_access(self, cluster: str, kind: str, name: str, allow: bool | None, now: float) -> bool:
        def change(tx: Transaction) -> bool:
            if allow is None:
                gone = tx.one(
                    "DELETE FROM cluster_access WHERE cluster = %s AND kind = %s AND name = %s RETURNING name",
                    (cluster, kind, name),
                )
                changed = gone is not None
            else:
                tx.execute(
                    "INSERT INTO cluster_access (cluster, kind, name, allow) VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT (cluster, kind, name) DO UPDATE SET allow = excluded.allow",
                    (cluster, kind, name, bool(allow)),
                )
                changed = True
            if changed:
                tx.execute("UPDATE clusters SET updated = %s WHERE name = %s", (now, cluster))
                tx.notify(cluster)
            return changed

        return self._transaction(change)[0]

    def list_access(self, cluster: str | None = None) -> list[AccessRule]:
        rows = self._read(
            "SELECT cluster, kind, name, allow FROM cluster_access WHERE (CAST(%s AS TEXT) IS NULL OR cluster = %s) "
            "ORDER BY cluster, kind, name",
            (cluster, cluster),
        )
        return [AccessRule(c, kind, name, bool(allow)) for c, kind, name, allow in rows]


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


def _set_urgency(tx: Transaction, job: JobRecord, urgency: Urgency, now: float) -> tuple[JobRecord, bool, str]:
    """Hold one job or set its priority (letting it go if held): (the job afterwards, whether it changed, why it
    was left as it was)."""
    state, refused = urgency_move(job, urgency, now)
    if refused:
        return job, False, refused
    changes: dict[str, Any] = {}
    if urgency.priority is not None and urgency.priority != job.priority:
        changes["priority"] = urgency.priority
    if state is not None:
        message = "held by its submitter" if state == JobState.HELD else "let go from hold"
        changes.update(state=state, updated=now, message=message, lease_owner=None, lease_expires=None)
        tx.log(job.id, job.cluster, job.name, state, now, message)
    if not changes:
        return job, False, ""
    job = JobRecord(**{**job.__dict__, **changes})
    tx.execute(
        "UPDATE jobs SET state = %s, priority = %s, updated = %s, message = %s, lease_owner = %s, "
        "lease_expires = %s WHERE id = %s",
        (job.state.value, job.priority, job.updated, job.message, job.lease_owner, job.lease_expires, job.id),
    )
    return job, True, ""


def _set_digest(tx: Transaction, cluster: str, nodes_sha256: str) -> None:
    """The digest of the cluster's JGF as now stored; a compact graph of another JGF goes."""
    tx.execute(
        "INSERT INTO cluster_graphs (cluster, nodes_sha256) VALUES (%s, %s) ON CONFLICT (cluster) DO UPDATE "
        "SET nodes_sha256 = excluded.nodes_sha256, built_from = NULL, data = NULL",
        (cluster, nodes_sha256),
    )
