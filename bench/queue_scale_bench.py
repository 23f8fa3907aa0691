"""Queue scale: submit and receive latencies and restart time with 1,000,000 jobs in the store vs an empty one.

Both stores have the same 10 clusters and the same 10,000 waiting jobs (1,000
per cluster) for the receive rounds; the large one also holds 1,000,000 older
jobs spread over the 10 clusters the same way (90% completed, 10% still
waiting), written straight into the SQLite file through the store. For each store the server is
started (process start to serving), 32 clients submit for a few seconds
(latency under load), an agent runs ReceiveJobs + AcceptJobs rounds of 10
jobs, and the server is restarted (time to serving again). The figure is the
ratio large / empty.

``python -m bench.queue_scale_bench [--quick]``; results in bench/results/queue_scale.json.
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    CHANNEL_OPTIONS,
    TOKEN,
    add_jobs,
    cluster_jgf,
    jobspecs,
    new_job,
    open_fixture_store,
    rainbow_server,
    summary_ms,
    verdict,
    write_results,
)
from bench.load import SUBMIT_METHOD, run_load
from bench.submit_bench import submit_payloads

CLUSTERS = [f"cluster-{i:02d}" for i in range(10)]
SECRET_OF = {name: f"bench-cluster-secret-{name}" for name in CLUSTERS}


def build_store(db: Path, total: int, waiting_share: float = 0.1, measured: int = 10_000) -> float:
    """Clusters, ``total`` old jobs (the newest ``waiting_share`` still waiting), then ``measured`` waiting jobs.

    Jobs go round-robin over the clusters, old and measured alike, so that the
    rows of one cluster are laid out the same way in both stores and only the
    size differs. Returns seconds taken.
    """
    from rainbow.credentials import hash_secret

    started = time.perf_counter()
    specs = jobspecs()
    store = open_fixture_store(db)
    try:
        now = time.time()
        for i, name in enumerate(CLUSTERS):
            store.add_cluster(name, cluster_jgf(16 * (i + 1), name=name), hash_secret(SECRET_OF[name]),
                              hash_secret(TOKEN), now)
        batch_size = 50_000
        for start in range(0, total, batch_size):
            add_jobs(store, [new_job(CLUSTERS[i % len(CLUSTERS)], f"old-{i}", specs[i % len(specs)],
                                     f"app --case={i}", now, CLUSTERS)
                             for i in range(start, min(total, start + batch_size))])
        finished = int(total * (1 - waiting_share))
        if finished:
            with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as sql:
                sql.execute("UPDATE jobs SET state = 'completed', accepted = created WHERE id <= ?", (finished,))
        add_jobs(store, [new_job(CLUSTERS[i % len(CLUSTERS)], f"measured-{i}", specs[i % len(specs)], "app", now,
                                 CLUSTERS) for i in range(measured)])
    finally:
        store.close()
    return time.perf_counter() - started


def receive_rounds(address: str, rounds: int, per_round: int = 10) -> list[float]:
    import grpc

    from rainbow.protos import rainbow_pb2, rainbow_pb2_grpc

    times = []
    with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
        stub = rainbow_pb2_grpc.RainbowSchedulerStub(channel)
        secret = SECRET_OF["cluster-00"]
        for _ in range(rounds):
            t0 = time.perf_counter()
            reply = stub.ReceiveJobs(rainbow_pb2.ReceiveJobsRequest(cluster="cluster-00", secret=secret,
                                                                    maxJobs=per_round), timeout=60)
            stub.AcceptJobs(rainbow_pb2.AcceptJobsRequest(cluster="cluster-00", secret=secret,
                                                          jobids=list(reply.jobs)), timeout=60)
            times.append(time.perf_counter() - t0)
            assert len(reply.jobs) == per_round, len(reply.jobs)
    return times


def measure(db: Path, quick: bool) -> dict[str, Any]:
    payloads = submit_payloads(CLUSTERS)
    out: dict[str, Any] = {"db_mb": sum(p.stat().st_size for p in db.parent.glob(db.name + "*")) / 1e6}
    with rainbow_server(db) as server:
        out["startup_s"] = server.startup_s
        load = run_load(server.address, payloads, method=SUBMIT_METHOD, duration=2.0 if quick else 4.0)
        out["submit"] = load.as_dict()
        receive = receive_rounds(server.address, 20 if quick else 90)
        out["receive"] = summary_ms(receive)
        out["memory_mb"] = server.memory()
    with rainbow_server(db) as server:
        out["restart_s"] = server.startup_s
    return out


def run(quick: bool = False, jobs: int | None = None, out: Path | None = None) -> dict[str, Any]:
    jobs = jobs or (20_000 if quick else 1_000_000)
    results: dict[str, Any] = {"quick": quick, "jobs": jobs}
    with tempfile.TemporaryDirectory(prefix="rainbow-queue-") as tmp:
        empty_db = Path(tmp) / "empty.db"
        large_db = Path(tmp) / "large.db"
        build_store(empty_db, 0)
        results["build_s"] = build_store(large_db, jobs)
        print(f"  built a store of {jobs:,} jobs in {results['build_s']:.0f} s", flush=True)
        results["empty"] = measure(empty_db, quick)
        results["large"] = measure(large_db, quick)
    empty, large = results["empty"], results["large"]
    ratios = {
        "submit_median": large["submit"]["median_ms"] / empty["submit"]["median_ms"],
        "submit_p99": large["submit"]["p99_ms"] / empty["submit"]["p99_ms"],
        "receive_median": large["receive"]["median_ms"] / empty["receive"]["median_ms"],
        "receive_p99": large["receive"]["p99_ms"] / empty["receive"]["p99_ms"],
    }
    results["ratios"] = ratios
    results["targets"] = {
        "latencies_within_2x": ratios["submit_median"] <= 2 and ratios["receive_median"] <= 2,
        "restart_under_10s": large["restart_s"] < 10,
    }
    for label, row in (("empty", empty), (f"{jobs:,} jobs", large)):
        print(f"  {label}: store {row['db_mb']:.0f} MB; submit (32 clients) median {row['submit']['median_ms']:.1f} ms "
              f"p99 {row['submit']['p99_ms']:.1f} ms ({row['submit']['rps']:,.0f} jobs/s); receive+accept of 10 "
              f"median {row['receive']['median_ms']:.1f} ms p99 {row['receive']['p99_ms']:.1f} ms; start "
              f"{row['startup_s']:.2f} s, restart {row['restart_s']:.2f} s", flush=True)
    ok = results["targets"]["latencies_within_2x"]
    print(f"queue scale: {jobs:,} jobs / empty: submit median x{ratios['submit_median']:.2f} "
          f"(p99 x{ratios['submit_p99']:.2f}), receive median x{ratios['receive_median']:.2f} "
          f"(p99 x{ratios['receive_p99']:.2f}) [{verdict(ok)} <= 2x]; restart {large['restart_s']:.2f} s "
          f"[{verdict(large['restart_s'] < 10)} < 10 s]", flush=True)
    write_results("queue_scale", results, out)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 20,000 jobs")
    parser.add_argument("--jobs", type=int)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    run(args.quick, args.jobs, args.out)


if __name__ == "__main__":
    sys.exit(main())
