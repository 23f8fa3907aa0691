"""How the client cuts a large submission into calls: by jobs and by bytes, at least one job each."""

from __future__ import annotations

from rainbow.client.chunks import DEFAULT_BYTES, DEFAULT_JOBS, ChunkLimits, chunk_end, job_bytes


def chunks(sizes: list[int], limits: ChunkLimits) -> list[tuple[int, int]]:
    out, start = [], 0
    while start < len(sizes):
        end = chunk_end(sizes, start, limits)
        out.append((start, end))
        start = end
    return out


def test_chunks_respect_both_limits_and_take_at_least_one_job():
    assert chunks([10] * 7, ChunkLimits(jobs=3, bytes=1000)) == [(0, 3), (3, 6), (6, 7)]
    assert chunks([10] * 7, ChunkLimits(jobs=100, bytes=25)) == [(0, 2), (2, 4), (4, 6), (6, 7)]
    assert chunks([5, 50, 5, 5], ChunkLimits(jobs=100, bytes=20)) == [(0, 1), (1, 2), (2, 4)]  # one too big alone


def test_limits_follow_the_server_and_halve_on_refusal():
    assert ChunkLimits.learned(50, 64 * 1024) == ChunkLimits(50, 64 * 1024)
    assert ChunkLimits.learned(0, 0) == ChunkLimits(DEFAULT_JOBS, DEFAULT_BYTES)
    assert ChunkLimits.learned(10**6, 10**12) == ChunkLimits(DEFAULT_JOBS, DEFAULT_BYTES)
    assert ChunkLimits().halved(45) == ChunkLimits(22, DEFAULT_BYTES)
    assert ChunkLimits().halved(1).jobs == 1
    assert job_bytes("ü", "{}") == 4
