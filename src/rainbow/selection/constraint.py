"""``constraint``: ordered priorities of filter/calc/sort/select steps over live cluster state.

Options: ``priorities``, a list (or a YAML/JSON string of a list) of
``{priority: <int, optional>, steps: [...]}``; each step is one of
``filter: <condition>``, ``calc: <name>=<expression>``, ``sort_descending: <name>``,
``sort_ascending: <name>``, ``select: first|last|random``. The first priority
that leaves a cluster decides. See docs/algorithms.md for the full semantics.
"""

from __future__ import annotations

import keyword
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from rainbow.errors import InvalidArgument
from rainbow.selection.base import Selection, Selector, default_rng, unique
from rainbow.selection.expressions import (
    FUNCTION_NAMES,
    TRUE_FALSE_ALIASES,
    EvaluationError,
    Expression,
    Scalar,
    visible,
)

STEP_KINDS = ("filter", "calc", "sort_descending", "sort_ascending", "select")
SELECT_METHODS = ("first", "last", "random")
DEFAULT_SELECT = "first"
MAX_PRIORITIES_TEXT = 16384
MAX_FLOW_DEPTH = 16
MAX_PRIORITIES = 64
MAX_STEPS = 64
MAX_LISTED = 5
MAX_ORDER_SHOWN = 20


@dataclass(frozen=True)
class Step:
    """One parsed step. ``where`` is its path in the options, e.g. ``priorities[0].steps[1].calc``."""

    kind: str
    value: str
    where: str
    expression: Expression | None = None
    target: str = ""

    @property
    def label(self) -> str:
        return f"{self.kind}: {self.value}"


@dataclass(frozen=True)
class Priority:
    """One parsed priority; ``label`` is its ``priority`` number, or its 1-based position."""

    label: str
    where: str
    steps: tuple[Step, ...]
    select: str


@dataclass
class _Outcome:
    clusters: list[str]
    summary: str


def parse_priorities(value: object, where: str = "priorities") -> tuple[Priority, ...]:
    """Parse and validate the ``priorities`` option, in the order they are tried."""
    if isinstance(value, str):
        value = _load_yaml(value, where)
    if not isinstance(value, list):
        raise InvalidArgument(f"{where}: expected a list of priorities, got {_kind(value)}", field=where)
    if not value:
        raise InvalidArgument(f"{where}: the list of priorities is empty", field=where)
    if len(value) > MAX_PRIORITIES:
        raise InvalidArgument(f"{where}: more than {MAX_PRIORITIES} priorities", field=where)
    numbers: list[int | None] = []
    parsed: list[Priority] = []
    for index, item in enumerate(value):
        number, priority = _parse_priority(item, index, f"{where}[{index}]")
        numbers.append(number)
        parsed.append(priority)
    given = [number for number in numbers if number is not None]
    if not given:
        return tuple(parsed)
    if len(given) != len(numbers):
        missing = numbers.index(None)
        path = f"{where}[{missing}].priority"
        raise InvalidArgument(
            f"{path}: either every priority has a 'priority' number or none does", field=path
        )
    seen: dict[int, int] = {}
    for index, number in enumerate(given):
        if number in seen:
            path = f"{where}[{index}].priority"
            raise InvalidArgument(f"{path}: {number} is already used by {where}[{seen[number]}]", field=path)
        seen[number] = index
    order = sorted(range(len(parsed)), key=lambda index: given[index])
    return tuple(parsed[index] for index in order)


def _load_yaml(text: str, where: str) -> object:
    if len(text) > MAX_PRIORITIES_TEXT:
        raise InvalidArgument(f"{where}: longer than {MAX_PRIORITIES_TEXT} characters", field=where)
    if not text.strip():
        raise InvalidArgument(f"{where}: empty", field=where)
    if _flow_depth(text) > MAX_FLOW_DEPTH:
        # PyYAML's scanner is quadratic in [ / { nesting; refuse before it starts.
        raise InvalidArgument(
            f"{where}: nested more than {MAX_FLOW_DEPTH} levels of [ ] or {{ }}", field=where
        )
    try:
        # The pure-Python loader: libyaml's CSafeLoader crashes the process on deeply nested input.
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        problem = " ".join(str(error).split())
        raise InvalidArgument(f"{where}: not valid YAML/JSON: {problem}", field=where) from None
    except (RecursionError, ValueError) as error:
        raise InvalidArgument(f"{where}: not valid YAML/JSON: {error}", field=where) from None


def _flow_depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` outside quotes (an upper bound; comments are not skipped)."""
    depth = deepest = 0
    quote = ""
    escaped = False
    for char in text:
        if quote:
            if escaped:
                escaped = False
            elif char == "\\" and quote == '"':
                escaped = True
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth = max(depth - 1, 0)
    return deepest


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return type(value).__name__


def _parse_priority(item: object, index: int, where: str) -> tuple[int | None, Priority]:
    if not isinstance(item, Mapping):
        raise InvalidArgument(f"{where}: expected a mapping with 'steps', got {_kind(item)}", field=where)
    for key in item:
        if key not in ("priority", "steps"):
            hint = " (steps go in the 'steps' list)" if key in STEP_KINDS else ""
            raise InvalidArgument(
                f"{where}: unknown key {key!r}; a priority has 'priority' and 'steps'{hint}",
                field=where,
            )
    number = item.get("priority")
    if number is not None and (not isinstance(number, int) or isinstance(number, bool)):
        path = f"{where}.priority"
        raise InvalidArgument(f"{path}: expected an integer, got {_kind(number)}", field=path)
    steps_value = item.get("steps")
    path = f"{where}.steps"
    if not isinstance(steps_value, list):
        raise InvalidArgument(f"{path}: expected a list of steps, got {_kind(steps_value)}", field=path)
    if not steps_value:
        raise InvalidArgument(f"{path}: a priority needs at least one step", field=path)
    if len(steps_value) > MAX_STEPS:
        raise InvalidArgument(f"{path}: more than {MAX_STEPS} steps", field=path)
    steps = [_parse_step(step, f"{path}[{position}]") for position, step in enumerate(steps_value)]
    method = DEFAULT_SELECT
    for position, step in enumerate(steps):
        if step.kind == "select":
            if position != len(steps) - 1:
                raise InvalidArgument(
                    f"{step.where}: 'select' must be the last step of a priority", field=step.where
                )
            method = step.value
    label = str(number) if number is not None else str(index + 1)
    priority = Priority(label, where, tuple(step for step in steps if step.kind != "select"), method)
    return number, priority


def _parse_step(item: object, where: str) -> Step:
    known = ", ".join(STEP_KINDS)
    if not isinstance(item, Mapping) or len(item) != 1:
        got = f"keys {', '.join(map(str, item))}" if isinstance(item, Mapping) and item else _kind(item)
        raise InvalidArgument(
            f"{where}: a step is a mapping with exactly one of {known}, got {got}", field=where
        )
    ((kind, value),) = item.items()
    if kind not in STEP_KINDS:
        raise InvalidArgument(f"{where}: unknown step {kind!r} (expected one of {known})", field=where)
    path = f"{where}.{kind}"
    if not isinstance(value, str):
        raise InvalidArgument(f"{path}: expected a string, got {_kind(value)}", field=path)
    text = value.strip()
    if kind == "filter":
        return Step(kind, text, path, Expression.parse(text, kind="filter", where=path))
    if kind == "calc":
        return _parse_calc(text, path)
    if kind == "select":
        if text not in SELECT_METHODS:
            raise InvalidArgument(
                f"{path}: unknown select method {text!r} (expected one of {', '.join(SELECT_METHODS)})",
                field=path,
            )
        return Step(kind, text, path)
    if not text:
        raise InvalidArgument(f"{path}: expected the name of a value to sort by", field=path)
    return Step(kind, text, path, target=text)


def _parse_calc(text: str, where: str) -> Step:
    name, equals, source = text.partition("=")
    name = name.strip()
    if not equals:
        raise InvalidArgument(f'{where}: expected "<name>=<expression>", got {text!r}', field=where)
    if not name:
        raise InvalidArgument(f'{where}: missing the name before "=" in {text!r}', field=where)
    if (
        not name.isidentifier()
        or keyword.iskeyword(name)
        or name in FUNCTION_NAMES
        or name in TRUE_FALSE_ALIASES
    ):
        raise InvalidArgument(
            f"{where}: {name!r} cannot be a calc name (use letters, digits and _)", field=where
        )
    expression = Expression.parse(source, kind="calc", where=where)
    return Step("calc", text, where, expression, target=name)


def sort_clusters(
    clusters: Sequence[str], values: Mapping[str, Mapping[str, Scalar]], key: str, *, descending: bool
) -> list[str]:
    """Stable sort of ``clusters`` by ``values[cluster][key]``.

    Numbers (booleans count as 0/1) come first, then strings, each group in the
    requested direction; clusters without a usable value come last in their given
    order, whatever the direction. Ties keep their given order.
    """
    numbers: list[tuple[Any, str]] = []
    strings: list[tuple[str, str]] = []
    missing: list[str] = []
    for cluster in clusters:
        value = values[cluster].get(key)
        if isinstance(value, str):
            strings.append((value, cluster))
        elif isinstance(value, (bool, int, float)):
            numbers.append((value, cluster))
        else:
            missing.append(cluster)
    numbers.sort(key=lambda pair: pair[0], reverse=descending)
    strings.sort(key=lambda pair: pair[0], reverse=descending)
    return [cluster for _, cluster in numbers] + [cluster for _, cluster in strings] + missing


def _listed(dropped: Mapping[str, str]) -> str:
    items = [f"{cluster}: {why}" for cluster, why in list(dropped.items())[:MAX_LISTED]]
    if len(dropped) > MAX_LISTED:
        items.append(f"and {len(dropped) - MAX_LISTED} more")
    return "; ".join(items)


class ConstraintSelector(Selector):
    """Try each priority in order; the first that leaves a cluster decides."""

    name = "constraint"
    description = "ordered priorities of filter, calc, sort and select steps over cluster state"
    option_names = frozenset({"priorities"})

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        if "priorities" not in self.options:
            raise InvalidArgument(
                f"selection algorithm {self.name!r} needs the option 'priorities'", field="priorities"
            )
        self.priorities = parse_priorities(self.options["priorities"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.priorities)} priorities)"

    def check_parameters(self, parameters: Mapping[str, Any] | None) -> None:
        known = visible(parameters)
        if not known:
            return
        for priority in self.priorities:
            defined: set[str] = set()
            for step in priority.steps:
                if step.expression is not None:
                    step.expression.check(known, defined, where=step.where)
                if step.kind == "calc":
                    defined.add(step.target)

    def select(
        self,
        candidates: Sequence[str],
        states: Mapping[str, Mapping[str, Any]],
        parameters: Mapping[str, Any] | None,
        *,
        rng: random.Random | None = None,
    ) -> Selection:
        self.check_parameters(parameters)
        given = unique(candidates)
        if not given:
            return Selection([], f"{self.name}: no candidate clusters", self.name, ())
        known = visible(parameters)
        states = states or {}
        base: dict[str, dict[str, Scalar]] = {}
        for cluster in given:
            state = states.get(cluster)
            base[cluster] = {**visible(state if isinstance(state, Mapping) else None), **known}
        trace: list[str] = []
        failures: list[str] = []
        for priority in self.priorities:
            outcome = self._run(priority, given, base, rng, trace)
            if outcome.clusters:
                choice = outcome.clusters[0]
                reason = f"{self.name}: priority {priority.label} picked {choice!r} ({outcome.summary})"
                if failures:
                    reason += " after " + "; ".join(failures)
                return Selection(outcome.clusters, reason, self.name, tuple(given), tuple(trace))
            failures.append(outcome.summary)
        reason = f"{self.name}: no cluster passed: {failures[-1]}"
        return Selection([], reason, self.name, tuple(given), tuple(trace))

    def _run(
        self,
        priority: Priority,
        given: list[str],
        base: Mapping[str, Mapping[str, Scalar]],
        rng: random.Random | None,
        trace: list[str],
    ) -> _Outcome:
        values = {cluster: dict(base[cluster]) for cluster in given}
        remaining = list(given)
        ordered_by = ""
        for step in priority.steps:
            prefix = f"priority {priority.label} step {step.label!r}"
            if step.expression is None:
                remaining = sort_clusters(
                    remaining, values, step.target, descending=step.kind == "sort_descending"
                )
                ordered_by = f"{step.kind} {step.target}"
                shown = ", ".join(remaining[:MAX_ORDER_SHOWN])
                more = (
                    f" and {len(remaining) - MAX_ORDER_SHOWN} more"
                    if len(remaining) > MAX_ORDER_SHOWN
                    else ""
                )
                trace.append(f"{prefix}: order {shown}{more}")
                continue
            kept: list[str] = []
            dropped: dict[str, str] = {}
            for cluster in remaining:
                try:
                    value = step.expression.evaluate(values[cluster])
                except EvaluationError as error:
                    dropped[cluster] = error.reason
                    continue
                if step.kind == "calc":
                    values[cluster][step.target] = value
                    kept.append(cluster)
                elif value:
                    kept.append(cluster)
                else:
                    dropped[cluster] = "condition false"
            line = f"{prefix}: kept {len(kept)} of {len(remaining)}"
            trace.append(f"{line} ({_listed(dropped)})" if dropped else line)
            if not kept:
                summary = f"{prefix} removed the last of {len(given)} candidates ({_listed(dropped)})"
                return _Outcome([], summary)
            remaining = kept
        if priority.select == "first":
            choice = remaining[0]
        elif priority.select == "last":
            choice = remaining[-1]
        else:
            choice = remaining[(rng or default_rng()).randrange(len(remaining))]
        clusters = [choice, *(cluster for cluster in remaining if cluster != choice)]
        trace.append(f"priority {priority.label} select {priority.select}: {choice!r} among {len(remaining)}")
        summary = f"select {priority.select} among {len(remaining)}"
        if ordered_by:
            summary = f"{ordered_by}, {summary}"
        return _Outcome(clusters, summary)
