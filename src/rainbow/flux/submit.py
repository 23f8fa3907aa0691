"""``flux python -m rainbow.submit``: ``flux submit`` options, but the job goes to rainbow.

The command line is parsed by flux-core's own ``flux submit`` parser
(``flux.cli.submit.SubmitCmd``), so every option users know (``-N``, ``-n``,
``-c``, ``-g``, ``-t``, ``--setattr``, ``--env``, ``--job-name``...) builds the
jobspec exactly as ``flux submit`` would. The jobspec is then sent to rainbow,
which picks a cluster, instead of to the local queue.

Two differences, because the job may run on another cluster: the environment
holds only the variables given with ``--env``/``--env-file`` (not a copy of
this shell's), resource limits only those given with ``--rlimit`` (not this
shell's), and the working directory is kept only with ``--keep-cwd``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def _parser_and_command() -> tuple[Any, argparse.ArgumentParser]:
    from flux.cli.submit import SubmitCmd

    command = SubmitCmd("flux rainbow submit", description="send a job to rainbow, with flux submit options")
    parser = command.get_parser()
    group = parser.add_argument_group("rainbow")
    group.add_argument("--config-path", required=True, help="rainbow-config.yaml with the submit tokens")
    group.add_argument("--rainbow-host", help="rainbow server host:port (default: from the config)")
    group.add_argument("--select-algorithm", help="selection algorithm for this job (default: the config's)")
    group.add_argument("--keep-cwd", action="store_true", help="keep the current directory as the job's cwd")
    return command, parser


def build_jobspec(command: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The V1 jobspec ``flux submit`` would build from ``args``, trimmed for another cluster."""
    args.env = ["-*", *(args.env or [])]
    args.rlimit = ["-*", *(args.rlimit or [])]
    jobspec = command.jobspec_create(args)
    spec = json.loads(jobspec.dumps())
    system = spec.setdefault("attributes", {}).setdefault("system", {})
    if not system.get("environment"):
        system.pop("environment", None)
    options = system.get("shell", {}).get("options", {})
    if "rlimit" in options and not options["rlimit"]:
        del options["rlimit"]
        if not options:
            system["shell"].pop("options")
        if not system["shell"]:
            system.pop("shell")
    if not args.keep_cwd:
        system.pop("cwd", None)
    return spec


def main(argv: list[str] | None = None) -> int:
    from rainbow.client import RainbowClient
    from rainbow.errors import RainbowError

    command, parser = _parser_and_command()
    args = parser.parse_args(argv)
    if not args.command:
        parser.error("a command is required")
    try:
        spec = build_jobspec(command, args)
    except (ValueError, TypeError, OSError) as exc:
        print(f"flux rainbow submit: error: {exc}", file=sys.stderr)
        return 1
    if args.dry_run:
        print(json.dumps(spec, indent=2, ensure_ascii=False))
        return 0
    name = (spec["attributes"]["system"].get("job") or {}).get("name") or args.command[0]
    try:
        with RainbowClient(args.rainbow_host, config_file=args.config_path) as client:
            result = client.submit_jobspec(spec, name=name, select_algo=args.select_algorithm)
    except RainbowError as exc:
        print(f"flux rainbow submit: error: {exc}", file=sys.stderr)
        return 1
    where = f"-> cluster {result.cluster}" if result.cluster else "waits for its dependencies (placed when released)"
    print(f"rainbow job {result.jobid} ({name}) {where}")
    return 0
