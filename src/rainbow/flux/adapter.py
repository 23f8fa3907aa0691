"""The Flux adapter: the only place rainbow talks to ``flux``.

``import flux`` happens inside these functions and methods, never at module
import, so ``rainbow.flux`` and everything else import without Flux. The calls
used are those of flux-core 0.84+ (checked against 0.88):

- ``flux.Flux()``, ``h.attr_get(name)``
- ``flux.resource.resource_list(h).get()`` -> ``.all``/``.free`` ResourceSets (``encode()`` -> Rv1 JSON)
- ``flux.job.JobspecV1(**spec)``, ``flux.job.submit(h, jobspec)`` -> ``JobID`` (``int``, ``.f58``)
- ``flux.job.JournalConsumer(h, full=True, include_sentinel=True)`` (``start()``, ``poll(timeout)``):
  one stream of every job's events, history first, which is also how a
  restarted agent finds the jobs tagged ``attributes.user.rainbow`` (the
  journal's ``submit`` events carry the jobspec)
- ``flux.job.cancel(h, jobid, reason)``
- ``flux.job.stats.JobStats(h).update_sync()`` (pending and running counts)
- ``h.rpc("resource.topo-get", nodeid=rank).get_str()`` (that rank's hwloc XML, for its memory)
- ``flux.queue.QueueList(h)`` (each queue's name, default, enabled, started, limits, default duration,
  as flux-core resolves them from the ``config.get`` RPC; ``parent`` of an RFC 33 virtual queue only
  in flux-core releases after 0.88) and ``h.rpc("config.get")`` for each queue's ``requires`` (its
  node set)
- ``h.rpc("job-manager.queue-status", {"name": queue})`` for a disabled queue's ``disable_reason``
  (``QueueInfo`` has no reason)
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rainbow.agent.convert import lease_tag, rainbow_tag
from rainbow.agent.executor import (
    CANCELLED,
    COMPLETED,
    FAILED,
    RUNNING,
    SUBMITTED,
    Executor,
    ExecutorUnavailable,
    JobRejected,
    JobUpdate,
    OutputLocation,
    Resources,
    Submission,
)
from rainbow.flux.resources import hwloc_memory_gb, r_cluster_name, r_nodes
from rainbow.queues import SIZES, STATE_KEY, Queue, QueueSet

log = logging.getLogger("rainbow.flux")

# submit() errors that mean "the instance is not answering", not "this job is wrong".
_UNAVAILABLE_ERRNOS = frozenset({errno.ECONNRESET, errno.ECONNREFUSED, errno.ENOSYS, errno.EHOSTUNREACH,
                                 errno.ETIMEDOUT, errno.EAGAIN})

# How an alloc exception's note begins when no set of the instance's nodes can ever hold the request:
# flux-core's own schedulers write "unsatisfiable request: need ...", Fluxion (flux-sched's qmanager)
# 'alloc denied due to type="unsatisfiable"'.
UNSATISFIABLE = ("unsatisfiable request", 'alloc denied due to type="unsatisfiable"')
HISTORY_TIMEOUT = 60.0
# poll(timeout=0) returns before the handle reads anything: give the stream a moment per pass.
DRAIN_TIMEOUT = 0.02


def open_handle(uri: str | None = None) -> Any:
    """A ``flux.Flux`` handle to the enclosing instance (or ``uri``)."""
    import flux

    return flux.Flux(uri) if uri else flux.Flux()


def instance_R(handle: Any) -> dict[str, Any]:
    """The instance's whole resource set (Rv1 dict), down nodes included."""
    import flux.resource

    return json.loads(flux.resource.resource_list(handle).get().all.encode())


def instance_name(handle: Any, R: Mapping[str, Any] | None = None) -> str:
    """A default cluster name: the hosts' base name, plus the job id for a nested instance."""
    name = r_cluster_name(R if R is not None else instance_R(handle))
    try:
        jobid = handle.attr_get("jobid")
    except (OSError, KeyError):
        jobid = None
    if jobid:
        name = f"{name}-{int(_job_id(jobid))}"
    return name


def instance_queues(handle: Any) -> QueueSet:
    """The instance's queues as rainbow stores them (one anonymous queue when none are configured).

    Limits come from ``QueueList`` (``math.inf`` = unlimited); ``requires`` (the
    properties a queue's nodes have) from the queue's config entry, or its
    parent's for a virtual queue (``QueueInfo.parent``, which flux-core 0.88
    does not have: it has no virtual queues).
    """
    import flux.queue

    config = handle.rpc("config.get").get() or {}
    configured = config.get("queues") or {}
    queues = []
    for info in flux.queue.QueueList(handle):
        entry = configured.get(info.name) or {}
        requires = entry.get("requires")
        parent = getattr(info, "parent", "")
        if requires is None and parent:
            requires = (configured.get(parent) or {}).get("requires")
        limits = info.limits
        queues.append(Queue(
            name=info.name,
            default=bool(info.is_default),
            enabled=bool(info.enabled),
            started=bool(info.started),
            reason="" if info.enabled else _disable_reason(handle, info.name),
            requires=tuple(requires or ()),
            min_size={k: float(getattr(limits.min, k)) for k, _ in SIZES},
            max_size={k: float(getattr(limits.max, k)) for k, _ in SIZES},
            duration=float(limits.duration),
            default_duration=float(info.defaults.duration) or math.inf,
        ))
    return QueueSet(tuple(queues)) if queues else QueueSet()


def _disable_reason(handle: Any, queue: str) -> str:
    """Why a queue is disabled (``flux queue disable --message``), as the job manager keeps it."""
    try:
        status = handle.rpc("job-manager.queue-status", {"name": queue} if queue else {}).get() or {}
    except OSError as exc:
        log.warning("job-manager.queue-status %s: %s", queue or "(anonymous queue)", exc.strerror or exc)
        return ""
    return str(status.get("disable_reason") or "")


def instance_memory(handle: Any, ranks: Iterable[int]) -> dict[int, int]:
    """GiB of memory per broker rank, from the hwloc XML each rank's resource module keeps.

    One ``resource.topo-get`` request per rank, all sent before any answer is
    read. A rank that does not answer (down, or an instance without the
    service) is left out, so its node gets no memory vertex.
    """
    requests = {rank: handle.rpc("resource.topo-get", nodeid=rank) for rank in ranks}
    memory, missing = {}, []
    for rank, request in requests.items():
        try:
            memory[rank] = hwloc_memory_gb(request.get_str() or "")
        except OSError as exc:
            missing.append(f"rank {rank}: {exc.strerror or exc}")
    if missing:
        log.warning("resource.topo-get: %s (no memory registered for %s)", "; ".join(missing[:3]),
                    "that rank" if len(missing) == 1 else f"{len(missing)} ranks")
    return memory


def _job_id(value: Any) -> Any:
    import flux.job

    return flux.job.JobID(value)


def _refusal(exc: OSError) -> str:
    """Flux's own words for a refused submit (``requested nnodes (3) exceeds policy limit of 2 ...``)."""
    text = exc.strerror or str(exc)
    if exc.errno is not None and text.startswith(f"[Errno {exc.errno}] "):
        text = text[len(f"[Errno {exc.errno}] "):]
    return text


def waitstatus_exit_code(status: int) -> int:
    """The shell-style exit code of a wait(2) status (128+N for signal N)."""
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return status


@dataclass
class _FluxJob:
    flux_id: int
    local_id: str
    jobid: int
    state: str = SUBMITTED
    exit_code: int | None = None
    exception: tuple[str, str] | None = None
    lease: int = 0
    started: bool = False

    @property
    def unsatisfiable(self) -> bool:
        """Flux's scheduler found no set of its nodes that could ever hold the job (before it ran)."""
        return (not self.started and self.exception is not None and self.exception[0] == "alloc"
                and self.exception[1].startswith(UNSATISFIABLE))

    def update(self, message: str = "") -> JobUpdate:
        return JobUpdate(self.local_id, self.state, self.jobid, self.exit_code, message, self.lease,
                         rejected=self.state == FAILED and self.unsatisfiable)


class FluxExecutor(Executor):
    """Run rainbow jobs with ``flux.job.submit`` in the enclosing (or given) Flux instance.

    :param handle: an open ``flux.Flux`` handle (default: a new one to ``uri`` or the enclosing instance).
    :param cluster: only jobs tagged for this rainbow cluster are recovered.
    :param urgency: the Flux urgency of submitted jobs (default 16).
    """

    name = "flux"

    def __init__(self, handle: Any = None, cluster: str = "", uri: str | None = None, urgency: int = 16) -> None:
        self.handle = handle if handle is not None else open_handle(uri)
        self.cluster = cluster
        self.urgency = urgency
        self._jobs: dict[int, _FluxJob] = {}
        self._by_rainbow: dict[int, int] = {}
        # Forgotten (finished, reported) jobs by rainbow id: find() still knows they ran.
        self._done: dict[int, JobUpdate] = {}
        self._updates: list[JobUpdate] = []
        self._journal: Any = None
        self._history_done = False

    # -- the journal ------------------------------------------------------------
    def _start_journal(self) -> None:
        """Open the journal stream and read its history (every job Flux still knows)."""
        if self._journal is not None:
            return
        from flux.job import JournalConsumer

        try:
            self._journal = JournalConsumer(self.handle, full=True, include_sentinel=True).start()
        except OSError as exc:
            raise ExecutorUnavailable(f"cannot follow Flux jobs: {exc.strerror or exc}") from exc
        while not self._history_done:
            try:
                event = self._journal.poll(timeout=HISTORY_TIMEOUT)
            except TimeoutError:
                self._journal = None
                raise ExecutorUnavailable("the Flux job journal sent no history in time") from None
            except OSError as exc:
                self._journal = None
                raise ExecutorUnavailable(f"the Flux job journal failed: {exc.strerror or exc}") from exc
            if event is None:
                raise ExecutorUnavailable("the Flux job journal closed")
            if event.is_empty():
                self._history_done = True
                break
            self._event(event)

    def _drain(self) -> None:
        self._start_journal()
        while True:
            try:
                event = self._journal.poll(timeout=DRAIN_TIMEOUT)
            except TimeoutError:
                return
            except OSError as exc:
                self._journal = None
                self._history_done = False
                raise ExecutorUnavailable(f"the Flux job journal failed: {exc.strerror or exc}") from exc
            if event is None:
                self._journal = None
                self._history_done = False
                log.warning("the Flux job journal closed; reopening it")
                return
            if not event.is_empty():
                self._event(event)

    def _event(self, event: Any) -> None:
        """Fold one journal event into the job it belongs to; queue an update when its state changes."""
        flux_id = int(event.jobid)
        name = event.name
        if name == "submit":
            tag = rainbow_tag(event.jobspec)
            if tag is None or (self.cluster and tag[1] and tag[1] != self.cluster):
                return
            if flux_id not in self._jobs:
                job = _FluxJob(flux_id, _job_id(flux_id).f58, tag[0], lease=lease_tag(event.jobspec))
                self._jobs[flux_id] = job
                self._by_rainbow[tag[0]] = flux_id
            return
        job = self._jobs.get(flux_id)
        if job is None or job.state in (COMPLETED, FAILED, CANCELLED):
            return
        context = event.context or {}
        if name == "start":
            job.started = True
        if name == "start" and job.state == SUBMITTED:
            job.state = RUNNING
            self._updates.append(job.update())
        elif name == "finish":
            job.exit_code = waitstatus_exit_code(int(context.get("status", 0)))
        elif name == "exception" and int(context.get("severity", 0)) == 0:
            job.exception = (str(context.get("type", "exception")), str(context.get("note", "")))
        elif name == "clean":
            self._updates.append(job.update(self._finish(job)))

    @staticmethod
    def _finish(job: _FluxJob) -> str:
        if job.exception is not None:
            kind, note = job.exception
            if kind == "cancel":
                job.state = CANCELLED
                return note or "cancelled"
            job.state = FAILED
            return f"{kind}: {note}" if note else kind
        if job.exit_code == 0:
            job.state = COMPLETED
            return ""
        job.state = FAILED
        return f"exit code {job.exit_code}" if job.exit_code is not None else "the job ended without a status"

    # -- Executor -----------------------------------------------------------------
    def submit(self, job: Submission) -> str:
        import flux.job

        self._start_journal()
        try:
            jobspec = flux.job.JobspecV1(**job.jobspec)
        except (TypeError, ValueError, KeyError) as exc:
            raise JobRejected(f"not a valid Flux jobspec: {exc}") from exc
        try:
            flux_id = flux.job.submit(self.handle, jobspec, urgency=self.urgency)
        except OSError as exc:
            if exc.errno in _UNAVAILABLE_ERRNOS:
                raise ExecutorUnavailable(f"flux job submit: {exc.strerror or exc}") from exc
            raise JobRejected(_refusal(exc)) from exc
        record = _FluxJob(int(flux_id), flux_id.f58, job.jobid, lease=lease_tag(job.jobspec))
        self._jobs.setdefault(record.flux_id, record)
        self._by_rainbow[job.jobid] = record.flux_id
        return record.local_id

    def poll(self) -> list[JobUpdate]:
        self._drain()
        updates, self._updates = self._updates, []
        return updates

    def cancel(self, local_id: str, reason: str = "") -> None:
        import flux.job

        try:
            flux.job.cancel(self.handle, _job_id(local_id), reason or None)
        except OSError as exc:
            log.info("flux job cancel %s: %s", local_id, exc.strerror or exc)

    def resources(self) -> Resources:
        import flux.resource
        from flux.job.stats import JobStats

        try:
            listing = flux.resource.resource_list(self.handle).get()
        except OSError as exc:
            raise ExecutorUnavailable(f"flux resource list: {exc.strerror or exc}") from exc
        every = {n.rank: n for n in r_nodes(json.loads(listing.all.encode()))}
        free = {n.rank: n for n in r_nodes(json.loads(listing.free.encode()))} if listing.free.nnodes else {}
        idle = sum(1 for rank, node in free.items()
                   if rank in every and len(node.cores) == len(every[rank].cores)
                   and len(node.gpus) == len(every[rank].gpus))
        stats = JobStats(self.handle).update_sync()
        extra: dict[str, Any] = {}
        try:
            extra[STATE_KEY] = instance_queues(self.handle).to_json()
        except (OSError, ValueError) as exc:
            log.warning("flux queue list: %s (queue state not reported)", exc)
        return Resources(
            nodes=listing.all.nnodes, cores=listing.all.ncores, gpus=listing.all.ngpus,
            nodes_free=idle, cores_free=listing.free.ncores, gpus_free=listing.free.ngpus,
            pending=stats.pending, running=stats.running, extra=extra,
        )

    def recover(self) -> list[JobUpdate]:
        self._start_journal()
        self._drain()
        self._updates = []
        return [job.update(self._message(job)) for job in self._jobs.values()]

    @staticmethod
    def _message(job: _FluxJob) -> str:
        if job.exception is not None:
            kind, note = job.exception
            return note or kind
        if job.state == FAILED and job.exit_code is not None:
            return f"exit code {job.exit_code}"
        return ""

    def find(self, jobid: int) -> JobUpdate | None:
        self._drain()
        flux_id = self._by_rainbow.get(jobid)
        if flux_id is None or flux_id not in self._jobs:
            return self._done.get(jobid)
        job = self._jobs[flux_id]
        return job.update(self._message(job))

    def output_location(self, local_id: str) -> OutputLocation:
        """Flux keeps the output (in its KVS): ``flux job attach`` shows it, on the instance's URI."""
        try:
            uri = str(self.handle.attr_get("local-uri"))
        except (OSError, KeyError):
            uri = os.environ.get("FLUX_URI", "")
        return OutputLocation(host=uri, command=f"flux job attach {local_id}")

    def forget(self, local_id: str) -> None:
        flux_id = int(_job_id(local_id))
        job = self._jobs.get(flux_id)
        if job is not None and job.state in (COMPLETED, FAILED, CANCELLED):
            del self._jobs[flux_id]
            self._by_rainbow.pop(job.jobid, None)
            self._done[job.jobid] = job.update(self._message(job))

    def close(self) -> None:
        if self._journal is not None:
            with contextlib.suppress(OSError):
                self._journal.stop()
            self._journal = None
