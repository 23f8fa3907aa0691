"""Submit throughput: 32 concurrent clients calling SubmitJob, against a bare gRPC echo server.

The rainbow server (its own process) has 10 registered clusters; every request
lists all 10 with the submit token, so each job is authorized, matched against
10 graphs, placed by the selection algorithm and durably inserted (SQLite,
WAL, synchronous=FULL) before its reply. The echo baseline answers the same
request bytes with a reply of the same size as SubmitJobResponse. Both are
driven by the same load generator in the same run, alternating rounds, and the
ratio of their request rates is the figure. Each round also submits as users
(each client one of 10 users' tokens in the call metadata, the users in three
banks with shares, no cluster tokens: the server considers every cluster the
user may use), which must keep at least 90% of the rate with cluster tokens.
After the run the store is checked: every acknowledged job must be in it.

With ``--stages`` (the default of a full run), two more servers take their turn
in every round: rainbow's servicer answering a fixed reply (``answer``) and
rainbow placing each job without storing it (``place``, see
``bench/staged_server.py``). Their server CPU per request, beside the echo's and
the full server's, says what each stage of a SubmitJob adds.

``python -m bench.submit_bench [--quick]``; results in bench/results/submit.json.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from bench.common import (
    SECRET,
    TOKEN,
    ServerProcess,
    add_users,
    cluster_jgf,
    echo_server,
    jobspecs,
    rainbow_server,
    register_clusters,
    verdict,
    write_results,
)
from bench.echo_server import ECHO_METHOD
from bench.load import SUBMIT_METHOD, LoadResult, run_load


def submit_payloads(clusters: list[str], count: int = 64) -> list[bytes]:
    """SubmitJob requests listing every cluster with its token (no clusters: as a user submits)."""
    from rainbow.protos import rainbow_pb2

    specs = jobspecs()
    listed = [rainbow_pb2.SubmitJobRequest.Cluster(name=name, token=TOKEN) for name in clusters]
    return [
        rainbow_pb2.SubmitJobRequest(name=f"bench-job-{i}", clusters=listed, jobspec=specs[i % len(specs)])
        .SerializeToString()
        for i in range(count)
    ]


def reply_size(clusters: list[str]) -> int:
    from rainbow.protos import rainbow_pb2

    reply = rainbow_pb2.SubmitJobResponse(
        request_id=uuid.uuid4().hex, jobid=1_234_567, cluster=clusters[-1],
        status=rainbow_pb2.SubmitJobResponse.SUBMIT_SUCCESS, clusters=[clusters[-1]],
    )
    return len(reply.SerializeToString())


def cpu_per(server: ServerProcess, before: float, load: LoadResult) -> float:
    """Server CPU milliseconds per acknowledged request over the whole load (warm-up included)."""
    return (server.cpu_seconds() - before) * 1e3 / max(1, load.acknowledged)


def staged_server(db: Path, stage: str) -> ServerProcess:
    """A rainbow server whose SubmitJob stops after ``stage`` (``bench/staged_server.py``)."""
    args = [sys.executable, "-m", "bench.staged_server", stage, "--host", "127.0.0.1:0", "--db", str(db),
            "--secret", SECRET, "--global-token", TOKEN, "--cluster-timeout", "0"]
    return ServerProcess(args, db.with_suffix(".log"))


def stage_costs(echo: list[dict[str, Any]], stages: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Median rate, ratio to the echo and server CPU per request of each stage, and what each adds to the one
    before it (CPU per request: the figure the machine's other work moves least)."""
    def cpu(rounds: list[dict[str, Any]]) -> float:
        return statistics.median(r["server_cpu_ms_per_request"] for r in rounds)

    echo_rps = statistics.median(r["rps"] for r in echo)
    out: dict[str, Any] = {}
    before = cpu(echo)
    for name, rounds in {"echo": echo, **stages}.items():
        rps, cost = statistics.median(r["rps"] for r in rounds), cpu(rounds)
        out[name] = {"rps": rps, "ratio": rps / echo_rps if echo_rps else float("nan"),
                     "cpu_ms_per_request": cost, "adds_cpu_ms": cost - before}
        before = cost
    return out


def count_jobs(db: Path) -> int:
    from rainbow.store.sqlite import SQLiteStore

    store = SQLiteStore(db)
    try:
        return store.count_jobs()
    finally:
        store.close()


def run(quick: bool = False, clients: int = 32, processes: int = 4, duration: float | None = None,
        rounds: int | None = None, n_clusters: int = 10, extra: tuple[str, ...] = (),
        out: Path | None = None, stages: bool | None = None) -> dict[str, Any]:
    duration = duration or (2.0 if quick else 8.0)
    rounds = rounds or (1 if quick else 3)
    stages = not quick if stages is None else stages
    nodes = [16 * (i + 1) for i in range(n_clusters)] if quick else [64 * (i + 1) for i in range(n_clusters)]
    names = [f"cluster-{i:02d}" for i in range(n_clusters)]
    results: dict[str, Any] = {
        "quick": quick, "clients": clients, "processes": processes, "duration_s": duration, "rounds": rounds,
        "clusters": dict(zip(names, nodes, strict=True)), "server_args": list(extra),
    }
    with tempfile.TemporaryDirectory(prefix="rainbow-submit-") as tmp:
        db = Path(tmp) / "submit.db"
        payloads = submit_payloads(names)
        size = reply_size(names)
        results["request_bytes"] = statistics.median(len(p) for p in payloads)
        results["reply_bytes"] = size
        echo_rounds: list[dict[str, Any]] = []
        rainbow_rounds: list[dict[str, Any]] = []
        user_rounds: list[dict[str, Any]] = []
        user_payloads = submit_payloads([])
        stage_rounds: dict[str, list[dict[str, Any]]] = {"answer": [], "place": []} if stages else {}
        acknowledged = 0
        with contextlib.ExitStack() as running:
            echo = running.enter_context(echo_server(size, Path(tmp) / "echo.log"))
            server = running.enter_context(rainbow_server(db, *extra))
            staged = {stage: running.enter_context(staged_server(Path(tmp) / f"{stage}.db", stage))
                      for stage in stage_rounds}
            graphs = [(n, cluster_jgf(k, name=n)) for n, k in zip(names, nodes, strict=True)]
            for each in (server, *staged.values()):
                register_clusters(each.address, graphs)
            bearer = [[("authorization", f"Bearer {token}")] for token in add_users(server.address).values()]
            for r in range(rounds):
                cpu = echo.cpu_seconds()
                e = run_load(echo.address, payloads, method=ECHO_METHOD, clients=clients, processes=processes,
                             duration=duration)
                echo_rounds.append({**e.as_dict(), "server_cpu_ms_per_request": cpu_per(echo, cpu, e)})
                # The two rainbow loads take turns going first: neither is always the one on a grown store.
                for kind in (("tokens", "user") if r % 2 == 0 else ("user", "tokens")):
                    cpu = server.cpu_seconds()
                    if kind == "tokens":
                        s = run_load(server.address, payloads, method=SUBMIT_METHOD, clients=clients,
                                     processes=processes, duration=duration)
                        acknowledged += s.acknowledged
                        rainbow_rounds.append({**s.as_dict(), "server_cpu_ms_per_request": cpu_per(server, cpu, s)})
                    else:
                        u = run_load(server.address, user_payloads, method=SUBMIT_METHOD, clients=clients,
                                     processes=processes, duration=duration, metadata=bearer)
                        acknowledged += u.acknowledged
                        user_rounds.append({**u.as_dict(), "server_cpu_ms_per_request": cpu_per(server, cpu, u)})
                for stage, stage_server in staged.items():
                    cpu = stage_server.cpu_seconds()
                    t = run_load(stage_server.address, payloads, method=SUBMIT_METHOD, clients=clients,
                                 processes=processes, duration=duration)
                    cost = cpu_per(stage_server, cpu, t)
                    stage_rounds[stage].append({**t.as_dict(), "server_cpu_ms_per_request": cost})
                    print(f"  round {r + 1}: stage {stage}: {t.rps:,.0f} req/s ({t.errors} errors), server CPU "
                          f"{cost:.3f} ms per request", flush=True)
                row = rainbow_rounds[-1]
                print(f"  round {r + 1}: echo {e.rps:,.0f} req/s, rainbow {s.rps:,.0f} jobs/s (median "
                      f"{row['median_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms, {s.errors} errors"
                      f"{': ' + s.first_error if s.first_error else ''}), as a user {u.rps:,.0f} jobs/s "
                      f"({u.errors} errors{': ' + u.first_error if u.first_error else ''}); server CPU per "
                      f"request: echo {echo_rounds[-1]['server_cpu_ms_per_request']:.2f} ms, rainbow "
                      f"{row['server_cpu_ms_per_request']:.2f} ms, as a user "
                      f"{user_rounds[-1]['server_cpu_ms_per_request']:.2f} ms", flush=True)
            results["server_memory_mb"] = server.memory()
        stored = count_jobs(db)
    echo_rps = statistics.median(r["rps"] for r in echo_rounds)
    rainbow_rps = statistics.median(r["rps"] for r in rainbow_rounds)
    user_rps = statistics.median(r["rps"] for r in user_rounds)
    best = max(rainbow_rounds, key=lambda r: r["rps"])
    results.update({
        "echo": echo_rounds,
        "rainbow": rainbow_rounds,
        "echo_rps": echo_rps,
        "rainbow_rps": rainbow_rps,
        "ratio": rainbow_rps / echo_rps if echo_rps else float("nan"),
        "user": user_rounds,
        "user_rps": user_rps,
        "user_ratio": user_rps / rainbow_rps if rainbow_rps else float("nan"),
        "median_ms": statistics.median(r["median_ms"] for r in rainbow_rounds),
        "p99_ms": statistics.median(r["p99_ms"] for r in rainbow_rounds),
        "echo_median_ms": statistics.median(r["median_ms"] for r in echo_rounds),
        "echo_p99_ms": statistics.median(r["p99_ms"] for r in echo_rounds),
        "best_round_rps": best["rps"],
        "acknowledged": acknowledged,
        "stored": stored,
        "durable": stored >= acknowledged,
        "errors": sum(r["errors"] for r in rainbow_rounds) + sum(r["errors"] for r in user_rounds),
    })
    if stage_rounds:
        results["stages"] = stage_costs(echo_rounds, {**stage_rounds, "full": rainbow_rounds})
        results["stage_rounds"] = stage_rounds
        print("stages (median rate, ratio to echo, server CPU per request, added by the stage): " + "; ".join(
            f"{name} {row['rps']:,.0f} req/s x{row['ratio']:.2f} {row['cpu_ms_per_request']:.3f} ms "
            f"(+{row['adds_cpu_ms']:.3f})" for name, row in results["stages"].items()), flush=True)
    results["targets"] = {
        "ratio_at_least_0.5": results["ratio"] >= 0.5,
        "at_least_1000_jobs_per_s": rainbow_rps >= 1000,
        "user_token_within_10_percent": results["user_ratio"] >= 0.9,
    }
    print(f"submit: rainbow {rainbow_rps:,.0f} jobs/s vs echo {echo_rps:,.0f} req/s -> ratio {results['ratio']:.2f} "
          f"[{verdict(results['ratio'] >= 0.5)} >= 0.5], [{verdict(rainbow_rps >= 1000)} >= 1,000 jobs/s]; "
          f"latency median {results['median_ms']:.1f} ms, p99 {results['p99_ms']:.1f} ms "
          f"(echo {results['echo_median_ms']:.1f} / {results['echo_p99_ms']:.1f} ms); "
          f"{acknowledged} acknowledged, {stored} stored; as a user {user_rps:,.0f} jobs/s, "
          f"{results['user_ratio']:.2f} of the rate with cluster tokens [{verdict(results['user_ratio'] >= 0.9)} "
          ">= 0.9]", flush=True)
    write_results("submit", results, out)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: short rounds, small clusters")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--processes", type=int, default=4, help="load generator processes")
    parser.add_argument("--duration", type=float, help="measured seconds per round")
    parser.add_argument("--rounds", type=int, help="alternating echo/rainbow rounds")
    parser.add_argument("--server-arg", action="append", default=[], help="extra `rainbow server` argument")
    parser.add_argument("--stages", action=argparse.BooleanOptionalAction, default=None,
                        help="also measure the answer and place stages of SubmitJob (default: on, off with --quick)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    run(args.quick, args.clients, args.processes, args.duration, args.rounds, extra=tuple(args.server_arg),
        out=args.out, stages=args.stages)


if __name__ == "__main__":
    sys.exit(main())
