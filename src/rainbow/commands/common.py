"""What every client subcommand shares: connection flags, the config file, output."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rainbow.client import DEFAULT_TIMEOUT, RainbowClient
from rainbow.config import CONFIG_ENV, DEFAULT_CONFIG_PATH, DEFAULT_HOST, RainbowConfig, config_path
from rainbow.errors import InvalidArgument
from rainbow.lifecycle import Urgency, parse_urgency

USER_TOKEN_ENV = "RAINBOW_USER_TOKEN"  # noqa: S105 - a variable name


def connection_parser() -> argparse.ArgumentParser:
    """Flags of every client subcommand (a parent parser), named as in the Go CLI."""
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("connection")
    group.add_argument("--host", help=f"rainbow server address host:port (default: the config's "
                       f"graphdatabase.host, else {DEFAULT_HOST})")
    group.add_argument("--cert", help="client certificate (PEM) for mutual TLS, with --key")
    group.add_argument("--key", help="client private key (PEM) for mutual TLS")
    group.add_argument("--ca-cert", help="CA certificate (PEM) that signed the server's certificate")
    group.add_argument("--ssl", action="store_true",
                       help="use TLS with the system trust roots (implied by --cert/--key/--ca-cert)")
    group.add_argument("--timeout", type=positive_float, default=DEFAULT_TIMEOUT,
                       help=f"seconds each call may take (default {DEFAULT_TIMEOUT:g})")
    group.add_argument("--wait-for-server", action="store_true",
                       help="wait (within --timeout) for an unreachable server to come up instead of failing at once")
    group.add_argument("--user-token", metavar="TOKEN",
                       help=f"act as a user (default: ${USER_TOKEN_ENV}, else the config's user.token)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    return parser


def positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return number


def submit_urgency(value: str) -> Urgency:
    """``--urgency`` of a submission: a priority (an integer, ``default``, ``expedite``), or ``hold`` (priority 0)."""
    try:
        urgency = parse_urgency(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return urgency if urgency.priority is not None else Urgency(hold=True, priority=0)


DEFAULT_URGENCY = Urgency(hold=False, priority=0)
URGENCY_HELP = ("orders your own waiting jobs, higher first (Flux's --urgency: an integer, default for 0, expedite "
                "for the highest); hold stores the jobs held until rainbow urgency lets them go; fair share "
                "between users comes first (default 0)")


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return number


def add_config_path(parser: argparse.ArgumentParser, required: bool = False, help: str | None = None) -> None:
    """``--config-path``; default ``$RAINBOW_CONFIG``, else ``./rainbow-config.yaml``.

    ``required``: the command cannot run without a config file (it holds the
    credentials or tokens it uses), so a missing default file is an error too.
    """
    parser.add_argument(
        "--config-path",
        metavar="FILE",
        help=(help or "rainbow-config.yaml with the cluster credentials and submit tokens")
        + f" (default: ${CONFIG_ENV}, else ./{DEFAULT_CONFIG_PATH})",
    )
    parser.set_defaults(config_required=required)


def load_config(args: argparse.Namespace) -> RainbowConfig | None:
    """The config the flags (or the environment) name; None when none is named, the default file does
    not exist and the command can do without one."""
    path, named = config_path(getattr(args, "config_path", None))
    # A user token stands in for the tokens a config file would hold.
    required = getattr(args, "config_required", False) and not user_token_of(args)
    if path.exists() or named or required:
        if not path.exists():
            how = (f"rainbow config init --config-path {path}" if named else
                   f"rainbow config init (or give --config-path, or set {CONFIG_ENV}, to use another file)")
            raise InvalidArgument(f"config file {path} does not exist: create one with {how}", field="config")
        return RainbowConfig.load(path)
    return None


def make_client(args: argparse.Namespace, config: RainbowConfig | None) -> RainbowClient:
    return RainbowClient(
        host=args.host,
        config_file=config,
        use_ssl=args.ssl,
        cert=args.cert,
        key=args.key,
        ca_cert=args.ca_cert,
        timeout=args.timeout,
        wait_for_ready=args.wait_for_server,
        user_token=user_token_of(args),
    )


def user_token_of(args: argparse.Namespace) -> str | None:
    """The user token of a command: ``--user-token``, else ``$RAINBOW_USER_TOKEN`` (the config's comes later)."""
    return getattr(args, "user_token", None) or os.environ.get(USER_TOKEN_ENV) or None


def usage_error(args: argparse.Namespace, message: str) -> None:
    """Exit 2 with the subcommand's usage, like argparse does for a bad flag."""
    args.parser.error(message)


def plain(value: Any) -> Any:
    """Dataclasses, tuples and paths as JSON-ready values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """Print ``data`` as JSON with --json, else the human ``text``."""
    if args.json:
        json.dump(plain(data), sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif text:
        print(text)
    sys.stdout.flush()


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns separated by two spaces."""
    cells = [[str(h) for h in headers]] + [[_one_line(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in cells]
    return "\n".join(lines)


def _one_line(value: Any) -> str:
    return " ".join(str(value).split())
