"""``rainbow demo``: the whole loop on one machine, narrated.

Starts a server on the embedded store (in a temporary directory), registers
two clusters shaped like the examples — ``keebler`` (3 nodes of 12 cores, like
``cluster-nodes.json``) and ``tioga`` (16 nodes of 64 cores and 8 GPUs, the Flux
R of ``R-16node-gpus.json``) — each with a local agent running jobs as
subprocesses, submits a handful of jobs and shows, as it happens, where each
went, why, and how it ended. Everything is cleaned up at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import secrets
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rainbow.server.background import BackgroundServer

TIOGA_R: dict[str, Any] = {
    "version": 1,
    "execution": {
        "R_lite": [{"rank": "0-15", "children": {"gpu": "0-7", "core": "0-63"}}],
        "starttime": 0.0,
        "expiration": 0.0,
        "nodelist": ["tioga[1-16]"],
        "properties": {"pbatch": "4-15", "pdebug": "0-3"},
    },
}
KEEBLER_R: dict[str, Any] = {
    "version": 1,
    "execution": {
        "R_lite": [{"rank": "0-2", "children": {"core": "0-11"}}],
        "starttime": 0.0,
        "expiration": 0.0,
        "nodelist": ["keebler[0-2]"],
    },
}
CLUSTERS = {"keebler": KEEBLER_R, "tioga": TIOGA_R}
# Seconds the demo lets its long job run before cancelling it.
CANCEL_AFTER = 1.0


def _nextgen(name: str, command: list[str], nodes: int = 1, cores: int = 1, gpus: int = 0) -> dict[str, Any]:
    per_node: list[dict[str, Any]] = [{"type": "core", "count": cores}]
    if gpus:
        per_node.append({"type": "gpu", "count": gpus})
    return {
        "version": 1,
        "name": name,
        "resources": {name: {"type": "node", "replicas": nodes, "label": name, "with": per_node}},
        "tasks": [{"command": command, "resources": name, "count": {"per_slot": 1}}],
    }


@dataclass(frozen=True)
class DemoJob:
    name: str
    jobspec: dict[str, Any]
    note: str
    cancel_after_start: bool = False


JOBS = [
    DemoJob("hello", _nextgen("hello", ["sh", "-c", "echo hello from $RAINBOW_CLUSTER"]),
            "1 node, 1 core: fits both clusters"),
    DemoJob("gpu-job", _nextgen("gpu-job", ["sh", "-c", "echo using 2 GPUs on $RAINBOW_CLUSTER"], gpus=2),
            "needs GPUs: only tioga has them"),
    DemoJob("wide", _nextgen("wide", ["sh", "-c", "echo 8 nodes on $RAINBOW_CLUSTER"], nodes=8),
            "8 nodes: keebler has 3"),
    DemoJob("fails", _nextgen("fails", ["sh", "-c", "echo giving up >&2; exit 3"]),
            "runs and exits with code 3"),
    DemoJob("sleepy", _nextgen("sleepy", ["sleep", "60"]),
            "runs until the demo cancels it a second later", cancel_after_start=True),
    DemoJob("huge", _nextgen("huge", ["hostname"], nodes=64),
            "64 nodes: fits no cluster"),
]


@dataclass
class _Tracked:
    name: str
    cluster: str
    state: str = "assigned"
    cancel_sent: bool = False
    running_since: float | None = None
    seen: list[str] = field(default_factory=list)


class Demo:
    def __init__(self, out: TextIO = sys.stdout, timeout: float = 25.0) -> None:
        self.out = out
        self.timeout = timeout
        self.start = time.monotonic()
        self.tracked: dict[int, _Tracked] = {}
        self.agents: dict[str, Any] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._watch: Any = None
        self._agents_started = float("inf")

    def say(self, text: str = "") -> None:
        with self._lock:
            self.out.write(text + "\n")
            self.out.flush()

    def stamp(self) -> str:
        return f"[{time.monotonic() - self.start:5.1f}s]"

    def run(self) -> int:
        workdir = Path(tempfile.mkdtemp(prefix="rainbow-demo-"))
        from rainbow.server import ServerConfig
        from rainbow.server.background import BackgroundServer

        config = ServerConfig(host="127.0.0.1:0", db=str(workdir / "rainbow.db"),
                              secret=secrets.token_urlsafe(16), workers=4)
        server = BackgroundServer(config)
        try:
            return self._run(server, workdir)
        finally:
            self._clean_up(server, workdir)

    def _clean_up(self, server: BackgroundServer, workdir: Path) -> None:
        """Stop the agents and the watch, stop and reap the jobs still running, stop the server."""
        for agent in self.agents.values():
            agent.stop()
        if self._watch is not None:
            self._watch.cancel()
        for thread in self._threads:
            thread.join(10)
        for agent in self.agents.values():
            agent.executor.close()
            agent.link.client.close()
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        self.say("cleaned up: server stopped, agents and their jobs stopped, temporary files removed")

    def _run(self, server: BackgroundServer, workdir: Path) -> int:
        from rainbow.client import RainbowClient
        from rainbow.config import RainbowConfig
        from rainbow.flux.resources import r_summary, r_to_jgf

        address = server.start().address
        self.say(f"rainbow demo: a server on {address} (SQLite store in a temporary directory)")
        self.say()
        config = RainbowConfig.new("keebler", host=address, path=workdir / "rainbow-config.yaml")
        client = RainbowClient(address, config_file=config)
        secrets_by_cluster = {}
        for name, R in CLUSTERS.items():
            result = client.register(name, server.config.secret, r_to_jgf(R, name))
            config.add_cluster_token(name, result.token)
            secrets_by_cluster[name] = result.secret
            counts = r_summary(R)
            gpus = f", {counts['gpus']} GPUs" if counts["gpus"] else ""
            self.say(f"registered cluster {name}: {counts['nodes']} nodes, {counts['cores']} cores{gpus} "
                     f"(JGF built from its Flux R)")
        self.say()
        self.say("submitting jobs: rainbow matches each against the clusters' graphs, then selects one")
        self._start_watch(client)
        for job in JOBS:
            self._submit(client, job)
        self.say()
        for name, R in CLUSTERS.items():
            self._start_agent(name, R, address, secrets_by_cluster[name], workdir)
        self.say("started a local agent for each cluster: it pulls the cluster's jobs and runs them as "
                 "subprocesses of this machine")
        self._follow(client)
        self._summary(client)
        client.close()
        return 0

    def _start_agent(self, name: str, R: dict[str, Any], address: str, secret: str, workdir: Path) -> None:
        from rainbow.agent import Agent, LocalExecutor
        from rainbow.agent.hooks import Hooks
        from rainbow.agent.link import ClusterLink
        from rainbow.client import RainbowClient
        from rainbow.flux.resources import r_nodes

        nodes = r_nodes(R)
        executor = LocalExecutor(len(nodes), len(nodes[0].cores), len(nodes[0].gpus),
                                 state_dir=workdir / f"agent-{name}", cluster=name)
        link = ClusterLink(RainbowClient(address, retries=0, timeout=10), name, secret, agent=f"{name}-agent")
        agent = Agent(link, executor, hooks=Hooks(), interval=0.2, cwd=str(workdir))
        self._agents_started = min(self._agents_started, time.monotonic())
        self.agents[name] = agent
        thread = threading.Thread(target=agent.run, name=f"agent-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _start_watch(self, client: Any) -> None:
        from rainbow.protos import rainbow_pb2

        clusters = [rainbow_pb2.SubmitJobRequest.Cluster(name=c["name"], token=c["token"])
                    for c in client.config.clusters]
        # From the first event (the store is the demo's own): nothing is missed however late the stream starts.
        self._watch = client.scheduler_stub.WatchJobs(rainbow_pb2.WatchJobsRequest(clusters=clusters, since=-1))
        thread = threading.Thread(target=self._read_watch, name="demo-watch", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _read_watch(self) -> None:
        import grpc

        try:
            for event in self._watch:
                self._on_event(event)
        except grpc.RpcError:
            return

    def _on_event(self, event: Any) -> None:
        with self._lock:
            job = self.tracked.get(event.jobid)
            if job is None:
                job = self.tracked[event.jobid] = _Tracked(event.name, event.cluster)
            job.state = event.state
            job.seen.append(event.state)
            if event.state == "running":
                job.running_since = time.monotonic()
        if event.state == "assigned" or time.monotonic() < self._agents_started:
            return
        detail = f": {event.message}" if event.message else ""
        self.say(f"{self.stamp()} job {event.jobid} {event.name:<8} {event.cluster:<8} {event.state}{detail}")

    def _submit(self, client: Any, job: DemoJob) -> None:
        from rainbow.errors import RainbowError

        self.say(f"submit {job.name!r} ({job.note})")
        try:
            result = client.submit_jobspec(job.jobspec, name=job.name)
        except RainbowError as exc:
            self.say(f"  -> not submitted: {exc}")
            return
        with self._lock:
            tracked = self.tracked.setdefault(result.jobid, _Tracked(job.name, result.cluster))
            tracked.cluster = result.cluster
            tracked.cancel_sent = not job.cancel_after_start
        why = [f"matches {', '.join(result.matches)}"]
        why += [f"{c} does not ({r})" for c, r in sorted(result.reasons.items())]
        if len(result.matches) > 1:
            why.append(f"{client.config.selection_algorithm} selection picked {result.cluster}")
        self.say(f"  -> job {result.jobid} to {result.cluster}: {'; '.join(why)}")

    def _follow(self, client: Any) -> None:
        from rainbow.protos import rainbow_pb2

        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            with self._lock:
                pending = {jid: t for jid, t in self.tracked.items()
                           if t.state not in ("completed", "failed", "cancelled")}
                to_cancel = [jid for jid, t in self.tracked.items() if not t.cancel_sent and t.state == "running"
                             and time.monotonic() - (t.running_since or 0.0) >= CANCEL_AFTER]
            for jobid in to_cancel:
                self.tracked[jobid].cancel_sent = True
                self.say(f"{self.stamp()} cancelling job {jobid} ({self.tracked[jobid].name})")
                token = client.config.token_for(self.tracked[jobid].cluster)
                client.scheduler_stub.CancelJob(rainbow_pb2.CancelJobRequest(
                    jobid=jobid, token=token, reason="cancelled by the demo"))
            if not pending:
                return
            time.sleep(0.1)
        self.say(f"{self.stamp()} gave up waiting after {self.timeout:.0f}s")

    def _summary(self, client: Any) -> None:
        from rainbow.protos import rainbow_pb2

        self.say()
        self.say(f"{'job':>4}  {'name':<8} {'cluster':<8} {'state':<10} {'exit':>4}  {'local id':<9} output")
        for jobid in sorted(self.tracked):
            tracked = self.tracked[jobid]
            token = client.config.token_for(tracked.cluster)
            info = client.scheduler_stub.GetJob(rainbow_pb2.GetJobRequest(jobid=jobid, token=token))
            code = str(info.exit_code) if info.has_exit_code else "-"
            agent = self.agents.get(info.cluster)
            output = agent.executor.output(info.local_id).strip() if agent and info.local_id else ""
            self.say(f"{jobid:>4}  {info.name:<8} {info.cluster:<8} {info.state:<10} {code:>4}  "
                     f"{info.local_id or '-':<9} {output or info.message}")
        self.say()


def add_parser(commands: Any) -> None:
    """Add ``rainbow demo`` to the ``rainbow`` command's subparsers."""
    parser = commands.add_parser("demo", help="run a server, two clusters and a few jobs on this machine, narrated")
    parser.add_argument("--timeout", type=float, default=25.0, help="seconds to wait for the jobs (default 25)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.ERROR)
    with contextlib.suppress(KeyboardInterrupt):
        return Demo(timeout=args.timeout).run()
    return 130
