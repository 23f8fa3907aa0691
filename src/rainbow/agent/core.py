"""The pull agent: take a cluster's jobs from rainbow, run them locally, report back.

One pass of the loop::

    heartbeat (inventory of held jobs, renews leases) -> cancel what the server asks to cancel,
                                           drop what it revoked
    executor events                     -> job.state.* hooks, reports queued
    receive (stream, else ReceiveJobs)  -> convert to Flux V1 -> job.validate hooks
                                        -> executor.submit -> job.new hook
    AcceptJobs (only after the executor took the job: a crash never loses one)
    ReportJobState (submitted with the local id, running, completed/failed/cancelled + exit code)
    UpdateState (free nodes/cores/GPUs, pending and running jobs)

Before submitting, the agent asks the executor whether a local job already
carries the rainbow id (a predecessor crashed between submit and accept, or
the job was handed out again after this agent ran it); if so it adopts that
job instead of running it again, whatever its state. Executors remember jobs
after they are forgotten (the local executor in its state directory, Flux by
the job's rainbow tag), so this holds across agent restarts too.

Every hand-out carries a lease token, kept with the local copy. The agent
presents it with AcceptJobs, ReportJobState and each heartbeat (which renews
the leases it holds). When the server answers that another holder took a
lease over (ABORTED, or ``revoked`` in the heartbeat reply), the agent cancels
its local copy and forgets the job; it logs the reason once. A report the
server refuses because the job is already final elsewhere corrects the
agent's view (and stops a local copy still running) instead of being ignored.
A job received but not started yet is started only while its lease is surely
still this agent's (it asks the server when in doubt); jobs are received only
up to the agent's window (``max_jobs``, default 64 not yet accepted).

A job that cannot run (bad jobspec, rejected by a hook) is reported
``failed`` with the reason and never retried. One the local scheduler refuses
before it ever runs (at submit, or Flux's "unsatisfiable request" right after)
is reported as a *rejection* with the scheduler's reason: rainbow places it on
another cluster, or fails it when none remains; this agent forgets it. Outages
of the server (UNAVAILABLE, DEADLINE_EXCEEDED) are waited out with exponential
back-off and jitter (retrying within a third of a lease while leases wait to be
accepted); what could not be reported is reported on a later pass. Between
passes the agent watches its running jobs and reports an end at once.
"""

from __future__ import annotations

import logging
import os
import queue
import random
import shlex
import socket
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from rainbow.agent.convert import default_environment, to_flux_jobspec
from rainbow.agent.executor import (
    CANCELLED,
    FAILED,
    FINAL,
    RUNNING,
    SUBMITTED,
    Executor,
    ExecutorUnavailable,
    JobRejected,
    JobUpdate,
    Submission,
)
from rainbow.agent.hooks import HookJob, Hooks, Reject
from rainbow.agent.hooks import hooks as default_hooks
from rainbow.agent.link import OUTAGE_CODES, ClusterLink
from rainbow.errors import RainbowError
from rainbow.jobspec import simple

log = logging.getLogger("rainbow.agent")

LEASED = "leased"
ACCEPTED = "accepted"
# Leases not yet accepted an agent holds at most when it sets no max_jobs (its stream's window).
DEFAULT_WINDOW = 64
# How often the agent looks for finished local jobs between passes.
WATCH_INTERVAL = 0.2
# While it starts a batch of jobs, the agent accepts those already started this often (seconds).
ACCEPT_EVERY = 0.25
_ORDER = {LEASED: 0, ACCEPTED: 1, SUBMITTED: 2, RUNNING: 3, "completed": 4, FAILED: 4, CANCELLED: 4}


def default_agent_id() -> str:
    """``hostname:pid``: who holds the lease on received jobs."""
    return f"{socket.gethostname()}:{os.getpid()}"


class AgentStopped(RainbowError):
    """The agent cannot go on (wrong secret, cluster deleted...)."""

    code = "FAILED_PRECONDITION"


@dataclass
class HeldJob:
    """A job this agent holds, from receipt until its final state is reported."""

    jobid: int
    name: str
    state: str = LEASED
    local_id: str | None = None
    exit_code: int | None = None
    message: str = ""
    accepted: bool = False
    reports: list[str] = field(default_factory=list)
    hook: HookJob | None = None
    cancel_sent: bool = False
    lease: int = 0
    # the local scheduler refused it before it ran: reported as a rejection, so rainbow places it elsewhere
    rejected: bool = False

    def move(self, state: str) -> bool:
        """Advance to ``state`` (never backwards, never out of a final state) and queue its report."""
        if self.state in FINAL or state == self.state or _ORDER.get(state, 0) < _ORDER.get(self.state, 0):
            return False
        self.state = state
        if state not in (LEASED, ACCEPTED):
            self.reports.append(state)
        return True

    @property
    def done(self) -> bool:
        return self.state in FINAL and not self.reports and (self.accepted or self.local_id is None)


@dataclass
class AgentStats:
    """What the agent did (``flux module stats`` of the broker module shows these)."""

    passes: int = 0
    received: int = 0
    submitted: int = 0
    adopted: int = 0
    accepted: int = 0
    rejected: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    reports: int = 0
    outages: int = 0
    errors: int = 0
    held: int = 0
    connected: bool = False
    streaming: bool = False
    last_error: str = ""
    last_pass: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Agent:
    """Pull a cluster's jobs from rainbow and run them with an :class:`Executor`.

    :param link: the cluster's connection (:class:`rainbow.agent.link.ClusterLink`).
    :param executor: where jobs run (:class:`~rainbow.flux.adapter.FluxExecutor`, :class:`LocalExecutor`).
    :param hooks: the hook registry (default: :data:`rainbow.agent.hooks.hooks`).
    :param interval: seconds between passes when nothing happens.
    :param max_jobs: at most this many jobs held and not yet accepted at once
        (0: 64); the server leases no more (flow control).
    :param stream: take jobs from ``StreamJobs`` as soon as they are assigned
        (falls back to polling ``ReceiveJobs`` when the server lacks it).
    :param environment: the base environment of every job (default: PATH, HOME, ... of the agent).
    :param cwd: the working directory of jobs that set none (default: the agent's).
    :param state: static key/values added to every ``UpdateState`` (e.g. ``cost_per_node_hour``).
    """

    def __init__(
        self,
        link: ClusterLink,
        executor: Executor,
        *,
        hooks: Hooks | None = None,
        interval: float = 5.0,
        max_jobs: int = 0,
        stream: bool = True,
        environment: Mapping[str, str] | None = None,
        cwd: str | None = None,
        state: Mapping[str, Any] | None = None,
        max_backoff: float = 60.0,
        on_event: Callable[[str, HeldJob], None] | None = None,
        allow_users: Collection[str] | None = None,
    ) -> None:
        self.link = link
        # Rainbow users whose jobs this agent runs (None: everyone's); others are rejected, so placed elsewhere.
        self.allow_users = frozenset(allow_users) if allow_users is not None else None
        self.executor = executor
        self.hooks = hooks if hooks is not None else default_hooks
        self.interval = interval
        self.max_jobs = max_jobs
        self.environment = dict(environment) if environment is not None else default_environment()
        self.cwd = cwd or os.getcwd()
        self.static_state = dict(state or {})
        self.max_backoff = max_backoff
        self.on_event = on_event
        self.stats = AgentStats()
        self.held: dict[int, HeldJob] = {}
        self._by_local: dict[str, int] = {}
        self._recovered = False
        self._stop = threading.Event()
        self._arrivals: queue.Queue[list[Any]] = queue.Queue()
        # Jobs received and not started yet (in order), with when they arrived or were last renewed (monotonic).
        self._retry: dict[int, Any] = {}
        self._queued: dict[int, Any] = {}
        self._arrived: dict[int, float] = {}
        self._want_stream = stream
        self._stream_thread: threading.Thread | None = None
        self._failures = 0
        self._lock = threading.Lock()

    @property
    def cluster(self) -> str:
        return self.link.cluster

    # -- running --------------------------------------------------------------
    def run(self, passes: int | None = None) -> None:
        """Run passes until :meth:`stop` (or ``passes`` passes); outages are waited out."""
        done = 0
        if self._want_stream and passes is None:
            self._start_stream()
        try:
            while not self._stop.is_set():
                failed = True
                try:
                    self.run_once()
                    failed = False
                except RainbowError as exc:
                    if exc.code not in OUTAGE_CODES:
                        raise
                    delay = self._backoff(exc.code, str(exc), f"rainbow server {self.link.host}")
                except ExecutorUnavailable as exc:
                    delay = self._backoff("UNAVAILABLE", str(exc), f"local scheduler ({self.executor.name})")
                else:
                    delay = self._pace()
                done += 1
                if passes is not None and done >= passes:
                    break
                self._wait(delay, wake=not failed)
        finally:
            self.link.close_streams()

    def stop(self) -> None:
        """Ask :meth:`run` to return after the current pass (thread-safe)."""
        self._stop.set()
        self._arrivals.put([])
        self.link.close_streams()

    @property
    def window(self) -> int:
        """Leases not yet accepted this agent holds at most."""
        return self.max_jobs if self.max_jobs > 0 else DEFAULT_WINDOW

    def _pace(self) -> float:
        """Seconds until the next pass: the interval, and often enough to renew leases (a third of one)."""
        lease = self.link.lease_seconds
        return min(self.interval, lease / 3) if lease > 0 else self.interval

    def _wait(self, delay: float, wake: bool = True) -> None:
        """Sleep ``delay`` seconds, waking early on stop, and (``wake``) when streamed jobs arrive or a
        local job changes; after a failed pass only stop cuts the back-off short."""
        deadline = time.monotonic() + max(delay, 0.0)
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if not wake:
                self._stop.wait(min(left, WATCH_INTERVAL))
                continue
            try:
                jobs = self._arrivals.get(timeout=min(left, WATCH_INTERVAL))
            except queue.Empty:
                if self._local_changes():
                    return
                continue
            if jobs:
                self._arrivals.put(jobs)
            return

    def _local_changes(self) -> bool:
        """Collect executor events between passes; True when a held job changed (so its report goes now)."""
        if self._stop.is_set() or not any(j.local_id and j.state not in FINAL for j in self.held.values()):
            return False
        try:
            return self._collect()
        except ExecutorUnavailable:
            return True
        except Exception:
            log.exception("reading the local scheduler's events failed")
            return False

    def _backoff(self, code: str, message: str, what: str) -> float:
        """Exponential back-off with jitter after an outage of the server or the local scheduler."""
        self._failures += 1
        self.stats.outages += 1
        self.stats.connected = False
        self.stats.last_error = message
        ceiling = min(self.max_backoff, max(self.interval, 1.0) * 2 ** min(self._failures - 1, 10))
        if self.link.lease_seconds > 0 and (self._retry or any(not j.accepted for j in self.held.values())):
            # Leases not accepted yet must be renewed as soon as the server is back: retry within a third of one.
            ceiling = min(ceiling, max(self.link.lease_seconds / 3, 0.1))
        delay = random.uniform(ceiling / 2, ceiling)
        log.warning("%s unreachable (%s: %s); retrying in %.1fs", what, code, message, delay)
        return delay

    def run_once(self) -> None:
        """One pass; raises a RainbowError (outage codes) when the server cannot be reached."""
        if not self._recovered:
            self._recover()
        self._heartbeat()
        self._collect()
        self._take_jobs()
        self._start_queued()
        self._collect()
        self._sync()
        self._update_state()
        self._failures = 0
        self.stats.connected = True
        self.stats.passes += 1
        self.stats.held = len(self.held)
        self.stats.last_pass = time.time()

    # -- streaming ------------------------------------------------------------
    def _start_stream(self) -> None:
        self._stream_thread = threading.Thread(target=self._stream_loop, name="rainbow-stream", daemon=True)
        self._stream_thread.start()

    def _stream_loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self.stats.streaming = True
                for jobs in self.link.stream(self.window):
                    failures = 0
                    if jobs:
                        self._note_arrival(jobs)
                        self._arrivals.put(jobs)
                    if self._stop.is_set():
                        return
            except RainbowError as exc:
                self.stats.streaming = False
                if exc.code == "UNIMPLEMENTED":
                    log.info("the server has no StreamJobs; polling ReceiveJobs every %.1fs", self.interval)
                    return
                if exc.code not in OUTAGE_CODES and exc.code != "UNKNOWN":
                    log.error("job stream refused: %s", exc)
                    return
                failures += 1
                self._stop.wait(random.uniform(0.5, 1.0) * min(self.max_backoff, 2 ** min(failures, 6)))
            finally:
                self.stats.streaming = False

    def _note_arrival(self, jobs: list[Any]) -> None:
        now = time.monotonic()
        with self._lock:
            for job in jobs:
                self._arrived.setdefault(job.id, now)

    def _take_jobs(self) -> None:
        """Queue the jobs to start this pass: those the local scheduler could not take last time, then new ones."""
        new: list[Any] = []
        while True:
            try:
                new.extend(self._arrivals.get_nowait())
            except queue.Empty:
                break
        if not self.stats.streaming or self._stream_thread is None:
            room = self.window - sum(1 for j in self.held.values() if not j.accepted) - len(self._retry)
            if room > 0:
                received = self.link.receive(room)
                self._note_arrival(received)
                new.extend(received)
        self.stats.received += len(new)
        for wire in new:
            queued = self._retry.get(wire.id)
            if queued is None or getattr(wire, "lease", 0) > getattr(queued, "lease", 0):
                self._retry[wire.id] = wire

    def _start_queued(self) -> None:
        """Start the queued jobs, renewing their leases first when they may have run out.

        A job waits in the queue while earlier ones start (or while the server
        cannot be reached): the agent starts it only while its lease is surely
        still its own, and asks the server (a heartbeat, which renews it) when in
        doubt. What is not started stays queued for the next pass.
        """
        queued, self._retry = self._retry, {}
        self._queued = queued
        checked = False
        accepted = time.monotonic()
        try:
            while queued:
                if not checked and self._doubtful(queued):
                    self._heartbeat()
                    checked = True
                    continue
                checked = False
                if time.monotonic() - accepted >= ACCEPT_EVERY:
                    # A long batch: confirm what already started, so that a crash now re-runs as little as it can.
                    self._accept_taken()
                    accepted = time.monotonic()
                jobid = next(iter(queued))
                wire = queued.pop(jobid)
                with self._lock:
                    self._arrived.pop(jobid, None)
                self._start(wire)
        finally:
            for jobid, wire in queued.items():
                self._retry.setdefault(jobid, wire)
            self._queued = {}

    def _doubtful(self, queued: Mapping[int, Any]) -> bool:
        """Whether a queued job's lease may be near its end (the server renews it; this agent cannot know)."""
        lease = self.link.lease_seconds
        if lease <= 0:
            return False
        now = time.monotonic()
        with self._lock:
            oldest = min((self._arrived.get(jobid, now) for jobid in queued), default=now)
        return now - oldest > lease / 3

    # -- recovery ---------------------------------------------------------------
    def _recover(self) -> None:
        """Adopt the jobs a previous agent left in the executor (running or finished, unreported)."""
        found = self.executor.recover()
        for update in found:
            if update.jobid is None or update.jobid in self.held:
                continue
            job = HeldJob(update.jobid, "", local_id=update.local_id, lease=update.lease)
            job.move(SUBMITTED)
            self._track(job)
            self._apply(job, update, quiet=True)
            self.stats.adopted += 1
        if found:
            log.info("adopted %d jobs left by a previous agent", len(found))
        self._recovered = True

    def _track(self, job: HeldJob) -> None:
        with self._lock:
            self.held[job.jobid] = job
            if job.local_id:
                self._by_local[job.local_id] = job.jobid

    # -- starting jobs ------------------------------------------------------------
    def _start(self, wire: Any) -> None:
        lease = getattr(wire, "lease", 0)
        held = self.held.get(wire.id)
        if held is not None:
            if lease > held.lease and not held.accepted:
                # Handed out to this agent again (its lease had run out): the newer lease is the one to accept.
                log.info("job %d handed out again (lease %d); keeping local job %s", wire.id, lease, held.local_id)
                held.lease = lease
            return
        job = HeldJob(wire.id, wire.name, lease=lease)
        self._track(job)
        try:
            existing = self.executor.find(wire.id)
            if existing is not None:
                job.local_id = existing.local_id
                self._track(job)
                job.move(SUBMITTED)
                self._apply(job, existing, quiet=True)
                self.stats.adopted += 1
                log.info("job %d already ran here as local job %s (%s): adopting it, not running it again",
                         wire.id, existing.local_id, existing.state)
                return
            user, group = getattr(wire, "user", ""), getattr(wire, "group", "")
            if self.allow_users is not None and user not in self.allow_users:
                raise JobRejected(f"user {user or '(unknown)'} may not run jobs on cluster {self.cluster} "
                                  "(not in its agent's --allow-user list)")
            source: Any = wire.jobspec or (simple(shlex.split(wire.command)) if wire.command else "")
            spec = to_flux_jobspec(source, jobid=wire.id, cluster=self.cluster, name=wire.name,
                                   environment=self.environment, cwd=self.cwd, lease=lease, user=user, group=group,
                                   depends=getattr(wire, "depends", "") or None)
            job.hook = HookJob(wire.id, self.cluster, wire.name, spec)
            self.hooks.validate(job.hook)
            local_id = self.executor.submit(Submission(wire.id, self.cluster, wire.name, job.hook.jobspec))
        except ExecutorUnavailable as exc:
            log.warning("job %d: the local scheduler is unavailable (%s); trying again next pass", wire.id, exc)
            with self._lock:
                del self.held[wire.id]
            self._retry[wire.id] = wire
            return
        except JobRejected as exc:
            self._reject(job, str(exc), by_scheduler=True)
            return
        except (RainbowError, Reject) as exc:
            self._reject(job, str(exc))
            return
        except Exception as exc:
            log.exception("job %d could not be submitted", wire.id)
            self._reject(job, f"could not be submitted: {exc}")
            return
        job.local_id = local_id
        job.hook.local_id = local_id
        self._track(job)
        job.move(SUBMITTED)
        self.stats.submitted += 1
        log.info("job %d (%s) submitted as %s %s", wire.id, wire.name, self.executor.name, local_id)
        self.hooks.emit("job.new", job.hook)
        self._event("submitted", job)

    def _reject(self, job: HeldJob, reason: str, by_scheduler: bool = False) -> None:
        """Fail a job that cannot start here; one the local scheduler refused goes back to rainbow to re-place."""
        log.warning("job %d (%s) rejected%s: %s", job.jobid, job.name,
                    f" by the {self.executor.name} scheduler" if by_scheduler else "", reason)
        job.rejected = by_scheduler
        job.message = reason if by_scheduler else f"rejected by cluster {self.cluster}: {reason}"
        job.move(FAILED)
        self.stats.rejected += 1
        self._event("rejected", job)

    def _event(self, what: str, job: HeldJob) -> None:
        if self.on_event is not None:
            try:
                self.on_event(what, job)
            except Exception:
                log.exception("on_event callback failed")

    # -- executor events ------------------------------------------------------------
    def _collect(self) -> bool:
        """Apply the executor's events; True when a held job changed."""
        changed = False
        for update in self.executor.poll():
            jobid = update.jobid if update.jobid is not None else self._by_local.get(update.local_id)
            job = self.held.get(jobid) if jobid is not None else None
            if job is None:
                continue
            changed = self._apply(job, update) or changed
        return changed

    def _apply(self, job: HeldJob, update: JobUpdate, quiet: bool = False) -> bool:
        if update.exit_code is not None:
            job.exit_code = update.exit_code
        if update.message:
            job.message = update.message
        if not job.lease and update.lease:
            job.lease = update.lease
        if not job.move(update.state):
            return False
        if update.rejected:
            job.rejected = True
            self.stats.rejected += 1
            log.warning("job %d (%s) rejected by the %s scheduler before it ran: %s", job.jobid, job.local_id,
                        self.executor.name, job.message)
        if job.hook is None:
            job.hook = HookJob(job.jobid, self.cluster, job.name, {}, local_id=job.local_id)
        job.hook.state, job.hook.exit_code, job.hook.message = job.state, job.exit_code, job.message
        if update.state in FINAL:
            setattr(self.stats, update.state, getattr(self.stats, update.state) + 1)
        if not quiet:
            log.info("job %d (%s) %s%s", job.jobid, job.local_id, job.state,
                     f" (exit code {job.exit_code})" if job.exit_code is not None and job.state in FINAL else "")
        self.hooks.emit_state(job.hook)
        self._event(job.state, job)
        return True

    # -- talking to the server -----------------------------------------------------------
    def _heartbeat(self) -> None:
        # Accepted jobs still running (the inventory), and every lease not yet accepted (renewed).
        held = [(j.jobid, j.state if j.accepted else LEASED, j.local_id or "", j.lease)
                for j in self.held.values()
                if (j.accepted and j.state not in FINAL) or (not j.accepted and j.lease)]
        # Jobs not started yet (queued, or the local scheduler could not take them) are this agent's too.
        waiting = [wire for wire in [*self._retry.values(), *self._queued.values()] if getattr(wire, "lease", 0)]
        held += [(wire.id, LEASED, "", wire.lease) for wire in waiting]
        sent = time.monotonic()
        try:
            beat = self.link.heartbeat(held)
        except RainbowError as exc:
            if exc.code in ("PERMISSION_DENIED", "NOT_FOUND", "UNAUTHENTICATED", "INVALID_ARGUMENT"):
                raise AgentStopped(f"the server refused cluster {self.cluster!r}: {exc}") from exc
            if exc.code == "UNIMPLEMENTED":
                return
            raise
        with self._lock:
            for wire in waiting:  # renewed now
                self._arrived[wire.id] = sent
        for jobid in beat.revoked:
            if self._retry.pop(jobid, None) is not None or self._queued.pop(jobid, None) is not None:
                log.warning("job %d: the server says this agent no longer holds it (its lease was taken over); "
                            "not starting it", jobid)
                with self._lock:
                    self._arrived.pop(jobid, None)
                continue
            job = self.held.get(jobid)
            if job is not None:
                self._lost(job, "the server says this agent no longer holds it (its lease was taken over, "
                                "the job moved, or it already ended in rainbow)")
        for jobid in beat.cancel:
            self._cancel(jobid, "cancelled in rainbow")

    def _lost(self, job: HeldJob, reason: str) -> None:
        """Another holder has the job now: stop and forget the local copy (logged once)."""
        log.warning("job %d: %s; %s", job.jobid, reason,
                    f"cancelling local job {job.local_id}" if job.local_id and job.state not in FINAL
                    else "forgetting it")
        self.stats.errors += 1
        job.reports.clear()
        if job.local_id and job.state not in FINAL:
            self._cancel_local(job, "rainbow handed this job to another holder")
        self._drop(job)

    def _cancel(self, jobid: int, reason: str) -> None:
        job = self.held.get(jobid)
        if job is None:
            existing = self.executor.find(jobid)
            job = HeldJob(jobid, "", accepted=True, local_id=existing.local_id if existing else None)
            self._track(job)
            if existing is None:
                job.message = reason
                job.move(CANCELLED)
                return
            job.move(SUBMITTED)
            self._apply(job, existing, quiet=True)
        if job.state in FINAL or job.cancel_sent:
            return
        job.cancel_sent = True
        if job.local_id is None:
            job.message = reason
            job.move(CANCELLED)
            return
        log.info("cancelling job %d (%s): %s", jobid, job.local_id, reason)
        try:
            self.executor.cancel(job.local_id, reason)
        except Exception as exc:
            job.cancel_sent = False
            log.warning("job %d: cancel failed: %s", jobid, exc)

    def _sync(self) -> None:
        """Accept what the executor took, then send the queued reports, in order."""
        self._accept_taken()
        for job in list(self.held.values()):
            if job.accepted or job.local_id is None:
                self._send_reports(job)
            if job.done:
                self._drop(job)

    def _accept_taken(self) -> None:
        """Accept every job the executor took and the server has not confirmed yet."""
        waiting = [j.jobid for j in self.held.values() if not j.accepted and j.local_id is not None]
        if waiting:
            accepted = set(self.link.accept(waiting, {j: self.held[j].lease for j in waiting}))
            for jobid in waiting:
                job = self.held[jobid]
                if jobid in accepted:
                    job.accepted = True
                    self.stats.accepted += 1
                    continue
                self._lost(job, "the server refused to accept it (its lease was taken over, or it was "
                                "cancelled or moved elsewhere)")

    def _send_reports(self, job: HeldJob) -> None:
        while job.reports:
            state = job.reports[0]
            final = state in FINAL
            try:
                where = self.executor.output_location(job.local_id) if job.local_id else None
                reply = self.link.report(job.jobid, state, job.local_id or "",
                                         job.exit_code if final else None, job.message if final else "",
                                         where.wire() if where else None, job.lease,
                                         rejected=job.rejected and state == FAILED)
            except RainbowError as exc:
                if exc.code in OUTAGE_CODES:
                    raise
                if exc.code == "ABORTED":
                    self._lost(job, f"report {state} refused: {exc}")
                    return
                log.warning("job %d: report %s refused: %s", job.jobid, state, exc)
                self.stats.errors += 1
                job.reports.clear()
                if exc.code == "NOT_FOUND":
                    if job.local_id and job.state not in FINAL:
                        self._cancel_local(job, "the job no longer exists in rainbow")
                    job.state, job.accepted = CANCELLED, True
                return
            job.reports.pop(0)
            self.stats.reports += 1
            if job.rejected and state == FAILED:
                if reply.state != FAILED:
                    log.info("job %d: rainbow placed it on another cluster", job.jobid)
                job.reports.clear()
                return
            if reply.state in FINAL and reply.state != state:
                if reply.state == job.state:  # an adopted job the server already knows ended: nothing to say
                    job.reports.clear()
                else:
                    self._overruled(job, state, reply.state)
                return
            if reply.cancel and job.state not in FINAL:
                self._cancel(job.jobid, "cancelled in rainbow")

    def _overruled(self, job: HeldJob, reported: str, final: str) -> None:
        """The server refused a report because the job is already final: take its word (logged once)."""
        log.warning("job %d: report %s refused, the job is already %s in rainbow; %s", job.jobid, reported, final,
                    f"stopping local job {job.local_id}" if job.local_id and job.state not in FINAL
                    else "taking the server's state")
        self.stats.errors += 1
        job.reports.clear()
        if job.local_id and job.state not in FINAL:
            self._cancel_local(job, f"the job is already {final} in rainbow")
        job.state = final

    def _cancel_local(self, job: HeldJob, reason: str) -> None:
        try:
            self.executor.cancel(job.local_id or "", reason)
        except Exception as exc:
            log.warning("job %d: cancel of %s failed: %s", job.jobid, job.local_id, exc)

    def _drop(self, job: HeldJob) -> None:
        with self._lock:
            self.held.pop(job.jobid, None)
            if job.local_id:
                self._by_local.pop(job.local_id, None)
        if job.local_id and job.state in FINAL:
            self.executor.forget(job.local_id)

    def _update_state(self) -> None:
        try:
            resources = self.executor.resources()
        except Exception as exc:
            log.warning("cannot read the cluster's resources: %s", exc)
            return
        self.link.update_state({**self.static_state, **resources.state()})

    def snapshot(self) -> dict[str, Any]:
        """Stats and held jobs, safe to call from another thread."""
        with self._lock:
            jobs = {str(j.jobid): {"state": j.state, "local_id": j.local_id, "exit_code": j.exit_code}
                    for j in self.held.values()}
        return {"cluster": self.cluster, "agent": self.link.agent, "executor": self.executor.name,
                **self.stats.as_dict(), "jobs": jobs}
