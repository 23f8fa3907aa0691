"""Synthetic JGF documents: small trees for tests, cluster-sized graphs for benchmarks and sizing a server.

:func:`tree_jgf` turns a small nested description into a JGF dict (either
dialect); :func:`write_cluster_jgf` streams a large regular cluster
(``cluster > [rack >] node > socket > core [, gpu]``) to a file without
building it in memory.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any


@dataclass
class Vertex:
    """A vertex of a synthetic tree: ``Vertex("node", children=[Vertex("core")] * 4)``."""

    type: str
    size: int = 1
    children: Sequence[Vertex] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def tree_jgf(root: Vertex, dialect: str = "rainbow") -> tuple[dict[str, Any], list[Vertex]]:
    """A JGF dict for the tree under ``root`` and the vertices in id order (id = position)."""
    order: list[Vertex] = []
    edges: list[tuple[int, int]] = []
    counters: dict[str, int] = {}
    paths: list[str] = []

    def visit(vertex: Vertex, parent: int, parent_path: str) -> None:
        idx = len(order)
        order.append(vertex)
        n = counters.get(vertex.type, 0)
        counters[vertex.type] = n + 1
        path = f"{parent_path}/{vertex.type}{n}"
        paths.append(path)
        if parent >= 0:
            edges.append((parent, idx))
        for child in vertex.children:
            visit(child, idx, path)

    visit(root, -1, "")
    metas = []
    for i, vertex in enumerate(order):
        meta: dict[str, Any] = {
            "type": vertex.type,
            "basename": vertex.type,
            "name": paths[i].rsplit("/", 1)[1],
            "id": i,
            "uniq_id": i,
            "rank": -1,
            "exclusive": False,
            "unit": "",
            "size": vertex.size,
            "paths": {"containment": paths[i]},
        }
        meta.update(vertex.extra)
        metas.append(meta)
    if dialect == "rainbow":
        nodes: Any = {str(i): {"label": str(i), "metadata": m} for i, m in enumerate(metas)}
        jedges: list[dict[str, Any]] = []
        for s, t in edges:
            jedges.append({"source": str(s), "target": str(t), "relation": "contains"})
            jedges.append({"source": str(t), "target": str(s), "relation": "in"})
    else:
        nodes = [{"id": str(i), "metadata": m} for i, m in enumerate(metas)]
        jedges = [
            {"source": str(s), "target": str(t), "metadata": {"name": {"containment": "contains"}}}
            for s, t in edges
        ]
    return {"graph": {"directed": True, "nodes": nodes, "edges": jedges}}, order


def subsystem_jgf(
    name: str, vertices: Sequence[dict[str, Any]], links: Sequence[tuple[str, int]]
) -> dict[str, Any]:
    """A subsystem JGF: a root ``<name>0`` containing ``vertices`` (metadata dicts) as ``<name>1..``.

    ``links`` are ``(cluster vertex id, subsystem vertex number >= 1)`` pairs.
    """
    nodes: dict[str, Any] = {
        f"{name}0": {"label": f"{name}0", "metadata": {"type": name, "basename": name, "size": 1}}
    }
    for i, meta in enumerate(vertices, start=1):
        full = {"size": 1, "basename": meta.get("type", name), **meta}
        nodes[f"{name}{i}"] = {"label": f"{name}{i}", "metadata": full}
    edges = [
        {"source": f"{name}0", "target": f"{name}{i}", "relation": "contains"} for i in range(1, len(nodes))
    ]
    for source, number in links:
        edges.append({"source": source, "target": f"{name}{number}", "relation": "contains"})
        edges.append({"source": f"{name}{number}", "target": source, "relation": "in"})
    return {"graph": {"directed": True, "nodes": nodes, "edges": edges}}


@dataclass(frozen=True)
class NodeKind:
    """``count`` nodes of one shape: ``cores``/``gpus`` per socket, optional memory (units) per node.

    ``properties`` become each node's Flux properties (``metadata.properties``).
    """

    count: int
    sockets: int = 2
    cores: int = 32
    gpus: int = 0
    memory: int = 0
    properties: tuple[str, ...] = ()


def write_cluster_jgf(
    out: IO[str],
    nodes: int | Sequence[NodeKind],
    sockets: int = 2,
    cores: int = 32,
    gpus: int = 0,
    racks: int = 0,
    name: str = "cluster",
    metadata: dict[str, Any] | None = None,
) -> int:
    """Stream a rainbow-dialect JGF of a regular cluster to ``out``; returns the vertex count.

    ``nodes`` is a node count (all ``sockets x cores [+ gpus]``) or a list of
    :class:`NodeKind`.  With ``racks`` > 0 nodes are spread evenly over racks.
    Each contains edge gets its ``in`` twin, like real files. ``metadata`` is
    the graph's own (``graph.metadata``, e.g. its queues).
    """
    kinds = [NodeKind(nodes, sockets, cores, gpus)] if isinstance(nodes, int) else list(nodes)
    total_nodes = sum(kind.count for kind in kinds)
    counter = 0
    edges: list[str] = []
    first = True

    def vertex(kind: str, number: int, path: str, size: int = 1, **extra: Any) -> int:
        nonlocal counter, first
        vid = counter
        counter += 1
        meta = {
            "type": kind,
            "basename": kind,
            "name": f"{kind}{number}",
            "id": number,
            "uniq_id": vid,
            "rank": -1,
            "exclusive": False,
            "unit": "",
            "size": size,
            "paths": {"containment": path},
            **extra,
        }
        out.write(("" if first else ",") + f'"{vid}":' + json.dumps({"label": str(vid), "metadata": meta}))
        first = False
        return vid

    def link(parent: int, child: int) -> None:
        edges.append(f'{{"source":"{parent}","target":"{child}","relation":"contains"}}')
        edges.append(f'{{"source":"{child}","target":"{parent}","relation":"in"}}')

    out.write('{"graph":{"directed":true,"nodes":{')
    root_path = f"/{name}0"
    root = vertex("cluster", 0, root_path)
    rack_ids: list[tuple[int, str]] = []
    for r in range(racks):
        path = f"{root_path}/rack{r}"
        rid = vertex("rack", r, path)
        link(root, rid)
        rack_ids.append((rid, path))
    numbers: dict[str, int] = {}

    def number(kind: str) -> int:
        n = numbers.get(kind, 0)
        numbers[kind] = n + 1
        return n

    chunks: list[str] = []
    n = 0
    for shape in kinds:
        for _ in range(shape.count):
            parent, ppath = rack_ids[n * len(rack_ids) // total_nodes] if rack_ids else (root, root_path)
            npath = f"{ppath}/node{n}"
            props = {"properties": {p: "" for p in shape.properties}} if shape.properties else {}
            nid = vertex("node", number("node"), npath, **props)
            link(parent, nid)
            for _ in range(shape.sockets):
                k = number("socket")
                spath = f"{npath}/socket{k}"
                sid = vertex("socket", k, spath)
                link(nid, sid)
                for kind, per_socket in (("core", shape.cores), ("gpu", shape.gpus)):
                    for _ in range(per_socket):
                        k = number(kind)
                        link(sid, vertex(kind, k, f"{spath}/{kind}{k}"))
            if shape.memory:
                k = number("memory")
                link(nid, vertex("memory", k, f"{npath}/memory{k}", size=shape.memory))
            n += 1
            if len(edges) > 100_000:
                chunks.append(",".join(edges))
                edges.clear()
    chunks.append(",".join(edges))
    out.write('},"edges":[')
    out.write(",".join(chunk for chunk in chunks if chunk))
    out.write("]" + (f',"metadata":{json.dumps(metadata)}' if metadata else "") + "}}")
    return counter
