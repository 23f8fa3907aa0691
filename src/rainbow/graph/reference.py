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
  one of its subsystem links;
* the job must enter its queue (named or default: enabled, within the size
  and duration limits), and a ``node`` vertex that fails the job's constraint
  and-ed with the queue's node set is not there at all (nor anything below it).

Exponential by design; use it on small graphs only.  ``budget`` bounds the
number of steps (vertices visited plus assignments tried) and ``deadline`` (a
``time.monotonic()`` value) the time; :class:`BudgetExceeded` when either runs out.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from typing import Any

from rainbow.constraints import Constraint, NodeLabel, combine
from rainbow.graph.algorithms import get_match_algorithm
from rainbow.graph.match import compile_plan, job_counts
from rainbow.graph.model import ClusterGraph
from rainbow.jobspec import Jobspec
from rainbow.queues import QueueSet


class BudgetExceeded(RuntimeError):
    """The brute force needed more steps than allowed."""


def reference_match(
    graph: ClusterGraph,
    jobspec: Jobspec,
    algorithm: str = "match",
    budget: int = 2_000_000,
    deadline: float | None = None,
    queues: QueueSet | None = None,
) -> bool:
    """True if the jobspec's units can all be placed on disjoint vertex units of ``graph``."""
    algo = get_match_algorithm(algorithm)
    algo.check_jobspec(jobspec)
    plan = compile_plan(jobspec)
    state = graph.state
    types = state.types
    queue, _ = (queues or graph.queues).resolve(jobspec.queue)
    if queue is None or queue.check(job_counts(plan), jobspec.duration):
        return False
    tree = combine(queue.constraint, jobspec.constraints)
    constraint = Constraint(tree) if tree else None

    def gone(v: int) -> bool:
        if constraint is None or types[state.type_of[v]] != "node":
            return False
        return not constraint.allows(state.node_labels.get(v, NodeLabel()))

    n = state.n
    used = [0] * n
    steps = [0]

    def tick() -> None:
        steps[0] += 1
        if steps[0] > budget:
            raise BudgetExceeded(f"more than {budget} steps")
        if deadline is not None and not steps[0] & 1023 and time.monotonic() > deadline:
            raise BudgetExceeded("out of time")

    def topmost(kind: str, scope: int) -> list[int]:
        found: list[int] = []
        stack = [state.root] if scope < 0 else list(state.children(scope))
        while stack:
            tick()
            v = stack.pop()
            if gone(v):
                continue
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

    candidates: dict[tuple[int, int], tuple[list[int], list[int]]] = {}

    def options(q: int, scope: int) -> tuple[list[int], list[int]]:
        """Qualifying vertices in order, and for each position the units (sizes) from there on."""
        key = (q, scope)
        if key not in candidates:
            found = [v for v in topmost(plan.requests[q].type, scope) if qualifies(v, q)]
            suffix = [0] * (len(found) + 1)
            for i in range(len(found) - 1, -1, -1):
                suffix[i] = suffix[i + 1] + state.size_of[found[i]]
            candidates[key] = (found, suffix)
        return candidates[key]

    # Depth-first search over "tasks" (request, scope vertex, units left, lowest vertex),
    # kept as a linked list of tuples so a step costs O(children), with an explicit
    # stack of choice points instead of recursion (a big job has a million units).
    # Units of one (request, scope) are interchangeable: they are taken in vertex order.
    tasks: Any = None
    for q in reversed(plan.top):
        tasks = ((q, -1, plan.requests[q].count, 0), tasks)
    stack: list[list[Any]] = []
    while True:
        while tasks is not None and tasks[0][2] == 0:
            tasks = tasks[1]
        if tasks is None:
            return True
        q, scope, left, lowest = tasks[0]
        choices, suffix = options(q, scope)
        start = bisect_left(choices, lowest)
        # The one shortcut: not even all units from here on (used or not) would be enough.
        rest_choices = choices[start:] if suffix[start] >= left else []
        stack.append([tasks, iter(rest_choices), -1])
        while True:
            frame = stack[-1]
            if frame[2] >= 0:
                used[frame[2]] -= 1
                frame[2] = -1
            here = frame[0]
            q, scope, left, lowest = here[0]
            for v in frame[1]:
                tick()
                if used[v] < state.size_of[v]:
                    break
            else:
                stack.pop()
                if not stack:
                    return False
                continue
            used[v] += 1
            frame[2] = v
            rest = here[1]
            for k in reversed(plan.requests[q].children):
                rest = ((k, v, plan.requests[k].count, 0), rest)
            tasks = ((q, scope, left - 1, v), rest)
            break
