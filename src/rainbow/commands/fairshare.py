"""``rainbow share``, ``rainbow quota`` and ``rainbow usage``: fair share, quotas and accounting (docs/users.md).

Operator commands: authenticated with the server's registration secret (``--secret``, default the config's
``scheduler.secret``) or an admin's user token (``--user-token``), as ``rainbow user`` is.
"""

from __future__ import annotations

import argparse
import datetime
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from rainbow.client import Usage
from rainbow.commands.common import add_config_path, emit, load_config, make_client, table
from rainbow.durations import format_duration, parse_duration
from rainbow.errors import InvalidArgument
from rainbow.fairshare import Limit, Standing

FINAL_COLUMNS = ("completed", "failed", "cancelled")


def add_parsers(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    _share_parsers(commands, common)
    _quota_parsers(commands, common)
    usage = commands.add_parser(
        "usage", parents=[common], help="jobs and node-hours per user, group or cluster, and the fair-share view",
        description="Jobs by final state and the node-hours they ran, per user, group or cluster, from the job "
        "records; then each user's usage, shares and resulting fair-share factor (as sshare shows them).")
    usage.add_argument("--by", choices=("user", "group", "cluster"), default="user",
                       help="what to total per (default user)")
    usage.add_argument("--since", metavar="DATE",
                       help="only jobs that changed since DATE (2026-12-01, 2026-12-01T08:00) or since that long "
                       "ago (a Flux duration: 7d, 12h)")
    _operator(usage)
    usage.set_defaults(func=run_usage, parser=usage)


def _operator(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-s", "--secret", help="the server's registration secret (default: the config's "
                        "scheduler.secret; not needed with an admin's --user-token)")
    add_config_path(parser)


def _owner(parser: argparse.ArgumentParser) -> None:
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", metavar="USER", help="a user")
    who.add_argument("--group", metavar="GROUP", help="a group (a bank)")


def _share_parsers(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    share = commands.add_parser("share", help="fair-share shares of users and groups (banks)",
                                description="Groups are banks in a tree (a bank may have a parent); users and "
                                "banks hold shares within their parent. Default: one share each.")
    actions = share.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    setting = actions.add_parser("set", parents=[common], help="set a user's or group's shares",
                                 description="Set the shares of a user (within their banks) or of a group "
                                 "(within its parent bank; --parent sets the parent too).")
    _owner(setting)
    setting.add_argument("shares", type=int, metavar="N", help="shares (0 or more)")
    setting.add_argument("--parent", metavar="GROUP", help="a group's parent bank")
    _operator(setting)
    setting.set_defaults(func=run_share_set, parser=setting)

    load = actions.add_parser("load", parents=[common], help="load banks, users and shares from a YAML file",
                              description="Apply a YAML (or JSON) accounts file in one transaction: banks "
                              "(name, parent, shares) and users (name, banks, shares, admin). Users it creates are "
                              "printed with their tokens, once.")
    load.add_argument("file", metavar="FILE")
    _operator(load)
    load.set_defaults(func=run_share_load, parser=load)

    listing = actions.add_parser("list", parents=[common], help="each user's shares, usage and fair-share factor",
                                 description="The fair-share view, as sshare shows it.")
    _operator(listing)
    listing.set_defaults(func=run_share_list, parser=listing)


def _quota_parsers(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    quota = commands.add_parser("quota", help="limits on what a user or group may queue and run",
                                description="Over --max-waiting a submit is refused (RESOURCE_EXHAUSTED); over "
                                "--max-running or --max-nodes jobs wait until running jobs end.")
    actions = quota.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    setting = actions.add_parser("set", parents=[common], help="set a user's or group's quota",
                                 description="Set the quota of a user or group, on one cluster or all (a limit "
                                 "not given is not limited).")
    _owner(setting)
    setting.add_argument("--cluster", metavar="CLUSTER", help="only on this cluster (default: all)")
    setting.add_argument("--max-waiting", type=int, metavar="N", help="jobs waiting in rainbow at once")
    setting.add_argument("--max-running", type=int, metavar="N", help="jobs handed out and not ended at once")
    setting.add_argument("--max-nodes", type=int, metavar="N", help="nodes of the jobs handed out and not ended")
    _operator(setting)
    setting.set_defaults(func=run_quota_set, parser=setting)

    remove = actions.add_parser("remove", parents=[common], help="forget a user's or group's quota")
    _owner(remove)
    remove.add_argument("--cluster", metavar="CLUSTER", help="the quota of this cluster (default: of all)")
    _operator(remove)
    remove.set_defaults(func=run_quota_remove, parser=remove)

    listing = actions.add_parser("list", parents=[common], help="list quotas")
    _operator(listing)
    listing.set_defaults(func=run_quota_list, parser=listing)


def parse_since(text: str | None, now: float | None = None) -> float:
    """``--since``: a date or date and time (local), or a Flux duration meaning that long ago; 0 when None."""
    if not text:
        return 0.0
    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        pass
    try:
        return (time.time() if now is None else now) - parse_duration(text, "since")
    except InvalidArgument:
        raise InvalidArgument(f"since: expected a date (2026-12-01, 2026-12-01T08:00) or a duration (7d), "
                              f"not {text!r}", field="since") from None


def _number(value: float) -> str:
    return f"{value:.4f}" if value < 10 else f"{value:.1f}"


def standings_text(standings: Sequence[Standing]) -> str:
    if not standings:
        return "No users."
    rows = [(s.bank or "(root)", s.user, s.shares, _number(s.norm_shares), _number(s.usage / 3600.0),
             _number(s.norm_usage), _number(s.effective_usage), f"{s.factor:.6f}") for s in standings]
    return table(("BANK", "USER", "RAW-SHARES", "NORM-SHARES", "RAW-USAGE(node-h)", "NORM-USAGE",
                  "EFFECTIVE-USAGE", "FAIRSHARE"), rows)


def _standings_data(standings: Sequence[Standing]) -> list[dict]:
    return [{**asdict(s), "usage_node_hours": s.usage / 3600.0} for s in standings]


def usage_text(usage: Usage) -> str:
    keys: dict[str, dict[str, float]] = {}
    for total in usage.totals:
        row = keys.setdefault(total.key, {"node_hours": 0.0})
        column = total.state if total.state in FINAL_COLUMNS else "active"
        row[column] = row.get(column, 0) + total.jobs
        row["node_hours"] += total.node_hours
    since = (f" since {time.strftime('%Y-%m-%d %H:%M', time.localtime(usage.since))}" if usage.since else "")
    lines = [f"Jobs per {usage.by}{since}:"]
    if keys:
        rows = [(key or "-", *(int(row.get(c, 0)) for c in (*FINAL_COLUMNS, "active")), _number(row['node_hours']))
                for key, row in sorted(keys.items())]
        lines.append(table((usage.by.upper(), *(c.upper() for c in FINAL_COLUMNS), "ACTIVE", "NODE-HOURS"), rows))
    else:
        lines.append("No jobs.")
    half_life = format_duration(usage.half_life) if usage.half_life else "none (no decay)"
    lines += ["", f"Fair share (F = 2^(-U_E/S); usage half-life {half_life}):", standings_text(usage.standings)]
    return "\n".join(lines)


def run_usage(args: argparse.Namespace) -> int:
    since = parse_since(args.since)
    config = load_config(args)
    with make_client(args, config) as client:
        usage = client.usage(args.by, since, secret=args.secret)
    emit(args, usage.to_dict(), usage_text(usage))
    return 0


def run_share_set(args: argparse.Namespace) -> int:
    config = load_config(args)
    with make_client(args, config) as client:
        standings = client.set_shares(args.shares, user=args.user, group=args.group, parent=args.parent,
                                      secret=args.secret)
    who = f"user {args.user}" if args.user else f"group {args.group}"
    parent = f" in bank {args.parent}" if args.parent else ""
    emit(args, _standings_data(standings), f"Set {who} to {args.shares} shares{parent}.\n"
         + standings_text(standings))
    return 0


def run_share_load(args: argparse.Namespace) -> int:
    config = load_config(args)
    with make_client(args, config) as client:
        created = client.load_accounts(Path(args.file), secret=args.secret)
        standings = client.usage(secret=args.secret).standings
    lines = [f"Loaded {args.file}."]
    for user in created:
        lines += [f"Added user {user.name}. Token (shown only this once):", f"  {user.token}"]
    emit(args, {"created": [{"user": u.name, "token": u.token} for u in created],
                "shares": _standings_data(standings)}, "\n".join([*lines, standings_text(standings)]))
    return 0


def run_share_list(args: argparse.Namespace) -> int:
    config = load_config(args)
    with make_client(args, config) as client:
        standings = client.usage(secret=args.secret).standings
    emit(args, _standings_data(standings), standings_text(standings))
    return 0


def quotas_text(quotas: Sequence[Limit]) -> str:
    if not quotas:
        return "No quotas."

    def cell(value: int | None) -> str:
        return "-" if value is None else str(value)

    rows = [(q.kind, q.name, q.cluster or "(all)", cell(q.max_waiting), cell(q.max_running), cell(q.max_nodes))
            for q in quotas]
    return table(("KIND", "NAME", "CLUSTER", "MAX-WAITING", "MAX-RUNNING", "MAX-NODES"), rows)


def run_quota_set(args: argparse.Namespace) -> int:
    if args.max_waiting is None and args.max_running is None and args.max_nodes is None:
        args.parser.error("give at least one of --max-waiting, --max-running, --max-nodes")
    config = load_config(args)
    with make_client(args, config) as client:
        quotas = client.set_quota(user=args.user, group=args.group, cluster=args.cluster,
                                  max_waiting=args.max_waiting, max_running=args.max_running,
                                  max_nodes=args.max_nodes, secret=args.secret)
    emit(args, [asdict(q) for q in quotas], quotas_text(quotas))
    return 0


def run_quota_remove(args: argparse.Namespace) -> int:
    config = load_config(args)
    with make_client(args, config) as client:
        quotas = client.set_quota(user=args.user, group=args.group, cluster=args.cluster, remove=True,
                                  secret=args.secret)
    emit(args, [asdict(q) for q in quotas], quotas_text(quotas))
    return 0


def run_quota_list(args: argparse.Namespace) -> int:
    config = load_config(args)
    with make_client(args, config) as client:
        quotas = client.list_quotas(secret=args.secret)
    emit(args, [asdict(q) for q in quotas], quotas_text(quotas))
    return 0

