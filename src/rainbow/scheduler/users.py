"""Users, their groups and tokens, and who may use a cluster: what an operator manages.

Credentials are checked before any of this (``Authorization.operator`` /
``cluster_manager``). A token is handed out once, in the reply that creates it;
only its hash is stored.
"""

from __future__ import annotations

from collections.abc import Sequence

from rainbow import credentials
from rainbow.errors import AlreadyExists, InvalidArgument, NotFound
from rainbow.scheduler.context import SchedulerContext, log
from rainbow.scheduler.registry import ClusterEntry, ClusterRegistry
from rainbow.scheduler.validation import check_name
from rainbow.store import AccessRule, UserRecord

ACCESS_KINDS = ("user", "group")
MAX_GROUPS = 64


class Users:
    def __init__(self, context: SchedulerContext, registry: ClusterRegistry) -> None:
        self.context = context
        self.registry = registry

    def add(self, name: str, groups: Sequence[str], admin: bool) -> tuple[UserRecord, str]:
        """A new user with a new token (returned once); AlreadyExists when the name is taken."""
        check_name(name, "name", self.context.limits)
        if len(groups) > MAX_GROUPS:
            raise InvalidArgument(f"groups: at most {MAX_GROUPS}", field="groups")
        for index, group in enumerate(groups):
            check_name(group, f"groups[{index}]", self.context.limits)
        token = credentials.new_secret()
        now = self.context.clock()
        if not self.context.store.add_user(name, credentials.hash_secret(token), admin, groups, now):
            raise AlreadyExists(f"user {name!r} exists (rainbow user token {name} issues a new token)", field="name")
        log.info("added user %s%s%s", name, f" in {', '.join(groups)}" if groups else "", " (admin)" if admin else "")
        return UserRecord(name, tuple(dict.fromkeys(groups)), admin, now), token

    def remove(self, name: str) -> None:
        check_name(name, "name", self.context.limits)
        if not self.context.store.remove_user(name):
            raise NotFound(f"user {name!r} does not exist", field="name")
        log.info("removed user %s", name)

    def new_token(self, name: str) -> tuple[UserRecord, str]:
        """A new token for an existing user; the old one stops working."""
        check_name(name, "name", self.context.limits)
        token = credentials.new_secret()
        if not self.context.store.set_user_token(name, credentials.hash_secret(token)):
            raise NotFound(f"user {name!r} does not exist", field="name")
        record = self.context.store.get_user(name)
        assert record is not None
        log.info("issued a new token for user %s", name)
        return record, token

    def list(self) -> list[UserRecord]:
        return self.context.store.list_users()

    def set_access(self, entry: ClusterEntry, kind: str, name: str, allow: bool | None) -> tuple[AccessRule, ...]:
        """Allow or deny a user or group on a cluster (``allow`` None: remove the rule); the rules after."""
        if kind not in ACCESS_KINDS:
            raise InvalidArgument(f"kind: one of {', '.join(ACCESS_KINDS)} (got {kind!r})", field="kind")
        check_name(name, kind, self.context.limits)
        rules = self.registry.set_access(entry, kind, name, allow)
        verb = "forgot the rule for" if allow is None else ("allowed" if allow else "denied")
        log.info("cluster %s: %s %s %s", entry.name, verb, kind, name)
        return rules
