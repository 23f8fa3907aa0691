"""Fake ``flux.queue.QueueList`` (flux-core 0.88): queues resolved from the config and the resources.

Each :class:`QueueInfo` has ``name``, ``is_default``, ``enabled``, ``started``, ``config``
(the whole instance config, from the ``config.get`` RPC), ``resources.all`` (the queue's node set),
``limits.min/max.{nnodes,ncores,ngpus}`` and ``limits.duration``, ``defaults.duration`` (``math.inf``
when unlimited), looked up in the queue's own config, then the instance's, as flux-core 0.88 does.

``FakeInstance(virtual_queues=True)`` answers as later flux-core releases with RFC 33 virtual queues:
each ``QueueInfo`` then also has ``parent`` (``""`` for an ordinary queue), and a virtual queue's
node set and limits come from its own entry, then its parent's, then the instance's. flux-core 0.88's
``QueueInfo`` has no ``parent`` attribute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from flux import _fake
from flux.resource import resource_list


@dataclass
class QueueResourceCounts:
    nnodes: float
    ncores: float
    ngpus: float


@dataclass
class QueueLimits:
    min: QueueResourceCounts
    max: QueueResourceCounts
    duration: float


@dataclass
class QueueDefaults:
    duration: float


class QueueResources:
    def __init__(self, name: str, resources: Any, config: dict[str, Any], parent: str = "") -> None:
        queues = config.get("queues", {})
        requires = queues.get(name, {}).get("requires") if name else None
        if requires is None and parent:
            requires = queues[parent].get("requires")
        self.all = resources.all.copy_constraint({"properties": requires}) if requires is not None else resources.all


class QueueInfo:
    def __init__(self, name: str, config: dict[str, Any], resources: Any, enabled: bool, started: bool,
                 default: bool, parent: str | None = None) -> None:
        self.name = name or ""
        self.config = config
        self.is_default = default
        self.enabled = enabled
        self.started = started
        if parent is not None:
            self.parent = parent
        self.resources = QueueResources(self.name, resources, config, parent or "")
        self.defaults = QueueDefaults(duration=_fake.parse_fsd(self._lookup(("policy", "jobspec", "defaults",
                                                                              "system", "duration"), "inf")))
        self.limits = QueueLimits(
            min=QueueResourceCounts(*(self._size(k, "min", 0) for k in ("nnodes", "ncores", "ngpus"))),
            max=QueueResourceCounts(*(self._size(k, "max", math.inf) for k in ("nnodes", "ncores", "ngpus"))),
            duration=_fake.parse_fsd(self._lookup(("policy", "limits", "duration"), "inf")),
        )

    def _entries(self) -> list[dict[str, Any]]:
        queues = self.config.get("queues", {})
        out = [queues[self.name]] if self.name in queues else []
        parent = getattr(self, "parent", "")
        if parent:
            out.append(queues[parent])
        return [*out, self.config]

    def _lookup(self, path: tuple[str, ...], default: Any) -> Any:
        for entry in self._entries():
            node: Any = entry
            for key in path:
                if not isinstance(node, dict) or key not in node:
                    break
                node = node[key]
            else:
                return node
        return default

    def _size(self, key: str, side: str, default: float) -> float:
        value = self._lookup(("policy", "limits", "job-size", side, key), default)
        return math.inf if value < 0 else value


class QueueList:
    def __init__(self, handle: Any, queues: list[str] | None = None) -> None:
        resources = resource_list(handle).get()
        config = handle.rpc("config.get").get()
        instance = handle.instance
        default = config.get("policy", {}).get("jobspec", {}).get("defaults", {}).get("system", {}).get("queue")
        names = list(config.get("queues", {})) or [""]
        self._queues = []
        for name in names:
            if queues and name not in queues:
                continue
            state = instance.queue_state.get(name, {})
            parent = config.get("queues", {}).get(name, {}).get("parent", "") if instance.virtual_queues else None
            self._queues.append(QueueInfo(name, config, resources, state.get("enabled", True),
                                          state.get("started", False), name == default or name == "", parent))

    def __iter__(self):
        return iter(self._queues)

    def __getitem__(self, name: str) -> QueueInfo:
        for queue in self._queues:
            if queue.name == name:
                return queue
        raise KeyError(name)
