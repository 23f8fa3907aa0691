"""``rainbow health``: the server's grpc.health.v1 status, as a container or Kubernetes probe checks it."""

from __future__ import annotations

import argparse

from rainbow.commands.common import emit, load_config, make_client


def add_parsers(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    health = commands.add_parser(
        "health",
        parents=[common],
        help="check that a server is serving (exit 0) or not (exit 1)",
        description="Ask the server's standard health service (grpc.health.v1) for its status. Exits 0 when it "
        "is SERVING, 1 otherwise (not serving, unknown service, unreachable).",
    )
    health.add_argument(
        "--service",
        default="",
        help="service to ask about, e.g. service.MemoryGraph (default: the whole server)",
    )
    health.add_argument("--config-path", metavar="FILE", help="rainbow-config.yaml naming the server")
    health.set_defaults(func=run, parser=health)


def run(args: argparse.Namespace) -> int:
    with make_client(args, load_config(args)) as client:
        status = client.health(args.service)
        emit(args, {"host": client.host, "service": args.service, "status": status}, f"{client.host}: {status}")
    return 0 if status == "SERVING" else 1
