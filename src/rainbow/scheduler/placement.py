"""Placement: parse a jobspec, match it against each candidate cluster's graph, let the selector choose.

``select_cluster`` is the decision itself, a pure function over plain data
(match results, cluster states, a selector) returning a ``Placement`` that
explains itself. ``Placer`` feeds it: it keeps the parsed jobspecs, the
selectors a request named and the match results (per graph state) cached, so
a repeated submission skips the work, and reports how long matching and
selecting took.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rainbow.errors import InvalidArgument, ResourceExhausted
from rainbow.graph import ClusterGraph, MatchResult, get_match_algorithm, match
from rainbow.jobspec import Jobspec, parse_jobspec, shape_key, variant
from rainbow.queues import STATE_KEY as QUEUES_KEY
from rainbow.queues import QueueSet
from rainbow.scheduler.context import SchedulerContext, log
from rainbow.scheduler.registry import ClusterEntry, ClusterRegistry
from rainbow.selection import Selection, Selector, selector_for_request


@dataclass(frozen=True)
class Placement:
    """Where a job may go and why: the selector's choice among the matching clusters (None when no
    candidate matched) and, for each candidate that does not match, the matcher's reason."""

    selection: Selection | None
    reasons: dict[str, str]

    @property
    def explanation(self) -> str:
        if self.selection is None:
            return "; ".join(f"{c}: {r}" for c, r in self.reasons.items())
        return self.selection.reason


def select_cluster(
    candidates: Sequence[str],
    results: Mapping[str, MatchResult],
    states: Mapping[str, Mapping[str, Any]],
    selector: Selector,
    parameters: Mapping[str, Any],
    rng: random.Random | None = None,
) -> Placement:
    """Choose among the candidates that matched and are known (have a state in ``states``)."""
    reasons = {c: results[c].reason or "does not match" for c in candidates if not results[c].ok}
    matching = [c for c in candidates if results[c].ok and c in states]
    if not matching:
        return Placement(None, reasons)
    return Placement(selector.select(matching, {c: states[c] for c in matching}, parameters, rng=rng), reasons)


# How many clusters' state keys a job's placement record keeps (the chosen one first).
PLACEMENT_STATES = 8


def placement_record(
    selection: Selection, reasons: Mapping[str, str], candidates: Sequence[str], states: Mapping[str, Any]
) -> str:
    """Why a job went where it did (JSON, kept with the job): the clusters listed, which matched, why the
    others did not, what selection decided (its steps) and the cluster state it decided from."""
    return json.dumps({
        "listed": list(candidates),
        "matched": [c for c in candidates if c not in reasons],
        "unmatched": dict(reasons),
        "algorithm": selection.algorithm,
        "chosen": selection.cluster,
        "reason": selection.reason,
        "trace": list(selection.trace),
        "states": dict(states),
        "states_omitted": max(0, len(selection.candidates) - len(states)),
    }, default=str)


class LRU:
    """A small thread-safe least-recently-used cache."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()
        with self._lock:
            self._items[key] = value
            if len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def peek(self, key: Hashable) -> Any:
        """The cached value (now the most recently used) or None, without making one."""
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value


def _parse_queues(text: str, cluster: str) -> QueueSet | None:
    try:
        return QueueSet.from_json(text)
    except InvalidArgument as exc:
        log.error("cluster %s: stored queue state cannot be read (%s); using the registered queues", cluster, exc)
        return None


class Placer:
    """Parse -> match -> select for the clusters of the registry, with caches."""

    def __init__(
        self, context: SchedulerContext, registry: ClusterRegistry, match_algorithm: str, selector: Selector
    ) -> None:
        get_match_algorithm(match_algorithm)
        self.context = context
        self.registry = registry
        self.match_algorithm = match_algorithm or "match"
        self.selector = selector
        self._jobspecs = LRU(1024)
        self._selectors = LRU(256)
        # (id of a Jobspec, algorithm) -> (that Jobspec, {cluster: (graph state, result)}); the entry holds
        # the Jobspec, so its id cannot be reused by another one while the entry lives.
        self._matches = LRU(1024)
        # queues JSON text (cluster state key) -> QueueSet, shared by clusters reporting the same queues
        self._queue_sets = LRU(256)
        # shape_key -> the parsed jobspec of that shape that jobspecs differing only in commands share
        self._shapes = LRU(1024)
        self._rng = random.Random()

    # -- parse -------------------------------------------------------------
    def check_size(self, text: str) -> None:
        limit = self.context.limits.max_jobspec_bytes
        if len(text) > limit:
            raise ResourceExhausted(f"jobspec is larger than {limit} bytes", field="jobspec")

    def parse_jobspec(self, text: str) -> Jobspec:
        if not text:
            raise InvalidArgument("jobspec is required", field="jobspec")
        self.check_size(text)
        return self._jobspecs.get(text, lambda: parse_jobspec(text))

    def parse_variant(self, text: str) -> tuple[Jobspec, Jobspec]:
        """(the jobspec, the one to match it with): jobspecs (JSON) that differ only in their name and commands,
        such as a workflow's steps, are validated in full once and share one parsed jobspec, so one match."""
        self.check_size(text)
        if not text.lstrip().startswith("{"):
            parsed = self.parse_jobspec(text)
            return parsed, parsed
        try:
            doc = json.loads(text)
        except ValueError:
            parsed = self.parse_jobspec(text)
            return parsed, parsed
        key = shape_key(doc) if isinstance(doc, dict) else None
        template = self._shapes.peek(key) if key is not None else None
        if template is None:
            parsed = self.parse_jobspec(text)
            if key is not None:
                self._shapes.get(key, lambda: parsed)
            return parsed, parsed
        return variant(template, doc), template

    def template_of(self, text: str) -> Jobspec:
        """The parsed jobspec to match ``text`` with (``parse_variant``'s second), for text already checked."""
        if text.lstrip().startswith("{"):
            try:
                doc = json.loads(text)
            except ValueError:
                doc = None
            key = shape_key(doc) if isinstance(doc, dict) else None
            template = self._shapes.peek(key) if key is not None else None
            if template is not None:
                return template
        return self.parse_variant(text)[1]

    def cached_jobspec(self, text: str) -> Jobspec | None:
        return self._jobspecs.peek(text)

    # -- selectors ---------------------------------------------------------
    def selector_for(self, name: str, options: Mapping[str, str] | None) -> Selector:
        """The server's selector, or the one a request names (with its options)."""
        if not name and not options:
            return self.selector
        key = (name, tuple(sorted((options or {}).items())))
        return self._selectors.get(key, lambda: selector_for_request(self.selector, name, dict(options or {})))

    def has_selector(self, name: str, options: Mapping[str, str] | None) -> bool:
        """Whether ``selector_for`` answers without making a selector."""
        if not name and not options:
            return True
        return self._selectors.peek((name, tuple(sorted((options or {}).items())))) is not None

    # -- match -------------------------------------------------------------
    def match(
        self, names: Sequence[str], jobspec: Jobspec, algorithm: str, cached_only: bool = False
    ) -> dict[str, MatchResult] | None:
        """Match results per cluster, remembered per (graph state, jobspec, algorithm).

        A graph's state is replaced whenever its cluster or a subsystem changes,
        so a remembered result is used only while its state is still the graph's.
        With ``cached_only``, None instead of running the matcher.
        """
        algorithm = algorithm or self.match_algorithm
        get_match_algorithm(algorithm)
        known = self._matches.get((id(jobspec), algorithm), lambda: (jobspec, {}))[1]
        results = {}
        with self.registry.lock:
            for name in names:
                entry = self.registry.get(name)
                graph = entry.graph if entry else None
                if graph is None:
                    results[name] = MatchResult(False, "no usable resource graph")
                    continue
                state = graph.state
                queues = self.queues_of(entry, graph)
                hit = known.get(name)
                if hit is not None and hit[0] is state and hit[2] is queues:
                    results[name] = hit[1]
                elif cached_only:
                    return None
                else:
                    result = match(graph, jobspec, algorithm, queues)
                    known[name] = (state, result, queues)
                    results[name] = result
        return results

    def queues_of(self, entry: ClusterEntry, graph: ClusterGraph) -> QueueSet:
        """The cluster's queues: its agent's latest report (state key ``queues``), else the registered ones."""
        text = entry.state.get(QUEUES_KEY)
        if not isinstance(text, str):
            return graph.queues
        parsed = self._queue_sets.get(text, lambda: _parse_queues(text, entry.name))
        return parsed if parsed is not None else graph.queues

    # -- place -------------------------------------------------------------
    def place(
        self, candidates: Sequence[str], jobspec: Jobspec, selector: Selector, cached_only: bool = False
    ) -> Placement | None:
        """Match then select among the candidates; None when ``cached_only`` and a match would have to run."""
        started = time.perf_counter()
        results = self.match(candidates, jobspec, "", cached_only)
        if results is None:
            return None
        matched = time.perf_counter()
        self.context.on_timing("match", matched - started)
        with self.registry.lock:
            states = {c: entry.state for c in candidates if results[c].ok and (entry := self.registry.get(c))}
        placement = select_cluster(candidates, results, states, selector, jobspec.parameters, self._rng)
        if placement.selection is not None:
            self.context.on_timing("selection", time.perf_counter() - matched)
        return placement
