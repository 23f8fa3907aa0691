"""A cluster graph restricted to the nodes a constraint allows.

A node constraint (RFC 31, a job's own and-ed with its queue's node set) takes
every ``node`` vertex that fails it out of the graph, with everything below
it; vertices outside any node are untouched. The matcher then runs unchanged
on the restricted graph.

Two ways, both exact: when every vertex of a class agrees (always so for
property-only constraints, since a node's properties are part of its class),
classes are dropped and the summaries recomputed over the classes alone;
otherwise (a hostlist or rank constraint splitting a class) the tree is
re-folded without the dropped nodes. Either result is cached on the graph
state per constraint.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, replace

from rainbow.constraints import Constraint, NodeLabel
from rainbow.graph.model import Classes, GraphState, _classify, _link_map, _totals

_KEPT = 64
_NO_LABEL = NodeLabel()


@dataclass(frozen=True)
class Restricted:
    """The graph state without the disallowed nodes, and how many ``node`` vertices are allowed."""

    state: GraphState
    allowed: int
    nodes: int


def restrict(state: GraphState, constraint: Constraint) -> Restricted:
    """``state`` restricted to the nodes ``constraint`` allows (cached per constraint)."""
    cache = state.cache.get("restricted")
    if cache is None:
        cache = state.cache["restricted"] = {}
    hit = cache.get(constraint.key)
    if hit is None:
        if len(cache) >= _KEPT:
            cache.clear()
        hit = cache[constraint.key] = _restrict(state, constraint)
    return hit


def _restrict(state: GraphState, constraint: Constraint) -> Restricted:
    classes = state.classes
    node_tid = state.type_index.get("node", -1)
    if node_tid < 0:
        return Restricted(state, 0, 0)
    verdict: dict[int, bool] = {}
    split = False
    if constraint.properties_only:
        for c in range(classes.n):
            if classes.type_of[c] == node_tid:
                verdict[c] = constraint.allows(NodeLabel(properties=classes.tags[c] or frozenset()))
        dead = None
    else:
        dead = bytearray(state.n)
        for v in range(state.n):
            if state.type_of[v] != node_tid:
                continue
            ok = constraint.allows(state.node_labels.get(v, _NO_LABEL))
            dead[v] = not ok
            c = classes.of_vertex[v]
            if verdict.setdefault(c, ok) != ok:
                split = True
    total = sum(classes.count[c] for c in verdict)
    if dead is None:
        allowed = sum(classes.count[c] for c, ok in verdict.items() if ok)
    else:
        allowed = sum(1 for v in range(state.n) if state.type_of[v] == node_tid and not dead[v])
    if allowed == total:
        return Restricted(state, allowed, total)
    if split and dead is not None:
        return Restricted(_refold(state, dead), allowed, total)
    return Restricted(_drop_classes(state, verdict), allowed, total)


def _drop_classes(state: GraphState, verdict: dict[int, bool]) -> GraphState:
    """Drop node classes the constraint rejects; kids come before parents in class order."""
    old = state.classes
    n = old.n
    alive = [verdict.get(c, True) for c in range(n)]
    kids: list[tuple[tuple[int, int], ...]] = []
    below: list[dict[int, int]] = []
    for c in range(n):
        kept = tuple((k, m) for k, m in old.kids[c] if alive[k])
        kids.append(kept)
        units: dict[int, int] = {}
        for kid, mult in kept:
            t = old.type_of[kid]
            units[t] = units.get(t, 0) + mult * old.size_of[kid]
            for t2, u in below[kid].items():
                units[t2] = units.get(t2, 0) + mult * u
        below.append(units)
    count = [0] * n
    count[old.root] = 1
    for c in range(n - 1, -1, -1):
        for kid, mult in kids[c]:
            count[kid] += count[c] * mult
    classes = Classes(old.type_of, old.size_of, old.links, kids, below, count, old.root, old.of_vertex, old.tags)
    return replace(state, classes=classes, totals=_totals(classes), cache={})


def _refold(state: GraphState, dead: bytearray) -> GraphState:
    """Fold the tree again without the dead vertices (and their subtrees)."""
    n = state.n
    child_start = array("i", [0]) * (n + 1)
    child_list = array("i")
    for v in range(n):
        child_start[v] = len(child_list)
        if not dead[v]:
            child_list.extend(k for k in state.children(v) if not dead[k])
    child_start[n] = len(child_list)
    order = array("i", [state.root])
    i = 0
    while i < len(order):
        v = order[i]
        order.extend(child_list[child_start[v] : child_start[v + 1]])
        i += 1
    classes = _classify(
        state.type_of, state.size_of, child_start, child_list, order, state.root,
        _link_map(state.subsystems), state.node_labels,
    )
    return replace(state, child_start=child_start, child_list=child_list, classes=classes,
                   totals=_totals(classes), cache={})
