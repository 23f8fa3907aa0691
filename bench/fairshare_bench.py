"""Fair share: the submit path with user tokens, and the fair-share hand-out of 10,000 waiting jobs.

- **submit**: 32 concurrent clients calling SubmitJob on a server with 10 clusters, in alternating rounds:
  requests with the cluster submit token (the path clients used before users, their jobs the legacy
  identity's) and requests with one of 10 users' tokens (``authorization: Bearer``, no clusters listed:
  the server considers every cluster the user may use). The figure is the ratio of the two rates.
- **receive**: 10,000 waiting jobs of 10 users in three banks with shares, a history of completed jobs
  (usage) and per-job priorities, written into the server's SQLite file; a cluster agent takes all of them
  with ``ReceiveJobs`` (maxJobs 0: the fair-share order over every waiting job) and one ``AcceptJobs``.

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
    SECRET,
    add_jobs,
    cluster_jgf,
    jobspecs,
    open_fixture_store,
    rainbow_server,
    register_clusters,
    verdict,
    write_results,
)
from bench.load import SUBMIT_METHOD, run_load
from bench.receive_bench import receive_round
from bench.submit_bench import submit_payloads

USERS = [(f"user{i:02d}", ["physics", "chemistry", "biology"][i % 3]) for i in range(10)]


def add_users(stub: Any) -> dict[str, str]:
    """The benchmark's users (name -> token) and their banks' shares."""
    from rainbow.protos import rainbow_pb2

    tokens = {name: stub.AddUser(rainbow_pb2.AddUserRequest(name=name, groups=[group], secret=SECRET)).token
              for name, group in USERS}
    for bank, shares in (("physics", 5), ("chemistry", 3), ("biology", 1)):
        stub.SetShares(rainbow_pb2.SetSharesRequest(kind="group", name=bank, shares=shares, secret=SECRET))
    return tokens


def user_payloads(count: int = 64) -> list[bytes]:
    """SubmitJob requests as a user sends them: no clusters, the server places among all they may use."""
    from rainbow.protos import rainbow_pb2

    specs = jobspecs()
    return [rainbow_pb2.SubmitJobRequest(name=f"bench-user-job-{i}", jobspec=specs[i % len(specs)])
            .SerializeToString() for i in range(count)]


def submit_part(quick: bool, processes: int = 4) -> dict[str, Any]:
    import grpc

    from rainbow.protos import rainbow_pb2_grpc

    duration, rounds = (2.0, 1) if quick else (8.0, 3)
    names = [f"cluster-{i:02d}" for i in range(10)]
    nodes = [(16 if quick else 64) * (i + 1) for i in range(10)]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="rainbow-fairshare-") as tmp, \
            rainbow_server(Path(tmp) / "submit.db") as server:
        register_clusters(server.address, [(n, cluster_jgf(k, name=n)) for n, k in zip(names, nodes, strict=True)])
        with grpc.insecure_channel(server.address, options=CHANNEL_OPTIONS) as channel:
            tokens = add_users(rainbow_pb2_grpc.RainbowSchedulerStub(channel))
        bearer = [[("authorization", f"Bearer {token}")] for token in tokens.values()]
        for r in range(rounds):
            legacy = run_load(server.address, submit_payloads(names), method=SUBMIT_METHOD, duration=duration,
                              processes=processes)
            users = run_load(server.address, user_payloads(), method=SUBMIT_METHOD, duration=duration,
                             processes=processes, metadata=bearer)
            rows.append({"cluster_tokens": legacy.as_dict(), "user_tokens": users.as_dict()})
            detail = f": {users.first_error}" if users.first_error else ""
            print(f"  submit round {r + 1}: cluster tokens {legacy.rps:,.0f} jobs/s ({legacy.errors} errors), "
                  f"user tokens {users.rps:,.0f} jobs/s ({users.errors} errors{detail})", flush=True)
    legacy_rps = statistics.median(r["cluster_tokens"]["rps"] for r in rows)
    user_rps = statistics.median(r["user_tokens"]["rps"] for r in rows)
    return {"rows": rows, "cluster_tokens_rps": legacy_rps, "user_tokens_rps": user_rps,
            "ratio": user_rps / legacy_rps if legacy_rps else float("nan")}


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
            with grpc.insecure_channel(server.address, options=CHANNEL_OPTIONS) as channel:
                stub = rainbow_pb2_grpc.RainbowSchedulerStub(channel)
                add_users(stub)
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


def run(quick: bool = False, out: Path | None = None, processes: int = 4) -> dict[str, Any]:
    results: dict[str, Any] = {"quick": quick}
    results["submit"] = submit_part(quick, processes)
    results["receive"] = receive_part(quick)
    submit, receive = results["submit"], results["receive"]
    results["targets"] = {"user_tokens_within_10_percent": submit["ratio"] >= 0.9,
                          "receive_10000_under_1_s": receive["round_s"] < 1.0}
    print(f"fairshare: submit with user tokens {submit['user_tokens_rps']:,.0f} jobs/s vs cluster tokens "
          f"{submit['cluster_tokens_rps']:,.0f} jobs/s -> {submit['ratio']:.2f} [{verdict(submit['ratio'] >= 0.9)} "
          f">= 0.9]; fair-share receive + accept of {receive['jobs']:,} jobs {receive['round_s']:.3f} s "
          f"[{verdict(receive['round_s'] < 1.0)} < 1 s]", flush=True)
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
