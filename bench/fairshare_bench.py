"""Fair share: the hand-out of 10,000 waiting jobs of 10 users in fair-share order.

10,000 waiting jobs of 10 users in three banks with shares, a history of
completed jobs (usage) and per-job priorities, are written into the server's
SQLite file; a cluster agent takes all of them with ``ReceiveJobs`` (maxJobs 0:
the fair-share order over every waiting job) and one ``AcceptJobs``. (The submit
path with user tokens is measured by ``bench/submit_bench.py``, beside cluster
tokens.)

``python -m bench.fairshare_bench [--quick]``; results in bench/results/fairshare.json.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    CHANNEL_OPTIONS,
    USERS,
    add_jobs,
    add_users,
    cluster_jgf,
    jobspecs,
    open_fixture_store,
    rainbow_server,
    register_clusters,
    verdict,
    write_results,
)
from bench.receive_bench import receive_round


def queue_history(db: Path, cluster: str, history: int) -> None:
    """``history`` completed jobs of the users (their usage), run over the last two weeks."""
    from rainbow.lifecycle import JobState
    from rainbow.store import NewJob

    store = open_fixture_store(db)
    try:
        now = time.time()
        jobs = []
        for i in range(history):
            user, group = USERS[(i * 7) % len(USERS)]
            jobs.append(NewJob(cluster, f"done-{i}", jobspecs()[0], "app", now - 14 * 86400 + i * 60, (cluster,),
                               user=user, group=group, nodes=1 + i % 4))
        add_jobs(store, jobs)
        leased, _ = store.lease_jobs(cluster, "history", 0, 300, now)
        store.accept_jobs(cluster, [job.id for job in leased], now, "history")
        for index, job in enumerate(leased):
            start = now - 14 * 86400 + index * 600
            store.report_state(cluster, job.id, JobState.RUNNING, start)
            store.report_state(cluster, job.id, JobState.COMPLETED, start + 3600 * (1 + index % 5))
    finally:
        store.close()


def queue_user_jobs(db: Path, cluster: str, count: int, prefix: str) -> None:
    from rainbow.store import NewJob

    specs = jobspecs()
    store = open_fixture_store(db)
    try:
        now = time.time()
        add_jobs(store, [NewJob(cluster, f"{prefix}-{i}", specs[i % len(specs)], f"app --case={i}", now, (cluster,),
                                user=USERS[i % len(USERS)][0], group=USERS[i % len(USERS)][1],
                                nodes=1 + i % 3, priority=i % 4) for i in range(count)])
    finally:
        store.close()


def receive_part(quick: bool) -> dict[str, Any]:
    import grpc

    from rainbow.protos import rainbow_pb2_grpc

    jobs, rounds, history = (1_000, 1, 50) if quick else (10_000, 3, 300)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="rainbow-fairshare-") as tmp:
        db = Path(tmp) / "receive.db"
        with rainbow_server(db) as server:
            secret = register_clusters(server.address, [("receiver", cluster_jgf(16, name="receiver"))])["receiver"]
            add_users(server.address)
            with grpc.insecure_channel(server.address, options=CHANNEL_OPTIONS) as channel:
                stub = rainbow_pb2_grpc.RainbowSchedulerStub(channel)
                queue_history(db, "receiver", history)
                for r in range(rounds):
                    queue_user_jobs(db, "receiver", jobs, prefix=f"round{r}")
                    row = receive_round(stub, "receiver", secret)
                    row.pop("reply_bytes")
                    rows.append(row)
                    print(f"  receive round {r + 1}: {row['jobs']} jobs of {len(USERS)} users received in "
                          f"{row['receive_s']:.3f} s, accepted in {row['accept_s']:.3f} s (round "
                          f"{row['round_s']:.3f} s)", flush=True)
    return {"rows": rows, "jobs": jobs, "history": history,
            "receive_s": statistics.median(r["receive_s"] for r in rows),
            "round_s": statistics.median(r["round_s"] for r in rows)}


def run(quick: bool = False, out: Path | None = None) -> dict[str, Any]:
    results: dict[str, Any] = {"quick": quick}
    results["receive"] = receive = receive_part(quick)
    results["targets"] = {"receive_10000_under_1_s": receive["round_s"] < 1.0}
    print(f"fairshare: receive + accept of {receive['jobs']:,} jobs of {len(USERS)} users in fair-share order "
          f"{receive['round_s']:.3f} s [{verdict(receive['round_s'] < 1.0)} < 1 s]", flush=True)
    write_results("fairshare", results, out)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: short rounds, 1,000 jobs")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    run(args.quick, args.out)


if __name__ == "__main__":
    main()
