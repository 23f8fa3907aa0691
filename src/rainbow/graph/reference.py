"""The brute-force reference matcher: the matching rules, written as plainly as possible.

It defines the truth the fast matcher (:mod:`rainbow.graph.match`) is tested
against.  It walks single vertices (no classes, no summaries, no Pareto sets)
and tries every assignment of requested units to vertices by backtracking:

* a top-level request of type T picks among the *topmost* vertices of type T
  in the whole graph (the root included); a child request picks among the
  topmost vertices of its type strictly below the vertex its parent unit took;
* a vertex of size s can give s units in total, to any requests;
* each unit taken needs its own copy of the request's children;
* a vertex qualifies for a request only if every ``requires`` entry holds on
  one of its subsystem links.

Exponential by design; use it on small graphs only.  ``budget`` bounds the
number of search steps (:class:`BudgetExceeded` when it runs out).
"""

from __future__ import annotations

from rainbow.graph.algorithms import get_match_algorithm
from rainbow.graph.match import compile_plan
from rainbow.graph.model import ClusterGraph
from rainbow.jobspec import Jobspec


class BudgetExceeded(RuntimeError):
    """The brute force needed more steps than allowed."""


def reference_match(
    graph: ClusterGraph, jobspec: Jobspec, algorithm: str = "match", budget: int = 2_000_000
) -> bool:
    """True if the jobspec's units can all be placed on disjoint vertex units of ``graph``."""
    algo = get_match_algorithm(algorithm)
    algo.check_jobspec(jobspec)
    plan = compile_plan(jobspec)
    state = graph.state
    types = state.types
    n = state.n
    used = [0] * n
    steps = [0]

    def topmost(kind: str, scope: int) -> list[int]:
        found: list[int] = []
        stack = [state.root] if scope < 0 else list(state.children(scope))
        while stack:
            v = stack.pop()
            if types[state.type_of[v]] == kind:
                found.append(v)
            else:
                stack.extend(state.children(v))
        return sorted(found)

    def qualifies(v: int, q: int) -> bool:
        for req in plan.requests[q].requires:
            subsystem = state.subsystems.get(req.subsystem)
            if subsystem is None:
                return False
            if not any(algo.satisfies(req, subsystem.metadata[t]) for t in subsystem.links.get(v, ())):
                return False
        return True

    candidates: dict[tuple[int, int], list[int]] = {}

    def options(q: int, scope: int) -> list[int]:
        key = (q, scope)
        if key not in candidates:
            candidates[key] = [v for v in topmost(plan.requests[q].type, scope) if qualifies(v, q)]
        return candidates[key]

    def solve(tasks: list[tuple[int, int, int, int]]) -> bool:
        steps[0] += 1
        if steps[0] > budget:
            raise BudgetExceeded(f"more than {budget} steps")
        if not tasks:
            return True
        q, scope, left, lowest = tasks[0]
        rest = tasks[1:]
        if left == 0:
            return solve(rest)
        # Units of one (request, scope) are interchangeable: take them in vertex order.
        for v in options(q, scope):
            if v < lowest or used[v] >= state.size_of[v]:
                continue
            used[v] += 1
            children = [(k, v, plan.requests[k].count, 0) for k in plan.requests[q].children]
            if solve([(q, scope, left - 1, v), *children, *rest]):
                used[v] -= 1
                return True
            used[v] -= 1
        return False

    return solve([(q, -1, plan.requests[q].count, 0) for q in plan.top])
