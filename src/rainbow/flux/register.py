"""``flux python -m rainbow.register``: register the enclosing Flux instance with rainbow.

Reads the instance's resources (``flux.resource.resource_list``, Rv1), memory
(hwloc XML, ``resource.topo-get``) and queues (``flux.queue.QueueList``), builds the cluster JGF (``cluster > node >
core/gpu``, queues in ``graph.metadata``), registers it and, with
``--save``, writes the cluster's secret and submit token to the config file.
Works from inside any Flux instance, nested ones included (``flux alloc``,
``flux batch``). ``--R FILE`` registers a saved R instead (no Flux needed).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rainbow.errors import InvalidArgument, RainbowError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flux python -m rainbow.register",
                                     description="Register this Flux instance as a rainbow cluster")
    parser.add_argument("--host", help="rainbow server host:port (default: graphdatabase.host of the config)")
    parser.add_argument("--secret", help="the server's registration secret (default: scheduler.secret of the config)")
    parser.add_argument("--cluster-name", help="cluster name (default: cluster.name of the config, else the hosts' "
                        "base name, plus the job id in a nested instance)")
    parser.add_argument("--config-path", help="rainbow-config.yaml to read and (with --save) write "
                        "(default: $RAINBOW_CONFIG, else ./rainbow-config.yaml; --dry-run needs none)")
    parser.add_argument("--save", action="store_true", help="write the cluster secret and token to the config")
    parser.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="seconds the registration may take (default: the rainbow client's, 60)")
    parser.add_argument("--wait-for-server", action="store_true",
                        help="wait (within --timeout) for an unreachable server to come up instead of failing at once")
    parser.add_argument("--renew", action="store_true",
                        help="when the cluster is registered already (its saved credentials lost), issue it new "
                        "ones, as rainbow cluster renew: the old ones stop working")
    parser.add_argument("--dry-run", action="store_true", help="print the cluster JGF and exit")
    parser.add_argument("--R", dest="r_file", metavar="FILE",
                        help="register this Rv1 file (`flux R encode`, `flux kvs get resource.R`) instead")
    return parser


def read_R(r_file: str | None) -> tuple[dict[str, Any], Any]:
    """(R, flux handle or None): from a file, else from the enclosing instance."""
    if r_file:
        try:
            return json.loads(Path(r_file).read_text()), None
        except (OSError, ValueError) as exc:
            raise InvalidArgument(f"--R {r_file}: {exc}", field="R") from None
    try:
        from rainbow.flux.adapter import instance_R, open_handle

        handle = open_handle()
        return instance_R(handle), handle
    except ImportError:
        raise InvalidArgument("reading the instance's resources needs flux-core's Python bindings: "
                              "run `flux python -m rainbow.register` inside a Flux instance, or pass --R FILE",
                              field="R") from None
    except OSError as exc:
        raise InvalidArgument(f"cannot connect to a Flux instance ({exc}): run this inside one "
                              "(flux start, flux alloc, flux batch), or pass --R FILE", field="R") from None


def run(args: argparse.Namespace) -> int:
    from rainbow.config import RainbowConfig, config_path
    from rainbow.flux.resources import r_cluster_name, r_nodes, r_summary, r_to_jgf

    path, _ = config_path(args.config_path)
    config = RainbowConfig.load(path) if path.exists() else None
    R, handle = read_R(args.r_file)
    name = args.cluster_name or (config.cluster_name if config else None)
    if not name:
        if handle is not None:
            from rainbow.flux.adapter import instance_name

            name = instance_name(handle, R)
        else:
            name = r_cluster_name(R)
    queues, memory = None, None
    if handle is not None:
        from rainbow.flux.adapter import instance_memory, instance_queues

        memory = instance_memory(handle, [node.rank for node in r_nodes(R)])
        try:
            queues = instance_queues(handle).to_dict()
        except (OSError, ValueError) as exc:
            print(f"rainbow register: warning: cannot read the instance's queues ({exc}); "
                  "registering one unlimited queue", file=sys.stderr)
    jgf = r_to_jgf(R, name, queues, memory)
    if args.dry_run:
        print(json.dumps(jgf, indent=2))
        return 0
    from rainbow.client import DEFAULT_TIMEOUT, RainbowClient

    if args.timeout is not None and args.timeout <= 0:
        raise InvalidArgument("--timeout: must be greater than 0", field="timeout")
    if config is None:
        config = RainbowConfig.new(name, host=args.host or "localhost:50051", path=path)
    with RainbowClient(args.host, config_file=config, timeout=args.timeout or DEFAULT_TIMEOUT,
                       wait_for_ready=args.wait_for_server) as client:
        result = client.register(name, args.secret, jgf, save=args.save)
        renewed = result.exists and args.renew
        if renewed:
            result = client.renew_cluster_credentials(name, secret=args.secret, save=args.save)
    counts = r_summary(R)
    shape = f"{counts['nodes']} nodes, {counts['cores']} cores, {counts['gpus']} GPUs"
    named = [q["name"] for q in (queues or {}).get("queues", []) if q["name"]]
    if named:
        shape += ", queues " + ", ".join(named)
    if result.exists:
        print(f"cluster {name!r} is already registered with {client.host}; "
              f"its credentials are the ones saved when it was first registered (lost them? --renew issues "
              "new ones)")
        return 0
    if renewed:
        print(f"cluster {name!r} was registered already with {client.host}: issued it new credentials (the old "
              "ones no longer work)")
    else:
        print(f"registered cluster {name!r} ({shape}) with {client.host}")
    if args.save:
        print(f"saved its secret and submit token to {path}")
    else:
        print(f"secret: {result.secret}\ntoken: {result.token}\n(pass --save to keep them in {path})")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except RainbowError as exc:
        print(f"rainbow register: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
