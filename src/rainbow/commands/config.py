"""``rainbow config init``: write a new rainbow-config.yaml."""

from __future__ import annotations

import argparse

from rainbow.commands.common import emit
from rainbow.config import (
    CONFIG_ENV,
    DEFAULT_CONFIG_PATH,
    DEFAULT_HOST,
    DEFAULT_MATCH,
    DEFAULT_SELECTION,
    RainbowConfig,
    config_path,
)
from rainbow.errors import AlreadyExists


def add_parsers(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    group = commands.add_parser("config", help="create rainbow config files")
    actions = group.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    init = actions.add_parser("init", parents=[common], help="create a new rainbow-config.yaml",
                              description="Create a new rainbow-config.yaml (mode 0600).")
    init.add_argument("--config-path", metavar="FILE",
                      help=f"file to create (default: ${CONFIG_ENV}, else ./{DEFAULT_CONFIG_PATH})")
    init.add_argument("--cluster-name", help="name of this cluster (cluster.name)")
    init.add_argument("--match-algorithm", help="match algorithm to ask for (default: the server's)")
    init.add_argument("--select-algorithm", help="selection algorithm to ask for (default: the server's)")
    init.add_argument("--secret", help="the server's registration secret (scheduler.secret)")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(func=run_init, parser=init)


def run_init(args: argparse.Namespace) -> int:
    path, _ = config_path(args.config_path)
    if path.exists() and not args.force:
        raise AlreadyExists(f"{path} already exists (use --force to overwrite it)", field="config")
    host = args.host or DEFAULT_HOST
    config = RainbowConfig.new(
        args.cluster_name or "",
        host=host,
        match_algorithm=args.match_algorithm or DEFAULT_MATCH,
        selection_algorithm=args.select_algorithm or DEFAULT_SELECTION,
        path=path,
    )
    if not args.cluster_name:
        config.data["cluster"] = {}
    # Only algorithms asked for are written: the others stay the server's choice.
    algorithms = config.data["scheduler"]["algorithms"]
    for kind, chosen in (("selection", args.select_algorithm), ("match", args.match_algorithm)):
        if not chosen:
            del algorithms[kind]
    if not algorithms:
        del config.data["scheduler"]["algorithms"]
    if args.secret:
        config.data["scheduler"]["secret"] = args.secret
    saved = config.save()
    emit(args, {"path": saved, "config": config.data}, f"Wrote rainbow config to {saved}")
    return 0
