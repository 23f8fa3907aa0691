"""Flux resources (Rv1) -> the cluster's JGF, as pure functions over plain data.

Rv1 (RFC 20) describes an instance's resources::

    {"version": 1,
     "execution": {"R_lite": [{"rank": "0-15", "children": {"core": "0-63", "gpu": "0-7"}}],
                   "nodelist": ["tioga[1-16]"],
                   "properties": {"pdebug": "0-3", "pbatch": "4-15"}}}

``R_lite`` gives each broker rank (one per node) its cores and GPUs as idsets;
``nodelist`` gives the hostnames in ascending rank order as hostlists;
``properties`` maps a property name to the ranks that have it. R has no
sockets, so the graph is ``cluster > node > core/gpu``.

Nothing here imports ``flux``: the same code builds the JGF inside the agent,
in tests and for ``--dry-run`` from a saved R file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rainbow.errors import InvalidArgument
from rainbow.hostlists import encode_idset, expand_hostlist, expand_idset

__all__ = ["NodeResources", "encode_idset", "expand_hostlist", "expand_idset", "r_nodes", "r_summary", "r_to_jgf"]

@dataclass(frozen=True)
class NodeResources:
    """One broker rank of an R: its hostname, core and GPU ids, and properties."""

    rank: int
    hostname: str
    cores: tuple[int, ...]
    gpus: tuple[int, ...]
    properties: tuple[str, ...] = ()


def _execution(R: Mapping[str, Any]) -> Mapping[str, Any]:
    if not isinstance(R, Mapping):
        raise InvalidArgument("R must be a JSON object (Rv1)", field="R")
    version = R.get("version", 1)
    if version != 1:
        raise InvalidArgument(f"R version {version!r} is not supported (only Rv1)", field="R.version")
    execution = R.get("execution")
    if not isinstance(execution, Mapping):
        raise InvalidArgument("R.execution is required", field="R.execution")
    if not isinstance(execution.get("R_lite", []), list):
        raise InvalidArgument("R.execution.R_lite must be a list", field="R.execution.R_lite")
    return execution


def r_nodes(R: Mapping[str, Any]) -> list[NodeResources]:
    """The nodes of an Rv1 resource set, by ascending rank."""
    execution = _execution(R)
    cores: dict[int, set[int]] = {}
    gpus: dict[int, set[int]] = {}
    for index, entry in enumerate(execution.get("R_lite") or []):
        where = f"R.execution.R_lite[{index}]"
        if not isinstance(entry, Mapping) or "rank" not in entry:
            raise InvalidArgument(f"{where}: needs a rank idset", field=where)
        children = entry.get("children") or {}
        if not isinstance(children, Mapping):
            raise InvalidArgument(f"{where}.children must be an object", field=where)
        for rank in expand_idset(entry["rank"]):
            cores.setdefault(rank, set()).update(expand_idset(children.get("core")))
            gpus.setdefault(rank, set()).update(expand_idset(children.get("gpu")))
    ranks = sorted(cores)
    hosts = [h for h in expand_hostlist(execution.get("nodelist") or []) if h]
    if hosts and len(hosts) != len(ranks):
        raise InvalidArgument(
            f"R.execution.nodelist names {len(hosts)} hosts for {len(ranks)} ranks", field="R.execution.nodelist"
        )
    properties: dict[int, list[str]] = {}
    for name, idset in sorted((execution.get("properties") or {}).items()):
        for rank in expand_idset(idset):
            properties.setdefault(rank, []).append(name)
    return [
        NodeResources(
            rank=rank,
            hostname=hosts[index] if hosts else f"node{rank}",
            cores=tuple(sorted(cores[rank])),
            gpus=tuple(sorted(gpus[rank])),
            properties=tuple(properties.get(rank, ())),
        )
        for index, rank in enumerate(ranks)
    ]


def r_summary(R: Mapping[str, Any]) -> dict[str, int]:
    """Counts of an R: ``{"nodes", "cores", "gpus"}``."""
    nodes = r_nodes(R)
    return {
        "nodes": len(nodes),
        "cores": sum(len(n.cores) for n in nodes),
        "gpus": sum(len(n.gpus) for n in nodes),
    }


_TRAILING_NUMBER = re.compile(r"^(.*?)(\d+)$")


def _basename(hostname: str) -> str:
    found = _TRAILING_NUMBER.match(hostname)
    return (found.group(1) if found else hostname) or "node"


def r_cluster_name(R: Mapping[str, Any]) -> str:
    """The default cluster name of a resource set: its hosts' base name (``tioga`` for ``tioga[1-16]``)."""
    nodes = r_nodes(R)
    return _basename(nodes[0].hostname) if nodes else "flux"


_OBJECT_TAG = re.compile(r"<object\b([^>]*)>")
_ATTRIBUTE = re.compile(r'(\w+)="([^"]*)"')
GIB = 1 << 30


def hwloc_memory_gb(xml: str) -> int:
    """A node's memory in whole GiB from its hwloc XML: the NUMA nodes' ``local_memory`` summed.

    hwloc 1.x topologies without NUMA nodes give the machine's ``local_memory``
    instead; 0 when the XML names no memory.
    """
    numa = machine = 0
    for tag in _OBJECT_TAG.finditer(xml):
        attributes = dict(_ATTRIBUTE.findall(tag.group(1)))
        size = attributes.get("local_memory", "")
        if not size.isdigit():
            continue
        if attributes.get("type") == "NUMANode":
            numa += int(size)
        elif attributes.get("type") == "Machine":
            machine += int(size)
    return (numa or machine) // GIB


def r_to_jgf(
    R: Mapping[str, Any],
    cluster_name: str = "cluster",
    queues: Mapping[str, Any] | None = None,
    memory_gb: Mapping[int, int] | None = None,
) -> dict[str, Any]:
    """The rainbow-dialect JGF of an Rv1 resource set: ``cluster > node > core/gpu[/memory]``.

    ``queues`` (``QueueSet.to_dict()``, see :mod:`rainbow.queues`) goes into
    ``graph.metadata``; without it the cluster has one unlimited anonymous queue.
    ``memory_gb`` (GiB per broker rank, from the hwloc topology) adds one
    ``memory`` vertex of that size (unit ``GB``) to each node that has some.

    Node vertices are named after their hostnames, carry their broker ``rank``
    and keep R's properties as ``metadata.properties`` (``{"pdebug": ""}``, as
    Fluxion writes them). Containment paths use the hostname, or
    ``hostname-rank`` when hostnames repeat (a test instance runs every broker
    on one host).
    """
    nodes = r_nodes(R)
    if not nodes:
        raise InvalidArgument("R has no resources (R_lite is empty)", field="R.execution.R_lite")
    unique = len({n.hostname for n in nodes}) == len(nodes)
    vertices: dict[str, dict[str, Any]] = {}
    edges: list[dict[str, Any]] = []

    def add(kind: str, basename: str, name: str, ident: int | str, rank: int, path: str, **extra: Any) -> str:
        uniq = len(vertices)
        key = str(uniq)
        metadata = {
            "type": kind,
            "basename": basename,
            "name": name,
            "id": ident,
            "uniq_id": uniq,
            "rank": rank,
            "exclusive": False,
            "unit": "",
            "size": 1,
            "paths": {"containment": path},
            **extra,
        }
        vertices[key] = {"label": key, "metadata": metadata}
        return key

    def link(parent: str, child: str) -> None:
        edges.append({"source": parent, "target": child, "relation": "contains", "metadata": {}})
        edges.append({"source": child, "target": parent, "relation": "in", "metadata": {}})

    root_name = f"{cluster_name}0"
    root = add("cluster", cluster_name, root_name, 0, -1, f"/{root_name}")
    for node in nodes:
        segment = node.hostname if unique else f"{node.hostname}-{node.rank}"
        path = f"/{root_name}/{segment}"
        extra: dict[str, Any] = {}
        if node.properties:
            extra["properties"] = {name: "" for name in node.properties}
        found = _TRAILING_NUMBER.match(node.hostname)
        ident = found.group(2) if found else str(node.rank)
        vertex = add("node", _basename(node.hostname), node.hostname, ident, node.rank, path, **extra)
        link(root, vertex)
        for kind, ids in (("core", node.cores), ("gpu", node.gpus)):
            for number in ids:
                child = add(kind, kind, f"{kind}{number}", str(number), node.rank, f"{path}/{kind}{number}")
                link(vertex, child)
        memory = (memory_gb or {}).get(node.rank, 0)
        if memory > 0:
            child = add("memory", "memory", "memory0", "0", node.rank, f"{path}/memory0")
            vertices[child]["metadata"].update(size=memory, unit="GB")
            link(vertex, child)
    graph: dict[str, Any] = {"directed": True, "nodes": vertices, "edges": edges}
    if queues is not None:
        graph["metadata"] = dict(queues)
    return {"graph": graph}
