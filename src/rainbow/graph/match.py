"""The matcher: can this cluster run this jobspec at all, and if not, why not.

Semantics are in ``docs/algorithms.md`` (## Matching); :mod:`rainbow.graph.reference`
is a deliberately naive implementation of the same rules that the property
tests compare this one with.

How it is fast: the graph is folded into classes of identical subtrees
(:mod:`rainbow.graph.model`), and the question "which vectors of units can this
subtree provide to the active requests" is answered once per (class, active
requests) as a small Pareto set, clamped at what the jobspec could ever ask.
A class repeated m times contributes the m-fold sum of its set, computed by
doubling, so 16,384 identical nodes cost as much as one.  Summary counts reject
a request before any of that when a type is simply too scarce.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import product

from rainbow.graph.algorithms import MatchAlgorithm, get_match_algorithm
from rainbow.graph.model import ClusterGraph, GraphState
from rainbow.jobspec import Jobspec, Requirement, ResourceRequest

Vec = tuple[int, ...]


@dataclass(frozen=True)
class MatchResult:
    """Whether a cluster can run a job; ``reason`` says why not (without the cluster name)."""

    ok: bool
    reason: str | None = None

    def describe(self, cluster: str) -> str:
        return f"{cluster}: {'matches' if self.ok else self.reason or 'does not match'}"


@dataclass(frozen=True)
class PlanRequest:
    """One level of the request tree, flattened: ``bound`` is the most units it can ever need."""

    idx: int
    type: str
    count: int
    bound: int
    requires: tuple[Requirement, ...]
    children: tuple[int, ...]
    text: str
    label: str | None


@dataclass(frozen=True)
class Plan:
    requests: tuple[PlanRequest, ...]
    top: tuple[int, ...]

    def demand_by_type(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for req in self.requests:
            out[req.type] = out.get(req.type, 0) + req.bound
        return out


def _text(request: ResourceRequest) -> str:
    out = request.type
    if request.requires:
        out += " (" + ", ".join(r.describe() for r in request.requires) + ")"
    if request.with_:
        out += " with " + ", ".join(f"{c.count} {_text(c)}" for c in request.with_)
    return out


def compile_plan(jobspec: Jobspec) -> Plan:
    """Flatten the jobspec's request tree (cached on the jobspec)."""
    plan = jobspec._cache.get("plan")
    if plan is not None:
        return plan
    requests: list[PlanRequest | None] = []

    def add(request: ResourceRequest, factor: int) -> int:
        idx = len(requests)
        requests.append(None)
        bound = factor * request.count
        children = tuple(add(child, bound) for child in request.with_)
        requests[idx] = PlanRequest(
            idx=idx,
            type=request.type,
            count=request.count,
            bound=bound,
            requires=request.requires,
            children=children,
            text=_text(request),
            label=request.label,
        )
        return idx

    top = tuple(add(r, 1) for r in jobspec.resources)
    plan = Plan(tuple(r for r in requests if r is not None), top)
    jobspec._cache["plan"] = plan
    return plan


def _prune(points: Iterable[Vec]) -> list[Vec]:
    """The Pareto-maximal points (a downward-closed set is represented by these)."""
    unique = sorted(set(points), key=sum, reverse=True)
    if len(unique) <= 1:
        return unique
    kept: list[Vec] = []
    for p in unique:
        for q in kept:
            if all(a >= b for a, b in zip(q, p, strict=True)):
                break
        else:
            kept.append(p)
    return kept


class _Evaluator:
    """One (graph state, plan, algorithm) evaluation with its own memo tables."""

    def __init__(self, state: GraphState, plan: Plan, algorithm: MatchAlgorithm) -> None:
        self.state = state
        self.classes = state.classes
        self.plan = plan
        self.reqs = plan.requests
        self.algorithm = algorithm
        self.rtype = [state.type_index.get(r.type, -1) for r in plan.requests]
        self.bound = [r.bound for r in plan.requests]
        self.memo: dict[tuple, list[Vec]] = {}
        self._elig: dict[tuple[int, int], bool] = {}

    # -- requirements ----------------------------------------------------------
    def requirement_ok(self, c: int, req: Requirement) -> bool:
        key = ("req", c, req.key(), self.algorithm.name)
        cache = self.state.cache
        hit = cache.get(key)
        if hit is None:
            hit = False
            subsystem = self.state.subsystems.get(req.subsystem)
            if subsystem is not None:
                for name, target in self.classes.links[c]:
                    if name == req.subsystem and self.algorithm.satisfies(req, subsystem.metadata[target]):
                        hit = True
                        break
            cache[key] = hit
        return hit

    def eligible(self, c: int, q: int) -> bool:
        key = (c, q)
        hit = self._elig.get(key)
        if hit is None:
            hit = self.classes.type_of[c] == self.rtype[q] and all(
                self.requirement_ok(c, r) for r in self.reqs[q].requires
            )
            self._elig[key] = hit
        return hit

    # -- Pareto-set arithmetic ---------------------------------------------------
    def _clamp_sum(self, a: list[Vec], b: list[Vec], bounds: Vec) -> list[Vec]:
        if len(a) == 1 and not any(a[0]):
            return b
        if len(b) == 1 and not any(b[0]):
            return a
        return _prune(
            tuple(min(x + y, m) for x, y, m in zip(p, q, bounds, strict=True)) for p in a for q in b
        )

    def _times(self, a: list[Vec], m: int, bounds: Vec) -> list[Vec]:
        if m == 1 or (len(a) == 1 and not any(a[0])):
            return a
        if len(bounds) == 1:
            return [(min(a[0][0] * m, bounds[0]),)]
        result: list[Vec] = [tuple(0 for _ in bounds)]
        base = a
        while m:
            if m & 1:
                result = self._clamp_sum(result, base, bounds)
                if result == [bounds]:
                    return result
            m >>= 1
            if m:
                base = self._clamp_sum(base, base, bounds)
        return result

    # -- the recursion -----------------------------------------------------------
    def below(self, c: int, act: tuple[int, ...]) -> list[Vec]:
        """Unit vectors the proper descendants of a class-``c`` vertex can provide to ``act``."""
        key = ("below", c, act)
        hit = self.memo.get(key)
        if hit is not None:
            return hit
        bounds = tuple(self.bound[q] for q in act)
        result: list[Vec] = [tuple(0 for _ in act)]
        for kid, mult in self.classes.kids[c]:
            got = self.at(kid, act)
            if len(got) == 1 and not any(got[0]):
                continue
            result = self._clamp_sum(result, self._times(got, mult, bounds), bounds)
        self.memo[key] = result
        return result

    def _splits(self, positions: list[int], left: int, act: tuple[int, ...]) -> list[Vec]:
        if not positions:
            return [()]
        first, rest = positions[0], positions[1:]
        cap = min(left, self.bound[act[first]])
        if not rest:
            return [(cap,)]
        out = [(u, *tail) for u in range(cap + 1) for tail in self._splits(rest, left - u, act)]
        return _prune(out)

    def at(self, c: int, act: tuple[int, ...]) -> list[Vec]:
        """Unit vectors a class-``c`` vertex and its subtree can provide to the requests ``act``.

        Requests of the vertex's own type take units of the vertex (and then need
        their children inside it) or nothing: a request never reaches a vertex of
        its type below another one (candidates are the topmost of their type).
        """
        key = ("at", c, act)
        hit = self.memo.get(key)
        if hit is not None:
            return hit
        classes = self.classes
        t = classes.type_of[c]
        size = classes.size_of[c]
        below = classes.below[c]
        dims = len(act)
        passing = [i for i, q in enumerate(act) if self.rtype[q] != t and below.get(self.rtype[q], 0) > 0]
        own = [i for i, q in enumerate(act) if self.rtype[q] == t and self.eligible(c, q)]
        nonleaf = [i for i in own if self.reqs[act[i]].children]
        leaf = [i for i in own if not self.reqs[act[i]].children]
        ranges = [range(min(size, self.bound[act[i]]) + 1) for i in nonleaf]
        points: list[Vec] = []
        for units in product(*ranges):
            used = sum(units)
            if used > size:
                continue
            demand: dict[int, int] = {}
            for i, u in zip(nonleaf, units, strict=True):
                if u:
                    for k in self.reqs[act[i]].children:
                        demand[k] = u * self.reqs[k].count
            inner = tuple(sorted({act[i] for i in passing} | set(demand)))
            if inner:
                where = {q: j for j, q in enumerate(inner)}
                ys = _prune(
                    tuple(p[where[act[i]]] for i in passing)
                    for p in self.below(c, inner)
                    if all(p[where[k]] >= need for k, need in demand.items())
                )
            else:
                ys = [()]
            if not ys:
                continue
            for tail in self._splits(leaf, size - used, act):
                for y in ys:
                    vec = [0] * dims
                    for i, u in zip(nonleaf, units, strict=True):
                        vec[i] = u
                    for i, u in zip(leaf, tail, strict=True):
                        vec[i] = u
                    for i, u in zip(passing, y, strict=True):
                        vec[i] = u
                    points.append(tuple(vec))
        result = _prune(points) or [tuple(0 for _ in act)]
        self.memo[key] = result
        return result

    # -- answers -------------------------------------------------------------------
    def fits(self, top: tuple[int, ...]) -> bool:
        act = tuple(sorted(top))
        need = tuple(self.reqs[q].bound for q in act)
        return any(all(x >= n for x, n in zip(p, need, strict=True)) for p in self.at(self.classes.root, act))

    def capacity(self, q: int) -> int:
        """Units of top-level request ``q`` the cluster can provide on its own (clamped at its count)."""
        return self.at(self.classes.root, (q,))[0][0]

    def scarce_type(self) -> str | None:
        state = self.state
        for kind, demand in self.plan.demand_by_type().items():
            tid = state.type_index.get(kind, -1)
            have = state.totals.get(tid, 0) if tid >= 0 else 0
            if demand > have:
                return f"needs {demand} {kind}, has {have}"
        return None

    def reason(self) -> str:
        scarce = self.scarce_type()
        if scarce:
            return scarce
        classes = self.classes
        for req in self.reqs:
            if not req.requires:
                continue
            tid = self.rtype[req.idx]
            candidates = [c for c in range(classes.n) if classes.type_of[c] == tid]
            if any(self.eligible(c, req.idx) for c in candidates):
                continue
            for r in req.requires:
                if not any(self.requirement_ok(c, r) for c in candidates):
                    return f"no {req.type} with {r.describe()}"
            return f"no {req.type} with " + " and ".join(r.describe() for r in req.requires)
        for q in self.plan.top:
            have = self.capacity(q)
            if have < self.reqs[q].count:
                return f"needs {self.reqs[q].count} {self.reqs[q].text}, has {have}"
        labels = [self.reqs[q].label or self.reqs[q].type for q in self.plan.top]
        return f"resource groups {', '.join(labels)} do not fit together"


def _decide(state: GraphState, plan: Plan, algorithm: MatchAlgorithm) -> MatchResult:
    evaluator = _Evaluator(state, plan, algorithm)
    if evaluator.scarce_type() is None and evaluator.fits(plan.top):
        return MatchResult(True)
    return MatchResult(False, evaluator.reason())


def match(graph: ClusterGraph, jobspec: Jobspec, algorithm: str = "match") -> MatchResult:
    """Can ``graph`` run ``jobspec``?  ``reason`` explains a ``False`` (no cluster name prefix)."""
    algo = get_match_algorithm(algorithm)
    algo.check_jobspec(jobspec)
    return _decide(graph.state, compile_plan(jobspec), algo)


def satisfy(
    graphs: Mapping[str, ClusterGraph], jobspec: Jobspec, algorithm: str = "match"
) -> dict[str, MatchResult]:
    """Match ``jobspec`` against every cluster; ``{name: MatchResult}``."""
    algo = get_match_algorithm(algorithm)
    algo.check_jobspec(jobspec)
    plan = compile_plan(jobspec)
    return {name: _decide(graph.state, plan, algo) for name, graph in graphs.items()}
