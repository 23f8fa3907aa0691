"""The ``Scheduler``: what each request means, independent of gRPC and SQL.

A thin facade over the rooms of ``rainbow.scheduler``: every request passes
``authorization`` first, then goes to the cluster ``registry``, to
``submission`` (which uses ``placement``) or to the job ``lifecycle``. The
servicers in ``rainbow.server`` translate protobuf messages to these calls and
RainbowError subclasses to gRPC status codes. Every change of a job's state is
written with an event; ``on_events`` (set by the server) hears about them so
streams can wake up.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rainbow.graph import ClusterGraph, get_match_algorithm
from rainbow.jobspec import Jobspec
from rainbow.limits import Limits
from rainbow.scheduler.authorization import Authorization
from rainbow.scheduler.batches import BatchCancel, Batches, BatchOutcome
from rainbow.scheduler.context import SchedulerContext
from rainbow.scheduler.lifecycle import AcceptOutcome, JobLifecycle
from rainbow.scheduler.placement import Placer
from rainbow.scheduler.registry import ClusterRegistry, Registration
from rainbow.scheduler.submission import PendingSubmit, SatisfyOutcome, Submissions, SubmitOutcome
from rainbow.scheduler.validation import check_name, check_queues_state, parse_state_payload
from rainbow.selection import Selector, get_selector
from rainbow.store import HeldJob, JobEvent, JobRecord, Store


class _Shared:
    """A ``Scheduler`` setting kept in its context: what the server (or a test) sets reaches every part."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, scheduler: Scheduler | None, owner: type | None = None) -> Any:
        return self if scheduler is None else getattr(scheduler.context, self.name)

    def __set__(self, scheduler: Scheduler, value: Any) -> None:
        setattr(scheduler.context, self.name, value)


class Scheduler:
    """Clusters, their graphs and jobs; thread-safe.

    Credentials, state and graphs are kept in memory (rebuilt from the store
    at start), so a request never re-reads or re-parses JGF.
    """

    def __init__(
        self,
        store: Store,
        *,
        registration_secret: str | None = None,
        global_token: str | None = None,
        match_algorithm: str = "match",
        selection_algorithm: str = "random",
        selection_options: Mapping[str, Any] | None = None,
        lease_seconds: float = 300.0,
        cluster_timeout: float = 600.0,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.context = SchedulerContext(store, limits or Limits(), clock, lease_seconds, cluster_timeout)
        # Both checked before the registry stores anything: a bad setting leaves the store as it was.
        get_match_algorithm(match_algorithm)
        selector = get_selector(selection_algorithm, selection_options or {})
        self.registry = ClusterRegistry(self.context, registration_secret=registration_secret,
                                        global_token=global_token)
        self.placer = Placer(self.context, self.registry, match_algorithm, selector)
        self.authorization = Authorization(self.context, self.registry)
        self.submissions = Submissions(self.context, self.registry, self.placer)
        self.jobs = JobLifecycle(self.context, self.registry, self.placer)
        self.batches = Batches(self.context, self.submissions)

    # -- settings and hooks (shared by every part through the context) --------
    store = property(lambda self: self.context.store)
    limits = property(lambda self: self.context.limits)
    global_token = property(lambda self: self.registry.global_token)
    generated_secret = property(lambda self: self.registry.generated_secret)
    match_algorithm = property(lambda self: self.placer.match_algorithm)
    selector: Selector = property(lambda self: self.placer.selector)  # type: ignore[assignment]

    clock: Callable[[], float] = _Shared()  # type: ignore[assignment]
    lease_seconds: float = _Shared()  # type: ignore[assignment]
    cluster_timeout: float = _Shared()  # type: ignore[assignment]
    on_events: Callable[[list[JobEvent]], None] = _Shared()  # type: ignore[assignment]
    on_timing: Callable[[str, float], None] = _Shared()  # type: ignore[assignment]
    on_rejection: Callable[[str, bool], None] = _Shared()  # type: ignore[assignment]

    # -- the registry ------------------------------------------------------------
    def forget_generated_secret(self) -> None:
        """Remove a secret this start generated and stored (it was never shown: the start failed)."""
        self.registry.forget_generated_secret()

    def refresh_all(self) -> None:
        self.registry.refresh_all()

    def refresh_cluster(self, name: str) -> None:
        self.registry.refresh_cluster(name)

    def sync_clusters(self, names: Sequence[str] | None = None) -> None:
        self.registry.sync_clusters(names)

    @property
    def cluster_names(self) -> list[str]:
        return self.registry.names

    def cluster_state(self, name: str) -> dict[str, Any]:
        return self.registry.state(name)

    def cluster_graph(self, name: str) -> ClusterGraph | None:
        """The cluster's resource graph as matched (None when unknown or unusable); read-only."""
        return self.registry.graph(name)

    def register(self, name: str, secret: str, nodes: str) -> Registration:
        check_name(name, "name", self.limits)
        self.authorization.registrar(secret)
        return self.registry.register(name, nodes)

    def register_subsystem(self, cluster: str, secret: str, subsystem: str, nodes: str) -> None:
        check_name(subsystem, "subsystem", self.limits)
        self.registry.register_subsystem(self.authorization.cluster_agent(cluster, secret), subsystem, nodes)

    def replace_graph(self, cluster: str, secret: str, nodes: str) -> None:
        """Swap a registered cluster's graph (it grew, shrank or changed), keeping its subsystems."""
        self.registry.replace_graph(self.authorization.cluster_agent(cluster, secret), nodes)

    def delete_cluster(self, name: str, secret: str) -> None:
        self.authorization.cluster_agent(name, secret)
        self.registry.delete_cluster(name)

    def delete_subsystem(self, cluster: str, secret: str, subsystem: str) -> None:
        check_name(subsystem, "subsystem", self.limits)
        self.registry.delete_subsystem(self.authorization.cluster_agent(cluster, secret), subsystem)

    def update_state(self, cluster: str, secret: str, payload: str) -> dict[str, Any]:
        entry = self.authorization.cluster_agent(cluster, secret)
        updates = parse_state_payload(payload, self.limits)
        check_queues_state(updates)
        return self.registry.update_state(entry, updates)

    # -- authorization -------------------------------------------------------------
    def authorize_clusters(self, clusters: Sequence[tuple[str, str]]) -> list[str]:
        """Names of the listed clusters (each once, in order), each checked against its submit token."""
        return self.authorization.submitter(clusters)

    def token_scope(self, token: str) -> list[str] | None:
        """The registered clusters a submit token opens; None when it opens nothing (not even the global token)."""
        return self.authorization.token_scope(token)

    def watch_scope(self, clusters: Sequence[tuple[str, str]], job_id: int | None) -> list[str] | None:
        """Clusters whose events a watcher may see; None for one job (it follows the job anywhere)."""
        return self.authorization.watch_scope(clusters, job_id)

    # -- placement and submission ------------------------------------------------------
    def parse_jobspec(self, text: str) -> Jobspec:
        return self.placer.parse_jobspec(text)

    def satisfy(self, jobspec_text: str, algorithm: str = "") -> SatisfyOutcome:
        return self.submissions.satisfy(jobspec_text, algorithm)

    def submit(
        self,
        name: str,
        clusters: Sequence[tuple[str, str]],
        jobspec_text: str,
        select_algorithm: str = "",
        select_options: Mapping[str, str] | None = None,
        satisfy_only: bool = False,
        key: str = "",
    ) -> SubmitOutcome:
        prepared = self.prepare_submit(
            name, clusters, jobspec_text, select_algorithm, select_options, satisfy_only, key=key
        )
        if not isinstance(prepared, PendingSubmit):
            assert prepared is not None
            return prepared
        outcome = self.complete_submits([prepared], self.store.add_jobs([prepared.job]))[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def prepare_submit(
        self,
        name: str,
        clusters: Sequence[tuple[str, str]],
        jobspec_text: str,
        select_algorithm: str = "",
        select_options: Mapping[str, str] | None = None,
        satisfy_only: bool = False,
        cached_only: bool = False,
        key: str = "",
    ) -> SubmitOutcome | PendingSubmit | None:
        """Everything of ``submit`` before the store: the outcome of ``satisfy_only``, else the job to write.

        Write ``PendingSubmit.job`` with ``store.add_job``/``add_jobs``, then call ``complete_submits``.
        With ``cached_only``, None when the jobspec would have to be parsed, a
        selector made or a match run: a server may run the cheap rest inline.
        On a shared store the clusters' versions are read first, so never inline.
        """
        if cached_only and self.store.shared:
            return None
        candidates = self.authorization.submitter(clusters)
        return self.submissions.prepare(candidates, name, jobspec_text, select_algorithm, select_options,
                                        satisfy_only, cached_only, key)

    def complete_submits(
        self, prepared: Sequence[PendingSubmit], stored: Sequence[tuple[JobRecord, JobEvent | None] | Exception]
    ) -> list[SubmitOutcome | Exception]:
        """Announce jobs the store has written (``stored`` lines up with ``prepared``)."""
        return self.submissions.complete(prepared, stored)

    def submit_batch(
        self,
        clusters: Sequence[tuple[str, str]],
        jobs: Sequence[tuple[str, str]],
        cc: str = "",
        select_algorithm: str = "",
        select_options: Mapping[str, str] | None = None,
        key: str = "",
        join: str = "",
    ) -> BatchOutcome:
        """Submit (name, jobspec) pairs, or copies of one per id of the idset ``cc``, in one transaction
        (added to batch ``join`` when given)."""
        candidates = self.authorization.submitter(clusters)
        return self.batches.submit(candidates, jobs, cc, select_algorithm, select_options, key, join)

    def batch_states(self, clusters: Sequence[tuple[str, str]], batch_id: str) -> dict[str, int]:
        return self.batches.states(self.authorization.submitter(clusters), batch_id)

    def cancel_batch(self, clusters: Sequence[tuple[str, str]], batch_id: str, reason: str = "") -> BatchCancel:
        return self.batches.cancel(self.authorization.submitter(clusters), batch_id, reason)

    # -- the job lifecycle: cluster agents -------------------------------------------------
    def receive(self, cluster: str, secret: str, max_jobs: int, owner: str, window: int = 0) -> list[JobRecord]:
        """Lease waiting jobs to ``owner``: at most ``max_jobs``, and with a ``window`` at most that many
        leases not yet accepted at once (a stream's flow control)."""
        return self.jobs.receive(self.authorization.cluster_agent(cluster, secret), max_jobs, owner, window)

    def renew(self, cluster: str, secret: str, owner: str) -> None:
        """Extend every lease ``owner`` holds on ``cluster`` (its job stream is open: it is alive)."""
        self.jobs.renew(self.authorization.cluster_agent(cluster, secret), owner)

    def accept(
        self, cluster: str, secret: str, ids: Sequence[int], owner: str = "", tokens: Mapping[int, int] | None = None
    ) -> AcceptOutcome:
        """Accept jobs for ``owner``; Aborted (nothing accepted) when another holder took any of them over."""
        return self.jobs.accept(self.authorization.cluster_agent(cluster, secret), ids, owner, tokens)

    def report_state(
        self,
        cluster: str,
        secret: str,
        job_id: int,
        state: str,
        local_id: str = "",
        exit_code: int | None = None,
        message: str = "",
        output: Mapping[str, str] | None = None,
        owner: str = "",
        token: int = 0,
    ) -> JobRecord:
        """Apply a cluster's report; ``output`` says where the job's output is (``JOB_OUTPUT_FIELDS``);
        ``owner``/``token`` fence it (Aborted when the reporter's lease was taken over)."""
        entry = self.authorization.cluster_agent(cluster, secret)
        return self.jobs.report_state(entry, job_id, state, local_id, exit_code, message, output, owner, token)

    def reject(
        self, cluster: str, secret: str, job_id: int, reason: str, owner: str = "", token: int = 0
    ) -> JobRecord:
        """A cluster's scheduler refused a job it holds before it ran: place it again elsewhere (or fail it)."""
        return self.jobs.reject(self.authorization.cluster_agent(cluster, secret), job_id, reason, owner, token)

    def heartbeat(
        self, cluster: str, secret: str, held: Sequence[HeldJob], owner: str = ""
    ) -> tuple[list[int], list[int]]:
        """Contact with an inventory: reconcile, renew ``owner``'s leases; (ids to cancel, ids revoked)."""
        return self.jobs.heartbeat(self.authorization.cluster_agent(cluster, secret), held, owner)

    def check_clusters(self) -> list[str]:
        """Mark silent clusters unreachable and re-place their waiting jobs; returns newly silent ones."""
        return self.jobs.check_clusters()

    # -- the job lifecycle: submitters -------------------------------------------------------
    def get_job(self, job_id: int, token: str) -> tuple[JobRecord, list[JobEvent]]:
        return self.jobs.history(self.authorization.job_reader(job_id, token))

    def list_jobs(
        self, clusters: Sequence[tuple[str, str]], state: str = "", name: str = "", limit: int = 1000, batch: str = ""
    ) -> list[JobRecord]:
        return self.jobs.list_jobs(self.authorization.submitter(clusters), state, name, limit, batch)

    def cancel(self, job_id: int, token: str, reason: str = "") -> JobRecord:
        self.authorization.job_reader(job_id, token)
        return self.jobs.cancel(job_id, reason)
