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
from rainbow.jobspec import Jobspec, command_shape, load_json, node_count, parse_jobspec, with_commands
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
    return select_among(*selection_inputs(candidates, results, states), selector, parameters, rng)


def selection_inputs(
    candidates: Sequence[str], results: Mapping[str, MatchResult], states: Mapping[str, Mapping[str, Any]]
) -> tuple[dict[str, str], list[str], dict[str, Mapping[str, Any]]]:
    """Why each candidate that did not match does not; the matching known ones, and their states."""
    reasons = {c: results[c].reason or "does not match" for c in candidates if not results[c].ok}
    matching = [c for c in candidates if results[c].ok and c in states]
    return reasons, matching, {c: states[c] for c in matching}


def select_among(
    reasons: dict[str, str],
    matching: list[str],
    states: Mapping[str, Mapping[str, Any]],
    selector: Selector,
    parameters: Mapping[str, Any],
    rng: random.Random | None = None,
) -> Placement:
    """``select_cluster`` over its ``selection_inputs``."""
    if not matching:
        return Placement(None, reasons)
    return Placement(selector.select(matching, states, parameters, rng=rng), reasons)


# How many clusters' state keys a job's placement record keeps (the chosen one first).
PLACEMENT_STATES = 8


def recorded_states(selection: Selection) -> list[str]:
    """The clusters whose state a placement record keeps: the chosen one and a few others (a record is
    kept with every job, so it stays small however many clusters matched)."""
    return list(dict.fromkeys(c for c in (selection.cluster, *selection.candidates) if c))[:PLACEMENT_STATES]


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
        # jobspec text -> (its Jobspec, the Jobspec to place it by: the first parsed of its command shape)
        self._jobspecs = LRU(1024)
        # command shape (jobspec.command_shape) -> the first Jobspec parsed of that shape
        self._shapes = LRU(1024)
        self._selectors = LRU(256)
        # (id of a Jobspec, algorithm) -> (that Jobspec, {cluster: (graph state, result)}); the entry holds
        # the Jobspec, so its id cannot be reused by another one while the entry lives.
        self._matches = LRU(1024)
        # queues JSON text (cluster state key) -> QueueSet, shared by clusters reporting the same queues
        self._queue_sets = LRU(256)
        # what a placement record says -> (the cluster states it holds, which keep their ids, and its JSON)
        self._records = LRU(1024)
        self._rng = random.Random()

    # -- parse -------------------------------------------------------------
    def check_size(self, text: str) -> None:
        limit = self.context.limits.max_jobspec_bytes
        if len(text) > limit:
            raise ResourceExhausted(f"jobspec is larger than {limit} bytes", field="jobspec")

    def parse_jobspec(self, text: str) -> Jobspec:
        return self.parse_for_placement(text)[0]

    def parse_for_placement(self, text: str, remember: bool = True) -> tuple[Jobspec, Jobspec]:
        """The jobspec of ``text`` and the one to match and select it by.

        A parameter sweep (or a workflow's steps) sends jobspecs that differ only
        in their commands and names, which neither matching nor selection reads:
        the first of a command shape is parsed and validated in full and placed;
        the others take its parse with their own commands and names
        (``jobspec.with_commands``), and are placed by
        it, so its match results serve them all. ``remember`` False: the text is not
        kept for next time (the distinct texts of a batch would only push out those
        that single submissions repeat).
        """
        if not text:
            raise InvalidArgument("jobspec is required", field="jobspec")
        self.check_size(text)
        if remember:
            return self._jobspecs.get(text, lambda: self._parse(text))
        return self._jobspecs.peek(text) or self._parse(text)

    def _parse(self, text: str) -> tuple[Jobspec, Jobspec]:
        doc = load_json(text)
        shape = command_shape(doc) if doc is not None else None
        if shape is not None:
            template = self._shapes.peek(shape)
            if template is not None and (jobspec := with_commands(template, doc)) is not None:
                return jobspec, template
        jobspec = parse_jobspec(text)
        if shape is not None:
            self._shapes.get(shape, lambda: jobspec)
        return jobspec, jobspec

    def template_of(self, text: str) -> Jobspec:
        """The jobspec to match and select ``text`` by, for a text checked before (a waiting job's): the first
        parsed of its command shape when there is one, without making the text's own jobspec."""
        doc = load_json(text)
        shape = command_shape(doc) if doc is not None else None
        template = self._shapes.peek(shape) if shape is not None else None
        return template if template is not None else self.parse_for_placement(text, remember=False)[1]

    def cached_jobspec(self, text: str) -> tuple[Jobspec, Jobspec] | None:
        """What ``parse_for_placement`` answers for ``text``, if it is cached."""
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

    def record(self, selection: Selection, reasons: Mapping[str, str], candidates: Sequence[str]) -> str:
        """``placement_record`` of a job placed by ``selection`` from the clusters' current states (the chosen
        one's first), remembered: single submissions of the same jobspecs make the same few records. A
        cluster's state is replaced, never changed, when its agent reports, so a state's identity (held
        by the entry, which keeps it alive) stands for its content."""
        with self.registry.lock:
            states = tuple((c, entry.state) for c in recorded_states(selection) if (entry := self.registry.get(c)))
        key = (tuple(candidates), tuple(reasons.items()), selection.algorithm, selection.reason, selection.trace,
               selection.candidates, tuple((c, id(state)) for c, state in states))
        hit = self._records.peek(key)
        if hit is None:
            text = placement_record(selection, reasons, candidates, {c: dict(state) for c, state in states})
            hit = self._records.get(key, lambda: (states, text))
        return hit[1]



class BatchPlacement:
    """Placing the many jobs of one batch among the same candidates with one selector.

    Each distinct jobspec to place by (``Placer.parse_for_placement``) is
    matched once, with the candidates' states read once; every job is still
    selected on its own (a selector may spread them), many at a time when the
    selector decides many at once (``Selector.draws_many``), and jobs placed
    alike share their placement record. What ``Placer.place`` decides for one
    job, this decides for each.
    """

    # The most selections drawn ahead for one jobspec (a batch draws 1, 2, 4, ... as its jobs come).
    MAX_DRAW = 4096

    def __init__(self, placer: Placer, candidates: Sequence[str], selector: Selector) -> None:
        self.placer = placer
        self.candidates = candidates
        self.listed = tuple(candidates)
        self.selector = selector
        # id(jobspec) -> (the jobspec, which keeps its id, and its selection_inputs)
        self._inputs: dict[int, tuple[Jobspec, tuple[dict[str, str], list[str], dict[str, Any]]]] = {}
        # id(jobspec) -> placements drawn ahead (popped from the end), and how many were drawn so far
        self._drawn: dict[int, tuple[list[Placement], int]] = {}
        self._states: dict[tuple[str, ...], dict[str, Any]] = {}
        self._records: dict[tuple, str] = {}
        # (id(jobspec), id(selection)) -> (both, which keep their ids, and what jobs placed alike share)
        self._shared: dict[tuple[int, int], tuple[Jobspec, Selection, PlacedAlike]] = {}

    def _selection_inputs(self, jobspec: Jobspec) -> tuple[dict[str, str], list[str], dict[str, Any]]:
        inputs = self._inputs.get(id(jobspec))
        if inputs is None:
            placer = self.placer
            started = time.perf_counter()
            results = placer.match(self.candidates, jobspec, "")
            assert results is not None
            placer.context.on_timing("match", time.perf_counter() - started)
            with placer.registry.lock:
                states = {c: entry.state for c in self.candidates
                          if results[c].ok and (entry := placer.registry.get(c))}
            inputs = self._inputs[id(jobspec)] = (jobspec, selection_inputs(self.candidates, results, states))
        return inputs[1]

    def place(self, jobspec: Jobspec) -> Placement:
        reasons, matching, states = self._selection_inputs(jobspec)
        if not matching or not self.selector.draws_many:
            return select_among(reasons, matching, states, self.selector, jobspec.parameters, self.placer._rng)
        ahead, drawn = self._drawn.get(id(jobspec), ([], 0))
        if not ahead:
            count = min(max(drawn, 1), self.MAX_DRAW)
            selections = self.selector.select_many(matching, states, jobspec.parameters, count, rng=self.placer._rng)
            shared: dict[int, Placement] = {}
            ahead = [shared.get(id(s)) or shared.setdefault(id(s), Placement(s, reasons)) for s in selections]
            ahead.reverse()
            self._drawn[id(jobspec)] = (ahead, drawn + count)
        return ahead.pop()

    def states(self, names: Sequence[str]) -> dict[str, Any]:
        """The state keys of ``names`` (read once per batch)."""
        key = tuple(names)
        hit = self._states.get(key)
        if hit is None:
            hit = self._states[key] = self.placer.registry.states(names)
        return hit

    def record(self, jobspec: Jobspec, selection: Selection, reasons: Mapping[str, str],
               states: Mapping[str, Any]) -> str:
        """``placement_record``, written once per jobspec and selection outcome."""
        key = (id(jobspec), selection.algorithm, selection.reason, selection.trace, tuple(selection.candidates),
               id(states))
        hit = self._records.get(key)
        if hit is None:
            hit = self._records[key] = placement_record(selection, reasons, self.candidates, states)
        return hit

    def placed_alike(self, jobspec: Jobspec, placement: Placement, excluded: Mapping[str, str] | None
                     ) -> PlacedAlike:
        """What every job placed by ``jobspec`` with ``placement``'s selection (which chose a cluster) shares;
        ``excluded`` (the clusters the batch's owner may not use) is the same for every job of the batch."""
        selection = placement.selection
        assert selection is not None and selection.clusters
        key = (id(jobspec), id(selection))
        hit = self._shared.get(key)
        if hit is None:
            reasons = placement.reasons
            states = self.states(recorded_states(selection))
            record = self.record(jobspec, selection, {**reasons, **(excluded or {})}, states)
            matching = tuple(c for c in self.candidates if c not in reasons)
            hit = self._shared[key] = (jobspec, selection, PlacedAlike(record, matching, node_count(jobspec)))
        return hit[2]


@dataclass(frozen=True)
class PlacedAlike:
    """What the jobs of a batch placed by one jobspec and one selection share."""

    record: str  # their placement record (JSON)
    matching: tuple[str, ...]  # the candidates that matched
    nodes: int  # nodes each asks for (the jobspec placed by has their resources)
