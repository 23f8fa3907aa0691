"""Submitting a job: place it (``prepare``), let the store write it, announce it (``complete``).

The two halves are apart so that the server's job writer can store the jobs of
many requests in one transaction between them. Credentials are checked before
``prepare`` (``Authorization.submitter``).
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rainbow.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from rainbow.jobspec import Jobspec, job_name, node_count
from rainbow.scheduler.context import SchedulerContext, log, log_lines
from rainbow.scheduler.placement import BatchPlacement, Placement, Placer, placement_record
from rainbow.scheduler.registry import ClusterRegistry
from rainbow.scheduler.validation import check_idempotency_key
from rainbow.selection import Selection, Selector
from rainbow.store import JobEvent, JobRecord, NewJob


@dataclass(frozen=True)
class SatisfyOutcome:
    clusters: list[str]
    reasons: dict[str, str]
    total: int


@dataclass(frozen=True)
class SubmitOutcome:
    job: JobRecord | None
    clusters: list[str]
    selection: Selection | None = None
    reasons: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PendingSubmit:
    """A placed job not yet stored: ``Scheduler.prepare_submit`` makes it, the store writes ``job``."""

    job: NewJob
    selection: Selection
    reasons: dict[str, str]
    authorized: tuple[str, ...] = ()


def submit_decision(
    placement: Placement,
    candidates: Sequence[str],
    name: str,
    jobspec_text: str,
    jobspec: Jobspec,
    now: float,
    key: str = "",
    satisfy_only: bool = False,
    states: Mapping[str, Any] | None = None,
    owner: tuple[str, str] = ("", ""),
    excluded: Mapping[str, str] | None = None,
    record: str | None = None,
    batch: str | None = None,
) -> SubmitOutcome | PendingSubmit:
    """What a placement means for a submission: the job to store, the clusters that satisfy it
    (``satisfy_only``), or FailedPrecondition when no listed cluster can run it. ``states`` are the
    cluster states selection decided from, kept in the job's placement record (``record``, when the
    caller wrote it already). ``owner`` is the job's (user, group); ``excluded`` the clusters its user may
    not use, with why (they join the explanation); ``batch`` is the SubmitJobs call it came in."""
    selection, reasons = placement.selection, placement.reasons
    if selection is None:
        if satisfy_only:
            return SubmitOutcome(None, [], None, {**reasons, **(excluded or {})})
        explanation = "; ".join(f"{c}: {r}" for c, r in {**reasons, **(excluded or {})}.items())
        listed = "cluster you may use" if excluded else "listed cluster"
        raise FailedPrecondition(f"no {listed} can run this job ({explanation})", field="jobspec")
    if satisfy_only:
        return SubmitOutcome(None, list(selection.clusters), selection, {**reasons, **(excluded or {})})
    if not selection.clusters:
        raise FailedPrecondition(selection.reason, field="select_algorithm")
    matching = tuple(c for c in candidates if c not in reasons)
    if record is None:
        record = placement_record(selection, {**reasons, **(excluded or {})}, candidates, states or {})
    new = NewJob(selection.clusters[0], job_name(name, jobspec), jobspec_text, shlex.join(jobspec.command), now,
                 matching, key or None, record, batch, user=owner[0], group=owner[1], nodes=node_count(jobspec))
    return PendingSubmit(new, selection, reasons, tuple(candidates))


def _no_dependencies() -> None:
    """Jobs placed at once (a batch, an array) cannot wait: dependencies go through SubmitJob or a workflow."""
    raise InvalidArgument("attributes.system.dependencies: a job of a batch or an array cannot have dependencies "
                          "(submit it alone, or as a workflow step)", field="attributes.system.dependencies")


def _log_selection(level: int, job_name: str, selection: Selection) -> None:
    if log.isEnabledFor(level):
        log.log(level, "selection for job %r among %s: %s", job_name, list(selection.candidates), selection.reason)
        for line in selection.trace:
            log.debug("  %s", line)


class Submissions:
    def __init__(self, context: SchedulerContext, registry: ClusterRegistry, placer: Placer) -> None:
        self.context = context
        self.registry = registry
        self.placer = placer

    def prepare(
        self,
        candidates: Sequence[str],
        name: str,
        jobspec_text: str,
        select_algorithm: str = "",
        select_options: Mapping[str, str] | None = None,
        satisfy_only: bool = False,
        cached_only: bool = False,
        key: str = "",
        owner: tuple[str, str] = ("", ""),
        excluded: Mapping[str, str] | None = None,
    ) -> SubmitOutcome | PendingSubmit | None:
        """Place a job among authorized ``candidates``; with ``cached_only``, None when that needs parsing,
        a new selector or a match. ``owner``: the job's (user, group); ``excluded``: clusters its user may
        not use (with why, for the explanation)."""
        check_idempotency_key(key, self.context.limits)
        inputs = self._inputs(jobspec_text, select_algorithm, select_options, cached_only)
        if inputs is None:
            return None
        (jobspec, template), selector = inputs
        if jobspec.dependencies and not satisfy_only:
            _no_dependencies()
        placement = self.placer.place(candidates, template, selector, cached_only)
        if placement is None:
            return None
        record = None
        if placement.selection is not None:
            _log_selection(logging.INFO if satisfy_only else logging.DEBUG, name or jobspec.name, placement.selection)
            if not satisfy_only and placement.selection.clusters:
                record = self.placer.record(placement.selection, {**placement.reasons, **(excluded or {})},
                                            candidates)
        return submit_decision(placement, candidates, name, jobspec_text, jobspec, self.context.clock(), key,
                               satisfy_only, None, owner, excluded, record)

    def prepare_in_batch(
        self,
        batch: BatchPlacement,
        name: str,
        jobspec_text: str,
        jobspec: Jobspec,
        placed_by: Jobspec,
        key: str = "",
        batch_id: str | None = None,
        owner: tuple[str, str] = ("", ""),
        excluded: Mapping[str, str] | None = None,
    ) -> PendingSubmit:
        """Place one job of a batch (``batch_id``) as ``prepare`` would: ``jobspec`` is the job's, ``placed_by`` the
        jobspec it is matched and selected by (``Placer.parse_for_placement``); FailedPrecondition when no
        candidate can run it. ``owner`` and ``excluded`` as for ``submit_decision``."""
        if jobspec.dependencies:
            _no_dependencies()
        placement = batch.place(placed_by)
        selection = placement.selection
        if selection is not None and log.isEnabledFor(logging.DEBUG):
            _log_selection(logging.DEBUG, name or jobspec.name, selection)
        if selection is None or not selection.clusters:
            submit_decision(placement, batch.candidates, name, jobspec_text, jobspec, self.context.clock(), key,
                            owner=owner, excluded=excluded, batch=batch_id)
            raise AssertionError("submit_decision refuses a placement without a cluster")
        alike = batch.placed_alike(placed_by, placement, excluded)
        job_name = name or jobspec.name or (jobspec.command[0] if jobspec.command else "job")
        new = NewJob(selection.clusters[0], job_name, jobspec_text, shlex.join(jobspec.command), self.context.clock(),
                     alike.matching, key or None, alike.record, batch_id, user=owner[0], group=owner[1],
                     nodes=alike.nodes)
        return PendingSubmit(new, selection, placement.reasons, batch.listed)

    def _inputs(
        self, jobspec_text: str, select_algorithm: str, select_options: Mapping[str, str] | None, cached_only: bool
    ) -> tuple[tuple[Jobspec, Jobspec], Selector] | None:
        """The jobspec with the one to place it by (``Placer.parse_for_placement``), and the selector."""
        if not cached_only:
            parsed = self.placer.parse_for_placement(jobspec_text)
        else:
            parsed = self.placer.cached_jobspec(jobspec_text)
            if parsed is None or not self.placer.has_selector(select_algorithm, select_options):
                return None
        return parsed, self.placer.selector_for(select_algorithm, select_options)

    def complete(
        self,
        prepared: Sequence[PendingSubmit],
        stored: Sequence[tuple[JobRecord, JobEvent | None] | Exception],
        log_each: bool = True,
    ) -> list[SubmitOutcome | Exception]:
        """Announce jobs the store has written (``stored`` lines up with ``prepared``); ``announce``, each
        stored job as the outcome of its submission."""
        return [job if isinstance(job, Exception) else
                SubmitOutcome(job, [job.cluster], pending.selection, pending.reasons)
                for pending, job in zip(prepared, self.announce(prepared, stored, log_each), strict=True)]

    def announce(
        self,
        prepared: Sequence[PendingSubmit],
        stored: Sequence[tuple[JobRecord, JobEvent | None] | Exception],
        log_each: bool = True,
    ) -> list[JobRecord | Exception]:
        """Announce jobs the store has written (``stored`` lines up with ``prepared``): each job, or why not.

        ``log_each`` False: the placements are logged at debug (a batch logs one line of its own).

        A job stored earlier under the same idempotency key comes back without an
        event: it is answered again, not announced again. The server's one log
        line per request is a debug line; the placement is logged here.
        """
        outcomes: list[JobRecord | Exception] = []
        events: list[JobEvent] = []
        level = logging.INFO if log_each else logging.DEBUG
        lines: list[str] | None = [] if log.isEnabledFor(level) else None
        for pending, result in zip(prepared, stored, strict=True):
            if isinstance(result, Exception):
                outcomes.append(result)
                continue
            job, event = result
            if event is None:
                if job.cluster not in pending.authorized or job.user != pending.job.user:
                    outcomes.append(PermissionDenied("idempotency_key belongs to a job of another cluster",
                                                     field="idempotency_key"))
                    continue
                log.info("job %d resent with its idempotency key: not stored again", job.id)
            else:
                events.append(event)
            if lines is not None:
                lines.append(f"job {job.id} ({job.name}) assigned to cluster {job.cluster} "
                             f"({pending.selection.reason})")
            outcomes.append(job)
        if lines:
            log_lines(level, lines)
        self.context.publish(events)
        return outcomes

    def satisfy(
        self,
        jobspec_text: str,
        algorithm: str = "",
        usable: Sequence[str] | None = None,
        excluded: Mapping[str, str] | None = None,
    ) -> SatisfyOutcome:
        """Which registered clusters could run a jobspec (and why the others could not).

        ``usable`` limits the clusters considered (a user's); ``excluded`` says why the others are not.
        """
        jobspec = self.placer.parse_jobspec(jobspec_text)
        self.registry.sync_clusters()
        names = self.registry.names if usable is None else list(usable)
        results = self.placer.match(names, jobspec, algorithm)
        assert results is not None
        matches = [name for name, result in results.items() if result.ok]
        reasons = {name: result.reason or "does not match" for name, result in results.items() if not result.ok}
        reasons.update(excluded or {})
        for name, reason in reasons.items():
            log.info("satisfy: %s: %s", name, reason)
        return SatisfyOutcome(matches, reasons, len(results) + len(excluded or {}))
