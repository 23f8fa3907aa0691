"""Lifecycle: submit -> agent has the job (StreamJobs), and 100 WatchJobs streams while jobs are submitted.

1. An agent process holds one ``StreamJobs`` stream for its cluster and accepts
   what arrives; the bench submits jobs one at a time at a steady pace. The
   figure is the time from the submit call to the job arriving at the agent
   (one system-wide monotonic clock). Baseline: the round trip of a bare gRPC
   echo call of the same size, in the same run.
2. 100 ``WatchJobs`` streams (two processes, replaying from the first event)
   follow every cluster while 32 clients submit for a few seconds. Each
   watcher's events must be exactly the store's event log: none missed, none
   twice, in order.

``python -m bench.lifecycle_bench [--quick]``; results in bench/results/lifecycle.json.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    CHANNEL_OPTIONS,
    TOKEN,
    cluster_jgf,
    echo_server,
    jobspecs,
    rainbow_server,
    register_clusters,
    summary_ms,
    verdict,
    write_results,
)
from bench.echo_server import ECHO_METHOD
from bench.load import SUBMIT_METHOD, run_load
from bench.submit_bench import reply_size, submit_payloads

CLUSTERS = [f"cluster-{i:02d}" for i in range(10)]


def agent(address: str, cluster: str, secret: str, expected: int, deadline: float, queue: Any) -> None:
    """Hold one StreamJobs stream; note when each job arrives (monotonic), accept it."""
    import grpc

    from rainbow.protos import rainbow_pb2, rainbow_pb2_grpc

    arrived: dict[int, float] = {}
    with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
        stub = rainbow_pb2_grpc.RainbowSchedulerStub(channel)
        stream = stub.StreamJobs(rainbow_pb2.ReceiveJobsRequest(cluster=cluster, secret=secret, agent="bench-agent"),
                                 timeout=max(1.0, deadline - time.monotonic()))
        queue.put("ready")
        try:
            for reply in stream:
                now = time.monotonic()
                for job_id in reply.jobs:
                    arrived.setdefault(job_id, now)
                stub.AcceptJobs(rainbow_pb2.AcceptJobsRequest(cluster=cluster, secret=secret,
                                                              jobids=list(reply.jobs)), timeout=30)
                if len(arrived) >= expected:
                    break
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                raise
        finally:
            stream.cancel()
    queue.put(arrived)


def watchers(address: str, count: int, stop_at_seq: Any, deadline: float, queue: Any) -> None:
    """``count`` WatchJobs streams on every cluster from the first event; each returns the seqs it saw."""
    import grpc

    from rainbow.protos import rainbow_pb2, rainbow_pb2_grpc

    async def main() -> list[list[int]]:
        channel = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
        stub = rainbow_pb2_grpc.RainbowSchedulerStub(channel)
        listed = [rainbow_pb2.SubmitJobRequest.Cluster(name=n, token=TOKEN) for n in CLUSTERS]
        streams: list[tuple[Any, list[int]]] = []

        async def watch() -> list[int]:
            seen: list[int] = []
            call = stub.WatchJobs(rainbow_pb2.WatchJobsRequest(clusters=listed, since=-1),
                                  timeout=max(1.0, deadline - time.monotonic()))
            streams.append((call, seen))
            if len(streams) == count:
                queue.put("ready")
            try:
                async for event in call:
                    seen.append(event.seq)
            except asyncio.CancelledError:
                pass
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in (grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise
            return seen

        async def stop_when_caught_up() -> None:
            """Once the bench names the last seq, end each stream that has seen it (or passed its deadline)."""
            while len(streams) < count or any(not call.done() for call, _ in streams):
                target = stop_at_seq.value
                for call, seen in streams:
                    if not call.done() and target and seen and seen[-1] >= target:
                        call.cancel()
                await asyncio.sleep(0.05)

        try:
            watching = asyncio.gather(*(watch() for _ in range(count)))
            await stop_when_caught_up()
            return list(await watching)
        finally:
            await channel.close()

    queue.put(asyncio.run(main()))


def stream_latency(address: str, secret: str, jobs: int, pace: float) -> dict[str, Any]:
    import grpc

    from rainbow.protos import rainbow_pb2, rainbow_pb2_grpc

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    deadline = time.monotonic() + 60 + jobs * pace * 2
    proc = ctx.Process(target=agent, args=(address, "cluster-00", secret, jobs, deadline, queue), daemon=True)
    proc.start()
    assert queue.get(timeout=60) == "ready"
    time.sleep(1.0)  # the stream is open and waiting
    submitted: dict[int, float] = {}
    spec = jobspecs()[0]
    listed = [rainbow_pb2.SubmitJobRequest.Cluster(name="cluster-00", token=TOKEN)]
    with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
        stub = rainbow_pb2_grpc.RainbowSchedulerStub(channel)
        for i in range(jobs):
            t0 = time.monotonic()
            reply = stub.SubmitJob(rainbow_pb2.SubmitJobRequest(name=f"stream-{i}", clusters=listed, jobspec=spec),
                                   timeout=30)
            submitted[reply.jobid] = t0
            time.sleep(max(0.0, pace - (time.monotonic() - t0)))
    arrived = queue.get(timeout=max(5.0, deadline - time.monotonic() + 5))
    proc.join(10)
    latencies = [arrived[j] - t for j, t in submitted.items() if j in arrived]
    return {"submitted": len(submitted), "arrived": len(latencies), **summary_ms(latencies)}


def echo_latency(address: str, payload: bytes, calls: int) -> dict[str, Any]:
    import grpc

    times = []
    with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
        call = channel.unary_unary(ECHO_METHOD)
        call(payload, timeout=30)
        for _ in range(calls):
            t0 = time.monotonic()
            call(payload, timeout=30)
            times.append(time.monotonic() - t0)
    return summary_ms(times)


def watch_check(address: str, db: Path, streams: int, duration: float) -> dict[str, Any]:
    from rainbow.store.sqlite import SQLiteStore

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    stop_at = ctx.Value("q", 0)
    deadline = time.monotonic() + duration + 240
    procs = [ctx.Process(target=watchers, args=(address, streams // 2 + (i < streams % 2), stop_at, deadline, queue),
                         daemon=True) for i in range(2)]
    for proc in procs:
        proc.start()
    for _ in procs:
        assert queue.get(timeout=120) == "ready"
    started = time.monotonic()
    load = run_load(address, submit_payloads(CLUSTERS), method=SUBMIT_METHOD, duration=duration)
    store = SQLiteStore(db)
    try:
        expected = [e.seq for e in store.events_since(0, limit=10_000_000)]
    finally:
        store.close()
    stop_at.value = expected[-1] if expected else 0
    t0 = time.monotonic()
    seen = [s for _ in procs for s in queue.get(timeout=max(10.0, deadline - time.monotonic()))]
    drain = time.monotonic() - t0
    delivered = sum(len(s) for s in seen)
    elapsed = time.monotonic() - started
    for proc in procs:
        proc.join(10)
    exact = sum(1 for s in seen if s == expected)
    missed = sum(len(set(expected) - set(s)) for s in seen)
    duplicated = sum(len(s) - len(set(s)) for s in seen)
    return {
        "streams": len(seen), "events": len(expected), "submitted": load.acknowledged,
        "submit_rps_while_watched": load.rps, "submit": load.as_dict(), "exact_streams": exact,
        "missed": missed, "duplicated": duplicated, "in_order": all(s == sorted(s) for s in seen),
        "drain_after_submit_s": drain,
        "delivered_events": delivered,
        "delivered_per_s": delivered / elapsed,  # from the first submit to the last stream caught up
    }


def run(quick: bool = False, out: Path | None = None) -> dict[str, Any]:
    jobs, pace, streams, duration = (30, 0.05, 20, 2.0) if quick else (200, 0.05, 100, 5.0)
    results: dict[str, Any] = {"quick": quick}
    with tempfile.TemporaryDirectory(prefix="rainbow-lifecycle-") as tmp:
        db = Path(tmp) / "lifecycle.db"
        payload = submit_payloads(["cluster-00"], 1)[0]
        with echo_server(reply_size(CLUSTERS), Path(tmp) / "echo.log") as echo:
            results["echo_round_trip"] = echo_latency(echo.address, payload, 200)
        with rainbow_server(db) as server:
            secrets = register_clusters(server.address, [(n, cluster_jgf(64 * (i + 1), name=n))
                                                         for i, n in enumerate(CLUSTERS)])
            results["stream"] = stream_latency(server.address, secrets["cluster-00"], jobs, pace)
            results["watch"] = watch_check(server.address, db, streams, duration)
    stream, watch = results["stream"], results["watch"]
    floor = results["echo_round_trip"]["median_ms"]
    results["stream_ratio_to_echo"] = stream["median_ms"] / floor
    results["targets"] = {
        "stream_median_under_1s": stream["median_ms"] < 1000 and stream["arrived"] == stream["submitted"],
        "watch_exact": watch["exact_streams"] == watch["streams"] == streams,
    }
    targets = results["targets"]
    print(f"lifecycle: submit -> agent (StreamJobs) median {stream['median_ms']:.1f} ms, p99 "
          f"{stream['p99_ms']:.1f} ms, {stream['arrived']}/{stream['submitted']} arrived "
          f"[{verdict(targets['stream_median_under_1s'])} < 1 s] (bare gRPC round trip {floor:.2f} ms); "
          f"{watch['streams']} WatchJobs streams x {watch['events']:,} events: {watch['exact_streams']} exact, "
          f"{watch['missed']} missed, {watch['duplicated']} duplicated [{verdict(targets['watch_exact'])}], "
          f"submits meanwhile {watch['submit_rps_while_watched']:,.0f}/s, events streamed "
          f"{watch['delivered_per_s']:,.0f}/s", flush=True)
    write_results("lifecycle", results, out)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 30 jobs, 20 watch streams")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    run(args.quick, args.out)


if __name__ == "__main__":
    sys.exit(main())
