"""The fake instance behind the fake ``flux`` package (not part of flux's API).

Events follow the eventlogs flux-core 0.88 writes (see ``flux-python-calls.json``):
``submit, validate, depend, priority, alloc, start, finish {status}, release, free, clean``
for a job that runs; ``submit, validate, depend, priority, exception, clean`` for one
cancelled or unsatisfiable before it starts.
"""

from __future__ import annotations

import copy
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

TWO_NODES_R: dict[str, Any] = {
    "version": 1,
    "execution": {
        "R_lite": [{"rank": "0-1", "children": {"core": "0-1"}}],
        "starttime": 0.0,
        "expiration": 0.0,
        "nodelist": ["vm,vm"],
    },
}


@dataclass
class FakeJob:
    id: int
    jobspec: dict[str, Any]
    ranks: list[int] = field(default_factory=list)
    cores: dict[int, list[int]] = field(default_factory=dict)
    state: str = "SCHED"
    events: list[dict[str, Any]] = field(default_factory=list)


class FakeInstance:
    """One fake Flux instance: resources, jobs, a journal of every job's events."""

    def __init__(self, R: dict[str, Any] | None = None, *, hold: bool = False,
                 exit_codes: dict[str, int] | None = None, attrs: dict[str, str] | None = None) -> None:
        from flux.resource import _rank_cores

        self.R = copy.deepcopy(R or TWO_NODES_R)
        self.uri = "local:///tmp/fake-flux/local-0"
        self.attrs = {"local-uri": self.uri, "size": "2", **(attrs or {})}
        self.hold = hold
        self.exit_codes = dict(exit_codes or {})
        self.jobs: dict[int, FakeJob] = {}
        self.journal: list[tuple[int, dict[str, Any], dict[str, Any] | None]] = []
        self.submitted: list[dict[str, Any]] = []
        self._ids = itertools.count(11643387904, 1 << 24)
        self._clock = itertools.count(1)
        self.total = _rank_cores(self.R)
        self.free = {rank: list(cores) for rank, cores in self.total.items()}

    # -- jobs ---------------------------------------------------------------
    def _post(self, job: FakeJob, name: str, context: dict[str, Any] | None = None) -> None:
        event = {"timestamp": time.time() + next(self._clock) * 1e-6, "name": name, "context": context or {}}
        job.events.append(event)
        self.journal.append((job.id, event, job.jobspec if name == "submit" else None))

    def submit(self, jobspec: dict[str, Any]) -> int:
        job = FakeJob(next(self._ids), jobspec)
        self.jobs[job.id] = job
        self.submitted.append(jobspec)
        for name, context in (("submit", {"userid": 0, "urgency": 16, "flags": 0, "version": 1}),
                              ("validate", {}), ("depend", {}), ("priority", {"priority": 16})):
            self._post(job, name, context)
        nodes, cores = _request(jobspec)
        placement = self._place(nodes, cores)
        if placement is None and (nodes > len(self.total) or cores > max(map(len, self.total.values()))):
            self._post(job, "exception", {"type": "alloc", "severity": 0, "userid": 0,
                                          "note": "unsatisfiable request"})
            self._post(job, "clean")
            job.state = "INACTIVE"
            return job.id
        if placement is None:
            return job.id
        self._run(job, placement)
        return job.id

    def _place(self, nodes: int, cores: int) -> dict[int, list[int]] | None:
        ranks = [r for r, free in sorted(self.free.items()) if len(free) >= cores][:max(nodes, 1)]
        if len(ranks) < max(nodes, 1):
            return None
        return {r: self.free[r][:cores] for r in ranks}

    def _run(self, job: FakeJob, placement: dict[int, list[int]]) -> None:
        for rank, cores in placement.items():
            self.free[rank] = [c for c in self.free[rank] if c not in cores]
        job.cores = placement
        summary = ",".join(f"rank{r}/core{','.join(map(str, c))}" for r, c in placement.items())
        self._post(job, "alloc", {"annotations": {"sched": {"resource_summary": summary}}})
        self._post(job, "start")
        job.state = "RUN"
        if not self.hold:
            command = job.jobspec["tasks"][0]["command"]
            self.finish(job.id, self.exit_codes.get(command[0], 0) << 8)

    def finish(self, jobid: int, status: int = 0) -> None:
        job = self.jobs[int(jobid)]
        self._post(job, "finish", {"status": status})
        self._release(job)

    def _release(self, job: FakeJob) -> None:
        self._post(job, "release", {"ranks": "all", "final": True})
        self._post(job, "free")
        self._post(job, "clean")
        for rank, cores in job.cores.items():
            self.free[rank] = sorted(self.free[rank] + cores)
        job.cores = {}
        job.state = "INACTIVE"
        self._schedule()

    def _schedule(self) -> None:
        for job in list(self.jobs.values()):
            if job.state == "SCHED":
                placement = self._place(*_request(job.jobspec))
                if placement is not None:
                    self._run(job, placement)

    def cancel(self, jobid: int, reason: str | None) -> None:
        job = self.jobs.get(int(jobid))
        if job is None or job.state == "INACTIVE":
            raise OSError(22, "job is inactive" if job else "unknown job id")
        context = {"type": "cancel", "severity": 0, "note": reason or "", "userid": 0}
        self._post(job, "exception", context)
        if job.state == "RUN":
            self._post(job, "finish", {"status": 36608})
            self._release(job)
        else:
            self._post(job, "clean")
            job.state = "INACTIVE"

    def counts(self) -> dict[str, int]:
        states = [j.state for j in self.jobs.values()]
        return {"sched": states.count("SCHED"), "run": states.count("RUN"), "inactive": states.count("INACTIVE")}


def _request(jobspec: dict[str, Any]) -> tuple[int, int]:
    """(nodes, cores per node) a V1 jobspec asks for."""
    top = jobspec["resources"][0]
    if top["type"] == "node":
        slot = top["with"][0]
        per_node = slot.get("count", 1)
        nodes = top.get("count", 1)
    else:
        slot, per_node, nodes = top, top.get("count", 1), 0
    cores = sum(r.get("count", 1) for r in slot.get("with", []) if r["type"] == "core")
    return nodes, per_node * cores


_current: list[FakeInstance] = []


def use(instance: FakeInstance) -> FakeInstance:
    """Make ``instance`` the one ``flux.Flux()`` connects to."""
    _current[:] = [instance]
    return instance


def current() -> FakeInstance:
    if not _current:
        use(FakeInstance())
    return _current[0]


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
