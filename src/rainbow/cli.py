"""The `rainbow` command.

``rainbow server`` runs the scheduler; every other subcommand is a thin layer
over :class:`rainbow.client.RainbowClient` (parse flags, call, print). Errors
go to stderr as ``rainbow: error: <message>`` with exit code 1 (2 for usage),
never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

from rainbow.environment import apply_environment
from rainbow.errors import InvalidArgument, RainbowError
from rainbow.version import __version__

# Subcommands whose options can also come from environment variables (see rainbow.environment).
ENVIRONMENT_PREFIXES = {"server": "RAINBOW_SERVER_", "agent": "RAINBOW_AGENT_"}


def build_parser() -> argparse.ArgumentParser:
    from rainbow import demo
    from rainbow.agent import command as agent_command
    from rainbow.commands import add_client_commands
    from rainbow.server import command as server_command

    parser = argparse.ArgumentParser(prog="rainbow", description="Rainbow multi-cluster scheduler")
    parser.add_argument("--version", action="version", version=f"rainbow {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    server = commands.add_parser("server", help="run the rainbow scheduler server",
                                 description=server_command.DESCRIPTION,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    server_command.add_arguments(server)
    server.set_defaults(func=server_command.run)
    add_client_commands(commands)
    agent_command.add_parser(commands)
    demo.add_parser(commands)
    for name, prefix in ENVIRONMENT_PREFIXES.items():
        subparser = commands.choices[name]
        try:
            apply_environment(subparser, prefix)
        except InvalidArgument as exc:
            # reported only when this subcommand runs: a bad server variable must not break `rainbow submit`
            subparser.set_defaults(environment_error=str(exc))
    return parser


def quiet_grpc_core() -> None:
    """gRPC's C core writes its own lines to stderr (a failed bind, a failed handshake...); the command
    says what failed in one line of its own. Set GRPC_VERBOSITY (debug, info, error) to see the core's."""
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")


def main(argv: list[str] | None = None) -> int:
    quiet_grpc_core()  # read when grpc is imported, so before build_parser imports it
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "environment_error", None):
        print(f"rainbow {args.command}: error: {args.environment_error}", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except RainbowError as exc:
        print(f"rainbow: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        print(f"rainbow: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
