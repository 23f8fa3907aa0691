"""``rainbow cluster allow|deny|rules``: who may use a cluster.

A cluster without rules is open to every authenticated user. ``allow`` names
users or groups and closes the cluster to everyone else; ``deny`` refuses a
user or group (a deny wins over an allow). Authenticated with the cluster's own
secret (default the config's ``cluster.secret`` for its cluster), the server's
registration secret, or an admin's user token.
"""

from __future__ import annotations

import argparse

from rainbow.client import ClusterAccess
from rainbow.commands.common import add_config_path, emit, load_config, make_client, table


def add_parsers(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    cluster = commands.add_parser("cluster", help="who may use a cluster (allow, deny, rules)",
                                  description="Restrict who may use a cluster. Without rules a cluster is open "
                                  "to every authenticated user.")
    actions = cluster.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    for action, text in (("allow", "allow a user or group (the cluster closes to those not allowed)"),
                         ("deny", "deny a user or group (a deny wins over an allow)")):
        parser = actions.add_parser(action, parents=[common], help=text, description=text[0].upper() + text[1:] + ".")
        parser.add_argument("cluster")
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument("--user", help="the user the rule is for")
        who.add_argument("--group", help="the group the rule is for")
        parser.add_argument("--remove", action="store_true", help="forget this rule instead of setting it")
        _add_secret(parser)
        parser.set_defaults(func=run_set, parser=parser, allow=action == "allow")
    rules = actions.add_parser("rules", parents=[common], help="show who may use a cluster",
                               description="Show a cluster's access rules.")
    rules.add_argument("cluster")
    _add_secret(rules)
    rules.set_defaults(func=run_rules, parser=rules)


def _add_secret(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-s", "--secret", help="the cluster's secret or the registration secret (default: the "
                        "config's cluster.secret for its cluster, else scheduler.secret; not needed with an "
                        "admin's --user-token)")
    add_config_path(parser)


def _rules_text(access: ClusterAccess) -> str:
    if not access.rules:
        return f"Cluster {access.cluster} is open to every authenticated user (no rules)."
    rows = [(rule.kind, rule.name, "allow" if rule.allow else "deny") for rule in access.rules]
    return f"Cluster {access.cluster}:\n" + table(("KIND", "NAME", "RULE"), rows)


def run_set(args: argparse.Namespace) -> int:
    config = load_config(args)
    with make_client(args, config) as client:
        access = client.set_cluster_access(args.cluster, user=args.user, group=args.group, allow=args.allow,
                                           remove=args.remove, secret=args.secret)
    emit(args, access, _rules_text(access))
    return 0


def run_rules(args: argparse.Namespace) -> int:
    config = load_config(args)
    with make_client(args, config) as client:
        access = client.cluster_access(args.cluster, secret=args.secret)
    emit(args, access, _rules_text(access))
    return 0
