"""Splitting a large submission into ``SubmitJobs`` calls the server accepts.

A server refuses a call past its batch limits (jobs per call, bytes of names
and jobspecs per call) as a whole, and says its limits in every answer. A
client starts with chunks of at most ``DEFAULT_JOBS`` jobs and ``DEFAULT_BYTES``
bytes, halves a chunk the server refused (nothing of it was stored), and sizes
the following chunks to the limits the server answered with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from rainbow.errors import ResourceExhausted
from rainbow.limits import MiB

DEFAULT_JOBS = 10_000
DEFAULT_BYTES = 32 * MiB
# Copies an array may have on the client, which lists their ids to split them.
MAX_ARRAY = 10_000_000


@dataclass(frozen=True)
class ChunkLimits:
    """How large a chunk may be: jobs, and bytes as the server counts them (``job_bytes``)."""

    jobs: int = DEFAULT_JOBS
    bytes: int = DEFAULT_BYTES

    @staticmethod
    def learned(max_jobs: int, max_bytes: int) -> ChunkLimits:
        """The defaults within what the server answered (0: it did not say)."""
        return ChunkLimits(min(DEFAULT_JOBS, max_jobs) if max_jobs > 0 else DEFAULT_JOBS,
                           min(DEFAULT_BYTES, max_bytes) if max_bytes > 0 else DEFAULT_BYTES)

    def halved(self, refused: int) -> ChunkLimits:
        """After the server refused a chunk of ``refused`` jobs: at most half as many."""
        return replace(self, jobs=max(1, refused // 2))


def job_bytes(name: str, jobspec: str) -> int:
    """What a job counts against a server's ``max_batch_bytes``."""
    return len(name.encode()) + len(jobspec.encode())


def chunk_end(sizes: Sequence[int], start: int, limits: ChunkLimits) -> int:
    """The end of the chunk from ``start``: as many jobs as fit both limits, and at least one."""
    end = start
    used = 0
    stop = min(len(sizes), start + limits.jobs)
    while end < stop and (end == start or used + sizes[end] <= limits.bytes):
        used += sizes[end]
        end += 1
    return end


def check_array_size(count: int) -> None:
    if count > MAX_ARRAY:
        raise ResourceExhausted(f"cc: more than {MAX_ARRAY} copies in one submission", field="cc")


def refused_for_size(exc: ResourceExhausted) -> bool:
    """Whether the server refused a chunk for its size (a smaller one may pass), not for a quota: a submit over
    a max-waiting quota is refused whole, and splitting it would store part of it."""
    message = getattr(exc, "details", "") or str(exc)
    return not message.startswith("quota:")
