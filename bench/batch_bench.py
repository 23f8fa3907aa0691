"""Batch submission: one-node jobs over 10 clusters via SubmitJobs, against the same jobs via single SubmitJob.

The rainbow server (its own process, SQLite, synchronous=FULL) has 10
registered clusters; every request lists all 10 with the submit token. The
batch run sends ``jobs`` one-node jobs (each with its own command, so each
jobspec is its own text) in SubmitJobs calls of ``chunk`` jobs, one call after
another, and an array run sends the same number as copies (``cc``) of one
jobspec. The single run drives SubmitJob with 32 concurrent clients (the
submit benchmark's load generator) for a few seconds against the same server.
Each job is placed by match and selection and stored before its reply; after
the run the store is checked to hold every acknowledged job.

``python -m bench.batch_bench [--quick]``; results in bench/results/batch.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import TOKEN, cluster_jgf, rainbow_server, register_clusters, verdict, write_results
from bench.load import SUBMIT_METHOD, run_load
from bench.submit_bench import count_jobs

CHANNEL = [("grpc.max_send_message_length", 1 << 30), ("grpc.max_receive_message_length", 1 << 30)]


def one_node(seed: int | str) -> str:
    from rainbow.jobspec import simple

    return json.dumps(simple(["app", f"--seed={seed}"], nodes=1, tasks=1))


def submit_batches(address: str, names: list[str], jobs: int, chunk: int, array: bool) -> tuple[float, int, int]:
    """Send ``jobs`` jobs in calls of ``chunk``; (seconds, jobs stored, calls)."""
    import grpc

    from rainbow.protos import rainbow_pb2, rainbow_pb2_grpc

    listed = [rainbow_pb2.SubmitJobRequest.Cluster(name=name, token=TOKEN) for name in names]
    requests = []
    for start in range(0, jobs, chunk):
        end = min(start + chunk, jobs)
        if array:
            entries = [rainbow_pb2.SubmitJobsRequest.Job(name="sweep", jobspec=one_node("{cc}"))]
            requests.append(rainbow_pb2.SubmitJobsRequest(clusters=listed, jobs=entries, cc=f"{start + 1}-{end}"))
        else:
            entries = [rainbow_pb2.SubmitJobsRequest.Job(name="sweep", jobspec=one_node(i))
                       for i in range(start, end)]
            requests.append(rainbow_pb2.SubmitJobsRequest(clusters=listed, jobs=entries))
    placed = 0
    with grpc.insecure_channel(address, options=CHANNEL) as channel:
        stub = rainbow_pb2_grpc.RainbowSchedulerStub(channel)
        began = time.perf_counter()
        for request in requests:
            reply = stub.SubmitJobs(request, timeout=600)
            placed += sum(1 for job in reply.jobs if job.jobid)
        seconds = time.perf_counter() - began
    return seconds, placed, len(requests)


def single_payloads(names: list[str], count: int = 64) -> list[bytes]:
    from rainbow.protos import rainbow_pb2

    listed = [rainbow_pb2.SubmitJobRequest.Cluster(name=name, token=TOKEN) for name in names]
    return [rainbow_pb2.SubmitJobRequest(name="single", clusters=listed, jobspec=one_node(i)).SerializeToString()
            for i in range(count)]


def run(quick: bool = False, jobs: int | None = None, chunk: int = 10_000, n_clusters: int = 10,
        processes: int = 2, out: Path | None = None) -> dict[str, Any]:
    jobs = jobs or (5_000 if quick else 100_000)
    chunk = min(chunk, jobs)
    duration = 2.0 if quick else 8.0
    names = [f"cluster-{i:02d}" for i in range(n_clusters)]
    nodes = [16 * (i + 1) for i in range(n_clusters)] if quick else [64 * (i + 1) for i in range(n_clusters)]
    results: dict[str, Any] = {"quick": quick, "jobs": jobs, "chunk": chunk, "clusters": dict(zip(names, nodes,
                               strict=True)), "single_duration_s": duration, "single_clients": 32}
    with tempfile.TemporaryDirectory(prefix="rainbow-batch-") as tmp:
        db = Path(tmp) / "batch.db"
        with rainbow_server(db, "--max-batch-jobs", str(max(chunk, 1))) as server:
            register_clusters(server.address, [(n, cluster_jgf(k, name=n)) for n, k in zip(names, nodes, strict=True)])
            cpu = [server.cpu_seconds()]
            batch_s, batch_placed, calls = submit_batches(server.address, names, jobs, chunk, array=False)
            cpu.append(server.cpu_seconds())
            array_s, array_placed, _ = submit_batches(server.address, names, jobs, chunk, array=True)
            cpu.append(server.cpu_seconds())
            single = run_load(server.address, single_payloads(names), method=SUBMIT_METHOD, clients=32,
                              processes=processes, duration=duration)
            cpu.append(server.cpu_seconds())
            results["server_memory_mb"] = server.memory()
        stored = count_jobs(db)
    acknowledged = batch_placed + array_placed + single.acknowledged
    # The server's CPU per job: what the machine's other work changes least (the single run's
    # acknowledged jobs include those of its warm-up second, as its CPU does).
    single_jobs = single.acknowledged
    cpu_us = {"batch": (cpu[1] - cpu[0]) / max(batch_placed, 1) * 1e6,
              "array": (cpu[2] - cpu[1]) / max(array_placed, 1) * 1e6,
              "single": (cpu[3] - cpu[2]) / max(single_jobs, 1) * 1e6}
    batch_rate, array_rate = batch_placed / batch_s, array_placed / array_s
    results.update({
        "calls": calls,
        "batch_s": batch_s, "batch_jobs_per_s": batch_rate, "batch_placed": batch_placed,
        "array_s": array_s, "array_jobs_per_s": array_rate, "array_placed": array_placed,
        "single": single.as_dict(), "single_jobs_per_s": single.rps,
        "ratio_batch": batch_rate / single.rps if single.rps else float("nan"),
        "ratio_array": array_rate / single.rps if single.rps else float("nan"),
        "server_cpu_us_per_job": cpu_us,
        "cpu_ratio_batch": cpu_us["single"] / cpu_us["batch"] if cpu_us["batch"] else float("nan"),
        "cpu_ratio_array": cpu_us["single"] / cpu_us["array"] if cpu_us["array"] else float("nan"),
        "acknowledged": acknowledged, "stored": stored, "durable": stored >= acknowledged,
        "errors": single.errors + (jobs - batch_placed) + (jobs - array_placed),
    })
    results["targets"] = {
        "batch_at_least_20000_jobs_per_s": batch_rate >= 20_000,
        "batch_at_least_10x_single": results["ratio_batch"] >= 10,
    }
    print(f"batch: {jobs:,} one-node jobs in {calls} SubmitJobs calls: {batch_rate:,.0f} jobs/s "
          f"[{verdict(batch_rate >= 20_000)} >= 20,000]; as arrays {array_rate:,.0f} jobs/s; single SubmitJob "
          f"(32 clients) {single.rps:,.0f} jobs/s -> x{results['ratio_batch']:.1f} "
          f"[{verdict(results['ratio_batch'] >= 10)} >= 10x], arrays x{results['ratio_array']:.1f}; "
          f"{acknowledged:,} acknowledged, {stored:,} stored; server CPU per job: batch {cpu_us['batch']:.0f} us, "
          f"array {cpu_us['array']:.0f} us, single {cpu_us['single']:.0f} us (x{results['cpu_ratio_batch']:.1f}, "
          f"x{results['cpu_ratio_array']:.1f})", flush=True)
    write_results("batch", results, out)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5,000 jobs and a 2 s single-job run")
    parser.add_argument("--jobs", type=int, help="jobs per run (default 100,000; quick 5,000)")
    parser.add_argument("--chunk", type=int, default=10_000, help="jobs per SubmitJobs call (default 10,000)")
    parser.add_argument("--processes", type=int, default=2, help="load generator processes for single SubmitJob")
    parser.add_argument("--out", type=Path, help="results file (default bench/results/batch.json)")
    args = parser.parse_args(argv)
    run(args.quick, args.jobs, args.chunk, processes=args.processes, out=args.out)


if __name__ == "__main__":
    sys.exit(main())
