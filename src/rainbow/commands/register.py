"""``rainbow register cluster`` and ``rainbow register subsystem``."""

from __future__ import annotations

import argparse
from pathlib import Path

from rainbow.commands.common import add_config_path, emit, load_config, make_client, plain, usage_error
from rainbow.config import DEFAULT_CONFIG_PATH, RainbowConfig
from rainbow.errors import AlreadyExists


def add_parsers(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    group = commands.add_parser("register", help="register a cluster or a subsystem")
    kinds = group.add_subparsers(dest="kind", metavar="KIND")
    kinds.required = True

    cluster = kinds.add_parser(
        "cluster", parents=[common], help="register a cluster with its resource graph",
        description="Register a cluster with its JGF resource graph. Prints the cluster secret and the "
        "submit token, or saves them to the config file with --save.",
    )
    cluster.add_argument("--cluster-name", help="cluster name (default: the config's cluster.name)")
    cluster.add_argument("--nodes-json", required=True, metavar="FILE", help="cluster resource graph (JGF)")
    add_config_path(cluster)
    cluster.add_argument("-s", "--secret",
                         help="the server's registration secret (default: the config's scheduler.secret)")
    cluster.add_argument("--save", action="store_true",
                         help="save the cluster secret and token to the config file (mode 0600)")
    cluster.set_defaults(func=run_cluster, parser=cluster)

    subsystem = kinds.add_parser(
        "subsystem", parents=[common], help="add a subsystem graph (io, spack, ...) to a registered cluster",
        description="Add a subsystem graph to the cluster of the config file (cluster.name, cluster.secret).",
    )
    subsystem.add_argument("--subsystem", required=True, help="subsystem name (e.g. io)")
    subsystem.add_argument("--nodes-json", required=True, metavar="FILE", help="subsystem graph (JGF)")
    subsystem.add_argument("--cluster-name", help="cluster name (default: the config's cluster.name)")
    add_config_path(subsystem, required=True)
    subsystem.set_defaults(func=run_subsystem, parser=subsystem)


def run_cluster(args: argparse.Namespace) -> int:
    config = load_config(args)
    if args.save and config is None:
        usage_error(args, f"--save needs a config file to write to: ./{DEFAULT_CONFIG_PATH} does not exist "
                    "(create it with rainbow config init, or give --config-path)")
    name = args.cluster_name or (config.cluster_name if config else None)
    if not name:
        usage_error(args, "--cluster-name is required (or cluster.name in the config file)")
    if not (args.secret or (config.scheduler_secret if config else None)):
        usage_error(args, "--secret is required (the server's registration secret, or scheduler.secret "
                    "in the config file)")
    with make_client(args, config) as client:
        result = client.register(name, args.secret, Path(args.nodes_json), save=args.save)
    saved = str(config.path) if args.save and result.created and config is not None else None
    if not result.created:
        held = config is not None and config.cluster_name == name and bool(config.cluster_secret)
        if args.save and not held:
            raise AlreadyExists(already_registered(name, config), field="cluster")
        text = f"Cluster {name} is already registered ({result.status}); no new credentials were issued"
        if held:
            text += f" (its credentials are already in {config.path})"
    elif saved:
        text = f"Registered cluster {name} ({result.status})\nSaved its secret and token to {saved}"
    else:
        text = (f"Registered cluster {name} ({result.status})\n"
                f"secret: {result.secret}\n"
                f" token: {result.token}\n"
                "Keep the secret (cluster.secret) to receive jobs; give the token to submitters (clusters).")
    emit(args, {**plain(result), "saved": saved}, text)
    return 0


def already_registered(name: str, config: RainbowConfig | None) -> str:
    """What to do when a cluster to register (and save) exists: its credentials are issued only once."""
    where = f" to {config.path}" if config is not None and config.path else ""
    return (f"cluster {name} is already registered, so there are no new credentials to save{where}. "
            f"Use the config file that saved them when {name} was registered, or issue new ones (the old ones "
            f"stop working): rainbow cluster renew {name} --secret REGISTRATION-SECRET --save")


def run_subsystem(args: argparse.Namespace) -> int:
    config = load_config(args)
    with make_client(args, config) as client:
        result = client.register_subsystem(args.cluster_name, args.subsystem, None, Path(args.nodes_json))
    text = f"Registered subsystem {result.subsystem} of cluster {result.cluster} ({result.status})"
    emit(args, result, text)
    return 0

