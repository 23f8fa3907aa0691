"""``rainbow cluster allow|deny|rules|renew``: who may use a cluster, and its credentials.

A cluster without rules is open to every authenticated user. ``allow`` names
users or groups and closes the cluster to everyone else; ``deny`` refuses a
user or group (a deny wins over an allow). ``renew`` issues the cluster a new
secret and submit token (a lost config, a leaked credential). Authenticated with
the cluster's own secret (default the config's ``cluster.secret`` for its
cluster), the server's registration secret, or an admin's user token.
"""

from __future__ import annotations

import argparse

from rainbow.client import ClusterAccess
from rainbow.commands.common import add_config_path, emit, load_config, make_client, plain, table


def add_parsers(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    cluster = commands.add_parser("cluster", help="who may use a cluster (allow, deny, rules); new credentials "
                                  "(renew)", description="Restrict who may use a cluster (without rules a cluster "
                                  "is open to every authenticated user), or renew its credentials.")
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
    renew = actions.add_parser(
        "renew", parents=[common], help="issue a cluster a new secret and submit token",
        description="Issue a registered cluster a new secret and submit token, for a lost config or a leaked "
        "credential. The old ones stop working at once: restart the cluster's agent with the new config, and "
        "give submitters the new token. Jobs, graph and rules stay.")
    renew.add_argument("cluster")
    renew.add_argument("--save", action="store_true",
                       help="write the new secret and token to the config file (cluster and clusters sections)")
    _add_secret(renew)
    renew.set_defaults(func=run_renew, parser=renew)


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


def run_renew(args: argparse.Namespace) -> int:
    config = load_config(args)
    with make_client(args, config) as client:
        renewed = client.renew_cluster_credentials(args.cluster, secret=args.secret, save=args.save)
    if args.save and config is not None:
        text = f"New credentials for cluster {renewed.cluster}\nSaved its secret and token to {config.path}"
    else:
        text = (f"New credentials for cluster {renewed.cluster}\n"
                f"secret: {renewed.secret}\n"
                f" token: {renewed.token}\n"
                "The old ones no longer work: restart its agent with the new secret, give submitters the new token.")
    emit(args, {**plain(renewed), "saved": str(config.path) if args.save and config is not None else None}, text)
    return 0
