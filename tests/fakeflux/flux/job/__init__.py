"""Fake ``flux.job``: JobID, JobspecV1, submit, cancel, JournalConsumer (flux-core 0.88 signatures)."""

from __future__ import annotations

import collections.abc as abc
import copy
import json
from typing import Any

_F58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _f58_encode(value: int) -> str:
    digits = ""
    while True:
        value, rest = divmod(value, 58)
        digits = _F58[rest] + digits
        if value == 0:
            return "ƒ" + digits


def _f58_decode(text: str) -> int:
    value = 0
    for char in text.lstrip("ƒf"):
        value = value * 58 + _F58.index(char)
    return value


class JobID(int):
    """An int with flux's encodings; accepts an int, a decimal string or an f58 string."""

    def __new__(cls, value: Any) -> JobID:
        if isinstance(value, str) and not value.isdigit():
            value = _f58_decode(value)
        return super().__new__(cls, int(value))

    @property
    def f58(self) -> str:
        return _f58_encode(int(self))

    def __str__(self) -> str:
        return self.f58

    def __repr__(self) -> str:
        return f"JobID({int(self)})"


def _attr_key_prepend(key: str) -> str:
    return key if key.startswith("attributes.") else "attributes." + key


class Jobspec:
    top_level_keys = {"resources", "tasks", "version", "attributes"}

    def __init__(self, resources: Any, tasks: Any, attributes: Any, version: Any) -> None:
        if not isinstance(resources, abc.Sequence):
            raise TypeError("resources must be a sequence")
        if not isinstance(tasks, abc.Sequence):
            raise TypeError("tasks must be a sequence")
        if not isinstance(attributes, abc.Mapping):
            raise TypeError("attributes must be a mapping")
        if not isinstance(version, int):
            raise TypeError("version must be an integer")
        for task in tasks:
            for key in ("command", "slot", "count"):
                if key not in task:
                    raise ValueError(f"task is missing the key {key!r}")
        for res in resources:
            if "type" not in res or "count" not in res:
                raise ValueError("resource is missing type or count")
        self.jobspec = {"resources": resources, "tasks": tasks, "attributes": attributes, "version": version}

    def setattr(self, key: str, val: Any) -> None:
        parts = _attr_key_prepend(key).split(".")
        node = self.jobspec
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = val

    def dumps(self, **kwargs: Any) -> str:
        return json.dumps(self.jobspec, ensure_ascii=False, **kwargs)

    @property
    def attributes(self) -> dict[str, Any]:
        return self.jobspec["attributes"]


class JobspecV1(Jobspec):
    def __init__(self, resources: Any, tasks: Any, attributes: Any, version: int = 1) -> None:
        if version != 1:
            raise ValueError("version must be 1")
        super().__init__(resources, tasks, attributes, version)
        if "system" not in attributes:
            raise ValueError("attributes.system is a required key")
        if len(tasks) != 1:
            raise ValueError("There must be exactly one task")

    @classmethod
    def from_command(cls, command: list[str], num_tasks: int = 1, cores_per_task: int = 1,
                     gpus_per_task: int | None = None, num_nodes: int | None = None, exclusive: bool = False,
                     duration: Any = None, environment: Any = None, cwd: str | None = None,
                     **_unused: Any) -> JobspecV1:
        if num_nodes is not None and num_nodes > num_tasks:
            raise ValueError("node count must not be greater than task count")
        children = [{"type": "core", "count": cores_per_task}]
        if gpus_per_task:
            children.append({"type": "gpu", "count": gpus_per_task})
        slot = {"type": "slot", "count": 1, "with": children, "label": "task"}
        if num_nodes is not None:
            slot["count"] = num_tasks // num_nodes
            resources = [{"type": "node", "count": num_nodes, "with": [slot]}]
        else:
            slot["count"] = num_tasks
            resources = [slot]
        system: dict[str, Any] = {"duration": float(duration or 0)}
        if environment is not None:
            system["environment"] = dict(environment)
        if cwd is not None:
            system["cwd"] = cwd
        tasks = [{"command": list(command), "slot": "task", "count": {"per_slot": 1}}]
        return cls(resources, tasks, {"system": system})


def submit(flux_handle: Any, jobspec: Any, urgency: int = 16, waitable: bool = False, debug: bool = False,
           pre_signed: bool = False) -> JobID:
    if isinstance(jobspec, Jobspec):
        text = jobspec.dumps()
    elif isinstance(jobspec, (str, bytes)):
        text = jobspec if isinstance(jobspec, str) else jobspec.decode()
    else:
        raise TypeError(f"jobspec must be a Jobspec or str, not {type(jobspec).__name__}")
    return JobID(flux_handle.instance.submit(json.loads(text)))


def cancel(flux_handle: Any, jobid: Any, reason: str | None = None) -> None:
    flux_handle.instance.cancel(int(jobid), reason)


class JournalEvent:
    def __init__(self, jobid: int, event: dict[str, Any], jobspec: Any = None, R: Any = None) -> None:
        self.jobid = JobID(jobid) if jobid != -1 else -1
        self.name = event.get("name")
        self.timestamp = event.get("timestamp", 0.0)
        self.context = event.get("context", {})
        self.jobspec = jobspec if self.name == "submit" else None
        self.R = R

    def is_empty(self) -> bool:
        return self.jobid == -1


class JournalConsumer:
    def __init__(self, flux_handle: Any, full: bool = True, since: float = 0.0,
                 include_sentinel: bool = False) -> None:
        self.handle = flux_handle
        self.full = full
        self.since = since
        self.include_sentinel = include_sentinel
        self._cursor: int | None = None
        self._sentinel_at = 0
        self._stopped = False

    def start(self) -> JournalConsumer:
        journal = self.handle.instance.journal
        self._sentinel_at = len(journal)
        self._cursor = 0 if self.full else len(journal)
        return self

    def stop(self) -> None:
        self._stopped = True

    def poll(self, timeout: float = -1.0) -> JournalEvent | None:
        if self._cursor is None:
            raise RuntimeError("poll() called before start()")
        if self._stopped:
            return None
        journal = self.handle.instance.journal
        if self.include_sentinel and self.full and self._cursor == self._sentinel_at and self._sentinel_at >= 0:
            self._sentinel_at = -1
            return JournalEvent(-1, {})
        if self._cursor >= len(journal):
            if timeout >= 0:
                raise TimeoutError()
            raise RuntimeError("the fake journal would block forever")
        jobid, event, jobspec = journal[self._cursor]
        self._cursor += 1
        if self._cursor == self._sentinel_at and not self.include_sentinel:
            self._sentinel_at = -1
        return JournalEvent(jobid, copy.deepcopy(event), jobspec=_redact(jobspec))


def _redact(jobspec: dict[str, Any] | None) -> dict[str, Any] | None:
    """The journal's submit event carries the jobspec without its environment (as flux-core does)."""
    if jobspec is None:
        return None
    redacted = copy.deepcopy(jobspec)
    redacted.get("attributes", {}).get("system", {}).pop("environment", None)
    return redacted

