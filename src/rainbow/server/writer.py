"""Group commit of submitted jobs, seen from the event loop.

``SubmitJob`` handlers hand their placed job to the ``JobWriter`` and await it.
One writer thread stores every job waiting at that moment with one
``store.add_jobs`` call (SQLite: one transaction, one fsync) while the next
jobs queue up behind it; when the batch is durable, one callback on the event
loop announces the jobs and answers all of their handlers. A handler is
answered only after its job is committed, so an acknowledged job survives a
crash.

The writer thread only stores: Python work on it waits for the GIL behind the
busy event loop, and while it waits, the jobs queued behind it wait too.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from rainbow.scheduler import PendingSubmit, Scheduler, SubmitOutcome
from rainbow.store import JobEvent, JobRecord

# Most jobs one transaction writes; more wait for the next one.
MAX_BATCH = 512


class JobWriter:
    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rainbow-writer")
        self._waiting: list[tuple[PendingSubmit, asyncio.Future]] = []
        self._busy = False

    async def submit(self, pending: PendingSubmit) -> SubmitOutcome:
        """Store a placed job; returns once it is committed (or raises what storing it raised)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._waiting.append((pending, future))
        if not self._busy:
            self._schedule(loop)
        return await future

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the next batch once the loop has run what is ready now: requests that arrived
        together join one transaction instead of the first going alone."""
        self._busy = True
        loop.call_soon(self._start)

    def _start(self) -> None:
        batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
        loop = asyncio.get_running_loop()
        try:
            done = loop.run_in_executor(self._thread, self._write, [pending for pending, _ in batch])
        except RuntimeError as exc:  # the writer is closed
            failed = loop.create_future()
            failed.set_exception(exc)
            self._finish(batch, failed)
            return
        done.add_done_callback(lambda finished: self._finish(batch, finished))

    def _write(self, batch: list[PendingSubmit]) -> list[tuple[JobRecord, JobEvent | None] | Exception]:
        return self.scheduler.store.add_jobs([pending.job for pending in batch])

    def _finish(self, batch: list[tuple[PendingSubmit, asyncio.Future]], finished: asyncio.Future) -> None:
        self._busy = False
        outcomes: list[SubmitOutcome | BaseException]
        try:
            outcomes = self.scheduler.complete_submits([pending for pending, _ in batch], finished.result())
        except (Exception, asyncio.CancelledError) as exc:  # storing (or announcing) failed: every handler hears it
            outcomes = [exc] * len(batch)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        if self._waiting:
            self._schedule(asyncio.get_running_loop())

    def close(self) -> None:
        """Wait for the batch being written; call after the server stopped taking requests."""
        self._thread.shutdown(wait=True)
