"""Selection: the final choice of one cluster among those that match a job.

Algorithms are pure: they see cluster names, each cluster's last reported state
(flat key/values from ``UpdateState``) and the job's ``attributes.parameter``
values, and return a :class:`Selection`. Build a selector once with
:func:`get_selector` (options are validated then) and share it between threads;
:func:`selector_for_request` applies a SubmitJob's ``select_algorithm`` /
``select_options`` over the server's configured selector.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from rainbow.errors import InvalidArgument
from rainbow.selection.base import Selection, Selector
from rainbow.selection.constraint import ConstraintSelector
from rainbow.selection.expressions import EvaluationError, Expression
from rainbow.selection.presets import CheapestSelector, LeastLoadedSelector
from rainbow.selection.random import RandomSelector

DEFAULT_ALGORITHM = "random"

SELECTION_ALGORITHMS: dict[str, type[Selector]] = {
    cls.name: cls for cls in (RandomSelector, ConstraintSelector, CheapestSelector, LeastLoadedSelector)
}

__all__ = [
    "DEFAULT_ALGORITHM",
    "SELECTION_ALGORITHMS",
    "CheapestSelector",
    "ConstraintSelector",
    "EvaluationError",
    "Expression",
    "LeastLoadedSelector",
    "RandomSelector",
    "Selection",
    "Selector",
    "algorithm_name",
    "get_selector",
    "parameters_from_jobspec",
    "selector_for_request",
]


def algorithm_name(name: str | None) -> str:
    """The registered name for ``name``.

    Empty or None means ``random``; case, surrounding spaces and ``_`` versus ``-`` do not matter.
    """
    if name is None:
        return DEFAULT_ALGORITHM
    if not isinstance(name, str):
        raise InvalidArgument(
            f"selection algorithm name must be a string, got {type(name).__name__}", field="select_algorithm"
        )
    normalized = name.strip().lower().replace("_", "-")
    if not normalized:
        return DEFAULT_ALGORITHM
    if normalized not in SELECTION_ALGORITHMS:
        known = ", ".join(sorted(SELECTION_ALGORITHMS))
        raise InvalidArgument(
            f"unknown selection algorithm {name!r} (known: {known})", field="select_algorithm"
        )
    return normalized


def get_selector(name: str | None, options: Mapping[str, Any] | None = None) -> Selector:
    """A validated selector; raises InvalidArgument for an unknown name or bad options."""
    return SELECTION_ALGORITHMS[algorithm_name(name)](options)


def selector_for_request(default: Selector, name: str | None, options: Mapping[str, Any] | None) -> Selector:
    """The selector for one SubmitJob.

    No ``select_algorithm`` and no ``select_options``: ``default`` itself. The same
    algorithm as ``default`` (or no name) with options: the server's options with
    the request's keys replacing them. Another algorithm: that algorithm with the
    request's options only. Raises InvalidArgument.
    """
    if not name and not options:
        return default
    chosen = algorithm_name(name) if name else default.name
    merged = {**default.options, **(options or {})} if chosen == default.name else dict(options or {})
    if all(isinstance(key, str) and isinstance(value, str) for key, value in merged.items()):
        return _cached_selector(chosen, tuple(sorted(merged.items())))
    return get_selector(chosen, merged)


@functools.lru_cache(maxsize=256)
def _cached_selector(name: str, options: tuple[tuple[str, str], ...]) -> Selector:
    """Selectors are immutable, so requests repeating the same options share one."""
    return get_selector(name, dict(options))


def parameters_from_jobspec(jobspec: Mapping[str, Any] | None) -> dict[str, Any]:
    """The jobspec's ``attributes.parameter`` mapping, or an empty dict."""
    if not isinstance(jobspec, Mapping):
        return {}
    attributes = jobspec.get("attributes")
    if not isinstance(attributes, Mapping):
        return {}
    parameters = attributes.get("parameter")
    if not isinstance(parameters, Mapping):
        return {}
    return dict(parameters)
