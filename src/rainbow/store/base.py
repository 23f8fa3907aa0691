"""The persistence interface every backend implements, and its records.

The store is the source of truth: clusters with their JGF and subsystems,
their state, every job and every change of a job's state (the event log that
``WatchJobs`` replays). One call is one transaction: it happens entirely or
not at all.
"""

from __future__ import annotations

import json.encoder
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rainbow.fairshare import Held, Waiting
from rainbow.lifecycle import JobState, Urgency

# json.dumps' own string encoder (ensure_ascii), so wire_json matches json.dumps byte for byte.
_quote = json.encoder.encode_basestring_ascii


@dataclass(frozen=True)
class ClusterRecord:
    name: str
    secret_hash: str
    token_hash: str
    state: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0
    updated: float = 0.0
    version: int = 1
    last_seen: float | None = None
    reachable: bool = True


@dataclass(frozen=True)
class StoredGraph:
    """A cluster's JGF digest and the compact graph stored for it (``rainbow.graph.compact``).

    ``nodes_sha256`` is the digest of the cluster's stored JGF (None for one stored
    before digests were kept); ``built_from`` the digest of the JGF the compact
    graph ``data`` was built from (None, with ``data``, when there is none).
    """

    nodes_sha256: str | None
    built_from: str | None = None
    data: bytes | None = None


@dataclass(frozen=True)
class Rejection:
    """A cluster's scheduler refused the job before it ran there (``reason`` in its own words)."""

    cluster: str
    reason: str
    time: float


@dataclass(frozen=True)
class JobRecord:
    id: int
    cluster: str
    name: str
    jobspec: str
    command: str
    state: JobState
    created: float
    updated: float
    lease_owner: str | None = None
    lease_expires: float | None = None
    accepted: float | None = None
    local_id: str | None = None
    exit_code: int | None = None
    message: str | None = None
    cancel_requested: bool = False
    candidates: tuple[str, ...] = ()
    output: str | None = None  # JSON: where the job's output is, as the agent reported it
    # The generation of the job's lease: each hand-out counts one up (0: never leased).
    lease_token: int = 0
    rejections: tuple[Rejection, ...] = ()
    user: str = ""  # who submitted it (the legacy identity for requests without a user token)
    group: str = ""  # the group it is accounted to ('' when its user has none)
    nodes: int = 1  # nodes it asks for (its usage is nodes x run time)
    priority: int = 0  # orders its user's own jobs (higher first)
    started: float | None = None  # reported running
    ended: float | None = None  # reported ended after it started

    def wire_json(self) -> str:
        """The job as existing clients receive it from ``ReceiveJobs``.

        Exactly ``json.dumps({"id", "cluster", "name", "jobspec", "command"})``,
        put together from the encoded strings (several times faster for 10,000 jobs).
        """
        return (
            f'{{"id": {int(self.id)}, "cluster": {_quote(self.cluster)}, "name": {_quote(self.name)}, '
            f'"jobspec": {_quote(self.jobspec)}, "command": {_quote(self.command)}}}'
        )


@dataclass(frozen=True)
class JobEvent:
    """One change of one job's state; ``seq`` orders all events of a store."""

    seq: int
    job_id: int
    cluster: str
    name: str
    state: JobState
    time: float
    message: str = ""
    # The job's owner; filled when events are read back from the store (a watcher's filter).
    user: str = ""
    group: str = ""


@dataclass(frozen=True)
class UserRecord:
    """A person (or service) that submits jobs; ``groups`` in order, the first is the one jobs are accounted to."""

    name: str
    groups: tuple[str, ...] = ()
    admin: bool = False
    created: float = 0.0


@dataclass(frozen=True)
class AccessRule:
    """Who may use a cluster: a ``user`` or ``group`` (``kind``) allowed or denied."""

    cluster: str
    kind: str
    name: str
    allow: bool


@dataclass(frozen=True)
class DependsOn:
    """A dependency of a job to store: ``scheme`` on an existing job (``job``), or on the job at index ``step``
    of the same ``Store.add_graph`` call."""

    scheme: str
    job: int = 0
    step: int = -1


@dataclass(frozen=True)
class ParentJob:
    """A job another depends on, as its dependent sees it (``RAINBOW_DEPENDS``)."""

    id: int
    name: str
    step: str | None
    cluster: str
    local_id: str | None
    state: JobState
    scheme: str


@dataclass(frozen=True)
class Release:
    """A waiting job released (``Store.release_jobs``): placed on ``cluster``, or failed (no cluster)."""

    job_id: int
    cluster: str | None
    message: str
    candidates: tuple[str, ...] = ()
    placement: str | None = None


@dataclass(frozen=True)
class WorkflowRecord:
    id: str
    name: str
    created: float
    # (step name, job id), in the order the steps were stored
    steps: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class NewJob:
    """A job to queue (the arguments of ``Store.add_job``), for ``Store.add_jobs``."""

    cluster: str
    name: str
    jobspec: str
    command: str
    now: float
    candidates: tuple[str, ...] = ()
    key: str | None = None
    placement: str | None = None  # JSON: why the job went where it did (see ``Store.job_placement``)
    batch: str | None = None  # the SubmitJobs call (or the workflow) it came in
    user: str = ""
    group: str = ""
    nodes: int = 1
    priority: int = 0
    hold: bool = False  # stored held: placed, not handed out until ``set_urgency`` lets it go (not with depends)
    # Dependencies (``Store.add_graph`` only): the job is stored waiting ('depend') until they are satisfied.
    depends: tuple[DependsOn, ...] = ()
    step: str | None = None  # its step name in its workflow
    release: str | None = None  # JSON: how to place it when released (see ``Store.release_job``)


# (waiting jobs of the cluster, held jobs per owner and cluster, how many) -> the ids to lease, in order.
LeaseOrder = Callable[[list[Waiting], list[Held], int], list[int]]

# Orders a job page may have: the column each sorts on (ties broken by id).
PAGE_SORTS = ("id", "name", "cluster", "state")


@dataclass(frozen=True)
class JobPage:
    """Which page of jobs to read (``Store.page_jobs``).

    ``clusters`` None means every cluster. ``name`` matches exactly, or as a
    prefix when it ends with ``*``. ``after`` is the (sort value, id) of the
    last row of the previous page, in the direction of the order.
    """

    clusters: tuple[str, ...] | None = None
    state: JobState | None = None
    name: str | None = None
    sort: str = "id"
    descending: bool = True
    after: tuple[Any, int] | None = None
    limit: int = 50
    user: str | None = None  # only this user's jobs


@dataclass(frozen=True)
class HeldJob:
    """An entry of an agent's inventory (sent with each heartbeat)."""

    job_id: int
    state: JobState | None = None
    local_id: str | None = None
    lease: int = 0


class Store(ABC):
    """Persistence for the scheduler. Implementations are thread-safe."""

    # -- metadata ---------------------------------------------------------
    @abstractmethod
    def get_meta(self, key: str) -> str | None: ...

    @abstractmethod
    def set_meta(self, key: str, value: str) -> None: ...

    @abstractmethod
    def add_meta(self, key: str, value: str) -> bool:
        """Set ``key`` only if it has no value yet; True when this call set it (replicas may race)."""

    @abstractmethod
    def remove_meta(self, key: str, value: str) -> bool:
        """Delete ``key`` only while it still holds ``value``; True when this call deleted it."""

    # -- clusters ---------------------------------------------------------
    @abstractmethod
    def add_cluster(self, name: str, nodes: str, secret_hash: str, token_hash: str, now: float) -> bool:
        """Insert a cluster; False (and no change) when the name exists."""

    @abstractmethod
    def get_cluster(self, name: str) -> ClusterRecord | None: ...

    @abstractmethod
    def list_clusters(self) -> list[ClusterRecord]: ...

    @abstractmethod
    def get_nodes(self, name: str) -> str | None:
        """The cluster's JGF text (kept apart from the record: it can be hundreds of MB)."""

    @abstractmethod
    def replace_nodes(self, name: str, nodes: str, now: float) -> None:
        """Replace the JGF of an existing cluster."""

    @abstractmethod
    def get_graph(self, name: str) -> StoredGraph | None:
        """The digest of the cluster's JGF and its stored compact graph; None when the cluster is unknown."""

    @abstractmethod
    def put_graph(self, name: str, built_from: str, data: bytes) -> bool:
        """Store the compact graph built from the JGF of digest ``built_from``, if that is still the cluster's.

        False (nothing stored) when the cluster is unknown or its JGF changed meanwhile.
        """

    @abstractmethod
    def delete_cluster(self, name: str) -> bool:
        """Remove a cluster with its subsystems and jobs; False when unknown."""

    @abstractmethod
    def put_subsystem(self, cluster: str, name: str, nodes: str, now: float) -> None:
        """Add or replace a subsystem of an existing cluster."""

    @abstractmethod
    def delete_subsystem(self, cluster: str, name: str, now: float) -> bool: ...

    @abstractmethod
    def list_subsystems(self, cluster: str) -> dict[str, str]:
        """Subsystem name -> JGF text."""

    @abstractmethod
    def merge_state(self, cluster: str, updates: Mapping[str, Any], now: float) -> dict[str, Any]:
        """Merge flat key/values into the cluster's state; return the new state (KeyError if unknown)."""

    # -- reachability -----------------------------------------------------
    @abstractmethod
    def heartbeat(self, cluster: str, held: Sequence[HeldJob], now: float) -> tuple[list[int], list[JobEvent]]:
        """Record contact; reconcile ``unknown`` jobs with the inventory.

        Jobs the cluster holds come back from ``unknown`` (to the state it
        reports, or ``accepted``); ``unknown`` jobs it no longer holds fail.
        Returns (ids of held jobs whose cancel was requested, events written).
        """

    @abstractmethod
    def mark_unreachable(self, cutoff: float, now: float) -> tuple[list[str], list[JobEvent]]:
        """Clusters silent since before ``cutoff`` become unreachable; their jobs on the cluster ``unknown``."""

    # -- jobs -------------------------------------------------------------
    @abstractmethod
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
        """Queue a job for ``cluster``; ``candidates`` are the clusters it may be re-placed on.

        ``placement`` (JSON) records why the job was placed there; ``job_placement`` reads it back.

        With a ``key`` already used, nothing is added: the job stored with that key
        is returned, with no event.
        """

    @abstractmethod
    def job_by_key(self, key: str) -> JobRecord | None:
        """The job submitted with an idempotency key."""

    @abstractmethod
    def add_batch(self, jobs: Sequence[NewJob]) -> list[tuple[JobRecord, JobEvent | None]]:
        """Queue every job in one transaction: all are durable when this returns, or none is stored.

        As with ``add_job``, a key already used gives back the earlier job with no event.
        """

    def add_jobs(self, jobs: Sequence[NewJob]) -> list[tuple[JobRecord, JobEvent | None] | Exception]:
        """Queue several jobs; each outcome is the job with its event, or the error that job alone met.

        Every job that has an outcome other than an error is durable when this
        returns. Backends write the jobs in as few transactions as they can
        (SQLite and PostgreSQL: one for all); this default calls ``add_job`` for each. As with
        ``add_job``, a key already used gives back the earlier job with no event.
        """
        outcomes: list[tuple[JobRecord, JobEvent | None] | Exception] = []
        for job in jobs:
            try:
                outcomes.append(
                    self.add_job(job.cluster, job.name, job.jobspec, job.command, job.now, job.candidates, job.key,
                                 job.placement, job.user, job.group, nodes=job.nodes, priority=job.priority)
                )
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    # -- dependencies and workflows ------------------------------------------
    @abstractmethod
    def add_graph(
        self, jobs: Sequence[NewJob], workflow: tuple[str, str, float] | None = None
    ) -> list[tuple[JobRecord, JobEvent | None]]:
        """Store jobs and their dependencies in one transaction (``DependsOn.step`` names an earlier job of
        ``jobs``). A job with dependencies waits in ``depend``, the others are ``assigned``.

        ``workflow`` is (id, name, created): a workflow whose id is already stored gives back its jobs, no
        events (a resend). As with ``add_job``, a key already used gives back the earlier job, no event.
        """

    @abstractmethod
    def has_dependents(self, parents: Sequence[int]) -> bool:
        """Whether a waiting ('depend') job has a dependency not yet satisfied on any of ``parents``."""

    @abstractmethod
    def waiting_dependents(self) -> list[int]:
        """Ids of every job in 'depend' (oldest first)."""

    @abstractmethod
    def settle_dependents(
        self, parents: Sequence[int], now: float, jobs: Sequence[int] = ()
    ) -> tuple[list[int], list[JobEvent]]:
        """Decide the dependencies not yet satisfied on ``parents`` (and every one of the waiting ``jobs``) with
        :func:`rainbow.dependencies.verdict`, in one transaction.

        A satisfied dependency is marked so, once; a job whose last one this was is ready. A job with a
        dependency that can never be satisfied is cancelled with why, and the dependencies on it are decided
        in turn (transitively, in the same transaction). Returns (ids of the ready jobs, to be released; events
        written). ``jobs`` also returns those of them already ready (a stop came before their release).
        """

    @abstractmethod
    def release_jobs(self, releases: Sequence[Release], now: float) -> list[JobEvent]:
        """In one transaction, move each waiting ('depend') job to its ``cluster`` (assigned), or with no cluster
        fail it with its ``message``; the events written. A job no longer waiting (another call released or
        cancelled it) is left as it is."""

    @abstractmethod
    def waiting_jobs_to_place(self, job_ids: Sequence[int]) -> list[tuple[int, str, str, str | None]]:
        """(id, name, jobspec, release plan JSON) of those of ``job_ids`` still waiting ('depend'), by id."""

    @abstractmethod
    def job_dependencies(self, job_ids: Sequence[int]) -> dict[int, list[tuple[str, int]]]:
        """(scheme, parent id) of each job, by job id (jobs without dependencies are left out)."""

    @abstractmethod
    def job_parents(self, job_ids: Sequence[int]) -> dict[int, list[ParentJob]]:
        """The parents of each job with dependencies, by job id."""

    @abstractmethod
    def get_workflow(self, workflow_id: str) -> WorkflowRecord | None: ...

    @abstractmethod
    def job_step(self, job_id: int) -> tuple[str, str] | None:
        """(workflow id, step name) of a workflow's job; None for a job submitted alone."""

    @abstractmethod
    def lease_jobs(
        self, cluster: str, owner: str, max_jobs: int, lease_seconds: float, now: float, window: int = 0,
        order: LeaseOrder | None = None,
    ) -> tuple[list[JobRecord], list[JobEvent]]:
        """Lease up to ``max_jobs`` (all when < 1) waiting jobs of a cluster to ``owner``.

        Waiting means assigned, or leased with the lease run out. Oldest first, or as ``order`` picks: it is
        given every waiting job of the cluster, the jobs handed out and not ended (all clusters) and the
        number wanted, inside the lease's transaction, and returns the ids to lease in order.
        A waiting job whose cancel was requested is cancelled instead. Each
        lease counts the job's ``lease_token`` up. With a ``window`` (> 0),
        ``owner`` holds at most that many live leases of the cluster afterwards
        (flow control: leases it has not accepted yet count against it).
        """

    @abstractmethod
    def accept_jobs(
        self, cluster: str, ids: Sequence[int], now: float, owner: str = "", tokens: Mapping[int, int] | None = None
    ) -> tuple[list[int], list[JobEvent], dict[int, str]]:
        """Mark waiting jobs of ``cluster`` accepted by ``owner``; return (ids that moved, events, fenced).

        ``tokens`` are the lease tokens the caller holds (job id -> token).
        ``fenced`` maps the ids the caller may not act on (another holder took
        them over, see :func:`rainbow.lifecycle.fence`) to the reason; when
        any job is fenced nothing is accepted.
        """

    @abstractmethod
    def renew_leases(
        self, cluster: str, owner: str, held: Mapping[int, int] | None, expires: float, now: float
    ) -> list[int]:
        """Extend leases ``owner`` still holds to ``expires``; return the ids it no longer holds.

        ``held`` maps job ids to the lease tokens the owner presents (a
        heartbeat's inventory; token 0 is not checked); ``None`` renews every
        lease of ``owner`` on the cluster (an open job stream). An id is
        returned when its token is no longer the job's, or the job is gone,
        moved to another cluster, or cancelled before it was accepted.
        """

    @abstractmethod
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
        """Apply a cluster's report if the move is allowed; (None, []) for a job not of this cluster.

        ``output`` (JSON: where the job's output is) replaces the job's when given.
        With an ``owner`` or a ``token`` the reporter is fenced
        (:func:`rainbow.lifecycle.fence`): a report from a holder whose lease was
        taken over raises :class:`rainbow.errors.Aborted` and changes nothing.
        """

    @abstractmethod
    def request_cancel(self, job_id: int, reason: str, now: float) -> tuple[JobRecord | None, list[JobEvent]]:
        """Cancel a waiting job now, or flag a job on its cluster for the agent to cancel."""

    @abstractmethod
    def waiting_jobs(self, cluster: str, now: float) -> list[JobRecord]:
        """Jobs assigned to ``cluster`` that nobody holds (unleased, or lease run out)."""

    @abstractmethod
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
        """Record that ``cluster``'s scheduler refused a job it holds that never ran, then move it.

        To ``target`` (assigned there, the lease and local details cleared, the
        cluster dropped from its candidates), or with no target fail it with
        ``failure``. None when ``cluster`` does not hold the job; the job
        unchanged (no event) when it is no longer rejectable (it ran or ended).
        Fenced like a report (``Aborted``).
        """

    @abstractmethod
    def reassign_job(
        self, job_id: int, from_cluster: str, to_cluster: str, now: float, message: str
    ) -> JobEvent | None:
        """Move a waiting job to another cluster (None when it is no longer waiting there)."""

    @abstractmethod
    def get_job(self, job_id: int) -> JobRecord | None: ...

    @abstractmethod
    def list_jobs(
        self,
        clusters: Sequence[str] | None = None,
        state: JobState | None = None,
        name: str | None = None,
        limit: int = 1000,
        batch: str | None = None,
        user: str | None = None,
    ) -> list[JobRecord]:
        """Newest first; ``user`` keeps only that user's jobs."""

    @abstractmethod
    def batch_states(self, batch: str, clusters: Sequence[str] | None, user: str | None = None) -> dict[str, int]:
        """How many jobs of a batch (on ``clusters``, all when None; of ``user`` when given) are in each state."""

    @abstractmethod
    def cancel_batch(
        self, batch: str, clusters: Sequence[str] | None, reason: str, now: float, user: str | None = None
    ) -> tuple[list[JobRecord], list[JobEvent]]:
        """As ``request_cancel`` for every job of a batch (on ``clusters``, of ``user``) not ended, in one
        transaction."""

    @abstractmethod
    def set_cluster_credentials(self, name: str, secret_hash: str, token_hash: str, now: float) -> bool:
        """Replace a cluster's secret and token hashes, its ``updated`` time set to ``now`` (so every server
        reads them again before its next request for the cluster); False when it is not registered."""

    @abstractmethod
    def set_urgency(
        self,
        urgency: Urgency,
        now: float,
        job_id: int | None = None,
        batch: str | None = None,
        clusters: Sequence[str] | None = None,
        user: str | None = None,
    ) -> tuple[list[tuple[JobRecord, bool, str]], list[JobEvent]]:
        """Hold jobs, or set their priority (which lets held ones go), in one transaction: one job (``job_id``),
        or every job of ``batch`` (on ``clusters``, of ``user``) not ended. Per job, by id: the job afterwards,
        whether it changed, and why it was left as it was ("" when it may change)."""

    @abstractmethod
    def job_history(self, job_id: int) -> list[JobEvent]: ...

    @abstractmethod
    def job_placement(self, job_id: int) -> str | None:
        """The placement record (JSON) written with the job at submit; None for jobs stored without one."""

    @abstractmethod
    def page_jobs(self, query: JobPage) -> list[JobRecord]:
        """One page of a job table: filtered, ordered by ``query.sort`` then id, after ``query.after``.

        Keyset pagination: every order is served by an index, so a page costs
        the same on the first page and the ten-thousandth.
        """

    @abstractmethod
    def job_counts_by_cluster(self) -> dict[tuple[str, JobState], int]:
        """How many jobs each cluster has in each state."""

    @abstractmethod
    def events_since(
        self, seq: int, clusters: Sequence[str] | None = None, job_id: int | None = None, limit: int = 1000,
        user: str | None = None,
    ) -> list[JobEvent]:
        """Events with a sequence number above ``seq``, in order, each with its job's user and group."""

    @abstractmethod
    def last_event_seq(self) -> int: ...

    @abstractmethod
    def count_jobs(self, cluster: str | None = None, state: JobState | None = None) -> int: ...

    def job_counts(self) -> dict[JobState, int]:
        """How many jobs are in each state (for metrics)."""
        return {state: self.count_jobs(state=state) for state in JobState}

    # -- users, groups and cluster access ------------------------------------
    @abstractmethod
    def add_user(self, name: str, token_hash: str, admin: bool, groups: Sequence[str], now: float) -> bool:
        """Insert a user (and any group not known yet); False (and no change) when the name exists."""

    @abstractmethod
    def remove_user(self, name: str) -> bool:
        """Delete a user (their jobs keep their name); False when unknown."""

    @abstractmethod
    def set_user_token(self, name: str, token_hash: str) -> bool:
        """Replace a user's token hash (the old token stops working); False when unknown."""

    @abstractmethod
    def get_user(self, name: str) -> UserRecord | None: ...

    @abstractmethod
    def user_by_token(self, token_hash: str) -> UserRecord | None:
        """The user whose token has this hash."""

    @abstractmethod
    def list_users(self) -> list[UserRecord]: ...

    @abstractmethod
    def set_access(self, cluster: str, kind: str, name: str, allow: bool | None, now: float) -> bool:
        """Add or replace (``allow`` True/False) or remove (None) a cluster's rule; False when nothing changed.

        A change counts as a change of the cluster (its ``updated`` moves, other servers are told).
        """

    @abstractmethod
    def list_access(self, cluster: str | None = None) -> list[AccessRule]:
        """Access rules of one cluster (all when None), by cluster, kind and name."""

    # -- health and replicas ------------------------------------------------
    def ping(self) -> None:
        """A cheap round trip to the database; raises (``Unavailable``) when it cannot be reached."""
        self.last_event_seq()

    # True when other processes may write to this store too (server replicas on one database).
    shared: bool = False

    def cluster_versions(self, names: Sequence[str] | None = None) -> dict[str, tuple[float, int, float]]:
        """``(created, version, updated)`` of the named clusters (all: None) that exist.

        Together they change whenever a cluster's credentials (a new registration),
        graph, subsystems or state change: a replica compares them with what it
        holds to know, with one small read, whether its copy is current.
        """
        records = self.list_clusters() if names is None else filter(None, map(self.get_cluster, names))
        return {r.name: (r.created, r.version, r.updated) for r in records}

    @abstractmethod
    def watch_clusters(self, callback: Callable[[str | None], None]) -> None:
        """Call ``callback(name)`` when another process changes a cluster; ``None`` means "reload all".

        Server replicas sharing a database use this to keep their in-memory
        cluster cache current. A store only one process uses (SQLite) has
        nothing to report.
        """

    @abstractmethod
    def close(self) -> None: ...
