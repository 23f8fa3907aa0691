"""The compact cluster graph.

A cluster graph is a containment tree (``cluster > rack > node > socket >
core`` ...) held as parallel ``array`` columns (parent, type id, size, children
in CSR form) instead of one Python object per vertex, plus named subsystems
whose vertices are linked from dominant vertices.

Identical subtrees are folded into *classes*: two vertices are in the same class
when they have the same type, size, subsystem links and the same multiset of
child classes.  16,384 identical nodes are one class with multiplicity 16,384,
so the matcher works on a handful of classes instead of a million vertices.
Each class carries summary counts (units of each type below it), the prune
filters that accept or reject most requests without a walk.

Instances are safe to read from many threads: every mutation
(:meth:`ClusterGraph.add_subsystem`, :meth:`ClusterGraph.remove_subsystem`)
builds a new immutable :class:`GraphState` and swaps it in with one
assignment; readers take ``graph.state`` once and use only that.
"""

from __future__ import annotations

import threading
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rainbow.constraints import NodeLabel
from rainbow.errors import InvalidArgument
from rainbow.jgf import JGFData, read_jgf
from rainbow.queues import UNLIMITED, QueueSet


@dataclass(frozen=True)
class Subsystem:
    """A subsystem graph: its vertices' metadata and the dominant vertices linking to them."""

    name: str
    ids: list[str]
    metadata: list[dict[str, Any]]
    links: dict[int, tuple[int, ...]]

    def summary(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for meta in self.metadata:
            kind = str(meta.get("type"))
            out[kind] = out.get(kind, 0) + int(meta.get("size", 1))
        return out


@dataclass(frozen=True)
class Classes:
    """Vertex classes (identical subtrees) and their summary counts.

    ``kids[c]`` is the multiset of child classes as ``((class, multiplicity), ...)``;
    ``below[c]`` maps a type id to the units (sum of sizes) of that type strictly
    below a vertex of class ``c``; ``links[c]`` is the vertex's subsystem links as
    ``((subsystem, vertex index), ...)``.
    """

    type_of: list[int]
    size_of: list[int]
    links: list[tuple[tuple[str, int], ...]]
    kids: list[tuple[tuple[int, int], ...]]
    below: list[dict[int, int]]
    count: list[int]
    root: int
    of_vertex: array = field(default_factory=lambda: array("i"))
    tags: list[frozenset[str] | None] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.type_of)


@dataclass(frozen=True)
class GraphState:
    """One immutable version of a cluster graph."""

    ids: list[str]
    types: list[str]
    type_index: dict[str, int]
    type_of: array
    size_of: array
    parent: array
    child_start: array
    child_list: array
    root: int
    totals: dict[int, int]
    subsystems: dict[str, Subsystem]
    classes: Classes
    cache: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)
    node_labels: dict[int, NodeLabel] = field(default_factory=dict, compare=False, repr=False)
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def n(self) -> int:
        return len(self.type_of)

    def children(self, v: int) -> array:
        return self.child_list[self.child_start[v] : self.child_start[v + 1]]


def _build_tree(data: JGFData) -> tuple[array, array, array, int, array]:
    """Parent array, children (CSR) and BFS order; rejects non-trees."""
    n = data.n
    parent = array("i", [-1]) * n
    ids = data.ids
    for s, t, pos in zip(data.edge_src, data.edge_dst, data.edge_pos, strict=True):
        if s == t:
            raise InvalidArgument(
                f"graph.edges[{pos}]: {ids[s]!r} contains itself (a cycle)", field="graph.edges"
            )
        if parent[t] != -1:
            if parent[t] == s:
                continue
            raise InvalidArgument(
                f"graph.edges[{pos}]: vertex {ids[t]!r} has two parents ({ids[parent[t]]!r} and {ids[s]!r})",
                field="graph.edges",
            )
        parent[t] = s
    roots = [v for v in range(n) if parent[v] == -1]
    if not roots:
        raise InvalidArgument(
            "graph: no root vertex (the containment edges form a cycle)", field="graph.edges"
        )
    if len(roots) > 1:
        shown = ", ".join(repr(ids[v]) for v in roots[:5])
        more = f" and {len(roots) - 5} more" if len(roots) > 5 else ""
        raise InvalidArgument(
            f"graph: {len(roots)} root vertices ({shown}{more}); a cluster graph has exactly one",
            field="graph.nodes",
        )
    counts = array("i", [0]) * (n + 1)
    for v in range(n):
        p = parent[v]
        if p >= 0:
            counts[p + 1] += 1
    for v in range(n):
        counts[v + 1] += counts[v]
    child_start = array("i", counts)
    fill = array("i", counts)
    child_list = array("i", [0]) * max(n - 1, 0)
    for v in range(n):
        p = parent[v]
        if p >= 0:
            child_list[fill[p]] = v
            fill[p] += 1
    del fill, counts
    root = roots[0]
    order = array("i", [root])
    i = 0
    while i < len(order):
        v = order[i]
        order.extend(child_list[child_start[v] : child_start[v + 1]])
        i += 1
    if len(order) != n:
        seen = bytearray(n)
        for v in order:
            seen[v] = 1
        stray = next(v for v in range(n) if not seen[v])
        raise InvalidArgument(
            f"graph: vertex {ids[stray]!r} is on a containment cycle (not reachable from the root)",
            field="graph.edges",
        )
    return parent, child_start, child_list, root, order


def _bfs_order(state: GraphState) -> array:
    order = array("i", [state.root])
    i = 0
    while i < len(order):
        order.extend(state.children(order[i]))
        i += 1
    return order


def _classify(
    type_of: array,
    size_of: array,
    child_start: array,
    child_list: array,
    order: array,
    root: int,
    link_of: dict[int, tuple[tuple[str, int], ...]],
    node_labels: Mapping[int, NodeLabel] | None = None,
) -> Classes:
    """Fold identical subtrees into classes, bottom-up (reverse BFS order).

    A node's properties are part of its class (constraints test them), its
    hostname and rank are not (constraints on those restrict vertex by vertex).
    """
    n = len(type_of)
    cls = array("i", [0]) * n
    sig_index: dict[tuple, int] = {}
    c_type: list[int] = []
    c_size: list[int] = []
    c_links: list[tuple[tuple[str, int], ...]] = []
    c_kids: list[tuple[tuple[int, int], ...]] = []
    c_count: list[int] = []
    c_tags: list[frozenset[str] | None] = []
    no_links: tuple = ()
    for k in range(len(order) - 1, -1, -1):
        v = order[k]
        a, b = child_start[v], child_start[v + 1]
        links = link_of.get(v, no_links) if link_of else no_links
        label = node_labels.get(v) if node_labels else None
        tag = label.properties if label is not None and label.properties else None
        if a == b:
            kids: tuple = ()
        elif b - a == 1:
            kids = ((cls[child_list[a]], 1),)
        else:
            members = sorted(cls[child_list[j]] for j in range(a, b))
            grouped: list[tuple[int, int]] = []
            prev, run = members[0], 0
            for m in members:
                if m == prev:
                    run += 1
                else:
                    grouped.append((prev, run))
                    prev, run = m, 1
            grouped.append((prev, run))
            kids = tuple(grouped)
        sig = (type_of[v], size_of[v], links, kids, tag)
        c = sig_index.get(sig)
        if c is None:
            c = len(c_type)
            sig_index[sig] = c
            c_type.append(type_of[v])
            c_size.append(size_of[v])
            c_links.append(links)
            c_kids.append(kids)
            c_count.append(0)
            c_tags.append(tag)
        c_count[c] += 1
        cls[v] = c
    below: list[dict[int, int]] = []
    for c in range(len(c_type)):
        units: dict[int, int] = {}
        for kid, mult in c_kids[c]:
            t = c_type[kid]
            units[t] = units.get(t, 0) + mult * c_size[kid]
            for t2, u in below[kid].items():
                units[t2] = units.get(t2, 0) + mult * u
        below.append(units)
    return Classes(c_type, c_size, c_links, c_kids, below, c_count, cls[root], cls, c_tags)


def _totals(classes: Classes) -> dict[int, int]:
    root = classes.root
    out = dict(classes.below[root])
    t = classes.type_of[root]
    out[t] = out.get(t, 0) + classes.size_of[root]
    return out


def _load_subsystem(
    state: GraphState, name: str, source: str | bytes | Mapping[str, Any], limits: dict[str, int | None]
) -> Subsystem:
    index = state.cache.get("id_index")
    if index is None:
        index = {vid: i for i, vid in enumerate(state.ids)}
        state.cache["id_index"] = index
    data = read_jgf(source, keep_metadata=True, external=index, **limits)
    for vid in data.ids:
        if vid in index:
            raise InvalidArgument(
                f"graph.nodes[{vid!r}]: subsystem vertex id collides with a cluster vertex id",
                field="graph.nodes",
            )
    n = data.n
    links: dict[int, list[int]] = {}
    linked = bytearray(n)
    inner: dict[int, list[int]] = {}
    for s, t, pos in zip(data.edge_src, data.edge_dst, data.edge_pos, strict=True):
        if t < 0:
            raise InvalidArgument(
                f"graph.edges[{pos}]: a subsystem vertex cannot contain cluster vertex {state.ids[-t - 1]!r}",
                field="graph.edges",
            )
        if s < 0:
            links.setdefault(-s - 1, []).append(t)
        else:
            if s == t:
                raise InvalidArgument(
                    f"graph.edges[{pos}]: {data.ids[s]!r} contains itself", field="graph.edges"
                )
            inner.setdefault(s, []).append(t)
        linked[t] = 1
    _check_acyclic(data, inner)
    unlinked = [i for i in range(n) if not linked[i]]
    if len(unlinked) > 1:
        shown = ", ".join(repr(data.ids[i]) for i in unlinked[:5])
        raise InvalidArgument(
            f"graph: subsystem {name!r} has {len(unlinked)} unlinked vertices ({shown}); "
            "only its root may stand alone",
            field="graph.edges",
        )
    return Subsystem(
        name=name,
        ids=data.ids,
        metadata=data.metadata or [],
        links={v: tuple(sorted(set(ts))) for v, ts in links.items()},
    )


def _check_acyclic(data: JGFData, inner: dict[int, list[int]]) -> None:
    indeg: dict[int, int] = {}
    for targets in inner.values():
        for t in targets:
            indeg[t] = indeg.get(t, 0) + 1
    ready = [v for v in inner if indeg.get(v, 0) == 0]
    done = 0
    while ready:
        v = ready.pop()
        done += 1
        for t in inner.get(v, ()):
            indeg[t] -= 1
            if indeg[t] == 0:
                ready.append(t)
    nodes = set(inner) | set(indeg)
    if done < len(nodes):
        stuck = next(v for v in sorted(nodes) if indeg.get(v, 0) > 0)
        raise InvalidArgument(
            f"graph: subsystem edges form a cycle through {data.ids[stuck]!r}", field="graph.edges"
        )


def _link_map(subsystems: dict[str, Subsystem]) -> dict[int, tuple[tuple[str, int], ...]]:
    merged: dict[int, list[tuple[str, int]]] = {}
    for name in sorted(subsystems):
        for v, targets in subsystems[name].links.items():
            merged.setdefault(v, []).extend((name, t) for t in targets)
    return {v: tuple(items) for v, items in merged.items()}


class ClusterGraph:
    """A cluster's resource graph: containment tree, subsystems, classes and summaries."""

    def __init__(self, state: GraphState, name: str = "", order: array | None = None) -> None:
        self.name = name
        self._state = state
        self._order = order
        self._lock = threading.Lock()

    @classmethod
    def from_jgf(
        cls,
        source: str | bytes | Mapping[str, Any],
        name: str = "",
        *,
        max_vertices: int | None = None,
        max_edges: int | None = None,
    ) -> ClusterGraph:
        """Load a cluster graph from JGF (either dialect, text or dict).

        Raises :class:`InvalidArgument` for malformed JSON, vertices without a
        type, edges naming missing vertices, several parents, several or no
        roots, and containment cycles; :class:`ResourceExhausted` past the limits.
        """
        data = read_jgf(source, max_vertices=max_vertices, max_edges=max_edges)
        parent, child_start, child_list, root, order = _build_tree(data)
        classes = _classify(data.type_of, data.size_of, child_start, child_list, order, root, {}, data.node_labels)
        if "queues" in data.graph_metadata:
            QueueSet.from_dict(data.graph_metadata, "graph.metadata")
        state = GraphState(
            ids=data.ids,
            types=data.types,
            type_index={t: i for i, t in enumerate(data.types)},
            type_of=data.type_of,
            size_of=data.size_of,
            parent=parent,
            child_start=child_start,
            child_list=child_list,
            root=root,
            totals=_totals(classes),
            subsystems={},
            classes=classes,
            node_labels=data.node_labels,
            metadata=data.graph_metadata,
        )
        return cls(state, name=name, order=order)

    @property
    def state(self) -> GraphState:
        return self._state

    @property
    def n_vertices(self) -> int:
        return self._state.n

    @property
    def subsystems(self) -> list[str]:
        return sorted(self._state.subsystems)

    def subsystem(self, name: str) -> Subsystem | None:
        return self._state.subsystems.get(name)

    @property
    def queues(self) -> QueueSet:
        """The queues registered with the graph (``graph.metadata.queues``); one unlimited queue if none."""
        state = self._state
        hit = state.cache.get("queues")
        if hit is None:
            meta = state.metadata
            hit = state.cache["queues"] = QueueSet.from_dict(meta, "graph.metadata") if "queues" in meta else UNLIMITED
        return hit

    def summary(self) -> dict[str, int]:
        """Units of each vertex type (sizes summed), e.g. ``{"node": 3, "core": 36, ...}``."""
        state = self._state
        return {state.types[t]: units for t, units in sorted(state.totals.items())}

    def _with_subsystems(self, subsystems: dict[str, Subsystem]) -> GraphState:
        old = self._state
        if self._order is None:
            self._order = _bfs_order(old)
        classes = _classify(
            old.type_of,
            old.size_of,
            old.child_start,
            old.child_list,
            self._order,
            old.root,
            _link_map(subsystems),
            old.node_labels,
        )
        cache = {"id_index": old.cache["id_index"]} if "id_index" in old.cache else {}
        return GraphState(
            ids=old.ids,
            types=old.types,
            type_index=old.type_index,
            type_of=old.type_of,
            size_of=old.size_of,
            parent=old.parent,
            child_start=old.child_start,
            child_list=old.child_list,
            root=old.root,
            totals=old.totals,
            subsystems=subsystems,
            classes=classes,
            cache=cache,
            node_labels=old.node_labels,
            metadata=old.metadata,
        )

    def add_subsystem(
        self,
        name: str,
        source: str | bytes | Mapping[str, Any],
        *,
        max_vertices: int | None = None,
        max_edges: int | None = None,
    ) -> None:
        """Add (or replace) subsystem ``name``; validated fully before anything changes.

        Edges go from cluster vertex ids to subsystem vertices ("this vertex has
        that resource") or between subsystem vertices; every subsystem vertex but
        one root must be linked, and every edge must name existing vertices.
        """
        if not isinstance(name, str) or not name:
            raise InvalidArgument("subsystem: name must be a non-empty string", field="subsystem")
        with self._lock:
            limits = {"max_vertices": max_vertices, "max_edges": max_edges}
            subsystem = _load_subsystem(self._state, name, source, limits)
            subsystems = dict(self._state.subsystems)
            subsystems[name] = subsystem
            self._state = self._with_subsystems(subsystems)

    def remove_subsystem(self, name: str) -> bool:
        """Drop subsystem ``name``; False if there was none."""
        with self._lock:
            if name not in self._state.subsystems:
                return False
            subsystems = {k: v for k, v in self._state.subsystems.items() if k != name}
            self._state = self._with_subsystems(subsystems)
            return True

    def __repr__(self) -> str:
        return f"ClusterGraph(name={self.name!r}, vertices={self.n_vertices}, subsystems={self.subsystems})"
