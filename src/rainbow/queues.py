"""A cluster's queues (Flux RFC 33) as rainbow stores them, and the per-queue admission rules.

The description is plain JSON, written by the Flux registration into the JGF
(``graph.metadata.queues``) and refreshed by the agent through the cluster
state key ``queues`` (a JSON text, see :data:`STATE_KEY`)::

    {"queues": [{"name": "debug", "default": false, "enabled": true, "started": true,
                 "reason": "", "requires": ["pdebug"],
                 "limits": {"min": {"nnodes": 0, "ncores": 0, "ngpus": 0},
                            "max": {"nnodes": 2, "ncores": null, "ngpus": null},
                            "duration": 1800},
                 "default_duration": null}]}

``null`` is unlimited (JSON has no infinity). A cluster without queues (an old
graph, a non-Flux cluster, an instance without ``[queues]``) has one anonymous
queue (name ``""``) without limits. The rules are Flux's own (``job-ingest``
and the ``limit-job-size``/``limit-duration`` plugins): a job names an existing,
enabled queue or gets the default one; its node, core and GPU counts and its
duration must be within the queue's limits; a job without a duration gets the
queue's default duration, and an unlimited duration exceeds any finite limit.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rainbow.durations import format_duration
from rainbow.errors import InvalidArgument

STATE_KEY = "queues"
SIZES = (("nnodes", "nodes"), ("ncores", "cores"), ("ngpus", "GPUs"))


def _limit(value: Any, where: str, unlimited: float) -> float:
    if value is None:
        return unlimited
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise InvalidArgument(f"{where}: must be a number >= 0 or null (unlimited)", field=where)
    return float(value)


def _json_limit(value: float) -> float | int | None:
    if math.isinf(value):
        return None
    return int(value) if float(value).is_integer() else value


@dataclass(frozen=True)
class Queue:
    """One queue: its state, its node set (``requires``: properties every node of it has) and limits."""

    name: str = ""
    default: bool = True
    enabled: bool = True
    started: bool = True
    reason: str = ""
    requires: tuple[str, ...] = ()
    min_size: dict[str, float] = field(default_factory=lambda: {k: 0.0 for k, _ in SIZES})
    max_size: dict[str, float] = field(default_factory=lambda: {k: math.inf for k, _ in SIZES})
    duration: float = math.inf
    default_duration: float = math.inf

    @property
    def title(self) -> str:
        return f"queue '{self.name}'" if self.name else "the instance"

    @property
    def constraint(self) -> dict[str, Any]:
        """The queue's node set as an RFC 31 constraint (``{}`` when it has every node)."""
        return {"properties": list(self.requires)} if self.requires else {}

    def check(self, counts: Mapping[str, int], duration: float) -> str | None:
        """Why a job of these sizes (``nnodes``/``ncores``/``ngpus``) and duration cannot enter; None if it can.

        ``duration`` is seconds, 0 when the job gives none.
        """
        if not self.enabled:
            return f"{self.title} is disabled" + (f": {self.reason}" if self.reason else "")
        for key, noun in SIZES:
            have = counts.get(key, 0)
            if have > self.max_size.get(key, math.inf):
                return f"{self.title} allows at most {int(self.max_size[key])} {noun}, job needs {have}"
            if have < self.min_size.get(key, 0):
                return f"{self.title} needs at least {int(self.min_size[key])} {noun}, job asks for {have}"
        wanted = duration if duration > 0 else self.default_duration
        if wanted > self.duration:
            limit = format_duration(self.duration)
            return f"duration {format_duration(wanted)} exceeds {self.title} limit {limit}"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "default": self.default,
            "enabled": self.enabled,
            "started": self.started,
            "reason": self.reason,
            "requires": list(self.requires),
            "limits": {
                "min": {k: _json_limit(self.min_size.get(k, 0.0)) for k, _ in SIZES},
                "max": {k: _json_limit(self.max_size.get(k, math.inf)) for k, _ in SIZES},
                "duration": _json_limit(self.duration),
            },
            "default_duration": _json_limit(self.default_duration),
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "queues[0]") -> Queue:
        if not isinstance(data, Mapping):
            raise InvalidArgument(f"{where}: must be an object", field=where)
        name = data.get("name", "")
        if not isinstance(name, str):
            raise InvalidArgument(f"{where}.name: must be a string", field=f"{where}.name")
        requires = data.get("requires") or []
        if not isinstance(requires, list) or not all(isinstance(r, str) and r for r in requires):
            raise InvalidArgument(f"{where}.requires: must be a list of property names", field=f"{where}.requires")
        limits = data.get("limits") or {}
        if not isinstance(limits, Mapping):
            raise InvalidArgument(f"{where}.limits: must be an object", field=f"{where}.limits")
        low, high = limits.get("min") or {}, limits.get("max") or {}
        flags = {}
        for key in ("default", "enabled", "started"):
            value = data.get(key, True)
            if not isinstance(value, bool):
                raise InvalidArgument(f"{where}.{key}: must be true or false", field=f"{where}.{key}")
            flags[key] = value
        reason = data.get("reason") or ""
        return cls(
            name=name,
            reason=str(reason),
            requires=tuple(requires),
            min_size={k: _limit(low.get(k), f"{where}.limits.min.{k}", 0.0) for k, _ in SIZES},
            max_size={k: _limit(high.get(k), f"{where}.limits.max.{k}", math.inf) for k, _ in SIZES},
            duration=_limit(limits.get("duration"), f"{where}.limits.duration", math.inf),
            default_duration=_limit(data.get("default_duration"), f"{where}.default_duration", math.inf),
            **flags,
        )


ANONYMOUS = Queue()


@dataclass(frozen=True)
class QueueSet:
    """A cluster's queues; ``anonymous`` when the instance configures none."""

    queues: tuple[Queue, ...] = (ANONYMOUS,)

    @property
    def anonymous(self) -> bool:
        return len(self.queues) == 1 and not self.queues[0].name

    @property
    def names(self) -> list[str]:
        return [q.name for q in self.queues if q.name]

    def get(self, name: str) -> Queue | None:
        return next((q for q in self.queues if q.name == name), None)

    def resolve(self, name: str | None) -> tuple[Queue | None, str | None]:
        """The queue a job naming ``name`` (or none) enters, else the reason it cannot enter any."""
        if name:
            queue = self.get(name)
            return (queue, None) if queue is not None else (None, f"no queue '{name}'")
        if self.anonymous:
            return self.queues[0], None
        default = next((q for q in self.queues if q.default), None)
        if default is None:
            listed = ", ".join(f"'{n}'" for n in self.names)
            return None, f"no default queue; name one of {listed}"
        return default, None

    def to_dict(self) -> dict[str, Any]:
        return {"queues": [q.to_dict() for q in self.queues]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Any, where: str = "queues") -> QueueSet:
        """From ``{"queues": [...]}``; an empty list is the anonymous queue."""
        if not isinstance(data, Mapping):
            raise InvalidArgument(f"{where}: must be an object with a queues list", field=where)
        items = data.get("queues") or []
        if not isinstance(items, list):
            raise InvalidArgument(f"{where}.queues: must be a list", field=f"{where}.queues")
        queues = tuple(Queue.from_dict(item, f"{where}.queues[{i}]") for i, item in enumerate(items))
        if not queues:
            return cls()
        names = [q.name for q in queues]
        if len(set(names)) != len(names):
            raise InvalidArgument(f"{where}.queues: queue names repeat", field=f"{where}.queues")
        if len(queues) > 1 and not all(names):
            raise InvalidArgument(f"{where}.queues: only a lone queue may be anonymous", field=f"{where}.queues")
        return cls(queues)

    @classmethod
    def from_json(cls, text: str, where: str = "queues") -> QueueSet:
        try:
            data = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(f"{where}: not valid JSON ({exc})", field=where) from None
        return cls.from_dict(data, where)


UNLIMITED = QueueSet()
