"""``rainbow agent`` / ``flux python -m rainbow.agent``: run the pull agent for one cluster."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from rainbow.environment import apply_environment
from rainbow.errors import InvalidArgument, RainbowError

log = logging.getLogger("rainbow.agent")

EXECUTORS = ("auto", "flux", "local")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config-path",
                        help="rainbow-config.yaml with the cluster's name and secret (written by register --save; "
                        "default: $RAINBOW_CONFIG, else ./rainbow-config.yaml)")
    parser.add_argument("--host", help="rainbow server host:port (default: graphdatabase.host of the config)")
    parser.add_argument("--cluster-name", help="cluster to pull jobs for (default: cluster.name of the config)")
    parser.add_argument("--executor", choices=EXECUTORS, default="auto",
                        help="where jobs run: flux (flux.job.submit), local (subprocesses); "
                        "auto picks flux when its Python bindings import (default)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between passes (default 5)")
    parser.add_argument("--max-jobs", type=int, default=0,
                        help="leases held and not yet accepted at once: the server leases no more (default 0: 64)")
    parser.add_argument("--once", action="store_true",
                        help="one pass (report, receive, submit, accept, update state) and exit; local jobs "
                        "keep running for the next pass (without --once, stopping the agent stops them)")
    parser.add_argument("--no-stream", action="store_true",
                        help="poll ReceiveJobs instead of streaming jobs as they are assigned")
    parser.add_argument("--agent-id", help="who holds the lease on received jobs (default hostname:pid; give a "
                        "stable one so that a restarted agent is the same holder)")
    parser.add_argument("--hooks", action="append", default=[], metavar="FILE",
                        help="Python file registering hooks (job.validate, job.new, job.state.*, job.inactive)")
    parser.add_argument("--state", action="append", default=[], metavar="KEY=VALUE",
                        help="static state reported with every UpdateState (e.g. cost_per_node_hour=3)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME[=VALUE]",
                        help="add a variable to every job's environment (NAME alone copies the agent's value)")
    parser.add_argument("--allow-user", action="append", metavar="USER",
                        help="run only these rainbow users' jobs (repeat); others are rejected, so rainbow places "
                        "them on another cluster (default: every user's)")
    parser.add_argument("--workdir", help="working directory of jobs that set none (default: the current one)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds each call to the server may take")
    flux = parser.add_argument_group("flux executor")
    flux.add_argument("--flux-uri", help="Flux instance to submit to (default: the enclosing one)")
    flux.add_argument("--urgency", type=int, default=16, help="urgency of submitted Flux jobs (default 16)")
    local = parser.add_argument_group("local executor")
    local.add_argument("--nodes", type=int, default=1, help="pretend nodes (default 1)")
    local.add_argument("--cores-per-node", type=int, default=None, help="cores per node (default: this machine's)")
    local.add_argument("--gpus-per-node", type=int, default=0, help="GPUs per node (default 0)")
    local.add_argument("--state-dir",
                       help="where job records and output live (default ~/.local/state/rainbow/<cluster>)")
    parser.add_argument("--log-level", "--loglevel", dest="loglevel", default="info",
                        help="log level name (default info)")


def parse_state(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; numbers and booleans become JSON scalars."""
    import json

    state: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"--state {item!r}: expected KEY=VALUE", field="state")
        try:
            state[key] = json.loads(value)
        except ValueError:
            state[key] = value
        if isinstance(state[key], (dict, list)):
            state[key] = value
    return state


def job_environment(items: list[str]) -> dict[str, str]:
    from rainbow.agent.convert import default_environment

    env = default_environment()
    for item in items:
        name, sep, value = item.partition("=")
        if not name:
            raise InvalidArgument(f"--env {item!r}: expected NAME or NAME=VALUE", field="env")
        if sep:
            env[name] = value
        elif name in os.environ:
            env[name] = os.environ[name]
    return env


def flux_available() -> bool:
    return importlib.util.find_spec("flux") is not None


def make_executor(args: argparse.Namespace, cluster: str) -> Any:
    kind = args.executor
    if kind == "auto":
        kind = "flux" if flux_available() else "local"
    if kind == "flux":
        if not flux_available():
            raise InvalidArgument("the flux executor needs flux-core's Python bindings: run under `flux python`",
                                  field="executor")
        from rainbow.flux.adapter import FluxExecutor

        return FluxExecutor(cluster=cluster, uri=args.flux_uri, urgency=args.urgency)
    from rainbow.agent.local import LocalExecutor

    state_dir = args.state_dir or Path.home() / ".local" / "state" / "rainbow" / cluster
    return LocalExecutor(args.nodes, args.cores_per_node, args.gpus_per_node, state_dir=state_dir, cluster=cluster,
                         stop_on_close=not args.once)


def build_link(args: argparse.Namespace) -> Any:
    """The cluster's connection the flags describe: config, credentials and server (no network yet)."""
    from rainbow.agent.core import default_agent_id
    from rainbow.agent.link import ClusterLink
    from rainbow.client import RainbowClient
    from rainbow.config import RainbowConfig, config_path

    config = RainbowConfig.load(config_path(args.config_path)[0])
    client = RainbowClient(args.host, config_file=config, retries=0, timeout=args.timeout)
    return ClusterLink(client, args.cluster_name, agent=args.agent_id or default_agent_id(), timeout=args.timeout)


def build_agent(args: argparse.Namespace, link: Any = None) -> Any:
    """The Agent the flags describe (used by the command and by the broker module)."""
    from rainbow.agent.core import Agent
    from rainbow.agent.hooks import hooks

    link = link if link is not None else build_link(args)
    for path in args.hooks:
        hooks.load(path)
    executor = make_executor(args, link.cluster)
    return Agent(
        link, executor, hooks=hooks, interval=args.interval, max_jobs=args.max_jobs, stream=not args.no_stream,
        environment=job_environment(args.env), cwd=args.workdir or os.getcwd(), state=parse_state(args.state),
        allow_users=getattr(args, "allow_user", None),
    )


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=getattr(logging, str(args.loglevel).upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    agent = build_agent(args)
    log.info("agent %s for cluster %s on %s (executor %s, every %.1fs)", agent.link.agent, agent.cluster,
             agent.link.host, agent.executor.name, args.interval)

    def stop(signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping after this pass", signum)
        agent.stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    try:
        if args.once:
            agent.run_once()
        else:
            agent.run()
    finally:
        agent.executor.close()
        agent.link.client.close()
    stats = agent.stats
    log.info("agent done: %d received, %d submitted, %d rejected, %d adopted", stats.received, stats.submitted,
             stats.rejected, stats.adopted)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flux python -m rainbow.agent",
                                     description="Pull this cluster's jobs from rainbow and run them")
    add_arguments(parser)
    try:
        apply_environment(parser, "RAINBOW_AGENT_")
    except InvalidArgument as exc:
        parser.error(str(exc))
    args = parser.parse_args(argv)
    try:
        return run(args)
    except RainbowError as exc:
        print(f"rainbow agent: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def add_parser(commands: Any) -> None:
    """Add ``rainbow agent`` to the ``rainbow`` command's subparsers."""
    parser = commands.add_parser("agent", help="pull a cluster's jobs and run them (flux or local executor)")
    add_arguments(parser)
    parser.set_defaults(func=run)
