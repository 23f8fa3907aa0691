"""``rainbow delete``: remove a cluster (with its subsystems and jobs) or one subsystem."""

from __future__ import annotations

import argparse

from rainbow.commands.common import add_config_path, emit, load_config, make_client, usage_error


def add_parsers(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    delete = commands.add_parser(
        "delete", parents=[common], help="delete a cluster or one of its subsystems",
        description="Delete a cluster with its subsystems and jobs, or only one subsystem.",
    )
    delete.add_argument("--cluster-name", help="cluster to delete (default: the config's cluster.name)")
    delete.add_argument("--delete-subsystem", metavar="NAME", help="delete only this subsystem")
    delete.add_argument("--delete-secret", metavar="SECRET",
                        help="the cluster's secret (default: the config's cluster.secret)")
    add_config_path(delete)
    delete.set_defaults(func=run, parser=delete)


def run(args: argparse.Namespace) -> int:
    config = load_config(args)
    name = args.cluster_name or (config.cluster_name if config else None)
    if not name:
        usage_error(args, "--cluster-name is required (or cluster.name in the config file)")
    secret = args.delete_secret
    if not secret and config is not None and config.cluster_name == name:
        secret = config.cluster_secret
    if not secret:
        usage_error(args, "--delete-secret is required (or cluster.secret in the config file)")
    with make_client(args, config) as client:
        if args.delete_subsystem:
            result = client.delete_subsystem(name, args.delete_subsystem, secret)
            text = f"Deleted subsystem {result.subsystem} of cluster {result.cluster} ({result.status})"
        else:
            result = client.delete_cluster(name, secret)
            text = f"Deleted cluster {result.cluster} with its subsystems and jobs ({result.status})"
    emit(args, result, text)
    return 0
