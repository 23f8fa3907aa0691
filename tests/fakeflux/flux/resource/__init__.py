"""Fake ``flux.resource.resource_list``: the SchedResourceList sets with ResourceSet-like objects."""

from __future__ import annotations

import copy
import json
from typing import Any

from flux import _fake


def _idset(text: str) -> list[int]:
    ids: list[int] = []
    for part in filter(None, text.split(",")):
        low, _, high = part.partition("-")
        ids.extend(range(int(low), int(high or low) + 1))
    return ids


def _encode(ids: list[int]) -> str:
    parts, ordered = [], sorted(ids)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


def _hosts(nodelist: list[str]) -> list[str]:
    hosts: list[str] = []
    for entry in nodelist:
        for part in filter(None, entry.split(",")) if "[" not in entry else [entry]:
            if "[" in part:
                prefix, _, rest = part.partition("[")
                ranges, _, suffix = rest.partition("]")
                for number in _idset(ranges):
                    hosts.append(f"{prefix}{number}{suffix}")
            else:
                hosts.append(part)
    return hosts


def _rank_cores(R: dict[str, Any]) -> dict[int, list[int]]:
    cores: dict[int, list[int]] = {}
    for entry in R["execution"]["R_lite"]:
        for rank in _idset(entry["rank"]):
            cores[rank] = _idset(entry["children"].get("core", ""))
    return cores


class ResourceSet:
    """What the adapter reads of flux.resource.ResourceSet: counts, nodelist, ranks, encode()."""

    def __init__(self, R: dict[str, Any], cores: dict[int, list[int]]) -> None:
        self._source = R
        self._cores = dict(cores)
        execution = R["execution"]
        hosts = _hosts(execution.get("nodelist", []))
        all_ranks = sorted(_rank_cores(R))
        host_of = dict(zip(all_ranks, hosts, strict=False))
        gpus: dict[int, list[int]] = {}
        for entry in execution["R_lite"]:
            for rank in _idset(entry["rank"]):
                gpus[rank] = _idset(entry["children"].get("gpu", ""))
        kept = {rank: c for rank, c in cores.items() if c}
        self._ranks = sorted(kept)
        self._hosts = [host_of.get(rank, "") for rank in self._ranks]
        groups: dict[str, list[int]] = {}
        for rank, c in sorted(kept.items()):
            children = {"core": _encode(c), **({"gpu": _encode(gpus[rank])} if gpus.get(rank) else {})}
            groups.setdefault(json.dumps(children, sort_keys=True), []).append(rank)
        self._R = {
            "version": 1,
            "execution": {
                "R_lite": [{"rank": _encode(ranks), "children": json.loads(key)} for key, ranks in groups.items()],
                "starttime": execution.get("starttime", 0.0),
                "expiration": execution.get("expiration", 0.0),
                "nodelist": [",".join(self._hosts)],
            },
        }
        if "properties" in execution:
            self._R["execution"]["properties"] = copy.deepcopy(execution["properties"])
        self._ncores = sum(len(c) for c in kept.values())
        self._ngpus = sum(len(gpus.get(rank, [])) for rank in kept)

    @property
    def nnodes(self) -> int:
        return len(self._ranks)

    @property
    def ncores(self) -> int:
        return self._ncores

    @property
    def ngpus(self) -> int:
        return self._ngpus

    @property
    def nodelist(self) -> str:
        return ",".join(self._hosts)

    @property
    def ranks(self) -> str:
        return _encode(self._ranks)

    def encode(self) -> str:
        return json.dumps(self._R)

    def copy_constraint(self, constraint: dict[str, Any]) -> ResourceSet:
        """The nodes that satisfy an RFC 31 constraint (as ``ResourceSet.copy_constraint``)."""
        props = self._R["execution"].get("properties", {})
        keep = {rank: self._cores[rank] for rank, host in zip(self._ranks, self._hosts, strict=True)
                if _fake.satisfies(constraint, rank, host, props)}
        return ResourceSet(self._source, keep)


class SchedResourceList:
    def __init__(self, instance: _fake.FakeInstance) -> None:
        total = instance.total
        self.all = ResourceSet(instance.R, total)
        self.up = ResourceSet(instance.R, total)
        self.down = ResourceSet(instance.R, {})
        self.free = ResourceSet(instance.R, instance.free)
        used = {r: [c for c in total[r] if c not in instance.free.get(r, [])] for r in total}
        self.allocated = ResourceSet(instance.R, used)


class ResourceListRPC:
    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def get(self) -> SchedResourceList:
        return SchedResourceList(self.handle.instance)


def resource_list(flux_handle: Any) -> ResourceListRPC:
    return ResourceListRPC(flux_handle)
