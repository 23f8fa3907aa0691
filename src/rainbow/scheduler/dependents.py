"""Jobs that wait for others: stored in ``depend``, released (placed) when their dependencies are satisfied.

A dependent job is not placed at submit. It waits with its dependencies in the
store; whenever a job starts or ends (every published event passes
``on_events``), its waiting dependents are decided by the store
(``Store.settle_dependents``, with the rules of ``rainbow.dependencies``): those
that can never run are cancelled with why, transitively, in one transaction;
those whose dependencies are all satisfied are released here: matched and
selected among the clusters their submitter may use *at that moment*
(late binding: a cluster registered after the submission can receive them),
then moved to ``assigned`` by a conditional update (``Store.release_jobs``), so
a job is released once however many servers or passes decide it. A job no
cluster can run when released fails with the placement's explanation.

Everything is read from the store, nothing is remembered: ``recover`` (at
start, and on every periodic check) decides every waiting job again, so a job
whose parents ended while the server was down is released after a restart.
"""

from __future__ import annotations

import json
import shlex
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from rainbow.dependencies import TRIGGER_STATES, Dependency
from rainbow.errors import InvalidArgument, PermissionDenied
from rainbow.jobspec import Jobspec, job_name, node_count
from rainbow.scheduler.authorization import Authorization, SubmitterScope
from rainbow.scheduler.context import SchedulerContext, log
from rainbow.scheduler.placement import BatchPlacement, Placer
from rainbow.scheduler.registry import ClusterRegistry
from rainbow.scheduler.validation import check_idempotency_key
from rainbow.store import DependsOn, JobEvent, JobRecord, NewJob, Release


def release_plan(scope: SubmitterScope, algorithm: str, options: Mapping[str, str] | None) -> str:
    """How a dependent job is placed when released (JSON kept with it): what its submitter may use (which
    clusters it may go to then) and the selection it asked for."""
    return json.dumps({**scope.to_plan(), "algorithm": algorithm or "", "options": dict(options or {})})


def new_dependent(
    home: str,
    name: str,
    jobspec_text: str,
    jobspec: Jobspec,
    depends: Sequence[DependsOn],
    release: str,
    now: float,
    key: str = "",
    batch: str | None = None,
    step: str | None = None,
    owner: tuple[str, str] = ("", ""),
) -> NewJob:
    """A job to store waiting for ``depends``. ``home`` (one of the submitter's clusters) is where the job is
    listed until it is placed; it says nothing of where it will run. ``owner``: (user, group)."""
    return NewJob(home, job_name(name, jobspec), jobspec_text, shlex.join(jobspec.command), now, (home,),
                  key or None, None, batch=batch, user=owner[0], group=owner[1], nodes=node_count(jobspec),
                  depends=tuple(depends), step=step, release=release)


@dataclass(frozen=True)
class _Plan:
    """How a release places the jobs of one plan: among the clusters its submitter may use (None: none is
    reachable), the clusters left out with why, or why it cannot place them at all."""

    batch: BatchPlacement | None
    excluded: Mapping[str, str]
    error: str = ""


class Dependents:
    def __init__(
        self, context: SchedulerContext, registry: ClusterRegistry, authorization: Authorization, placer: Placer
    ) -> None:
        self.context = context
        self.store = context.store
        self.registry = registry
        self.authorization = authorization
        self.placer = placer
        self._local = threading.local()
        # A decision failed (the store was unreachable): the periodic check decides every waiting job again.
        self.behind = False

    # -- submit ------------------------------------------------------------------
    def submit(
        self,
        candidates: Sequence[str],
        scope: SubmitterScope,
        owner: tuple[str, str],
        name: str,
        jobspec_text: str,
        jobspec: Jobspec,
        select_algorithm: str = "",
        select_options: Mapping[str, str] | None = None,
        key: str = "",
        admit: Callable[[list[NewJob]], list[NewJob]] = list,
    ) -> JobRecord:
        """Store a job with dependencies (``jobspec.dependencies``) waiting; released at once when they are
        already satisfied. Refused when a parent does not exist or the submitter may not read it. ``admit``
        stamps the job's priority and checks its owner's quotas (``Accounts.admit``)."""
        check_idempotency_key(key, self.context.limits)
        self.placer.selector_for(select_algorithm, select_options)  # an unknown algorithm is refused now
        self.check_parents(jobspec.dependencies, scope, "attributes.system.dependencies")
        depends = [DependsOn(d.scheme, job=d.job_id) for d in jobspec.dependencies]
        new = new_dependent(candidates[0], name, jobspec_text, jobspec, depends,
                            release_plan(scope, select_algorithm, select_options), self.context.clock(), key,
                            owner=owner)
        (job, event), = self.store.add_graph(admit([new]))
        if event is None and not self.authorization.scope_reads(job, scope):
            raise PermissionDenied("idempotency_key belongs to a job you may not read", field="idempotency_key")
        if event is not None:
            log.info("job %d (%s) %s", job.id, job.name, job.message)
            self.context.publish([event])
            self.settle(jobs=[job.id])  # its parents may have started or ended already
        return self.store.get_job(job.id) or job

    def check_parents(self, dependencies: Sequence[Dependency], scope: SubmitterScope, field: str) -> None:
        self.authorization.dependency_parents([d.job_id for d in dependencies], scope, field)

    # -- deciding --------------------------------------------------------------------
    def on_events(self, events: list[JobEvent]) -> None:
        """Decide the dependents of jobs that just started or ended (called with every published event)."""
        parents = [event.job_id for event in events if event.state in TRIGGER_STATES]
        if not parents:
            return
        try:
            if self.store.has_dependents(parents):
                self.settle(parents=parents)
        except Exception as exc:  # the change that triggered this is stored: it must not fail for its dependents
            # Decided again by the next periodic check (``behind``) or start: later, never lost.
            self.behind = True
            log.error("dependents of %s not decided yet (decided again later): %s", parents[:10], exc)

    def recover(self) -> int:
        """Decide every waiting job again (at start, and periodically); returns how many were waiting."""
        self.behind = False
        waiting = self.store.waiting_dependents()
        if waiting:
            self.settle(jobs=waiting)
        return len(waiting)

    def settle(self, parents: Sequence[int] = (), jobs: Sequence[int] = ()) -> None:
        """Decide the dependencies on ``parents`` (and all of ``jobs``): cancel the jobs that can never run
        (transitively), release the ready ones, until nothing changes.

        Events published meanwhile on this thread (a release that fails, a cancellation) add their parents to
        the same loop instead of starting another.
        """
        local = self._local
        pending: tuple[list[int], list[int]] | None = getattr(local, "pending", None)
        if pending is not None:
            pending[0].extend(parents)
            pending[1].extend(jobs)
            return
        pending = local.pending = (list(parents), list(jobs))
        try:
            while pending[0] or pending[1]:
                by_parent, by_job = list(dict.fromkeys(pending[0])), list(dict.fromkeys(pending[1]))
                pending[0].clear()
                pending[1].clear()
                ready, events = self.store.settle_dependents(by_parent, self.context.clock(), by_job)
                for event in events:
                    log.info("job %d cancelled: %s", event.job_id, event.message)
                self.context.publish(events)
                if ready:
                    self.release(ready)
        finally:
            local.pending = None

    def release(self, job_ids: Sequence[int]) -> list[JobEvent]:
        """Place jobs whose dependencies are satisfied, now, among the clusters their submitter may use now;
        all moved in one store transaction. The events written (assigned, or failed: no cluster can run it).

        The jobs of one release that share a submitter and a selection are placed as a batch's jobs are
        (``BatchPlacement``): each distinct jobspec shape matched once, the states read once; each job still
        selected on its own.
        """
        plans: dict[str, _Plan] = {}  # release plan (JSON text) -> how its jobs are placed
        releases = []
        for job_id, _, jobspec, plan_text in self.store.waiting_jobs_to_place(job_ids):
            plan = plans.get(plan_text or "")
            if plan is None:
                plan = plans[plan_text or ""] = self._plan(plan_text or "")
            releases.append(self._placement(job_id, jobspec, plan))
        events = self.store.release_jobs(releases, self.context.clock())
        for event in events[:20]:
            log.info("job %d (%s): %s", event.job_id, event.name, event.message)
        if len(events) > 20:
            log.info("%d more jobs released", len(events) - 20)
        self.context.publish(events)
        return events

    def _plan(self, plan_text: str) -> _Plan:
        """How the jobs of one release plan (submitter and selection) are placed now."""
        plan = json.loads(plan_text or "{}")
        allowed, excluded = self.authorization.scope_clusters(SubmitterScope.from_plan(plan))
        reachable = self.registry.reachable_among(allowed, excluding="")
        try:
            selector = self.placer.selector_for(plan.get("algorithm") or "", plan.get("options") or None)
        except InvalidArgument as exc:
            return _Plan(None, excluded, str(exc))
        return _Plan(BatchPlacement(self.placer, reachable, selector) if reachable else None, excluded)

    def _placement(self, job_id: int, jobspec: str, plan: _Plan) -> Release:
        """Where a released job goes, or why it cannot run anywhere now (naming, as SubmitJob does, the
        clusters its user may not use)."""
        batch, excluded, message = plan.batch, plan.excluded, plan.error
        placement = None
        if batch is not None:
            try:
                # steps differing only in their commands and names match once
                template = self.placer.template_of(jobspec)
                placement = batch.place(template)
            except InvalidArgument as exc:
                message = str(exc)
        if batch is not None and placement is not None and placement.selection is not None \
                and placement.selection.clusters:
            selection = placement.selection
            target = selection.clusters[0]
            matching = tuple(c for c in batch.candidates if c not in placement.reasons)
            record = batch.record(template, selection, {**placement.reasons, **excluded}, batch.states([target]))
            return Release(job_id, target, f"dependencies satisfied: placed on {target} ({selection.reason})",
                           matching, record)
        if placement is not None:
            message = placement.explanation
        elif not message:
            message = "none of the submitter's clusters is registered and reachable"
        if excluded:
            message = "; ".join([message, *(f"{c}: {r}" for c, r in excluded.items())])
        return Release(job_id, None, f"dependencies satisfied, but no cluster can run it now: {message}")
