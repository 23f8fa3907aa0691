"""Soak: exactly once under load and faults.

Two server replicas share one PostgreSQL database; two clusters have two local
agents each (one per replica). Short jobs are submitted continuously to both
replicas (each with an idempotency key, retried with the same key when the
outcome is unknown) while, at random, a replica or an agent is killed with
SIGKILL and restarted, or PostgreSQL is restarted. Leases are short
(``--lease-seconds 3``), so they really run out for a holder that is away.

Every run of a job appends ``jobid agent incarnation time local-id`` to a marker file
(an agent keeps its ``--agent-id`` across restarts; the incarnation tells the
processes apart). The report:

* acknowledged: submits that returned a job id;
* lost: acknowledged jobs that are not in the store, or that never ran;
* run twice by a live holder: a second run although the first runner was
  neither killed nor cut off (its replica killed, or PostgreSQL restarted)
  between its run and the second one (must be 0);
* run twice after a holder was killed or cut off: with how long it was away.

Loopback only; bounded: ``--seconds`` of load (default 120), then at most
``--drain`` seconds for the queue to empty. Needs ``RAINBOW_TEST_POSTGRES``
(a server URL) and ``RAINBOW_TEST_PGCTL`` (its ``pg_ctl`` command line, for
restarts), as ``.ci/run`` exports them for the tests.

``python -m bench.soak_bench [--seconds 120] [--rate 45] [--quick]``; results in bench/results/soak.json.
"""

from __future__ import annotations

import argparse
import calendar
import itertools
import os
import random
import shlex
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import CHANNEL_OPTIONS, ROOT, SECRET, TOKEN, child_env, cluster_jgf, verdict, write_results

LEASE_SECONDS = 3.0
CLUSTERS = ("c1", "c2")
AGENTS = [(cluster, side) for cluster in CLUSTERS for side in ("a", "b")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Fault:
    kind: str  # replica, agent, postgres
    target: str
    start: float
    end: float = float("nan")


@dataclass
class Child:
    """A process the soak kills and restarts (a replica or an agent)."""

    name: str
    args: list[str]
    log: Path
    proc: subprocess.Popen | None = None
    incarnation: int = 0
    pids: dict[int, int] = field(default_factory=dict)

    def start(self, env: dict[str, str]) -> None:
        self.incarnation += 1
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [a.replace("{incarnation}", str(self.incarnation)) for a in self.args],
                stdout=log, stderr=log, env=env, cwd=str(ROOT), start_new_session=True,
            )
        self.pids[self.incarnation] = self.proc.pid

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_listening(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def new_database(url: str) -> str:
    import psycopg
    from psycopg import sql

    name = f"rainbow_soak_{os.getpid()}_{int(time.time())}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


def pg_restart(pgctl: str) -> None:
    subprocess.run([*shlex.split(pgctl), "restart", "-m", "immediate", "-w"], check=True, capture_output=True,
                   timeout=120)


class Submitters:
    """Submit at ``rate`` per second to both replicas; a failed submit is retried with the same key."""

    def __init__(self, addresses: list[str], rate: float, command: str) -> None:
        self.addresses = addresses
        self.rate = rate
        self.command = command
        self.acknowledged: dict[str, int] = {}
        self.retried = 0
        self.gave_up: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, threads: int = 8) -> None:
        for n in range(threads):
            thread = threading.Thread(target=self._run, args=(n, threads), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(120)

    def _run(self, n: int, threads: int) -> None:
        import grpc

        from rainbow.jobspec import simple
        from rainbow.protos import rainbow_pb2, rainbow_pb2_grpc

        channels = [grpc.insecure_channel(a, options=CHANNEL_OPTIONS) for a in self.addresses]
        stubs = [rainbow_pb2_grpc.RainbowSchedulerStub(c) for c in channels]
        jobspec = __import__("json").dumps(simple(["sh", "-c", self.command]))
        clusters = [rainbow_pb2.SubmitJobRequest.Cluster(name=c, token=TOKEN) for c in CLUSTERS]
        period = threads / self.rate
        due = time.monotonic() + random.uniform(0, period)
        i = 0
        while not self._stop.is_set():
            time.sleep(max(0.0, due - time.monotonic()))
            due += period
            key = uuid.uuid4().hex
            name = f"s{n}-{i}"
            i += 1
            request = rainbow_pb2.SubmitJobRequest(name=name, clusters=clusters, jobspec=jobspec,
                                                   idempotency_key=key)
            for attempt in range(40):  # the same key on every attempt: at most one job per submit
                stub = stubs[(n + i + attempt) % len(stubs)]
                try:
                    reply = stub.SubmitJob(request, timeout=5)
                except grpc.RpcError:
                    with self._lock:
                        self.retried += 1
                    time.sleep(0.25)
                    continue
                with self._lock:
                    self.acknowledged[key] = reply.jobid
                break
            else:
                with self._lock:
                    self.gave_up.append(key)
        for channel in channels:
            channel.close()


def agent_starts(log: Path) -> list[float]:
    """When each incarnation of an agent was up (its first log line), from its log."""
    starts = []
    for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
        if " for cluster " in line and "rainbow.agent: agent " in line:
            stamp, _, millis = line[:23].partition(",")
            starts.append(calendar.timegm(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) + int(millis) / 1000)
    return starts


def classify(runs: dict[int, list[tuple[str, int, float]]], leases: dict[int, list[tuple[float, str]]],
             faults: list[Fault], agent_replica: dict[str, str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Jobs run twice, split into (by a live holder, after the holder was killed or cut off).

    A second run needs a holder that lost its lease: the job was leased to
    another agent at T, so its holder did not renew it in [T - lease, T]. That
    is explained when, in that interval, the holder was killed, its replica was
    down or PostgreSQL restarted; otherwise a live holder lost its lease (or an
    agent ran a job twice), which must never happen.
    """
    live: list[dict[str, Any]] = []
    away: list[dict[str, Any]] = []
    for jobid, entries in sorted(runs.items()):
        if len(entries) < 2:
            continue
        entries = sorted(entries, key=lambda e: e[2])
        record: dict[str, Any] = {
            "job": jobid, "runs": [f"{agent}#{incarnation}" for agent, incarnation, _ in entries],
            "apart_s": round(entries[-1][2] - entries[0][2], 2)}
        handed = leases.get(jobid, [])
        cause = None
        for (_, before), (taken, after) in itertools.pairwise(handed):
            if before == after:
                continue
            for fault in faults:
                if fault.start > taken or fault.end < taken - LEASE_SECONDS:
                    continue
                if ((fault.kind in ("agent", "exit") and fault.target == before)
                        or (fault.kind in ("replica", "exit") and fault.target == agent_replica.get(before))
                        or fault.kind == "postgres"):
                    cause = (fault, before)
                    break
            if cause is not None:
                break
        if cause is None:
            live.append(record)
        else:
            fault, holder = cause
            record["holder"] = holder
            record["cause"] = f"{fault.kind} {fault.target}"
            record["away_s"] = round(fault.end - fault.start, 2)
            away.append(record)
    return live, away


def run(quick: bool = False, seconds: float | None = None, rate: float = 45.0, drain: float = 180.0,
        seed: int | None = None) -> dict[str, Any]:
    url = os.environ.get("RAINBOW_TEST_POSTGRES")
    pgctl = os.environ.get("RAINBOW_TEST_PGCTL")
    if not url or not pgctl:
        raise SystemExit("soak: set RAINBOW_TEST_POSTGRES and RAINBOW_TEST_PGCTL (as .ci/run does)")
    seconds = seconds if seconds is not None else (40.0 if quick else 120.0)
    rng = random.Random(seed)
    work = Path(__import__("tempfile").mkdtemp(prefix="rainbow-soak-"))
    marker = work / "runs.txt"
    store = new_database(url)
    env = child_env()
    python = sys.executable
    ports = [free_port(), free_port()]
    replicas = [
        Child(f"r{i}", [python, "-m", "rainbow", "server", "--host", f"127.0.0.1:{port}", "--store", store,
                        "--secret", SECRET, "--global-token", TOKEN, "--lease-seconds", str(LEASE_SECONDS),
                        "--cluster-timeout", "0", "--loglevel", "warning", "--workers", "8"],
              work / f"r{i}.log")
        for i, port in enumerate(ports)
    ]
    for replica in replicas:
        replica.start(env)
    for port in ports:
        wait_listening(port)

    from rainbow.client import RainbowClient
    from rainbow.config import RainbowConfig

    configs: dict[str, Path] = {}
    for cluster in CLUSTERS:
        path = work / f"{cluster}.yaml"
        config = RainbowConfig.new(cluster, host=f"127.0.0.1:{ports[0]}", path=path)
        with RainbowClient(f"127.0.0.1:{ports[0]}", config_file=config) as client:
            client.register(cluster, SECRET, cluster_jgf(4, name=cluster), save=True)
        configs[cluster] = path

    agents: dict[str, Child] = {}
    agent_replica: dict[str, str] = {}
    for index, (cluster, side) in enumerate(AGENTS):
        name = f"{cluster}-{side}"
        replica = index % 2
        agent_replica[name] = f"r{replica}"
        agents[name] = Child(name, [
            python, "-m", "rainbow", "agent", "--executor", "local", "--config-path", str(configs[cluster]),
            "--host", f"127.0.0.1:{ports[replica]}", "--agent-id", name, "--state-dir", str(work / name),
            "--nodes", "4", "--cores-per-node", "64", "--interval", "1", "--timeout", "5", "--loglevel", "info",
            "--env", f"SOAK_AGENT={name}", "--env", "SOAK_INCARNATION={incarnation}",
        ], work / f"{name}.log")
        agents[name].start(env)

    command = (f'echo "$RAINBOW_JOBID $SOAK_AGENT $SOAK_INCARNATION $(date +%s.%N) $RAINBOW_LOCAL_ID" >> {marker}; '
               "sleep 0.1")
    submitters = Submitters([f"127.0.0.1:{p}" for p in ports], rate, command)
    faults: list[Fault] = []
    started = time.time()
    submitters.start()
    print(f"soak: {seconds:.0f}s at {rate:.0f} submits/s, leases {LEASE_SECONDS:g}s, work in {work}", flush=True)
    deadline = time.monotonic() + seconds
    kinds: list[str] = []
    while time.monotonic() < deadline - 8:
        time.sleep(rng.uniform(4.0, 8.0))
        if not kinds:  # every kind of fault in each round of four, in random order
            kinds = ["replica", "agent", "agent", "postgres"]
            rng.shuffle(kinds)
        kind = kinds.pop()
        if kind == "replica":
            replica = rng.choice(replicas)
            fault = Fault("replica", replica.name, time.time())
            replica.kill()
            time.sleep(rng.uniform(0.5, 3.0))
            replica.start(env)
            wait_listening(ports[replicas.index(replica)])
        elif kind == "agent":
            name = rng.choice(sorted(agents))
            fault = Fault("agent", name, time.time())
            agents[name].kill()
            time.sleep(rng.uniform(0.5, 5.0))
            agents[name].start(env)
        else:
            fault = Fault("postgres", "postgres", time.time())
            pg_restart(pgctl)
        fault.end = time.time()
        faults.append(fault)
        print(f"  {fault.start - started:6.1f}s {fault.kind} {fault.target} away {fault.end - fault.start:.1f}s",
              flush=True)
        for child in [*replicas, *agents.values()]:  # an agent that gave up is restarted too
            if child.proc is not None and child.proc.poll() is not None:
                faults.append(Fault("exit", child.name, time.time(), time.time()))
                child.start(env)
    time.sleep(max(0.0, deadline - time.monotonic()))
    submitters.stop()
    load_seconds = time.time() - started

    acknowledged = dict(submitters.acknowledged)
    ids = set(acknowledged.values())
    import psycopg

    def final_count() -> tuple[int, set[int]]:
        with psycopg.connect(store) as conn:
            rows = conn.execute("SELECT id, state FROM jobs WHERE id = ANY(%s)", (sorted(ids),)).fetchall()
        present = {r[0] for r in rows}
        done = sum(1 for r in rows if r[1] in ("completed", "failed", "cancelled"))
        return done, present

    drain_deadline = time.monotonic() + drain
    done, present = final_count()
    while done < len(ids) and time.monotonic() < drain_deadline:
        time.sleep(1.0)
        done, present = final_count()
    with psycopg.connect(store) as conn:
        states = dict(conn.execute(
            "SELECT state, COUNT(*) FROM jobs WHERE id = ANY(%s) GROUP BY state", (sorted(ids),)).fetchall())
    for child in [*agents.values(), *replicas]:
        child.stop()
    for fault in faults:  # an agent is away until its new process is up (Python start-up included)
        if fault.kind in ("agent", "exit") and fault.target in agents:
            later = [t for t in agent_starts(agents[fault.target].log) if t >= fault.start]
            if later:
                fault.end = max(fault.end, min(later))

    runs: dict[int, list[tuple[str, int, float]]] = {}
    for line in marker.read_text().splitlines() if marker.exists() else []:
        parts = line.split()
        if len(parts) == 5:
            runs.setdefault(int(parts[0]), []).append((parts[1], int(parts[2]), float(parts[3])))
    never_ran = sorted(i for i in ids if i not in runs)
    lost = sorted(ids - present) + [i for i in never_ran if i in present]
    twice = sorted(jobid for jobid, entries in runs.items() if len(entries) > 1)
    leases: dict[int, list[tuple[float, str]]] = {}
    with psycopg.connect(store) as conn:
        for jobid, when, message in conn.execute(
                "SELECT job_id, time, message FROM job_events WHERE job_id = ANY(%s) AND state = 'leased' "
                "ORDER BY seq", (twice,)):
            leases.setdefault(jobid, []).append((when, message.removeprefix("leased to ")))
    live, away = classify(runs, leases, faults, agent_replica)
    results = {
        "seconds": round(load_seconds, 1),
        "rate_per_s": rate,
        "submits_per_s": round(len(acknowledged) / load_seconds, 1),
        "lease_seconds": LEASE_SECONDS,
        "acknowledged": len(acknowledged),
        "submit_retries": submitters.retried,
        "submits_given_up": len(submitters.gave_up),
        "lost": len(lost),
        "lost_ids": lost[:50],
        "states": states,
        "finished": done,
        "runs": sum(len(v) for v in runs.values()),
        "run_twice_live_holder": len(live),
        "run_twice_live_holder_cases": live[:50],
        "run_twice_after_holder_away": len(away),
        "run_twice_after_holder_away_cases": away[:200],
        "run_twice_after_holder_away_by_cause": {
            cause: {"jobs": sum(1 for c in away if c["cause"] == cause),
                    "away_s": max(c["away_s"] for c in away if c["cause"] == cause)}
            for cause in sorted({c["cause"] for c in away})},
        "faults": [{"kind": f.kind, "target": f.target, "at_s": round(f.start - started, 1),
                    "away_s": round(f.end - f.start, 2)} for f in faults],
        "work": str(work),
    }
    ok = not lost and not live and done == len(ids)
    results["verdict"] = verdict(ok)
    print(f"soak: {len(acknowledged)} acknowledged ({results['submits_per_s']}/s), {len(lost)} lost, "
          f"{done} finished, {len(live)} run twice by a live holder, {len(away)} run twice after the holder was "
          f"killed or cut off; {len(faults)} faults -> {results['verdict']}", flush=True)
    for case in live[:20]:
        print(f"  live holder: job {case['job']} ran on {', '.join(case['runs'])}", flush=True)
    causes: dict[str, list[float]] = {}
    for case in away:
        causes.setdefault(case["cause"], []).append(case["away_s"])
    for cause, durations in sorted(causes.items()):
        print(f"  {len(durations)} after {cause} (away {max(durations):.1f}s)", flush=True)
    write_results("soak", results)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 s of load instead of 120 s")
    parser.add_argument("--seconds", type=float, help="seconds of load (default 120)")
    parser.add_argument("--rate", type=float, default=45.0, help="submits per second (default 45)")
    parser.add_argument("--drain", type=float, default=180.0, help="seconds allowed for the queue to empty")
    parser.add_argument("--seed", type=int, help="seed of the fault schedule")
    args = parser.parse_args()
    results = run(args.quick, args.seconds, args.rate, args.drain, args.seed)
    sys.exit(0 if results["verdict"] == "PASS" else 1)


if __name__ == "__main__":
    main()
