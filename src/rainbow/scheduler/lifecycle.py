"""The job lifecycle after placement: leases, accepts, reports, heartbeats, cancels, lost clusters.

A cluster's agent leases waiting jobs (``receive``; each lease carries a token
that fences the holder's later accepts and reports), accepts those it started,
reports their states and, with heartbeats or an open job stream, renews its
leases. Submitters read and cancel jobs. A cluster silent for longer than
``cluster_timeout`` is marked unreachable and its waiting jobs are placed again
elsewhere. Every change is a store transaction that writes its events, which
are then published. Credentials are checked before these calls
(``authorization``); the allowed transitions are in ``rainbow.lifecycle``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rainbow.errors import Aborted, FailedPrecondition, InvalidArgument, NotFound
from rainbow.lifecycle import FINAL_STATES, JobState, Urgency
from rainbow.scheduler.context import SchedulerContext, log
from rainbow.scheduler.placement import Placer
from rainbow.scheduler.registry import ClusterEntry, ClusterRegistry
from rainbow.scheduler.text import job_ids, plural
from rainbow.scheduler.validation import job_state, output_json
from rainbow.store import HeldJob, JobEvent, JobRecord, LeaseOrder

# A rejection's reason is the local scheduler's one-line message; longer text is cut.
MAX_REJECTION_REASON = 2000


@dataclass(frozen=True)
class AcceptOutcome:
    accepted: list[int]
    refused: list[int]


@dataclass(frozen=True)
class UrgencyOutcome:
    changed: int  # jobs held, let go, or given the new priority
    skipped: int  # jobs left as they were: they no longer wait (taken by their cluster, ended)
    job: JobRecord | None = None  # one job, afterwards (None for a batch)


class JobLifecycle:
    def __init__(self, context: SchedulerContext, registry: ClusterRegistry, placer: Placer) -> None:
        self.context = context
        self.store = context.store
        self.registry = registry
        self.placer = placer

    # -- leases --------------------------------------------------------------
    def receive(
        self, entry: ClusterEntry, max_jobs: int, owner: str, window: int = 0, order: LeaseOrder | None = None
    ) -> list[JobRecord]:
        """Lease waiting jobs to ``owner``: at most ``max_jobs``, and with a ``window`` at most that many
        leases not yet accepted at once (a stream's flow control); in the ``order`` given (default: oldest first)."""
        self.mark_seen(entry)
        cluster, context = entry.name, self.context
        limit = context.limits.max_receive_jobs
        count = limit if max_jobs < 1 else min(max_jobs, limit)
        jobs, events = self.store.lease_jobs(cluster, owner, count, context.lease_seconds, context.clock(), window,
                                             order)
        context.publish(events)
        if jobs:
            log.info("cluster %s received %s (leased to %s for %.0fs)",
                     cluster, plural(len(jobs), "job"), owner, context.lease_seconds)
        return jobs

    def renew(self, entry: ClusterEntry, owner: str) -> None:
        """Extend every lease ``owner`` holds on the cluster (its job stream is open: it is alive)."""
        now = self.context.clock()
        self.store.renew_leases(entry.name, owner, None, now + self.context.lease_seconds, now)

    def accept(
        self, entry: ClusterEntry, ids: Sequence[int], owner: str = "", tokens: Mapping[int, int] | None = None
    ) -> AcceptOutcome:
        """Accept jobs for ``owner``; Aborted (nothing accepted) when another holder took any of them over."""
        cluster = entry.name
        if not ids:
            raise InvalidArgument("jobids: at least one job id is required", field="jobids")
        moved, events, fenced = self.store.accept_jobs(cluster, ids, self.context.clock(), owner, tokens)
        if fenced:
            reasons = "; ".join(fenced[job_id] for job_id in sorted(fenced)[:10])
            more = f" (and {len(fenced) - 10} more)" if len(fenced) > 10 else ""
            log.warning("cluster %s: accept by %s refused: %s%s", cluster, owner or "a caller", reasons, more)
            raise Aborted(f"lease lost, nothing accepted: {reasons}{more}", field="jobids")
        self.context.publish(events)
        accepted, refused = [], []
        moved_ids = set(moved)
        for job_id in dict.fromkeys(ids):
            if job_id in moved_ids:
                accepted.append(job_id)
                continue
            job = self.store.get_job(job_id)
            already_ours = job is not None and job.cluster == cluster and job.state not in (
                JobState.ASSIGNED, JobState.LEASED, JobState.HELD, JobState.CANCELLED)
            (accepted if already_ours else refused).append(job_id)
        log.info("cluster %s accepted %s%s", cluster, job_ids(moved) if moved else "no new jobs",
                 f", refused {job_ids(refused)}" if refused else "")
        return AcceptOutcome(accepted, refused)

    # -- clusters report -------------------------------------------------------
    def report_state(
        self,
        entry: ClusterEntry,
        job_id: int,
        state: str,
        local_id: str = "",
        exit_code: int | None = None,
        message: str = "",
        output: Mapping[str, str] | None = None,
        owner: str = "",
        token: int = 0,
    ) -> JobRecord:
        """Apply a cluster's report; ``owner``/``token`` fence it (Aborted when the lease was taken over)."""
        self.mark_seen(entry)
        cluster = entry.name
        new_state = job_state(state)
        if new_state in (JobState.ASSIGNED, JobState.LEASED, JobState.UNKNOWN):
            raise InvalidArgument(f"state: a cluster cannot report {new_state.value!r}", field="state")
        job, events = self.store.report_state(
            cluster, job_id, new_state, self.context.clock(), local_id or None, exit_code, message or None,
            output_json(output), owner, token,
        )
        if job is None:
            raise NotFound(f"cluster {cluster!r} has no job {job_id}", field="jobid")
        self.context.publish(events)
        if events:
            log.info("job %d on %s is %s%s", job_id, cluster, new_state.value,
                     f" (local id {job.local_id})" if job.local_id else "")
        elif job.state != new_state:
            log.warning("job %d on %s: refused move %s -> %s", job_id, cluster, job.state.value, new_state.value)
        return job

    def reject(self, entry: ClusterEntry, job_id: int, reason: str, owner: str = "", token: int = 0) -> JobRecord:
        """A cluster's scheduler refused a job it holds before the job ran: place it again elsewhere.

        The rejection is recorded on the job and the cluster leaves its
        candidates; the job is matched and selected again among the remaining
        reachable candidates and moves to the chosen one (``assigned``). With
        none left it fails, its message naming every cluster's reason. A job
        that already ran (or ended) is not moved. Resending the report once the
        job has moved answers with the job as it is.
        """
        self.mark_seen(entry)
        cluster = entry.name
        reason = ((reason or "").strip() or "refused by the local scheduler")[:MAX_REJECTION_REASON]
        job = self.store.get_job(job_id)
        if job is not None and job.cluster != cluster and any(r.cluster == cluster for r in job.rejections):
            return job  # the same rejection, sent again: the job has moved on
        if job is None or job.cluster != cluster:
            raise NotFound(f"cluster {cluster!r} has no job {job_id}", field="jobid")
        now = self.context.clock()
        target, failure = self._replace_rejected(job, cluster, reason)
        updated, events = self.store.reject_job(cluster, job_id, reason, now, target, failure, owner, token)
        if updated is None:
            raise NotFound(f"cluster {cluster!r} has no job {job_id}", field="jobid")
        self.context.publish(events)
        if events:
            self.context.on_rejection(cluster, target is not None)
            if target:
                log.info("job %d rejected by %s (%s): re-placed on %s", job_id, cluster, reason, target)
            else:
                log.info("job %d rejected by %s (%s): %s", job_id, cluster, reason, failure)
        return updated

    def _replace_rejected(self, job: JobRecord, cluster: str, reason: str) -> tuple[str | None, str]:
        """(the cluster to place a rejected job on, or None; the failure message when there is none)."""
        refused = {r.cluster: r.reason for r in job.rejections}
        refused[cluster] = reason
        waiting = [c for c in job.candidates if c not in refused]
        remaining = self.registry.reachable_among(waiting, excluding=cluster)
        reasons = {c: "unreachable" for c in waiting if c not in remaining}
        if remaining:
            try:
                placement = self.placer.place(remaining, self.placer.parse_jobspec(job.jobspec), self.placer.selector)
            except InvalidArgument as exc:
                placement = None
                reasons.update({c: str(exc) for c in remaining})
            if placement is not None:
                reasons.update(placement.reasons)
                selection = placement.selection
                if selection is not None and selection.clusters:
                    return selection.clusters[0], ""
                if selection is not None:
                    reasons.update({c: selection.reason for c in remaining if c not in placement.reasons})
        parts = [f"{c}: rejected: {why}" for c, why in refused.items()] + [f"{c}: {why}" for c, why in reasons.items()]
        return None, "no cluster can run this job: " + "; ".join(parts)

    def heartbeat(self, entry: ClusterEntry, held: Sequence[HeldJob], owner: str = "") -> tuple[list[int], list[int]]:
        """Contact with an inventory: reconcile, renew ``owner``'s leases; (ids to cancel, ids revoked)."""
        cluster = entry.name
        now = self.context.clock()
        cancel, events = self.store.heartbeat(cluster, held, now)
        if not entry.reachable:
            log.info("cluster %s is reachable again (%d jobs reconciled)", cluster, len(events))
        entry.reachable = True
        self.context.publish(events)
        revoked: list[int] = []
        tokens = {job.job_id: job.lease for job in held if job.lease}
        if owner and tokens:
            revoked = self.store.renew_leases(cluster, owner, tokens, now + self.context.lease_seconds, now)
            if revoked:
                log.info("cluster %s: %s no longer holds %s", cluster, owner, job_ids(revoked))
        return cancel, revoked

    # -- lost clusters ---------------------------------------------------------
    def mark_seen(self, entry: ClusterEntry) -> None:
        if not entry.reachable:
            self.store.heartbeat(entry.name, [], self.context.clock())
            entry.reachable = True

    def check_clusters(self) -> list[str]:
        """Mark silent clusters unreachable and re-place their waiting jobs; returns newly silent ones."""
        timeout = self.context.cluster_timeout
        if timeout <= 0:
            return []
        now = self.context.clock()
        silent, events = self.store.mark_unreachable(now - timeout, now)
        self.context.publish(events)
        unreachable = self.registry.mark_unreachable(silent)
        for name in silent:
            log.warning("cluster %s is unreachable (silent for %.0fs); %s now unknown",
                        name, timeout, plural(sum(1 for e in events if e.cluster == name), "job"))
        for name in unreachable:
            self._replace_waiting(name, now)
        return silent

    def _replace_waiting(self, cluster: str, now: float) -> None:
        for job in self.store.waiting_jobs(cluster, now):
            candidates = self.registry.reachable_among(job.candidates, excluding=cluster)
            if not candidates:
                continue
            try:
                jobspec = self.placer.parse_jobspec(job.jobspec)
                placement = self.placer.place(candidates, jobspec, self.placer.selector)
            except InvalidArgument as exc:
                log.error("job %d cannot be re-placed: %s", job.id, exc)
                continue
            selection = placement.selection if placement else None
            if selection is None or not selection.clusters:
                log.info("job %d waits for %s: no other reachable cluster can run it", job.id, cluster)
                continue
            target = selection.clusters[0]
            message = f"re-placed from {cluster} (unreachable)"
            event = self.store.reassign_job(job.id, cluster, target, now, message)
            if event is not None:
                self.context.publish([event])
                log.info("job %d %s to %s", job.id, message, target)

    # -- submitters ask ----------------------------------------------------------
    def history(self, job: JobRecord) -> tuple[JobRecord, list[JobEvent]]:
        return job, self.store.job_history(job.id)

    def list_jobs(
        self,
        names: Sequence[str] | None,
        state: str = "",
        name: str = "",
        limit: int = 1000,
        batch: str = "",
        user: str | None = None,
    ) -> list[JobRecord]:
        """Newest first, of ``names`` (None: every cluster) and of ``user`` (None: anyone's)."""
        wanted = job_state(state) if state else None
        return self.store.list_jobs(names, wanted, name or None, min(limit, 10_000) if limit > 0 else 1000,
                                    batch or None, user)

    def set_urgency(
        self,
        urgency: Urgency,
        job_id: int | None = None,
        batch: str | None = None,
        clusters: Sequence[str] | None = None,
        user: str | None = None,
    ) -> UrgencyOutcome:
        """Hold one job (``job_id``) or every waiting job of a batch, or set their priority (letting held ones
        go); FailedPrecondition when the one job no longer waits."""
        results, events = self.store.set_urgency(urgency, self.context.clock(), job_id, batch, clusters, user)
        self.context.publish(events)
        changed = [job.id for job, moved, _ in results if moved]
        skipped = [why for _, _, why in results if why]
        what = "hold" if urgency.hold else f"priority {urgency.priority}"
        if job_id is not None:
            if not results:
                raise NotFound(f"no job {job_id}", field="jobid")
            if skipped:
                raise FailedPrecondition(f"{skipped[0]}: only a job that waits can be held or given a priority",
                                         field="jobid")
        if changed:
            log.info("%s: %s for %s", f"batch {batch}" if batch else f"job {job_id}", what, job_ids(changed))
        # A job let go on a cluster that went silent while it was held is placed elsewhere, as it would have been.
        for cluster in {job.cluster for job, moved, _ in results if moved and job.state == JobState.ASSIGNED}:
            entry = self.registry.get(cluster)
            if entry is not None and not entry.reachable:
                self._replace_waiting(cluster, self.context.clock())
        return UrgencyOutcome(len(changed), len(skipped), results[0][0] if job_id is not None else None)

    def cancel(self, job_id: int, reason: str = "") -> JobRecord:
        job, events = self.store.request_cancel(job_id, reason or "cancelled by the submitter", self.context.clock())
        self.context.publish(events)
        if job.state in FINAL_STATES and not events:
            if job.state != JobState.CANCELLED:
                raise FailedPrecondition(f"job {job_id} is already {job.state.value}", field="jobid")
            return job
        log.info("job %d: cancel %s", job_id, "done" if events else f"requested from {job.cluster}")
        return job
