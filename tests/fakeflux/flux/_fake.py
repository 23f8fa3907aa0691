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
import math
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
    eligible: list[int] = field(default_factory=list)
    ranks: list[int] = field(default_factory=list)
    cores: dict[int, list[int]] = field(default_factory=dict)
    state: str = "SCHED"
    events: list[dict[str, Any]] = field(default_factory=list)


class FakeInstance:
    """One fake Flux instance: resources, jobs, a journal of every job's events."""

    def __init__(self, R: dict[str, Any] | None = None, *, hold: bool = False,
                 exit_codes: dict[str, int] | None = None, attrs: dict[str, str] | None = None,
                 config: dict[str, Any] | None = None, xml: list[str] | None = None,
                 virtual_queues: bool = False, scheduler: str = "sched-simple") -> None:
        from flux.resource import _hosts, _rank_cores

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
        # the instance config (``config.get``): ``queues``, ``policy``; queue state as `flux queue` sets it
        self.config = copy.deepcopy(config or {})
        self.queue_state: dict[str, dict[str, Any]] = {}
        # answer as flux-core after 0.88 (RFC 33 virtual queues: QueueInfo.parent), see flux/queue.py
        self.virtual_queues = virtual_queues
        # whose words an unsatisfiable request's alloc exception has: flux-core's sched-simple or Fluxion's
        self.scheduler = scheduler
        # each rank's hwloc XML (``resource.topo-get`` to that rank; None: the rank does not answer);
        # by default a topology that names no memory
        self.xml = list(xml) if xml is not None else ['<topology><object type="Machine"/></topology>'] * len(
            self.total)
        hosts = _hosts(self.R["execution"].get("nodelist", []))
        self.hosts = dict(zip(sorted(self.total), hosts, strict=False))

    # -- queues (`flux queue disable/enable/start/stop`) ---------------------------
    def set_queue(self, name: str, *, enabled: bool | None = None, started: bool | None = None,
                  reason: str = "") -> None:
        state = self.queue_state.setdefault(name, {"enabled": True, "started": False, "reason": ""})
        if enabled is not None:
            state["enabled"], state["reason"] = enabled, "" if enabled else reason
        if started is not None:
            state["started"] = started

    def _admit(self, jobspec: dict[str, Any]) -> list[int]:
        """What job-ingest and the job-manager's limit plugins check at submit; the eligible ranks."""
        system = jobspec.get("attributes", {}).get("system", {})
        queues = self.config.get("queues", {})
        name = system.get("queue")
        default = self.config.get("policy", {}).get("jobspec", {}).get("defaults", {}).get("system", {})
        if name is not None and name not in queues:
            raise PermissionError(1, f"Invalid queue '{name}' specified")
        if name is None and queues:
            name = default.get("queue")
            if name is None:
                raise OSError(22, "no queue specified")
        entry = queues.get(name, {}) if name else {}
        state = self.queue_state.get(name or "", {})
        if not state.get("enabled", True):
            raise OSError(22, f"job submission to {name} is disabled: {state.get('reason', '')}")
        nodes, per_node = _request(jobspec)
        count = {"nnodes": nodes, "ncores": max(nodes, 1) * per_node,
                 "ngpus": max(nodes, 1) * _gpus_per_node(jobspec)}
        where = f" for queue {name}" if name else ""
        for key in ("nnodes", "ncores", "ngpus"):
            limit = _lookup([entry, self.config], ("policy", "limits", "job-size", "max", key), -1)
            if 0 <= limit < count[key]:
                raise OSError(22, f"requested {key} ({count[key]}) exceeds policy limit of {limit}{where}")
        limit = parse_fsd(_lookup([entry, self.config], ("policy", "limits", "duration"), "inf"))
        wanted = float(system.get("duration") or 0) or parse_fsd(
            _lookup([entry, self.config], ("policy", "jobspec", "defaults", "system", "duration"), "inf"))
        if wanted > limit:
            raise OSError(22, f"requested duration ({format_fsd(wanted)}) exceeds policy limit of "
                              f"{format_fsd(limit)}{where}")
        props = self.R["execution"].get("properties", {})
        constraint = {"and": [c for c in ({"properties": entry["requires"]} if entry.get("requires") else None,
                                          system.get("constraints")) if c]}
        return [rank for rank in sorted(self.total) if satisfies(constraint, rank, self.hosts.get(rank, ""), props)]

    # -- jobs ---------------------------------------------------------------
    def _post(self, job: FakeJob, name: str, context: dict[str, Any] | None = None) -> None:
        event = {"timestamp": time.time() + next(self._clock) * 1e-6, "name": name, "context": context or {}}
        job.events.append(event)
        self.journal.append((job.id, event, job.jobspec if name == "submit" else None))

    def submit(self, jobspec: dict[str, Any]) -> int:
        eligible = self._admit(jobspec)
        job = FakeJob(next(self._ids), jobspec, eligible)
        self.jobs[job.id] = job
        self.submitted.append(jobspec)
        for name, context in (("submit", {"userid": 0, "urgency": 16, "flags": 0, "version": 1}),
                              ("validate", {}), ("depend", {}), ("priority", {"priority": 16})):
            self._post(job, name, context)
        nodes, cores = _request(jobspec)
        placement = self._place(nodes, cores, eligible)
        fitting = [r for r in eligible if len(self.total[r]) >= cores]
        if placement is None and max(nodes, 1) > len(fitting):
            note = f"unsatisfiable request: need {max(nodes, 1)} node(s) with {cores} cores each, only " \
                   f"{len(fitting)} eligible"
            if self.scheduler == "fluxion":
                note = 'alloc denied due to type="unsatisfiable"'

            self._post(job, "exception", {"type": "alloc", "severity": 0, "note": note, "userid": 0})
            self._post(job, "clean")
            job.state = "INACTIVE"
            return job.id
        if placement is None:
            return job.id
        self._run(job, placement)
        return job.id

    def _place(self, nodes: int, cores: int, eligible: list[int]) -> dict[int, list[int]] | None:
        ranks = [r for r, free in sorted(self.free.items()) if len(free) >= cores and r in eligible][:max(nodes, 1)]
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
                placement = self._place(*_request(job.jobspec), job.eligible)
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


def _gpus_per_node(jobspec: dict[str, Any]) -> int:
    top = jobspec["resources"][0]
    slot = top["with"][0] if top["type"] == "node" else top
    return slot.get("count", 1) * sum(r.get("count", 1) for r in slot.get("with", []) if r["type"] == "gpu")


def _lookup(entries: list[dict[str, Any]], path: tuple[str, ...], default: Any) -> Any:
    for entry in entries:
        node: Any = entry
        for key in path:
            if not isinstance(node, dict) or key not in node:
                break
            node = node[key]
        else:
            return node
    return default


_FSD_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_fsd(value: Any) -> float:
    """flux.util.parse_fsd: ``"30m" -> 1800.0``, ``"inf" -> math.inf``."""
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    if text in ("inf", "infinity"):
        return math.inf
    if text[-1:] in _FSD_UNITS:
        return float(text[:-1]) * _FSD_UNITS[text[-1]]
    return float(text)


def format_fsd(seconds: float) -> str:
    """How flux-core's limit plugins print a duration: ``unlimited``, ``30m``, ``2h``."""
    if math.isinf(seconds) or seconds == 0:
        return "unlimited"
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if seconds >= size:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _ids(text: str) -> set[int]:
    out: set[int] = set()
    for part in filter(None, str(text).split(",")):
        low, _, high = part.partition("-")
        out.update(range(int(low), int(high or low) + 1))
    return out


def satisfies(constraint: dict[str, Any] | None, rank: int, host: str, properties: dict[str, str]) -> bool:
    """RFC 31 on one execution target, as the Flux scheduler applies it (properties from R)."""
    from flux.resource import _hosts

    if not constraint:
        return True
    for op, values in constraint.items():
        if op == "properties":
            for name in values:
                has = rank in _ids(properties.get(name.lstrip("^"), ""))
                if has == name.startswith("^"):
                    return False
        elif op == "hostlist":
            if host not in {h for v in values for h in _hosts([v])}:
                return False
        elif op == "ranks":
            if rank not in {r for v in values for r in _ids(v)}:
                return False
        elif op == "and":
            if not all(satisfies(v, rank, host, properties) for v in values):
                return False
        elif op == "or":
            if not any(satisfies(v, rank, host, properties) for v in values):
                return False
        elif op == "not" and all(satisfies(v, rank, host, properties) for v in values):
            return False
    return True


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
