"""``LocalExecutor``: run rainbow jobs as local subprocesses.

For laptops, CI and ``rainbow demo``: the same agent as on a Flux cluster,
with jobs started as processes of this machine. The executor pretends to have
``nodes`` nodes of ``cores_per_node`` cores (and GPUs) so that clusters of
different shapes can be shown on one machine: a job starts when its nodes and
cores are free and waits in a local queue otherwise. The command runs once per
job (not once per task), with the jobspec's environment and working directory.

Every job is written to ``state_dir`` (a JSON record, its output, and the exit
code written by a small shell wrapper when the command ends), so an agent that
restarts finds the jobs its predecessor started, running or finished, and
never starts one twice. A forgotten (finished and reported) job leaves one line
in ``state_dir/done.jsonl``, so that it is still known to have run. Each job
runs in a process group of its own: cancelling it, its time limit and
:meth:`LocalExecutor.close` stop the whole group (SIGTERM, then SIGKILL after
``STOP_GRACE`` seconds) and reap it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rainbow.agent.convert import JobShape, job_shape, lease_tag, rainbow_tag
from rainbow.agent.executor import (
    CANCELLED,
    COMPLETED,
    FAILED,
    RUNNING,
    SUBMITTED,
    Executor,
    JobRejected,
    JobUpdate,
    OutputLocation,
    Resources,
    Submission,
)

log = logging.getLogger("rainbow.agent.local")

# Writes its pid to $0.pid, runs the command, then writes its exit status to $0 atomically.
_WRAPPER = 'echo $$ > "$0.pid"; "$@"; rc=$?; echo "$rc" > "$0.tmp" && mv "$0.tmp" "$0"; exit "$rc"'
# Seconds a job recorded as started may take to show its pid (its wrapper writes it at once)
# before it is taken as never started and queued again.
_START_GRACE = 10.0
# Seconds a job's processes get to end after SIGTERM before they are killed.
STOP_GRACE = 3.0
# The message of jobs that were still running when the executor closed.
STOPPED = "stopped: the local agent shut down while the job ran"


def live_groups(pgids: Iterable[int]) -> set[int]:
    """Those of process groups ``pgids`` that still have a live (not zombie) process.

    Reads ``/proc`` where there is one: an orphan that ended stays a zombie
    member of its group until init reaps it, which some container inits never do.
    """
    wanted = set(pgids)
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        return {pgid for pgid in wanted if _signalable(pgid)}
    live = set()
    for stat in proc.glob("[0-9]*/stat"):
        try:
            state, _ppid, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError, ValueError):
            continue
        if int(pgrp) in wanted and state not in ("Z", "X"):
            live.add(int(pgrp))
    return live


def _signalable(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class _Job:
    local_id: str
    jobid: int
    cluster: str
    name: str
    command: list[str]
    environment: dict[str, str]
    cwd: str | None
    shape: JobShape
    duration: float = 0.0
    state: str = SUBMITTED
    pid: int | None = None
    started: float | None = None
    placement: list[tuple[int, int, int]] = field(default_factory=list)
    process: subprocess.Popen | None = None
    cancel_reason: str | None = None
    timed_out: bool = False
    lease: int = 0

    def record(self) -> dict[str, Any]:
        return {
            "local_id": self.local_id, "jobid": self.jobid, "cluster": self.cluster, "name": self.name,
            "command": self.command, "environment": self.environment, "cwd": self.cwd,
            "shape": [self.shape.nodes, self.shape.slots, self.shape.cores_per_slot, self.shape.gpus_per_slot,
                      self.shape.tasks],
            "duration": self.duration, "state": self.state, "pid": self.pid, "started": self.started,
            "placement": self.placement, "cancel_reason": self.cancel_reason, "timed_out": self.timed_out,
            "lease": self.lease,
        }

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> _Job:
        return cls(
            local_id=data["local_id"], jobid=int(data["jobid"]), cluster=data.get("cluster", ""),
            name=data.get("name", ""), command=list(data["command"]), environment=dict(data.get("environment") or {}),
            cwd=data.get("cwd"), shape=JobShape(*data["shape"]), duration=float(data.get("duration") or 0),
            state=data.get("state", SUBMITTED), pid=data.get("pid"), started=data.get("started"),
            placement=[tuple(p) for p in data.get("placement") or []], cancel_reason=data.get("cancel_reason"),
            timed_out=bool(data.get("timed_out")), lease=int(data.get("lease") or 0),
        )


class LocalExecutor(Executor):
    """Subprocesses on this machine, with ``nodes`` x ``cores_per_node`` pretend slots.

    :param state_dir: where job records and output live (default: a new temporary directory).
    :param cluster: only jobs tagged for this cluster are recovered from ``state_dir``.
    :param stop_grace: seconds a stopped job gets between SIGTERM and SIGKILL.
    :param stop_on_close: :meth:`close` stops the running jobs (else they run on, for the next
        executor on ``state_dir`` to adopt).
    """

    name = "local"

    def __init__(
        self,
        nodes: int = 1,
        cores_per_node: int | None = None,
        gpus_per_node: int = 0,
        state_dir: str | os.PathLike | None = None,
        cluster: str = "",
        stop_grace: float = STOP_GRACE,
        stop_on_close: bool = True,
    ) -> None:
        if nodes < 1:
            raise ValueError("nodes must be at least 1")
        self.nodes = nodes
        self.cores_per_node = cores_per_node or os.cpu_count() or 1
        self.gpus_per_node = gpus_per_node
        self.cluster = cluster
        self.stop_grace = stop_grace
        self.stop_on_close = stop_on_close
        self.state_dir = Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="rainbow-local-"))
        self.jobs_dir = self.state_dir / "jobs"
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self._free_cores = [self.cores_per_node] * nodes
        self._free_gpus = [self.gpus_per_node] * nodes
        self._jobs: dict[str, _Job] = {}
        self._queue: list[str] = []
        self._updates: list[JobUpdate] = []
        self._done: dict[int, JobUpdate] = {}
        self._load()

    # -- records ------------------------------------------------------------
    def _path(self, local_id: str, suffix: str) -> Path:
        return self.jobs_dir / f"{local_id}{suffix}"

    def _save(self, job: _Job) -> None:
        target = self._path(job.local_id, ".json")
        tmp = target.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(job.record()))
        os.replace(tmp, target)

    def _next_id(self) -> str:
        """``local-N``, never reused in this state directory (ids are reported to rainbow)."""
        counter = self.state_dir / "last-id"
        try:
            last = int(counter.read_text())
        except (OSError, ValueError):
            last = 0
        for path in self.jobs_dir.glob("local-*.json"):
            with contextlib.suppress(ValueError):
                last = max(last, int(path.stem.split("-", 1)[1]))
        counter.write_text(str(last + 1))
        return f"local-{last + 1}"

    def _load(self) -> None:
        """Adopt the records a previous executor left in ``state_dir``."""
        with contextlib.suppress(FileNotFoundError), open(self.state_dir / "done.jsonl") as done:
            for line in done:
                try:
                    data = json.loads(line)
                    update = JobUpdate(data["local_id"], data["state"], int(data["jobid"]), data.get("exit_code"),
                                       data.get("message", ""), int(data.get("lease") or 0))
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by a crash
                if not self.cluster or data.get("cluster", "") in ("", self.cluster):
                    self._done[update.jobid] = update
        records = []
        for path in self.jobs_dir.glob("local-*.json"):
            try:
                records.append(_Job.from_record(json.loads(path.read_text())))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("ignoring unreadable job record %s: %s", path, exc)
        for job in sorted(records, key=lambda j: int(j.local_id.split("-", 1)[1])):
            if self.cluster and job.cluster and job.cluster != self.cluster:
                continue
            self._jobs[job.local_id] = job
            if job.state == SUBMITTED:
                self._queue.append(job.local_id)
            elif job.state == RUNNING:
                for node, cores, gpus in job.placement:
                    if node < self.nodes:
                        self._free_cores[node] -= cores
                        self._free_gpus[node] -= gpus

    # -- Executor -----------------------------------------------------------
    def _check_fits(self, shape: JobShape) -> None:
        per_node_cores, per_node_gpus, nodes = self._per_node(shape)
        if nodes > self.nodes:
            raise JobRejected(f"the job needs {nodes} nodes; this cluster has {self.nodes}")
        if per_node_cores > self.cores_per_node:
            raise JobRejected(f"the job needs {per_node_cores} cores on a node; nodes have {self.cores_per_node}")
        if per_node_gpus > self.gpus_per_node:
            raise JobRejected(f"the job needs {per_node_gpus} GPUs on a node; nodes have {self.gpus_per_node}")
        if shape.cores > self.nodes * self.cores_per_node:
            raise JobRejected(f"the job needs {shape.cores} cores; this cluster has {self.nodes * self.cores_per_node}")

    @staticmethod
    def _per_node(shape: JobShape) -> tuple[int, int, int]:
        """(cores per node, GPUs per node, nodes) for node jobs; slot jobs place one slot at a time."""
        if shape.nodes:
            slots = -(-shape.slots // shape.nodes)
            return slots * shape.cores_per_slot, slots * shape.gpus_per_slot, shape.nodes
        return shape.cores_per_slot, shape.gpus_per_slot, 1

    def submit(self, job: Submission) -> str:
        try:
            shape = job_shape(job.jobspec)
        except Exception as exc:
            raise JobRejected(f"cannot read the job's resources: {exc}") from exc
        self._check_fits(shape)
        task = (job.jobspec.get("tasks") or [{}])[0]
        command = [str(arg) for arg in task.get("command") or []]
        if not command:
            raise JobRejected("the job has no command")
        system = job.jobspec.get("attributes", {}).get("system", {})
        tagged = rainbow_tag(job.jobspec)
        record = _Job(
            local_id=self._next_id(),
            jobid=job.jobid,
            cluster=tagged[1] if tagged else job.cluster,
            name=job.name,
            command=command,
            environment={str(k): str(v) for k, v in (system.get("environment") or {}).items()},
            cwd=system.get("cwd"),
            shape=shape,
            duration=float(system.get("duration") or 0),
            lease=lease_tag(job.jobspec),
        )
        self._jobs[record.local_id] = record
        self._queue.append(record.local_id)
        self._save(record)
        self._schedule()
        return record.local_id

    def _place(self, shape: JobShape) -> list[tuple[int, int, int]] | None:
        per_node_cores, per_node_gpus, nodes = self._per_node(shape)
        free = list(zip(self._free_cores, self._free_gpus, strict=True))
        if shape.nodes:
            chosen = [i for i, (c, g) in enumerate(free) if c >= per_node_cores and g >= per_node_gpus][:nodes]
            if len(chosen) < nodes:
                return None
            return [(i, per_node_cores, per_node_gpus) for i in chosen]
        placement: dict[int, list[int]] = {}
        cores = [c for c, _ in free]
        gpus = [g for _, g in free]
        for _ in range(shape.slots):
            node = next((i for i in range(self.nodes)
                         if cores[i] >= shape.cores_per_slot and gpus[i] >= shape.gpus_per_slot), None)
            if node is None:
                return None
            cores[node] -= shape.cores_per_slot
            gpus[node] -= shape.gpus_per_slot
            used = placement.setdefault(node, [0, 0])
            used[0] += shape.cores_per_slot
            used[1] += shape.gpus_per_slot
        return [(node, c, g) for node, (c, g) in sorted(placement.items())]

    def _schedule(self) -> None:
        for local_id in list(self._queue):
            job = self._jobs[local_id]
            placement = self._place(job.shape)
            if placement is None:
                continue
            self._queue.remove(local_id)
            self._start(job, placement)

    def _start(self, job: _Job, placement: list[tuple[int, int, int]]) -> None:
        exit_file = self._path(job.local_id, ".exit")
        env = {**job.environment, "RAINBOW_LOCAL_ID": job.local_id}
        cwd = job.cwd if job.cwd and Path(job.cwd).is_dir() else str(self.state_dir)
        # Recorded as started before the process exists: an executor restarted after a crash
        # here finds it running (or ended), never queued, so it never starts the job twice.
        job.state, job.started, job.placement = RUNNING, time.time(), placement
        self._save(job)
        with open(self._path(job.local_id, ".out"), "ab") as out, open(self._path(job.local_id, ".err"), "ab") as err:
            try:
                process = subprocess.Popen(
                    ["/bin/sh", "-c", _WRAPPER, str(exit_file), *job.command],
                    cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True,
                )
            except OSError as exc:
                job.state, job.placement = FAILED, []
                self._save(job)
                self._updates.append(
                    JobUpdate(job.local_id, FAILED, job.jobid, None, f"cannot start: {exc}", job.lease))
                return
        for node, cores, gpus in placement:
            self._free_cores[node] -= cores
            self._free_gpus[node] -= gpus
        job.process, job.pid = process, process.pid
        self._save(job)
        self._updates.append(JobUpdate(job.local_id, RUNNING, job.jobid, lease=job.lease))

    def _alive(self, job: _Job) -> bool:
        if job.process is not None:
            return job.process.poll() is None
        if job.pid is None:  # the executor died while starting it: the wrapper writes the pid once it runs
            with contextlib.suppress(OSError, ValueError):
                job.pid = int(self._path(job.local_id, ".exit.pid").read_text().strip())
            if job.pid is None:
                return not self._path(job.local_id, ".exit").exists()
        if self._path(job.local_id, ".exit").exists():
            return False
        try:
            pid, _status = os.waitpid(job.pid, os.WNOHANG)
            return pid == 0
        except ChildProcessError:
            pass
        try:
            os.kill(job.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def _never_started(self, job: _Job, now: float) -> bool:
        """A job recorded as starting by an executor that died before its process ran (no pid, ever)."""
        if job.process is not None or job.pid is not None or now - (job.started or 0) < _START_GRACE:
            return False
        return not (self._path(job.local_id, ".exit.pid").exists() or self._path(job.local_id, ".exit").exists())

    def _requeue(self, job: _Job) -> None:
        log.info("job %d (%s) was being started when the executor stopped and never ran: queueing it again",
                 job.jobid, job.local_id)
        for node, cores, gpus in job.placement:
            self._free_cores[node] += cores
            self._free_gpus[node] += gpus
        job.state, job.started, job.placement = SUBMITTED, None, []
        self._queue.append(job.local_id)
        self._save(job)

    def _exit_code(self, job: _Job) -> int | None:
        try:
            return int(self._path(job.local_id, ".exit").read_text().strip())
        except (OSError, ValueError):
            return None

    def _finish(self, job: _Job) -> JobUpdate:
        code = self._exit_code(job)
        if job.cancel_reason is not None:
            state, message = CANCELLED, job.cancel_reason
        elif job.timed_out:
            state, message = FAILED, f"time limit of {job.duration:g}s reached"
        elif code is None:
            state, message = FAILED, "the job's process ended without an exit status"
        elif code == 0:
            state, message = COMPLETED, ""
        else:
            state, message = FAILED, f"exit code {code}"
        for node, cores, gpus in job.placement:
            self._free_cores[node] += cores
            self._free_gpus[node] += gpus
        job.placement, job.process, job.state = [], None, state
        self._save(job)
        return JobUpdate(job.local_id, state, job.jobid, code, message, job.lease)

    def poll(self) -> list[JobUpdate]:
        now = time.time()
        for job in self._jobs.values():
            if job.state != RUNNING:
                continue
            if self._never_started(job, now):
                self._requeue(job)
                continue
            if job.duration and job.started and now - job.started > job.duration and job.cancel_reason is None:
                job.timed_out = True
                self._stop([job])
            if not self._alive(job):
                self._updates.append(self._finish(job))
        self._schedule()
        updates, self._updates = self._updates, []
        return updates

    @staticmethod
    def _live(jobs: list[_Job]) -> list[_Job]:
        """The jobs with a process left in their group (reaping the wrappers that are ours)."""
        for job in jobs:
            if job.process is not None:
                job.process.poll()
        groups = live_groups(job.pid for job in jobs if job.pid is not None)
        return [job for job in jobs if job.pid in groups]

    @staticmethod
    def _signal(job: _Job, signum: int) -> None:
        if job.pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(job.pid, signum)

    def _stop(self, jobs: list[_Job]) -> None:
        """SIGTERM the jobs' process groups, SIGKILL what is left after ``stop_grace`` seconds, and reap them."""
        grace = self.stop_grace
        for job in jobs:
            self._signal(job, signal.SIGTERM)
        if self._gone(jobs, grace):
            return
        for job in self._live(jobs):
            log.warning("job %s (%s) outlived SIGTERM by %.1fs: killing it", job.jobid, job.local_id, grace)
            self._signal(job, signal.SIGKILL)
        if not self._gone(jobs, grace):
            left = ", ".join(job.local_id for job in self._live(jobs))
            log.warning("processes of jobs %s are still alive after SIGKILL", left)

    def _gone(self, jobs: list[_Job], timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every process of the jobs to end (and be reaped)."""
        deadline = time.monotonic() + timeout
        while self._live(jobs):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def cancel(self, local_id: str, reason: str = "") -> None:
        job = self._jobs.get(local_id)
        if job is None or job.state not in (SUBMITTED, RUNNING):
            return
        job.cancel_reason = reason or "cancelled"
        if job.state == SUBMITTED:
            self._queue.remove(local_id)
            job.state = CANCELLED
            self._save(job)
            self._updates.append(JobUpdate(local_id, CANCELLED, job.jobid, None, job.cancel_reason, job.lease))
            return
        self._save(job)
        self._stop([job])

    def resources(self) -> Resources:
        running = sum(1 for j in self._jobs.values() if j.state == RUNNING)
        return Resources(
            nodes=self.nodes,
            cores=self.nodes * self.cores_per_node,
            gpus=self.nodes * self.gpus_per_node,
            nodes_free=sum(1 for c, g in zip(self._free_cores, self._free_gpus, strict=True)
                           if c == self.cores_per_node and g == self.gpus_per_node),
            cores_free=sum(self._free_cores),
            gpus_free=sum(self._free_gpus),
            pending=len(self._queue),
            running=running,
        )

    def recover(self) -> list[JobUpdate]:
        found = []
        for job in self._jobs.values():
            if job.state == RUNNING and not self._alive(job):
                found.append(self._finish(job))
            else:
                code = self._exit_code(job) if job.state in (COMPLETED, FAILED) else None
                found.append(JobUpdate(job.local_id, job.state, job.jobid, code, job.cancel_reason or "", job.lease))
        return found

    def find(self, jobid: int) -> JobUpdate | None:
        for job in self._jobs.values():
            if job.jobid == jobid:
                code = self._exit_code(job) if job.state in (COMPLETED, FAILED) else None
                return JobUpdate(job.local_id, job.state, job.jobid, code, job.cancel_reason or "", job.lease)
        return self._done.get(jobid)

    def forget(self, local_id: str) -> None:
        """Drop a finished job's record (its output files stay); one line in ``done.jsonl`` remembers it ran."""
        job = self._jobs.get(local_id)
        if job is None or job.state in (SUBMITTED, RUNNING):
            return
        code = self._exit_code(job)
        message = job.cancel_reason or (f"exit code {code}" if job.state == FAILED and code is not None else "")
        done = JobUpdate(local_id, job.state, job.jobid, code, message, job.lease)
        line = json.dumps({"local_id": local_id, "jobid": job.jobid, "cluster": job.cluster, "state": job.state,
                           "exit_code": code, "message": message, "lease": job.lease})
        with open(self.state_dir / "done.jsonl", "a") as out:
            out.write(line + "\n")
            out.flush()
            os.fsync(out.fileno())
        self._done[job.jobid] = done
        del self._jobs[local_id]
        for suffix in (".json", ".exit", ".exit.pid"):
            self._path(local_id, suffix).unlink(missing_ok=True)

    def output_location(self, local_id: str) -> OutputLocation:
        """The job's ``.out`` and ``.err`` files on this host (absolute paths)."""
        return OutputLocation(host=socket.gethostname(), stdout=str(self._path(local_id, ".out").resolve()),
                              stderr=str(self._path(local_id, ".err").resolve()))

    def output(self, local_id: str) -> str:
        """What the job wrote to standard output so far."""
        try:
            return self._path(local_id, ".out").read_text(errors="replace")
        except OSError:
            return ""

    def close(self) -> None:
        """Stop and reap every job still running here; they are recorded ``cancelled``.

        The jobs are this process's children: left running they would outlive
        whoever started them (``rainbow demo``, an agent stopped with Ctrl-C).
        The next agent on this state directory reports them cancelled. A queued
        job stays queued for it. With ``stop_on_close=False`` the jobs run on.
        """
        running = [job for job in self._jobs.values() if job.state == RUNNING]
        if not self.stop_on_close:
            for job in running:
                if job.process is not None and job.process.poll() is not None:
                    job.process = None
            return
        for job in running:
            if job.cancel_reason is None:
                job.cancel_reason = STOPPED
            self._save(job)
        self._stop(running)
        for job in running:
            self._finish(job)
