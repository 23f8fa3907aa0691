"""The matcher: can this cluster run this jobspec at all, and if not, why not.

Semantics are in ``docs/algorithms.md`` (## Matching); :mod:`rainbow.graph.reference`
is a deliberately naive implementation of the same rules that the property
tests compare this one with.

How it is fast: the graph is folded into classes of identical subtrees
(:mod:`rainbow.graph.model`) and everything below works on classes with
multiplicities, never on single vertices.  Three steps, each exact:

1. totals: a type the jobspec needs more units of than the cluster has;
2. the summary path: per-class capacities (how many units of a request one
   vertex of the class can give), summed over candidate classes, with Hall's
   condition when several groups compete for the same vertices;
3. the search, for jobspecs outside step 2: for each (class, active request
   kinds) the set of unit vectors the subtree can provide, as a small Pareto set
   clamped at what the jobspec could ever ask; a class repeated m times
   contributes the m-fold sum (by doubling), so 16,384 identical nodes cost as
   much as one.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import product

from rainbow.constraints import Constraint, combine
from rainbow.graph.algorithms import MatchAlgorithm, get_match_algorithm
from rainbow.graph.model import ClusterGraph, GraphState
from rainbow.graph.restrict import restrict
from rainbow.jobspec import Jobspec, Requirement, ResourceRequest
from rainbow.queues import Queue, QueueSet

Vec = tuple[int, ...]
_MAX_HALL = 10


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
    shape: int = 0

    def describe(self, count: int) -> str:
        """``count`` units of this request: "4 nodes with 13 cores"."""
        return units(count, self.type) + self.text


@dataclass(frozen=True)
class Kind:
    """Requests that are interchangeable (same type, requires and children) share a kind.

    The search counts units per kind, not per request: any unit that serves one
    request of a kind could serve any other, so only their sum matters.
    ``children`` are ``(kind, units per unit)``; ``bound`` is the most units all
    requests of the kind can ever need together.
    """

    type: str
    requires: tuple[Requirement, ...]
    children: tuple[tuple[int, int], ...]
    bound: int


@dataclass(frozen=True)
class Plan:
    """A jobspec's requests, flattened, plus what the summary fast path needs to know.

    ``components`` groups the top-level requests that could compete for a vertex
    (their subtrees share a type); ``simple`` is False when some component is
    outside what the summary path decides exactly (then the full search runs).

    ``pools`` are top-level leaf requests without ``requires`` ("any 5000
    cores"): on a graph where their type never nests in itself they can take any
    unit nobody else uses, so the per-type totals decide them and the search
    runs on ``without_pools``.
    """

    requests: tuple[PlanRequest, ...]
    top: tuple[int, ...]
    demand: tuple[tuple[str, int], ...]
    components: tuple[tuple[int, ...], ...]
    simple: bool
    kinds: tuple[Kind, ...]
    kind_of: tuple[int, ...]
    pools: tuple[int, ...] = ()
    without_pools: Plan | None = None


def _types_below(requests: list[PlanRequest], q: int) -> frozenset[str]:
    out = {requests[q].type}
    for k in requests[q].children:
        out |= _types_below(requests, k)
    return frozenset(out)


def _separable(requests: list[PlanRequest], q: int) -> bool:
    """Children whose subtrees share no type never compete, so capacities just add up."""
    kids = requests[q].children
    seen: set[str] = set()
    for k in kids:
        below = _types_below(requests, k)
        if seen & below or not _separable(requests, k):
            return False
        seen |= below
    return True


def _components(requests: list[PlanRequest], top: tuple[int, ...]) -> list[tuple[int, ...]]:
    groups: list[tuple[set[str], list[int]]] = []
    for q in top:
        types = set(_types_below(requests, q))
        merged = [g for g in groups if g[0] & types]
        for g in merged:
            groups.remove(g)
            types |= g[0]
        members = [m for g in merged for m in g[1]] + [q]
        groups.append((types, sorted(members)))
    return [tuple(g[1]) for g in groups]


_UNCOUNTABLE = frozenset({"memory", "storage", "bandwidth"})


def units(count: int, kind: str) -> str:
    """``count kind`` in English: "1 node", "64 nodes", "2 memory"."""
    if count == 1 or kind in _UNCOUNTABLE or kind.endswith("s"):
        return f"{count} {kind}"
    return f"{count} {kind}s"


def _text(request: ResourceRequest) -> str:
    """What a request asks for besides its count and type: its requires and what each unit holds."""
    out = ""
    if request.requires:
        out += " (" + ", ".join(r.describe() for r in request.requires) + ")"
    if request.with_:
        out += " with " + ", ".join(f"{units(c.count, c.type)}{_text(c)}" for c in request.with_)
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
        signature = (
            request.type,
            tuple(sorted({r.key() for r in request.requires}, key=repr)),
            tuple(sorted((requests[k].shape, requests[k].count) for k in children)),  # type: ignore[union-attr]
        )
        requests[idx] = PlanRequest(
            shape=_shape_id(signature),
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
    flat = [r for r in requests if r is not None]
    demand: dict[str, int] = {}
    for req in flat:
        demand[req.type] = demand.get(req.type, 0) + req.bound
    kinds, kind_of = _kinds(flat)
    pools = tuple(q for q in top if not flat[q].children and not flat[q].requires)
    rest = tuple(q for q in top if q not in pools)
    plan = _make_plan(flat, top, demand, kinds, kind_of, pools)
    if pools:
        plan = dataclasses.replace(plan, without_pools=_make_plan(flat, rest, demand, kinds, kind_of, ()))
    jobspec._cache["plan"] = plan
    return plan


def _make_plan(
    flat: list[PlanRequest],
    top: tuple[int, ...],
    demand: dict[str, int],
    kinds: tuple[Kind, ...],
    kind_of: tuple[int, ...],
    pools: tuple[int, ...],
) -> Plan:
    components = _components(flat, top)
    simple = all(_separable(flat, q) for q in top) and all(
        len({flat[q].type for q in comp}) == 1 and len(comp) <= _MAX_HALL for comp in components
    )
    return Plan(tuple(flat), top, tuple(demand.items()), tuple(components), simple, kinds, kind_of, pools)


_SHAPES: dict[tuple, int] = {}
_SHAPE_COUNTER = itertools.count(1)
_MAX_SHAPES = 1_000_000


def _shape_id(signature: tuple) -> int:
    """A process-wide id for a request subtree's shape (type, requires, children and counts).

    Capacities depend only on the shape, so they are cached per graph under this
    id and shared by every jobspec that asks for the same thing.  0 (no caching)
    once the table is full.
    """
    hit = _SHAPES.get(signature)
    if hit is None:
        if len(_SHAPES) >= _MAX_SHAPES:
            return 0
        hit = _SHAPES.setdefault(signature, next(_SHAPE_COUNTER))
    return hit


def _kinds(flat: list[PlanRequest]) -> tuple[tuple[Kind, ...], tuple[int, ...]]:
    signature_of: dict[tuple, int] = {}
    kind_of = [0] * len(flat)
    parts: list[tuple[str, tuple[Requirement, ...], tuple[tuple[int, int], ...]]] = []
    bounds: list[int] = []
    for req in reversed(flat):  # children come after their parent
        per_unit: dict[int, int] = {}
        for k in req.children:
            per_unit[kind_of[k]] = per_unit.get(kind_of[k], 0) + flat[k].count
        children = tuple(sorted(per_unit.items()))
        signature = (req.type, tuple(sorted({r.key() for r in req.requires}, key=repr)), children)
        kind = signature_of.get(signature)
        if kind is None:
            kind = signature_of[signature] = len(parts)
            parts.append((req.type, req.requires, children))
            bounds.append(0)
        kind_of[req.idx] = kind
        bounds[kind] += req.bound
    kinds = tuple(Kind(t, r, c, b) for (t, r, c), b in zip(parts, bounds, strict=True))
    return kinds, tuple(kind_of)


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
        self.kinds = plan.kinds
        self.memo: dict[tuple, list[Vec]] = {}
        self._elig: dict[tuple[int, int], bool] = {}
        self._kelig: dict[tuple[int, int], bool] = {}

    @functools.cached_property
    def ktype(self) -> list[int]:
        return [self.state.type_index.get(k.type, -1) for k in self.kinds]

    @functools.cached_property
    def bound(self) -> list[int]:
        return [k.bound for k in self.kinds]

    # -- requirements ----------------------------------------------------------
    def requirement_ok(self, cls: int, req: Requirement) -> bool:
        key = ("req", cls, req.key(), self.algorithm.name)
        cache = self.state.cache
        hit = cache.get(key)
        if hit is None:
            hit = False
            subsystem = self.state.subsystems.get(req.subsystem)
            if subsystem is not None:
                for name, target in self.classes.links[cls]:
                    if name == req.subsystem and self.algorithm.satisfies(req, subsystem.metadata[target]):
                        hit = True
                        break
            cache[key] = hit
        return hit

    def eligible(self, cls: int, q: int) -> bool:
        key = (cls, q)
        hit = self._elig.get(key)
        if hit is None:
            hit = self.classes.type_of[cls] == self.rtype[q] and all(
                self.requirement_ok(cls, r) for r in self.reqs[q].requires
            )
            self._elig[key] = hit
        return hit

    def kind_eligible(self, cls: int, k: int) -> bool:
        key = (cls, k)
        hit = self._kelig.get(key)
        if hit is None:
            hit = self.classes.type_of[cls] == self.ktype[k] and all(
                self.requirement_ok(cls, r) for r in self.kinds[k].requires
            )
            self._kelig[key] = hit
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
    def below(self, cls: int, wanted: tuple[int, ...]) -> list[Vec]:
        """Unit vectors the proper descendants of a class-``cls`` vertex can provide to ``wanted``."""
        key = ("below", cls, wanted)
        hit = self.memo.get(key)
        if hit is not None:
            return hit
        bounds = tuple(self.bound[q] for q in wanted)
        result: list[Vec] = [tuple(0 for _ in wanted)]
        for kid, mult in self.classes.kids[cls]:
            got = self.at(kid, wanted)
            if len(got) == 1 and not any(got[0]):
                continue
            result = self._clamp_sum(result, self._times(got, mult, bounds), bounds)
        self.memo[key] = result
        return result

    def _splits(self, positions: list[int], left: int, wanted: tuple[int, ...]) -> list[Vec]:
        if not positions:
            return [()]
        first, rest = positions[0], positions[1:]
        cap = min(left, self.bound[wanted[first]])
        if not rest:
            return [(cap,)]
        out = [(u, *tail) for u in range(cap + 1) for tail in self._splits(rest, left - u, wanted)]
        return _prune(out)

    def at(self, cls: int, wanted: tuple[int, ...]) -> list[Vec]:
        """Unit vectors a class-``cls`` vertex and its subtree can provide to the requests ``wanted``.

        ``cls`` is a vertex class (vertices with identical subtrees); ``wanted``
        holds request-kind indices, and a vector has one unit count per entry.
        Requests of the vertex's own type take units of the vertex (and then need
        their children inside it) or nothing: a request never reaches a vertex of
        its type below another one (candidates are the topmost of their type).
        """
        key = ("at", cls, wanted)
        hit = self.memo.get(key)
        if hit is not None:
            return hit
        classes = self.classes
        vtype = classes.type_of[cls]
        size = classes.size_of[cls]
        below = classes.below[cls]
        dims = len(wanted)
        passing = [i for i, k in enumerate(wanted) if self.ktype[k] != vtype and below.get(self.ktype[k], 0) > 0]
        own = [i for i, k in enumerate(wanted) if self.ktype[k] == vtype and self.kind_eligible(cls, k)]
        nonleaf = [i for i in own if self.kinds[wanted[i]].children]
        leaf = [i for i in own if not self.kinds[wanted[i]].children]
        ranges = [range(min(size, self.bound[wanted[i]]) + 1) for i in nonleaf]
        points: list[Vec] = []
        for units in product(*ranges):
            used = sum(units)
            if used > size:
                continue
            demand: dict[int, int] = {}
            for i, u in zip(nonleaf, units, strict=True):
                if u:
                    for k, per_unit in self.kinds[wanted[i]].children:
                        demand[k] = demand.get(k, 0) + u * per_unit
            inner = tuple(sorted({wanted[i] for i in passing} | set(demand)))
            if inner:
                where = {q: j for j, q in enumerate(inner)}
                # A kind can be both demanded by the units taken here and passing
                # through (interchangeable requests): what passes on is the rest.
                passed = _prune(
                    tuple(point[where[wanted[i]]] - demand.get(wanted[i], 0) for i in passing)
                    for point in self.below(cls, inner)
                    if all(point[where[k]] >= need for k, need in demand.items())
                )
            else:
                passed = [()]
            if not passed:
                continue
            for tail in self._splits(leaf, size - used, wanted):
                for passed_units in passed:
                    vec = [0] * dims
                    for i, u in zip(nonleaf, units, strict=True):
                        vec[i] = u
                    for i, u in zip(leaf, tail, strict=True):
                        vec[i] = u
                    for i, u in zip(passing, passed_units, strict=True):
                        vec[i] = u
                    points.append(tuple(vec))
        result = _prune(points) or [tuple(0 for _ in wanted)]
        self.memo[key] = result
        return result

    # -- summary fast path ------------------------------------------------------------
    def topmost(self, cls: int, tid: int) -> tuple[tuple[int, int], ...]:
        """``((class, multiplicity), ...)`` of the topmost type-``tid`` vertices below class ``cls``."""
        key = ("topmost", cls, tid)
        cache = self.state.cache
        hit = cache.get(key)
        if hit is None:
            classes = self.classes
            acc: dict[int, int] = {}
            for kid, mult in classes.kids[cls]:
                if classes.type_of[kid] == tid:
                    acc[kid] = acc.get(kid, 0) + mult
                elif tid in classes.below[kid]:
                    for d, m in self.topmost(kid, tid):
                        acc[d] = acc.get(d, 0) + m * mult
            hit = cache[key] = tuple(acc.items())
        return hit

    def candidates(self, tid: int) -> tuple[tuple[int, int], ...]:
        """Topmost classes of a type in the whole graph (a top-level request's candidates)."""
        root = self.classes.root
        if self.classes.type_of[root] == tid:
            return ((root, 1),)
        return self.topmost(root, tid)

    def cap(self, cls: int, q: int) -> int:
        """Units a class-``cls`` vertex can give request ``q`` on its own (``q`` separable).

        Cached on the graph state by request shape, so repeated and similar
        jobspecs reuse it.
        """
        shape = self.reqs[q].shape
        key = ("cap", cls, shape, self.algorithm.name) if shape else ("cap", cls, q, id(self))
        cache = self.state.cache if shape else self.memo
        hit = cache.get(key)
        if hit is not None:
            return hit  # type: ignore[return-value]
        units = 0
        if self.eligible(cls, q):
            units = self.classes.size_of[cls]
            for k in self.reqs[q].children:
                tid = self.rtype[k]
                have = sum(m * self.cap(d, k) for d, m in self.topmost(cls, tid)) if tid >= 0 else 0
                units = min(units, have // self.reqs[k].count)
                if not units:
                    break
        cache[key] = units  # type: ignore[assignment]
        return units

    def summary_decision(self) -> tuple[bool, str | None] | None:
        """Decide from per-class capacities, or None when the plan needs the full search.

        One top-level request: the sum over candidate classes of
        ``multiplicity x capacity``.  Several requests of one type competing for
        the same vertices: each candidate's possible unit vectors form a
        polymatroid ``{u <= cap, sum(u) <= size}``, so the demand fits exactly when
        Hall's condition holds for every subset of the requests.
        """
        for comp in self.plan.components:
            tid = self.rtype[comp[0]]
            cands = self.candidates(tid)
            if len(comp) == 1:
                q = comp[0]
                have = 0
                need = self.reqs[q].count
                for d, m in cands:
                    have += m * self.cap(d, q)
                    if have >= need:
                        break
                if have < need:
                    return False, f"needs {self.reqs[q].describe(need)}, has {have}"
                continue
            caps = [(d, m, [self.cap(d, q) for q in comp]) for d, m in cands]
            for d, _m, row in caps:
                if self.classes.size_of[d] > 1:
                    shared = [q for q, u in zip(comp, row, strict=True) if u and self.reqs[q].children]
                    if len(shared) > 1:
                        return None
            for mask in range(1, 1 << len(comp)):
                chosen = [i for i in range(len(comp)) if mask >> i & 1]
                need = sum(self.reqs[comp[i]].count for i in chosen)
                have = sum(
                    m * min(self.classes.size_of[d], sum(row[i] for i in chosen)) for d, m, row in caps
                )
                if have < need:
                    labels = ", ".join(self.reqs[comp[i]].label or self.reqs[comp[i]].type for i in chosen)
                    kind = self.reqs[comp[0]].type
                    if len(chosen) == 1:
                        return False, f"needs {self.reqs[comp[chosen[0]]].describe(need)}, has {have}"
                    return False, f"needs {units(need, kind)} for groups {labels} together, has {have}"
        return True, None

    # -- answers -------------------------------------------------------------------
    def fits(self, top: tuple[int, ...]) -> bool:
        need_by_kind: dict[int, int] = {}
        for q in top:
            k = self.plan.kind_of[q]
            need_by_kind[k] = need_by_kind.get(k, 0) + self.reqs[q].count
        wanted = tuple(sorted(need_by_kind))
        need = tuple(need_by_kind[k] for k in wanted)
        return any(all(x >= n for x, n in zip(p, need, strict=True)) for p in self.at(self.classes.root, wanted))

    def capacity(self, q: int) -> int:
        """Units of top-level request ``q`` the cluster can provide on its own (at most its kind's bound)."""
        return self.at(self.classes.root, (self.plan.kind_of[q],))[0][0]

    def scarce_type(self) -> str | None:
        state = self.state
        for kind, demand in self.plan.demand:
            tid = state.type_index.get(kind, -1)
            have = state.totals.get(tid, 0) if tid >= 0 else 0
            if demand > have:
                return f"needs {units(demand, kind)}, has {have}"
        return None

    def reason(self) -> str:
        scarce = self.scarce_type()
        if scarce:
            return scarce
        missing = self.requires_reason()
        if missing:
            return missing
        for q in self.plan.top:
            have = self.capacity(q)
            if have < self.reqs[q].count:
                return f"needs {self.reqs[q].describe(self.reqs[q].count)}, has {have}"
        labels = [self.reqs[q].label or self.reqs[q].type for q in self.plan.top]
        return f"resource groups {', '.join(labels)} do not fit together"

    def requires_reason(self) -> str | None:
        """``no node with io type=shm`` when no vertex of a request's type meets its requires."""
        cache = self.state.cache
        for req in self.reqs:
            if not req.requires:
                continue
            key = ("no-vertex", req.shape or id(req), self.algorithm.name)
            reason = cache.get(key) if req.shape else None
            if reason is None:
                reason = self._missing(req)
                if req.shape:
                    cache[key] = reason
            if reason:
                return reason
        return None

    def _missing(self, req: PlanRequest) -> str:
        tid = self.rtype[req.idx]
        candidates = self.classes_of(tid)
        if any(self.eligible(cls, req.idx) for cls in candidates):
            return ""
        for r in req.requires:
            if not any(self.requirement_ok(cls, r) for cls in candidates):
                return f"no {req.type} with {r.describe()}"
        return f"no {req.type} with " + " and ".join(r.describe() for r in req.requires)

    def classes_of(self, tid: int) -> tuple[int, ...]:
        key = ("classes-of", tid)
        hit = self.state.cache.get(key)
        if hit is None:
            classes = self.classes
            hit = self.state.cache[key] = tuple(
                cls for cls in range(classes.n) if classes.type_of[cls] == tid and classes.count[cls]
            )
        return hit


def _nests(state: GraphState, tid: int) -> bool:
    """Whether some vertex of type ``tid`` has another one below it."""
    key = ("nests", tid)
    hit = state.cache.get(key)
    if hit is None:
        classes = state.classes
        hit = state.cache[key] = any(
            classes.type_of[c] == tid and tid in classes.below[c] for c in range(classes.n)
        )
    return hit


def _decide(state: GraphState, plan: Plan, algorithm: MatchAlgorithm, summary: bool = True) -> MatchResult:
    evaluator = _Evaluator(state, plan, algorithm)
    scarce = evaluator.scarce_type()
    if scarce:
        return MatchResult(False, scarce)
    if plan.without_pools is not None:
        pool_types = {state.type_index.get(plan.requests[q].type, -1) for q in plan.pools}
        if not any(_nests(state, tid) for tid in pool_types):
            plan = plan.without_pools
            evaluator = _Evaluator(state, plan, algorithm)
    if summary and plan.simple:
        decided = evaluator.summary_decision()
        if decided is not None:
            ok, reason = decided
            if ok:
                return MatchResult(True)
            return MatchResult(False, evaluator.requires_reason() or reason)
    if evaluator.fits(plan.top):
        return MatchResult(True)
    return MatchResult(False, evaluator.reason())


def job_counts(plan: Plan) -> dict[str, int]:
    """The job's size as Flux's queue limits count it: total node, core and GPU units."""
    demand = dict(plan.demand)
    return {"nnodes": demand.get("node", 0), "ncores": demand.get("core", 0), "ngpus": demand.get("gpu", 0)}


def node_constraint(jobspec: Jobspec, queue: Queue) -> Constraint | None:
    """The job's constraint and-ed with its queue's node set, compiled (cached on the jobspec); None if none."""
    key = ("constraint", queue.requires)
    if key in jobspec._cache:
        return jobspec._cache[key]
    tree = combine(queue.constraint, jobspec.constraints)
    compiled = Constraint(tree) if tree else None
    jobspec._cache[key] = compiled
    return compiled


def _admission(plan: Plan, jobspec: Jobspec, queues: QueueSet) -> tuple[str | None, Constraint | None, int]:
    """Why the job cannot enter its queue (or None), the node constraint it then runs under, its node count."""
    counts = job_counts(plan)
    queue, why = queues.resolve(jobspec.queue)
    if queue is None:
        return why, None, counts["nnodes"]
    why = queue.check(counts, jobspec.duration)
    if why:
        return why, None, counts["nnodes"]
    return None, node_constraint(jobspec, queue), counts["nnodes"]


def _decide_placement(
    state: GraphState, plan: Plan, algorithm: MatchAlgorithm, jobspec: Jobspec, queues: QueueSet
) -> MatchResult:
    """Queue admission (name, enabled, sizes, duration), then the match on the nodes the constraints allow.

    Admission depends only on the jobspec and the queues, so it is decided once
    per (jobspec, queue set) and kept on the jobspec.
    """
    key = ("admission", id(queues))
    hit = jobspec._cache.get(key)
    if hit is None or hit[0] is not queues:
        hit = jobspec._cache[key] = (queues, *_admission(plan, jobspec, queues))
    _, why, constraint, need = hit
    if why:
        return MatchResult(False, why)
    if constraint is None:
        return _decide(state, plan, algorithm)
    narrowed = restrict(state, constraint)
    result = _decide(narrowed.state, plan, algorithm)
    if result.ok or narrowed.allowed == narrowed.nodes:
        return result
    what = constraint.description
    if need > narrowed.allowed:
        return MatchResult(False, f"{need} nodes {what} needed, {narrowed.allowed} have it")
    return MatchResult(False, f"{result.reason} on the {narrowed.allowed} nodes {what}")


def match(
    graph: ClusterGraph, jobspec: Jobspec, algorithm: str = "match", queues: QueueSet | None = None
) -> MatchResult:
    """Can ``graph`` run ``jobspec``?  ``reason`` explains a ``False`` (no cluster name prefix).

    ``queues`` are the cluster's queues (default: those registered with the graph).
    """
    algo = get_match_algorithm(algorithm)
    algo.check_jobspec(jobspec)
    return _decide_placement(graph.state, compile_plan(jobspec), algo, jobspec, queues or graph.queues)


def satisfy(
    graphs: Mapping[str, ClusterGraph],
    jobspec: Jobspec,
    algorithm: str = "match",
    queues: Mapping[str, QueueSet] | None = None,
) -> dict[str, MatchResult]:
    """Match ``jobspec`` against every cluster; ``{name: MatchResult}``."""
    algo = get_match_algorithm(algorithm)
    algo.check_jobspec(jobspec)
    plan = compile_plan(jobspec)
    queues = queues or {}
    return {
        name: _decide_placement(graph.state, plan, algo, jobspec, queues.get(name) or graph.queues)
        for name, graph in graphs.items()
    }
