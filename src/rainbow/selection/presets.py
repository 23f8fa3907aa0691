"""Ready-made constraint priorities, usable by name (``cheapest``, ``least-loaded``).

The YAML below is written out in docs/algorithms.md; a test keeps both identical.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from rainbow.selection.base import Selector
from rainbow.selection.constraint import ConstraintSelector, parse_priorities

CHEAPEST = """\
- priority: 1
  steps:
  - filter: "nodes_free > 0"
  - sort_ascending: cost_per_node_hour
  - select: first
- priority: 2
  steps:
  - sort_ascending: cost_per_node_hour
  - select: first
"""

LEAST_LOADED = """\
- priority: 1
  steps:
  - sort_descending: nodes_free
  - select: first
"""


class _Preset(ConstraintSelector):
    """A constraint selector with fixed priorities; it takes no options."""

    option_names = frozenset()
    preset: ClassVar[str]

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        Selector.__init__(self, options)
        self.priorities = parse_priorities(self.preset)


class CheapestSelector(_Preset):
    """The lowest ``cost_per_node_hour`` among clusters with free nodes, else among all."""

    name = "cheapest"
    description = "lowest cost_per_node_hour, preferring clusters with nodes_free > 0"
    preset = CHEAPEST


class LeastLoadedSelector(_Preset):
    """The most ``nodes_free``."""

    name = "least-loaded"
    description = "most nodes_free"
    preset = LEAST_LOADED
