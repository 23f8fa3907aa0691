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

import dataclasses
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rainbow.errors import InvalidArgument, PermissionDenied
from rainbow.fairshare import Limit, Standing
from rainbow.graph import ClusterGraph, get_match_algorithm
from rainbow.jobspec import Jobspec
from rainbow.lifecycle import JobState, Urgency, parse_urgency
from rainbow.limits import Limits
from rainbow.oidc import OIDCKeys
from rainbow.scheduler.accounts import Accounts, UsageReport, parse_accounts
from rainbow.scheduler.authorization import DEFAULT_LEGACY_USER, Authorization, Principal
from rainbow.scheduler.batches import BatchCancel, Batches, BatchOutcome, Owner, joined
from rainbow.scheduler.context import SchedulerContext
from rainbow.scheduler.dependents import Dependents
from rainbow.scheduler.lifecycle import AcceptOutcome, JobLifecycle, UrgencyOutcome
from rainbow.scheduler.placement import Placer
from rainbow.scheduler.registry import ClusterRegistry, Registration
from rainbow.scheduler.submission import PendingSubmit, SatisfyOutcome, Submissions, SubmitOutcome
from rainbow.scheduler.users import Users
from rainbow.scheduler.validation import check_name, check_queues_state, parse_state_payload
from rainbow.scheduler.workflows import Workflows, WorkflowView
from rainbow.selection import Selector, get_selector
from rainbow.store import AccessRule, HeldJob, JobEvent, JobRecord, NewJob, Store, UserRecord
from rainbow.workflow import Step


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
        legacy_user: str | None = DEFAULT_LEGACY_USER,
        oidc: OIDCKeys | None = None,
    ) -> None:
        self.context = SchedulerContext(store, limits or Limits(), clock, lease_seconds, cluster_timeout)
        # Both checked before the registry stores anything: a bad setting leaves the store as it was.
        get_match_algorithm(match_algorithm)
        selector = get_selector(selection_algorithm, selection_options or {})
        self.registry = ClusterRegistry(self.context, registration_secret=registration_secret,
                                        global_token=global_token)
        self.placer = Placer(self.context, self.registry, match_algorithm, selector)
        self.authorization = Authorization(self.context, self.registry, legacy_user, oidc)
        self.users = Users(self.context, self.registry)
        self.submissions = Submissions(self.context, self.registry, self.placer)
        self.jobs = JobLifecycle(self.context, self.registry, self.placer)
        self.batches = Batches(self.context, self.submissions)
        self.accounts = Accounts(self.context)
        self.dependents = Dependents(self.context, self.registry, self.authorization, self.placer)
        self.workflows = Workflows(self.context, self.submissions, self.dependents, self.batches)
        self.context.on_job_events = self.dependents.on_events

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
    def token_scope(self, token: str) -> list[str] | None:
        """The registered clusters a submit token opens; None when it opens nothing (not even the global token)."""
        return self.authorization.token_scope(token)

    def watch_scope(self, clusters: Sequence[tuple[str, str]], job_id: int | None) -> list[str] | None:
        """Clusters whose events a watcher may see; None for one job (it follows the job anywhere)."""
        return self.authorization.watch_scope(clusters, job_id)

    def watcher(
        self, clusters: Sequence[tuple[str, str]], job_id: int | None, user_token: str = ""
    ) -> tuple[list[str] | None, str | None]:
        """What a watcher may see: (clusters, None: all; the owner, None: anyone's jobs)."""
        return self.authorization.watcher(clusters, job_id, user_token)

    def whoami(self, user_token: str) -> Principal:
        """The user a user token names (Unauthenticated when none)."""
        return self.authorization.user(user_token)

    # -- users and cluster access ---------------------------------------------------
    def add_user(
        self, name: str, groups: Sequence[str], admin: bool, secret: str = "", user_token: str = ""
    ) -> tuple[UserRecord, str]:
        self.authorization.operator(secret, user_token)
        outcome = self.users.add(name, groups, admin)
        self.authorization.forget_users()
        return outcome

    def remove_user(self, name: str, secret: str = "", user_token: str = "") -> None:
        self.authorization.operator(secret, user_token)
        self.users.remove(name)
        self.authorization.forget_users()

    def new_user_token(self, name: str, secret: str = "", user_token: str = "") -> tuple[UserRecord, str]:
        self.authorization.operator(secret, user_token)
        outcome = self.users.new_token(name)
        self.authorization.forget_users()
        return outcome

    def list_users(self, secret: str = "", user_token: str = "") -> list[UserRecord]:
        self.authorization.operator(secret, user_token)
        return self.users.list()

    def set_cluster_access(
        self, cluster: str, kind: str, name: str, allow: bool | None, secret: str = "", user_token: str = ""
    ) -> tuple[AccessRule, ...]:
        """Allow or deny (None: forget) a user or group on a cluster; the cluster's rules after."""
        entry = self.authorization.cluster_manager(cluster, secret, user_token)
        return self.users.set_access(entry, kind, name, allow)

    def renew_cluster_credentials(self, cluster: str, secret: str = "", user_token: str = "") -> Registration:
        """A new cluster secret and submit token for a registered cluster; the old ones stop working at once."""
        entry = self.authorization.cluster_manager(cluster, secret, user_token)
        return self.registry.renew_credentials(entry)

    def cluster_access(self, cluster: str, secret: str = "", user_token: str = "") -> tuple[AccessRule, ...]:
        return self.authorization.cluster_manager(cluster, secret, user_token).access

    # -- placement and submission ------------------------------------------------------
    def parse_jobspec(self, text: str) -> Jobspec:
        return self.placer.parse_jobspec(text)

    def satisfy(self, jobspec_text: str, algorithm: str = "", user_token: str = "") -> SatisfyOutcome:
        """Which clusters could run a jobspec; with a user token, among those the user may use."""
        usable, excluded = self.authorization.usable_clusters(user_token)
        return self.submissions.satisfy(jobspec_text, algorithm, usable, excluded)

    def submit(
        self,
        name: str,
        clusters: Sequence[tuple[str, str]],
        jobspec_text: str,
        select_algorithm: str = "",
        select_options: Mapping[str, str] | None = None,
        satisfy_only: bool = False,
        key: str = "",
        user_token: str = "",
        priority: int = 0,
        hold: bool = False,
    ) -> SubmitOutcome:
        prepared = self.prepare_submit(
            name, clusters, jobspec_text, select_algorithm, select_options, satisfy_only, key=key,
            user_token=user_token, priority=priority, hold=hold,
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
        user_token: str = "",
        priority: int = 0,
        hold: bool = False,
    ) -> SubmitOutcome | PendingSubmit | None:
        """Everything of ``submit`` before the store: the outcome of ``satisfy_only``, else the job to write
        (``hold``: stored held, as `flux submit --urgency=hold`).

        Write ``PendingSubmit.job`` with ``store.add_job``/``add_jobs``, then call ``complete_submits``.
        With ``cached_only``, None when the jobspec would have to be parsed, a
        selector made or a match run: a server may run the cheap rest inline.
        On a shared store the clusters' versions are read first, so never inline; nor with a user token
        not looked up lately (that reads the store), nor under a max-waiting quota (that counts in the store).
        """
        if cached_only and (self.store.shared or (user_token and not self.authorization.knows(user_token))
                            or self.accounts.counts_waiting()):
            return None
        principal, candidates, excluded = self.authorization.submit_scope(clusters, user_token)
        if not satisfy_only:
            if cached_only:
                cached = self.placer.cached_jobspec(jobspec_text)
                jobspec = cached[0] if cached is not None else None
            else:
                jobspec = self.placer.parse_jobspec(jobspec_text)
            if jobspec is not None and jobspec.dependencies:
                if hold:
                    raise InvalidArgument("hold: a job with dependencies waits for them unplaced; hold it once it "
                                          "is placed (rainbow urgency JOBID hold)", field="hold")
                if cached_only:
                    return None  # stored in a transaction of its own, on a worker thread
                job = self.dependents.submit(
                    candidates, self.authorization.submitter_scope(principal, clusters),
                    (principal.user, principal.group), name, jobspec_text, jobspec, select_algorithm,
                    select_options, key, admit=lambda jobs: self.accounts.admit(jobs, priority))
                return SubmitOutcome(job, [job.cluster] if job.state != JobState.DEPEND else [])
        prepared = self.submissions.prepare(candidates, name, jobspec_text, select_algorithm, select_options,
                                            satisfy_only, cached_only, key, (principal.user, principal.group),
                                            excluded)
        if isinstance(prepared, PendingSubmit):
            admitted = _held(self.accounts.admit([prepared.job], priority), hold)[0]
            if admitted is not prepared.job:
                prepared = dataclasses.replace(prepared, job=admitted)
        return prepared

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
        user_token: str = "",
        priority: int = 0,
        join: str = "",
        hold: bool = False,
    ) -> BatchOutcome:
        """Submit (name, jobspec) pairs, or copies of one per id of the idset ``cc``, in one transaction
        (added to batch ``join`` when given; ``hold``: every job stored held)."""
        principal, candidates, excluded = self.authorization.submit_scope(clusters, user_token)
        owner = Owner(principal.user, principal.group, excluded)
        if join:
            self._check_join(joined(join), clusters, principal.owner_filter, user_token)

        def admit(jobs: Sequence[NewJob]) -> list[NewJob]:
            return _held(self.accounts.admit(jobs, priority), hold)

        return self.batches.submit(candidates, jobs, cc, select_algorithm, select_options, key, join, owner, admit)

    def _check_join(
        self, batch_id: str, clusters: Sequence[tuple[str, str]], user: str | None, user_token: str
    ) -> None:
        """PermissionDenied unless the caller may add jobs to batch ``batch_id``: not a workflow, and every job
        it holds is one the caller may see (a user's own, an admin's any; a legacy caller's: on the clusters
        its tokens open). A batch holding nothing yet is joinable: the chunk that named it may have stored
        nothing (no cluster took its jobs), and an id nobody was answered holds nothing to guard."""
        if self.store.get_workflow(batch_id) is not None:
            raise PermissionDenied(f"batch_id {batch_id} is a workflow's id: jobs join batches only",
                                   field="batch_id")
        held = sum(self.store.batch_states(batch_id, None, None).values())
        if not held:
            return
        names = None if user_token else self.authorization.clusters_opened(self.authorization.token_hashes(clusters))
        if sum(self.store.batch_states(batch_id, names, user).values()) != held:
            raise PermissionDenied(f"batch_id {batch_id} holds jobs you may not see", field="batch_id")

    def batch_states(
        self, clusters: Sequence[tuple[str, str]], batch_id: str, user_token: str = ""
    ) -> dict[str, int]:
        return self.batches.states(*self._readable(clusters, user_token, batch_id))

    def cancel_batch(
        self, clusters: Sequence[tuple[str, str]], batch_id: str, reason: str = "", user_token: str = ""
    ) -> BatchCancel:
        names, _, user = self._readable(clusters, user_token, batch_id)
        return self.batches.cancel(names, batch_id, reason, user)

    def set_urgency(self, job_id: int, token: str, urgency: str, user_token: str = "") -> UrgencyOutcome:
        """Hold a waiting job, or set its priority (letting it go if held), as `flux job urgency`."""
        self.authorization.job_owner(job_id, token, user_token)
        return self.jobs.set_urgency(_urgency(urgency), job_id=job_id)

    def set_batch_urgency(
        self, clusters: Sequence[tuple[str, str]], batch_id: str, urgency: str, user_token: str = ""
    ) -> UrgencyOutcome:
        """As ``set_urgency`` for every job of a batch that still waits, in one store transaction."""
        names, _, user = self._readable(clusters, user_token, batch_id)
        self.batches.states(names, batch_id, user)
        return self.jobs.set_urgency(_urgency(urgency), batch=batch_id, clusters=names, user=user)

    def _readable(
        self, clusters: Sequence[tuple[str, str]], user_token: str, batch_id: str
    ) -> tuple[list[str] | None, str, str | None]:
        names, user = self.authorization.reader(clusters, user_token)
        return names, batch_id, user

    # -- dependencies and workflows -----------------------------------------------------------
    def submit_workflow(
        self,
        clusters: Sequence[tuple[str, str]],
        name: str,
        steps: Sequence[Step],
        select_algorithm: str = "",
        select_options: Mapping[str, str] | None = None,
        key: str = "",
        user_token: str = "",
        priority: int = 0,
    ) -> WorkflowView:
        """Store a workflow's steps in one transaction (those that need nothing placed now); the workflow."""
        principal, candidates, excluded = self.authorization.submit_scope(clusters, user_token)
        workflow_id = self.workflows.submit(
            candidates, self.authorization.submitter_scope(principal, clusters), (principal.user, principal.group),
            name, steps, select_algorithm, select_options, key,
            admit=lambda jobs: self.accounts.admit(jobs, priority), excluded=excluded)
        return self.workflow(clusters, workflow_id, user_token)

    def _workflow_scope(
        self, clusters: Sequence[tuple[str, str]], user_token: str
    ) -> tuple[list[str] | None, str | None]:
        """Whose jobs of a workflow the caller sees: (clusters, None: any; owner, None: anyone). Without a
        user token every cluster its tokens open now; with one the user's own jobs (an admin's: anyone's)."""
        if user_token:
            return self.authorization.reader(clusters, user_token)
        self.authorization.legacy()
        self.authorization.submitter(clusters)
        return self.authorization.clusters_opened(self.authorization.token_hashes(clusters)), None

    def workflow(self, clusters: Sequence[tuple[str, str]], workflow_id: str, user_token: str = "") -> WorkflowView:
        candidates, user = self._workflow_scope(clusters, user_token)
        return self.workflows.view(candidates, workflow_id, user)

    def cancel_workflow(
        self, clusters: Sequence[tuple[str, str]], workflow_id: str, reason: str = "", user_token: str = ""
    ) -> BatchCancel:
        candidates, user = self._workflow_scope(clusters, user_token)
        return self.workflows.cancel(candidates, workflow_id, reason, user)

    def job_links(self, job_id: int) -> tuple[list[str], tuple[str, str] | None]:
        """The job's dependencies as scheme:JOBID, and its (workflow id, step) when it is a workflow's."""
        needs = self.store.job_dependencies([job_id]).get(job_id, [])
        return [f"{scheme}:{parent}" for scheme, parent in needs], self.store.job_step(job_id)

    def depends_of(self, jobs: Sequence[JobRecord]) -> dict[int, str]:
        """What each job handed out depended on, as the JSON its agent sets as ``RAINBOW_DEPENDS``."""
        parents = self.store.job_parents([job.id for job in jobs])
        return {job_id: json.dumps([
            {"id": p.id, "name": p.name, "step": p.step or "", "cluster": p.cluster, "local_id": p.local_id or "",
             "state": p.state.value, "scheme": p.scheme} for p in listed]) for job_id, listed in parents.items()}

    def recover_dependents(self) -> int:
        """Decide every job waiting for dependencies (at start: parents may have ended while it was down)."""
        return self.dependents.recover()

    # -- the job lifecycle: cluster agents -------------------------------------------------
    def receive(self, cluster: str, secret: str, max_jobs: int, owner: str, window: int = 0) -> list[JobRecord]:
        """Lease waiting jobs to ``owner``: at most ``max_jobs``, and with a ``window`` at most that many
        leases not yet accepted at once (a stream's flow control)."""
        entry = self.authorization.cluster_agent(cluster, secret)
        return self.jobs.receive(entry, max_jobs, owner, window, self.accounts.order(entry.name))

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
        """Mark silent clusters unreachable and re-place their waiting jobs; returns newly silent ones.

        Jobs waiting for dependencies are decided again too on a shared store (the replica that stored a
        parent's last report may have stopped before it released them), or after a decision failed here.
        """
        silent = self.jobs.check_clusters()
        if self.store.shared or self.dependents.behind:
            self.dependents.recover()
        return silent

    # -- the job lifecycle: submitters -------------------------------------------------------
    def get_job(self, job_id: int, token: str, user_token: str = "") -> tuple[JobRecord, list[JobEvent]]:
        job, history = self.jobs.history(self.authorization.job_owner(job_id, token, user_token))
        return self.accounts.explain(job), history

    def get_job_with_links(
        self, job_id: int, token: str, user_token: str = ""
    ) -> tuple[JobRecord, list[JobEvent], list[str], tuple[str, str] | None]:
        """``get_job`` with ``job_links``."""
        job, history = self.get_job(job_id, token, user_token)
        return (job, history, *self.job_links(job_id))

    def list_jobs(
        self,
        clusters: Sequence[tuple[str, str]],
        state: str = "",
        name: str = "",
        limit: int = 1000,
        batch: str = "",
        user_token: str = "",
    ) -> list[JobRecord]:
        names, user = self.authorization.reader(clusters, user_token)
        return [self.accounts.explain(job) for job in self.jobs.list_jobs(names, state, name, limit, batch, user)]

    def cancel(self, job_id: int, token: str, reason: str = "", user_token: str = "") -> JobRecord:
        self.authorization.job_owner(job_id, token, user_token)
        return self.jobs.cancel(job_id, reason)

    # -- fair share, quotas and accounting (operator) ------------------------------------------
    def set_shares(
        self, kind: str, name: str, shares: int, parent: str = "", secret: str = "", user_token: str = ""
    ) -> list[Standing]:
        """A user's or group's shares (a group's parent bank too); every association's standing after."""
        self.authorization.operator(secret, user_token)
        self.accounts.set_shares(kind, name, shares, parent or None)
        return self.accounts.current()

    def load_accounts(self, text: str, secret: str = "", user_token: str = "") -> list[tuple[str, str]]:
        """Banks, users and shares from an accounts file (YAML or JSON), in one transaction: (user, token) of
        each user it created."""
        self.authorization.operator(secret, user_token)
        created = self.accounts.load(parse_accounts(text, self.limits.max_jobspec_bytes))
        self.authorization.forget_users()
        return created

    def set_quota(self, quota: Limit, remove: bool = False, secret: str = "", user_token: str = "") -> list[Limit]:
        self.authorization.operator(secret, user_token)
        return self.accounts.set_quota(quota, remove)

    def list_quotas(self, secret: str = "", user_token: str = "") -> list[Limit]:
        self.authorization.operator(secret, user_token)
        return self.accounts.quotas()

    def usage(self, by: str = "user", since: float = 0.0, secret: str = "", user_token: str = "") -> UsageReport:
        """Jobs per user, group or cluster and state with their node-hours, and every fair-share standing."""
        self.authorization.operator(secret, user_token)
        return self.accounts.report(by or "user", since)


def _urgency(text: str) -> Urgency:
    try:
        return parse_urgency(text)
    except ValueError as exc:
        raise InvalidArgument(f"urgency: {exc}", field="urgency") from None


def _held(jobs: list[NewJob], hold: bool) -> list[NewJob]:
    """The jobs to store held, when ``hold``."""
    return [dataclasses.replace(job, hold=True) for job in jobs] if hold else jobs
