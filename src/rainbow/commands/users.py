"""``rainbow user``: add, list and remove users, and issue a user a new token.

Authenticated with the server's registration secret (``--secret``, default the
config's ``scheduler.secret``) or an admin's user token (``--user-token``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rainbow.client import User
from rainbow.commands.common import add_config_path, emit, load_config, make_client, table
from rainbow.config import RainbowConfig, config_path


def add_parsers(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    user = commands.add_parser("user", help="manage users (operators: registration secret or an admin's token)",
                               description="Add, list and remove users; issue a user a new token.")
    actions = user.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True

    add = actions.add_parser("add", parents=[common], help="add a user and print their token (once)",
                             description="Add a user. Their token is printed once (only its hash is kept); "
                             "--save writes it to the user section of a config file (mode 0600).")
    add.add_argument("name", help="the user's name")
    add.add_argument("--group", action="append", default=[], metavar="GROUP",
                     help="a group of the user (repeat; the first is the one their jobs are accounted to)")
    add.add_argument("--admin", action="store_true", help="an admin sees every job and manages users")
    add.add_argument("--save", action="store_true", help="write the name and token to the config's user section")
    _add_secret(add)
    add_config_path(add, help="the config file to save the user to (with --save) and read scheduler.secret from")
    add.set_defaults(func=run_add, parser=add)

    listing = actions.add_parser("list", parents=[common], help="list users",
                                 description="List users with their groups.")
    _add_secret(listing)
    add_config_path(listing)
    listing.set_defaults(func=run_list, parser=listing)

    remove = actions.add_parser("remove", parents=[common], help="remove a user (their token stops working)",
                                description="Remove a user: their token stops working; their jobs keep their name.")
    remove.add_argument("name")
    _add_secret(remove)
    add_config_path(remove)
    remove.set_defaults(func=run_remove, parser=remove)

    token = actions.add_parser("token", parents=[common], help="issue a user a new token (the old one stops working)",
                               description="Issue a user a new token, printed once; the old one stops working.")
    token.add_argument("name")
    token.add_argument("--save", action="store_true", help="write the name and token to the config's user section")
    _add_secret(token)
    add_config_path(token)
    token.set_defaults(func=run_token, parser=token)


def _add_secret(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-s", "--secret", help="the server's registration secret (default: the config's "
                        "scheduler.secret; not needed with an admin's --user-token)")


def _token_text(user: User, saved: Path | None, verb: str) -> str:
    groups = f" (groups: {', '.join(user.groups)})" if user.groups else ""
    admin = " as an admin" if user.admin else ""
    lines = [f"{verb} user {user.name}{groups}{admin}. Token:", f"  {user.token}"]
    if saved is not None:
        lines.append(f"Saved to {saved} (user section, mode 0600).")
    else:
        lines.append(f"It is shown only this once (rainbow user token {user.name} issues a new one).")
    return "\n".join(lines)


def _save(args: argparse.Namespace, config: RainbowConfig | None, user: User) -> Path | None:
    """Write the user's name and token to the config file (created when it does not exist)."""
    if not args.save:
        return None
    if config is None or config.path is None:
        path, _ = config_path(args.config_path)
        # a new file: with the server it was made on, so the user's commands need no --host
        config = RainbowConfig({"graphdatabase": {"host": args.host}} if args.host else {}, path)
    config.set_user(user.name, user.token)
    return config.save()


def _load(args: argparse.Namespace) -> RainbowConfig | None:
    """The config file; with --save one that does not exist yet is created by the save."""
    if getattr(args, "save", False) and not config_path(args.config_path)[0].exists():
        return None
    return load_config(args)


def run_add(args: argparse.Namespace) -> int:
    config = _load(args)
    with make_client(args, config) as client:
        user = client.add_user(args.name, args.group, args.admin, secret=args.secret)
    saved = _save(args, config, user)
    emit(args, {"user": user.name, "token": user.token, "groups": list(user.groups), "admin": user.admin},
         _token_text(user, saved, "Added"))
    return 0


def run_token(args: argparse.Namespace) -> int:
    config = _load(args)
    with make_client(args, config) as client:
        user = client.new_user_token(args.name, secret=args.secret)
    saved = _save(args, config, user)
    emit(args, {"user": user.name, "token": user.token}, _token_text(user, saved, "New token for"))
    return 0


def run_list(args: argparse.Namespace) -> int:
    config = load_config(args)
    with make_client(args, config) as client:
        users = client.list_users(secret=args.secret)
    rows = [(u.name, ",".join(u.groups) or "-", "yes" if u.admin else "no",
             time.strftime("%Y-%m-%d %H:%M", time.localtime(u.created))) for u in users]
    text = table(("USER", "GROUPS", "ADMIN", "CREATED"), rows) if users else "No users."
    emit(args, [{"name": u.name, "groups": list(u.groups), "admin": u.admin, "created": u.created} for u in users],
         text)
    return 0


def run_remove(args: argparse.Namespace) -> int:
    config = load_config(args)
    with make_client(args, config) as client:
        client.remove_user(args.name, secret=args.secret)
    emit(args, {"removed": args.name}, f"Removed user {args.name}: their token no longer works.")
    return 0
