"""``rainbow update state``: report a cluster's key/value state."""

from __future__ import annotations

import argparse
from pathlib import Path

from rainbow.commands.common import add_config_path, emit, load_config, make_client


def add_parsers(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    group = commands.add_parser("update", help="update a registered cluster")
    kinds = group.add_subparsers(dest="kind", metavar="KIND")
    kinds.required = True
    state = kinds.add_parser(
        "state", parents=[common], help="report the cluster's state (flat JSON key/values) for selection",
        description="Send a flat JSON object of key/value pairs (nodes_free, cost_per_node_hour, ...) as the "
        "state of the config file's cluster.",
    )
    state.add_argument("--state-file", required=True, metavar="FILE", help="JSON object of key/value pairs")
    state.add_argument("--cluster-name", help="cluster name (default: the config's cluster.name)")
    add_config_path(state, required=True)
    state.set_defaults(func=run_state, parser=state)


def run_state(args: argparse.Namespace) -> int:
    config = load_config(args)
    with make_client(args, config) as client:
        result = client.update_state(args.cluster_name, Path(args.state_file))
    keys = ", ".join(f"{key}={value}" for key, value in result.state.items())
    emit(args, result, f"Updated state of cluster {result.cluster} ({result.status}): {keys}")
    return 0
