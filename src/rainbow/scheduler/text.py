"""Wording shared by the scheduler's log lines."""

from __future__ import annotations

from collections.abc import Sequence

from rainbow.graph import ClusterGraph
from rainbow.graph.match import units


def plural(count: int, noun: str) -> str:
    """``count noun`` with the noun's plural when count is not 1: "1 job", "3 jobs"."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def job_ids(ids: Sequence[int], shown: int = 10) -> str:
    """Job ids for a log line: all of a few, the count and the first ones of many."""
    if len(ids) <= shown:
        return f"jobs {list(ids)}"
    return f"{len(ids)} jobs ({', '.join(map(str, ids[:shown]))}, ...)"


def graph_summary(graph: ClusterGraph) -> str:
    counts = graph.summary()
    return ", ".join(units(count, kind) for kind, count in sorted(counts.items())) or "empty"
