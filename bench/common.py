"""Shared pieces of the server benchmarks: a server subprocess, synthetic clusters, jobspecs, results.

Every benchmark talks to 127.0.0.1 only. The server under test always runs in its
own process (``python -m rainbow server``), so its CPU and memory are its own.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The rainbow under test; RAINBOW_BENCH_SRC points the benchmarks at another checkout's src (e.g. "before").
SRC = Path(os.environ.get("RAINBOW_BENCH_SRC") or ROOT / "src").resolve()
RESULTS = ROOT / "bench" / "results"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

SECRET = "bench-registration-secret"
TOKEN = "bench-global-submit-token"
MAX_MESSAGE = 1024 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
]


def child_env() -> dict[str, str]:
    """The environment for child processes: ``src`` first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH", "")) if p)
    return env


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu": model, "python": platform.python_version(), "system": platform.platform()}


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of a process, in MiB."""
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key = line.split(":", 1)[0]
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(line.split()[1]) / 1024
    return out


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary_ms(values: Sequence[float]) -> dict[str, float]:
    """Median, p99 and max of durations in seconds, in milliseconds."""
    if not values:
        return {"n": 0, "median_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan")}
    return {
        "n": len(values),
        "median_ms": statistics.median(values) * 1e3,
        "p99_ms": percentile(values, 99) * 1e3,
        "max_ms": max(values) * 1e3,
    }


class ServerProcess:
    """A server as a child process; ready when it prints ``listening on <host:port>``; log to a file."""

    def __init__(self, args: Sequence[str], log_path: Path, timeout: float = 600.0) -> None:
        self.args = list(args)
        self.log_path = Path(log_path)
        self.timeout = timeout
        self.proc: subprocess.Popen | None = None
        self.address = ""
        self.startup_s = float("nan")

    def start(self) -> ServerProcess:
        started = time.perf_counter()
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed in stop()
        self._log = log
        self.proc = subprocess.Popen(
            self.args, stdout=subprocess.PIPE, stderr=log, text=True, env=child_env(), cwd=str(ROOT)
        )
        deadline = time.monotonic() + self.timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            found = re.search(r"listening on (\S+:\d+)", line)
            if found:
                self.startup_s = time.perf_counter() - started
                self.address = found.group(1)
                threading.Thread(target=self.proc.stdout.read, daemon=True).start()
                return self
        self.stop()
        raise RuntimeError(f"server did not start; see {self.log_path}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def memory(self) -> dict[str, float]:
        return proc_status(self.pid)

    def cpu_seconds(self) -> float:
        """User + system CPU time the server has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if getattr(self, "_log", None) is not None:
            self._log.close()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def rainbow_server(db: Path, *extra: str, loglevel: str = "info", timeout: float = 600.0) -> ServerProcess:
    """``python -m rainbow server`` on 127.0.0.1:<free port> with the benchmark's secret and global token."""
    args = [
        sys.executable, "-m", "rainbow", "server", "--host", "127.0.0.1:0", "--db", str(db),
        "--secret", SECRET, "--global-token", TOKEN, "--cluster-timeout", "0", "--loglevel", loglevel, *extra,
    ]
    return ServerProcess(args, Path(db).with_suffix(".log"), timeout)


def echo_server(response_size: int, log_path: Path) -> ServerProcess:
    """The bare gRPC baseline (bench/echo_server.py), answering ``response_size`` bytes."""
    args = [sys.executable, "-m", "bench.echo_server", "--response-size", str(response_size)]
    return ServerProcess(args, log_path)


def cluster_jgf(nodes: int, sockets: int = 2, cores: int = 16, name: str = "cluster") -> str:
    """A rainbow-dialect JGF of a regular cluster (``cluster > node > socket > core``)."""
    from rainbow.graph.synthetic import write_cluster_jgf

    out = io.StringIO()
    write_cluster_jgf(out, nodes, sockets=sockets, cores=cores, name=name)
    return out.getvalue()


def jobspecs(count: int = 8) -> list[str]:
    """A mix of small jobspecs (nextgen and Flux V1, JSON and YAML) as clients send them."""
    from rainbow.jobspec import simple

    specs: list[str] = []
    shapes = [(1, 1), (1, 4), (2, 8), (4, 16), (8, 8), (16, 64), (64, 64), (100, 200)]
    for i in range(count):
        nodes, tasks = shapes[i % len(shapes)]
        if i % 2:
            doc = {
                "version": 1,
                "resources": [{"type": "node", "count": nodes, "with": [
                    {"type": "slot", "count": 1, "label": "task", "with": [{"type": "core", "count": 2}]}]}],
                "tasks": [{"command": ["app", f"--case={i}"], "slot": "task", "count": {"per_slot": 1}}],
                "attributes": {"system": {"duration": 3600}},
            }
            specs.append(json.dumps(doc))
        else:
            specs.append(json.dumps(simple(f"app --case={i}", nodes=nodes, tasks=tasks)))
    return specs


# The benchmarks' users: 10, in three banks (groups) with shares.
USERS = [(f"user{i:02d}", ["physics", "chemistry", "biology"][i % 3]) for i in range(10)]


def add_users(address: str) -> dict[str, str]:
    """Add the benchmark's users and their banks' shares over gRPC (registration secret); name -> user token."""
    import grpc

    from rainbow.protos import rainbow_pb2, rainbow_pb2_grpc

    with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
        stub = rainbow_pb2_grpc.RainbowSchedulerStub(channel)
        tokens = {name: stub.AddUser(rainbow_pb2.AddUserRequest(name=name, groups=[group], secret=SECRET)).token
                  for name, group in USERS}
        for bank, shares in (("physics", 5), ("chemistry", 3), ("biology", 1)):
            stub.SetShares(rainbow_pb2.SetSharesRequest(kind="group", name=bank, shares=shares, secret=SECRET))
    return tokens


def register_clusters(address: str, clusters: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Register (name, JGF) pairs over gRPC; returns name -> cluster secret."""
    import grpc

    from rainbow.protos import rainbow_pb2, rainbow_pb2_grpc

    secrets: dict[str, str] = {}
    with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
        stub = rainbow_pb2_grpc.RainbowSchedulerStub(channel)
        for name, nodes in clusters:
            reply = stub.Register(rainbow_pb2.RegisterRequest(name=name, secret=SECRET, nodes=nodes), timeout=600)
            if reply.status != rainbow_pb2.RegisterResponse.REGISTER_SUCCESS:
                raise RuntimeError(f"registering {name} failed: {reply}")
            secrets[name] = reply.secret
    return secrets


def open_fixture_store(db: Path) -> Any:
    """The SQLite store of a benchmark's fixture, written without fsync (set-up, not measured)."""
    from rainbow.store.sqlite import SQLiteStore

    return SQLiteStore(db, synchronous="OFF")


def add_jobs(store: Any, jobs: Sequence[Any]) -> None:
    """Write fixture jobs (``rainbow.store.NewJob``) in one call where the store can, else one by one."""
    if hasattr(store, "add_jobs"):
        for outcome in store.add_jobs(jobs):
            if isinstance(outcome, Exception):
                raise outcome
        return
    for job in jobs:
        store.add_job(job.cluster, job.name, job.jobspec, job.command, job.now, job.candidates)


def new_job(
    cluster: str, name: str, jobspec: str, command: str, now: float, candidates: Sequence[str], user: str = "",
    group: str = "",
) -> Any:
    """A fixture job: ``rainbow.store.NewJob`` where it exists, else a stand-in with the same fields.

    ``user`` and ``group`` are its owner where the store keeps one (code before users has none).
    """
    try:
        from rainbow.store import NewJob
    except ImportError:
        from types import SimpleNamespace

        return SimpleNamespace(cluster=cluster, name=name, jobspec=jobspec, command=command, now=now,
                               candidates=tuple(candidates))
    if user and "user" in {f.name for f in dataclasses.fields(NewJob)}:
        return NewJob(cluster, name, jobspec, command, now, tuple(candidates), user=user, group=group)
    return NewJob(cluster, name, jobspec, command, now, tuple(candidates))


def write_results(name: str, results: dict[str, Any], out: Path | None = None) -> Path:
    path = out or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    results.setdefault("machine", machine())
    results.setdefault("when", time.strftime("%Y-%m-%dT%H:%M:%S"))
    path.write_text(json.dumps(results, indent=2, default=str))
    return path


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"
