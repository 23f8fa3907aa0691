"""Receive: one ReceiveJobs + AcceptJobs round of 10,000 waiting jobs, against bare gRPC transfers.

The waiting jobs are written straight into the server's SQLite file through the
store (one transaction) while the server runs; a cluster agent then takes all
of them with ``ReceiveJobs`` (maxJobs 0: all) and confirms them with one
``AcceptJobs``. The baseline moves messages of exactly the same sizes through
the echo server and parses the same reply, in the same run.

``python -m bench.receive_bench [--quick]``; results in bench/results/receive.json.
"""

from __future__ import annotations

import argparse
import statistics
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
    echo_server,
    jobspecs,
    new_job,
    open_fixture_store,
    rainbow_server,
    register_clusters,
    verdict,
    write_results,
)
from bench.echo_server import SIZED_METHOD, sized_request


def queue_jobs(db: Path, cluster: str, count: int, prefix: str = "job") -> None:
    """Write ``count`` waiting jobs for ``cluster`` straight into the store, in batches."""
    specs = jobspecs()
    store = open_fixture_store(db)
    try:
        now = time.time()
        for start in range(0, count, 50_000):
            # owned by ten users, as jobs submitted with user tokens are (their owners travel with them)
            add_jobs(store, [new_job(cluster, f"{prefix}-{i}", specs[i % len(specs)], f"app --case={i}", now,
                                     (cluster,), f"user-{i % 10}", "bench")
                             for i in range(start, min(count, start + 50_000))])
    finally:
        store.close()


def queue_array(stub: Any, cluster: str, count: int) -> str:
    """Submit a ``count``-copy array of one-node jobs over gRPC (SubmitJobs); its batch id."""
    import json

    from rainbow.jobspec import simple
    from rainbow.protos import rainbow_pb2

    listed = [rainbow_pb2.SubmitJobRequest.Cluster(name=cluster, token=TOKEN)]
    job = rainbow_pb2.SubmitJobsRequest.Job(name="sweep", jobspec=json.dumps(simple(["app", "--seed={cc}"])))
    reply = stub.SubmitJobs(rainbow_pb2.SubmitJobsRequest(clusters=listed, jobs=[job], cc=f"1-{count}"),
                            timeout=600)
    assert all(j.jobid for j in reply.jobs) and len(reply.jobs) == count
    return reply.batch_id


def receive_round(stub: Any, cluster: str, secret: str) -> dict[str, Any]:
    from rainbow.protos import rainbow_pb2

    request = rainbow_pb2.ReceiveJobsRequest(cluster=cluster, secret=secret, maxJobs=0)
    t0 = time.perf_counter()
    reply = stub.ReceiveJobs(request, timeout=120)
    t1 = time.perf_counter()
    ids = list(reply.jobs)
    accept = rainbow_pb2.AcceptJobsRequest(cluster=cluster, secret=secret, jobids=ids)
    accepted = stub.AcceptJobs(accept, timeout=120)
    t2 = time.perf_counter()
    return {
        "jobs": len(ids),
        "receive_s": t1 - t0,
        "accept_s": t2 - t1,
        "round_s": t2 - t0,
        "accepted": accepted.status == rainbow_pb2.AcceptJobsResponse.RESULT_TYPE_SUCCESS,
        "sizes": (request.ByteSize(), reply.ByteSize(), accept.ByteSize(), accepted.ByteSize()),
        "reply_bytes": reply.SerializeToString(),
    }


def echo_round(channel: Any, sizes: tuple[int, int, int, int], reply_bytes: bytes) -> float:
    """The same four messages through the echo server, and the same reply parsed."""
    from rainbow.protos import rainbow_pb2

    call = channel.unary_unary(SIZED_METHOD)
    receive_request = sized_request(sizes[1], sizes[0])
    accept_request = sized_request(sizes[3], sizes[2])
    t0 = time.perf_counter()
    call(receive_request, timeout=120)
    ids = list(rainbow_pb2.ReceiveJobsResponse.FromString(reply_bytes).jobs)
    call(accept_request, timeout=120)
    elapsed = time.perf_counter() - t0
    assert ids
    return elapsed


def run(quick: bool = False, jobs: int | None = None, rounds: int | None = None,
        out: Path | None = None) -> dict[str, Any]:
    import grpc

    from rainbow.protos import rainbow_pb2_grpc

    jobs = jobs or (1_000 if quick else 10_000)
    rounds = rounds or (1 if quick else 3)
    results: dict[str, Any] = {"quick": quick, "jobs": jobs, "rounds": rounds}
    rows: list[dict[str, Any]] = []
    arrays: list[dict[str, Any]] = []  # the same, for jobs submitted as one array (SubmitJobs)
    with tempfile.TemporaryDirectory(prefix="rainbow-receive-") as tmp:
        db = Path(tmp) / "receive.db"
        with echo_server(64, Path(tmp) / "echo.log") as echo, rainbow_server(db) as server:
            secret = register_clusters(server.address, [("receiver", cluster_jgf(16, name="receiver"))])["receiver"]
            with grpc.insecure_channel(server.address, options=CHANNEL_OPTIONS) as channel, \
                    grpc.insecure_channel(echo.address, options=CHANNEL_OPTIONS) as echo_channel:
                stub = rainbow_pb2_grpc.RainbowSchedulerStub(channel)
                for r in range(rounds):
                    queue_jobs(db, "receiver", jobs, prefix=f"round{r}")
                    cpu = server.cpu_seconds()
                    row = receive_round(stub, "receiver", secret)
                    row["server_cpu_s"] = server.cpu_seconds() - cpu
                    reply_bytes = row.pop("reply_bytes")
                    row["echo_s"] = echo_round(echo_channel, row["sizes"], reply_bytes)
                    row["ratio"] = row["round_s"] / row["echo_s"]
                    rows.append(row)
                    print(f"  round {r + 1}: {row['jobs']} jobs received in {row['receive_s']:.3f} s, accepted in "
                          f"{row['accept_s']:.3f} s (round {row['round_s']:.3f} s, server CPU "
                          f"{row['server_cpu_s']:.2f} s); bare gRPC {row['echo_s']:.3f} s", flush=True)
                for r in range(rounds):
                    queue_array(stub, "receiver", jobs)
                    cpu = server.cpu_seconds()
                    row = receive_round(stub, "receiver", secret)
                    row["server_cpu_s"] = server.cpu_seconds() - cpu
                    row.pop("reply_bytes")
                    arrays.append(row)
                    print(f"  array {r + 1}: {row['jobs']} copies received in {row['receive_s']:.3f} s, accepted "
                          f"in {row['accept_s']:.3f} s (round {row['round_s']:.3f} s, server CPU "
                          f"{row['server_cpu_s']:.2f} s)", flush=True)
    round_s = statistics.median(r["round_s"] for r in rows)
    echo_s = statistics.median(r["echo_s"] for r in rows)
    results.update({
        "rows": rows,
        "round_s": round_s,
        "receive_s": statistics.median(r["receive_s"] for r in rows),
        "accept_s": statistics.median(r["accept_s"] for r in rows),
        "echo_s": echo_s,
        "ratio": round_s / echo_s,
        "all_received": all(r["jobs"] == jobs and r["accepted"] for r in rows + arrays),
        "arrays": arrays,
        "array_round_s": statistics.median(r["round_s"] for r in arrays),
        "server_cpu_s": statistics.median(r["server_cpu_s"] for r in rows),
        "array_server_cpu_s": statistics.median(r["server_cpu_s"] for r in arrays),
        "reply_mb": rows[0]["sizes"][1] / 1e6 if rows else 0,
    })
    results["targets"] = {"round_under_1s": round_s < 1.0, "array_round_under_1s": results["array_round_s"] < 1.0}
    print(f"receive: {jobs:,} jobs, ReceiveJobs + AcceptJobs round {round_s:.3f} s [{verdict(round_s < 1.0)} < 1 s] "
          f"vs bare gRPC {echo_s:.3f} s -> {results['ratio']:.1f}x; all received and accepted: "
          f"{results['all_received']}; a {jobs:,}-copy array: round {results['array_round_s']:.3f} s "
          f"[{verdict(results['array_round_s'] < 1.0)} < 1 s]", flush=True)
    write_results("receive", results, out)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1,000 jobs, one round")
    parser.add_argument("--jobs", type=int)
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    run(args.quick, args.jobs, args.rounds, args.out)


if __name__ == "__main__":
    sys.exit(main())
