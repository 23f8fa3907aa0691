"""A closed-loop gRPC load generator: N concurrent clients spread over several processes.

One Python process cannot drive 32 concurrent clients fast enough (its GIL), so
the clients are split over ``processes`` spawned workers, each an asyncio loop
with its share of clients on one channel. Requests are pre-serialized bytes and
replies are not parsed, so the client side costs the same for every server
measured with it (rainbow and the echo baseline alike).

Each client sends one request, waits for the reply, and sends the next. After a
warm-up, the calls that complete inside the measured window count; loops are
bounded by time and by a request cap.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

SUBMIT_METHOD = "/convergedcomputing.org.grpc.v1.RainbowScheduler/SubmitJob"


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies: list[float] = field(repr=False, default_factory=list)
    first_error: str = ""
    acknowledged: int = 0  # successful replies, warm-up included

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)

        def pct(q: float) -> float:
            if not ordered:
                return float("nan")
            return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] * 1e3

        return {
            "requests": self.requests,
            "errors": self.errors,
            "seconds": self.seconds,
            "rps": self.rps,
            "median_ms": statistics.median(ordered) * 1e3 if ordered else float("nan"),
            "p90_ms": pct(90),
            "p99_ms": pct(99),
            "max_ms": ordered[-1] * 1e3 if ordered else float("nan"),
            "acknowledged": self.acknowledged,
            "first_error": self.first_error,
        }


async def _worker_main(
    address: str, method: str, payloads: Sequence[bytes], clients: int, offset: int,
    start_at: float, warmup: float, duration: float, max_per_client: int,
    metadata: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    import grpc

    from bench.common import CHANNEL_OPTIONS

    channel = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
    call = channel.unary_unary(method)
    await asyncio.wait_for(channel.channel_ready(), 30)
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    measure_from = start_at + warmup
    end = measure_from + duration
    latencies: list[float] = []
    counts = {"ok": 0, "errors": 0, "acknowledged": 0}
    first_error: list[str] = []

    async def client(k: int) -> None:
        i = offset + k
        for _ in range(max_per_client):
            t0 = time.monotonic()
            if t0 >= end:
                return
            try:
                await call(payloads[i % len(payloads)], timeout=60, metadata=tuple(metadata) or None)
                failed = False
                counts["acknowledged"] += 1
            except grpc.aio.AioRpcError as exc:
                failed = True
                if not first_error:
                    first_error.append(f"{exc.code().name}: {exc.details()}")
            t1 = time.monotonic()
            i += clients
            if measure_from <= t1 <= end:
                if failed:
                    counts["errors"] += 1
                else:
                    counts["ok"] += 1
                    latencies.append(t1 - t0)

    await asyncio.gather(*(client(k) for k in range(clients)))
    await channel.close()
    return {"ok": counts["ok"], "errors": counts["errors"], "acknowledged": counts["acknowledged"],
            "latencies": latencies,
            "first_error": first_error[0] if first_error else ""}


def _worker(queue: Any, *args: Any) -> None:
    try:
        queue.put(asyncio.run(_worker_main(*args)))
    except BaseException as exc:
        queue.put({"ok": 0, "errors": 1, "acknowledged": 0, "latencies": [], "first_error": f"worker failed: {exc!r}"})


def run_load(
    address: str,
    payloads: Sequence[bytes],
    *,
    method: str = SUBMIT_METHOD,
    clients: int = 32,
    processes: int = 4,
    warmup: float = 1.0,
    duration: float = 5.0,
    max_per_client: int = 1_000_000,
    metadata: Sequence[tuple[str, str]] = (),
) -> LoadResult:
    """Drive ``clients`` closed-loop clients for ``warmup + duration`` seconds; count the measured window.

    ``metadata`` goes with every call (a user token's ``authorization: Bearer ...``).
    """
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    processes = max(1, min(processes, clients))
    start_at = time.monotonic() + 3.0  # time for the spawned workers to import grpc and connect
    workers = []
    for p in range(processes):
        share = clients // processes + (1 if p < clients % processes else 0)
        worker = ctx.Process(
            target=_worker,
            args=(queue, address, method, list(payloads), share, p * 1000, start_at, warmup, duration,
                  max_per_client, list(metadata)),
            daemon=True,
        )
        worker.start()
        workers.append(worker)
    parts = [queue.get(timeout=warmup + duration + 120) for _ in workers]
    for worker in workers:
        worker.join(30)
    latencies = [x for part in parts for x in part["latencies"]]
    errors = [part["first_error"] for part in parts if part["first_error"]]
    return LoadResult(
        requests=sum(part["ok"] for part in parts),
        errors=sum(part["errors"] for part in parts),
        seconds=duration,
        latencies=latencies,
        first_error=errors[0] if errors else "",
        acknowledged=sum(part["acknowledged"] for part in parts),
    )
