"""What every part of the scheduler shares: the store, limits, settings, the clock and the hooks.

One mutable object, so that what the server (or a test) sets on the ``Scheduler``
after start (``on_events``, ``on_timing``, ``clock``) reaches every part.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rainbow.limits import Limits
from rainbow.store import JobEvent, Store

# Every part logs as "rainbow.scheduler": operators filter on that name.
log = logging.getLogger("rainbow.scheduler")

# Set on a record whose message is several lines that each stand alone (``log_lines``).
EACH_LINE = "rainbow_each_line"


def log_lines(level: int, lines: list[str]) -> None:
    """Log lines made together (the jobs one commit stored) as one record: one ``LogRecord`` and one
    write however many lines. The server's formatter prefixes each line as if it were a record of
    its own; another handler sees one message of several lines (``record.rainbow_each_line``)."""
    if len(lines) == 1:
        log.log(level, "%s", lines[0])
    elif lines:
        log.log(level, "%s", "\n".join(lines), extra={EACH_LINE: True})


def _ignore_events(events: list[JobEvent]) -> None:
    return None


def _ignore_timing(what: str, seconds: float) -> None:
    return None


def _ignore_rejection(cluster: str, replaced: bool) -> None:
    return None


@dataclass
class SchedulerContext:
    store: Store
    limits: Limits = field(default_factory=Limits)
    clock: Callable[[], float] = time.time
    lease_seconds: float = 300.0
    cluster_timeout: float = 600.0
    # Hears every job event written (the server wakes streams with it).
    on_events: Callable[[list[JobEvent]], None] = _ignore_events
    # (what, seconds) for "match" and "selection"; the server feeds its metrics with it.
    on_timing: Callable[[str, float], None] = _ignore_timing
    # (cluster, re-placed): a cluster's scheduler rejected a job before it ran (the server counts them).
    on_rejection: Callable[[str, bool], None] = _ignore_rejection
    # Hears every job event after ``on_events``: the scheduler decides the jobs that depend on them.
    on_job_events: Callable[[list[JobEvent]], None] = _ignore_events

    def publish(self, events: list[JobEvent]) -> None:
        if events:
            self.on_events(events)
            self.on_job_events(events)
