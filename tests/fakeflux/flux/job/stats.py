"""Fake ``flux.job.stats.JobStats`` (the counts of ``job-list.job-stats``)."""

from __future__ import annotations

from typing import Any


class JobStats:
    def __init__(self, handle: Any, queue: Any = None) -> None:
        self.handle = handle
        self.pending = self.running = self.inactive = -1

    def update_sync(self) -> JobStats:
        counts = self.handle.instance.counts()
        self.depend = self.priority = 0
        self.sched = counts["sched"]
        self.run = counts["run"]
        self.cleanup = 0
        self.inactive = counts["inactive"]
        self.pending = self.depend + self.priority + self.sched
        self.running = self.run + self.cleanup
        return self
