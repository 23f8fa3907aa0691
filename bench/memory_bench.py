"""Memory: resident memory of the server with 100 clusters of 1,000 nodes and 100,000 queued jobs.

Clusters (2 sockets x 16 cores per node) and waiting jobs are written straight
into the SQLite file through the store; the server then starts on it (it
rebuilds every graph from the stored JGF), serves a few submits and a receive,
and its VmRSS / VmHWM are read from /proc. The baseline is the same server on
an empty store, in the same run.

``python -m bench.memory_bench [--quick]``; results in bench/results/memory.json.
"""

from __future__ import annotations

import argparse
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
    verdict,
    write_results,
)


def build_store(db: Path, clusters: int, nodes: int, jobs: int) -> tuple[list[str], dict[str, str]]:
    from rainbow.credentials import hash_secret

    names = [f"cluster-{i:03d}" for i in range(clusters)]
    secrets = {name: f"bench-secret-{name}" for name in names}
    specs = jobspecs()
    store = open_fixture_store(db)
    try:
        now = time.time()
        if clusters:
            text = cluster_jgf(nodes, sockets=2, cores=16, name="cluster")
            for name in names:
                store.add_cluster(name, text, hash_secret(secrets[name]), hash_secret(TOKEN), now)
        for start in range(0, jobs, 50_000):
            add_jobs(store, [new_job(names[i % len(names)], f"queued-{i}", specs[i % len(specs)], f"app --case={i}",
                                     now, (names[i % len(names)],)) for i in range(start, min(jobs, start + 50_000))])
    finally:
        store.close()
    return names, secrets


def exercise(address: str, names: list[str], secrets: dict[str, str]) -> None:
    """A few submits and one receive, so the figure is of a server that has served."""
    import grpc

    from rainbow.protos import rainbow_pb2, rainbow_pb2_grpc

    with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
        stub = rainbow_pb2_grpc.RainbowSchedulerStub(channel)
        listed = [rainbow_pb2.SubmitJobRequest.Cluster(name=n, token=TOKEN) for n in names[:10]]
        for spec in jobspecs():
            stub.SubmitJob(rainbow_pb2.SubmitJobRequest(name="probe", clusters=listed, jobspec=spec), timeout=120)
        stub.ReceiveJobs(rainbow_pb2.ReceiveJobsRequest(cluster=names[0], secret=secrets[names[0]], maxJobs=100),
                         timeout=120)


def run(quick: bool = False, out: Path | None = None) -> dict[str, Any]:
    clusters, nodes, jobs = (10, 100, 10_000) if quick else (100, 1_000, 100_000)
    results: dict[str, Any] = {"quick": quick, "clusters": clusters, "nodes_per_cluster": nodes, "jobs": jobs,
                               "cores_per_node": 32}
    with tempfile.TemporaryDirectory(prefix="rainbow-memory-") as tmp:
        empty = Path(tmp) / "empty.db"
        full = Path(tmp) / "full.db"
        build_store(empty, 0, 0, 0)
        with rainbow_server(empty) as server:
            results["empty"] = {**server.memory(), "startup_s": server.startup_s}
        t0 = time.perf_counter()
        names, secrets = build_store(full, clusters, nodes, jobs)
        results["build_s"] = time.perf_counter() - t0
        with rainbow_server(full) as server:
            results["full_after_start"] = {**server.memory(), "startup_s": server.startup_s}
            exercise(server.address, names, secrets)
            results["full"] = server.memory()
    rss = results["full"]["VmRSS"]
    hwm = results["full"]["VmHWM"]
    results["ratio_to_empty"] = rss / results["empty"]["VmRSS"]
    results["targets"] = {"under_1.5GB": hwm < 1536}
    print(f"memory: {clusters} clusters x {nodes:,} nodes + {jobs:,} queued jobs: RSS {rss:.0f} MB, peak {hwm:.0f} MB "
          f"[{verdict(hwm < 1536)} < 1.5 GB]; empty server {results['empty']['VmRSS']:.0f} MB "
          f"(x{results['ratio_to_empty']:.1f}); start with them {results['full_after_start']['startup_s']:.1f} s",
          flush=True)
    write_results("memory", results, out)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 10 clusters of 100 nodes, 10,000 jobs")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    run(args.quick, args.out)


if __name__ == "__main__":
    sys.exit(main())
