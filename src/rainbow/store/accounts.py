"""The fair-share side of the store, written once for both backends: banks (groups) and their shares, users'
shares, quotas, and what the job records say about usage.

``AccountsSQL`` is mixed into ``SQLStore``; its statements use the same dialect (``%s`` placeholders).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from rainbow.fairshare import ROOT, Association, Bank, Limit, UsageRecord
from rainbow.lifecycle import FINAL_STATES

T = TypeVar("T")

# Jobs handed out and not ended: what max-running / max-nodes and the fair-share charge count (one parameter: now).
HELD = "((state = 'leased' AND lease_expires > %s) OR state IN ('accepted', 'submitted', 'running'))"
# What ``rainbow usage --by`` may group on: the column of each.
TOTAL_KEYS = {"user": '"user"', "group": "grp", "cluster": "cluster"}
_FINAL = tuple(sorted(state.value for state in FINAL_STATES))


@dataclass(frozen=True)
class AccountUser:
    """A user as an accounts file lists them; ``groups`` None keeps their groups, ``token_hash`` is used only
    when the user is new."""

    name: str
    groups: tuple[str, ...] | None = None
    shares: int | None = None
    admin: bool = False
    token_hash: str = ""


@dataclass(frozen=True)
class JobTotal:
    """Jobs of one owner, group or cluster (``key``) in one ``state``, and the node-seconds they ran."""

    key: str
    state: str
    jobs: int
    node_seconds: float


class AccountsSQL:
    """Banks, shares, quotas and usage over ``_read`` / ``_transaction`` of ``SQLStore``."""

    _read: Callable[..., list[tuple]]
    _transaction: Callable[..., tuple[Any, list[Any]]]

    # -- banks and shares ----------------------------------------------------------------
    def set_bank(self, name: str, parent: str | None, shares: int | None) -> None:
        """Create the group (bank) if needed; set its parent (``ROOT``: none) and shares when given."""
        self._transaction(lambda tx: _upsert_bank(tx, Bank(name, parent or ROOT, 1 if shares is None else shares),
                                                  parent is not None, shares is not None))

    def set_user_shares(self, name: str, shares: int) -> bool:
        return self._transaction(lambda tx: tx.one(
            "UPDATE users SET shares = %s WHERE name = %s RETURNING name", (shares, name)
        ))[0] is not None

    def load_accounts(self, banks: Sequence[Bank], users: Sequence[AccountUser], now: float) -> list[str]:
        """Apply an accounts file in one transaction; the names of the users it created."""

        def load(tx: Any) -> list[str]:
            for bank in banks:
                _upsert_bank(tx, bank, True, True)
            created: list[str] = []
            for user in users:
                added = tx.one(
                    "INSERT INTO users (name, token_hash, admin, created, shares) VALUES (%s, %s, %s, %s, %s) "
                    "ON CONFLICT (name) DO NOTHING RETURNING name",
                    (user.name, user.token_hash, bool(user.admin), now, 1 if user.shares is None else user.shares),
                )
                if added is not None:
                    created.append(user.name)
                else:
                    if user.shares is not None:
                        tx.execute("UPDATE users SET shares = %s WHERE name = %s", (user.shares, user.name))
                    if user.admin:
                        tx.execute("UPDATE users SET admin = %s WHERE name = %s", (True, user.name))
                if user.groups is None:
                    continue
                tx.execute('DELETE FROM user_groups WHERE "user" = %s', (user.name,))
                for position, group in enumerate(dict.fromkeys(user.groups)):
                    tx.execute("INSERT INTO groups (name) VALUES (%s) ON CONFLICT (name) DO NOTHING", (group,))
                    tx.execute('INSERT INTO user_groups ("user", grp, position) VALUES (%s, %s, %s)',
                               (user.name, group, position))
            return created

        return self._transaction(load)[0]

    def account_tree(self) -> tuple[list[Bank], list[Association]]:
        """Every bank, and every association: a user in each of their groups (no group: the root)."""
        banks = [Bank(name, parent, shares)
                 for name, parent, shares in self._read("SELECT name, parent, shares FROM groups ORDER BY name")]
        rows = self._read('SELECT u.name, g.grp, u.shares FROM users u LEFT JOIN user_groups g ON g."user" = u.name '
                          "ORDER BY u.name, g.position")
        return banks, [Association(user, group or ROOT, shares) for user, group, shares in rows]

    # -- quotas ------------------------------------------------------------------------------------
    def set_quota(self, limit: Limit) -> None:
        self._transaction(lambda tx: tx.execute(
            "INSERT INTO quotas (kind, name, cluster, max_waiting, max_running, max_nodes) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (kind, name, cluster) DO UPDATE SET "
            "max_waiting = excluded.max_waiting, max_running = excluded.max_running, max_nodes = excluded.max_nodes",
            (limit.kind, limit.name, limit.cluster, limit.max_waiting, limit.max_running, limit.max_nodes),
        ))

    def remove_quota(self, kind: str, name: str, cluster: str) -> bool:
        return self._transaction(lambda tx: tx.one(
            "DELETE FROM quotas WHERE kind = %s AND name = %s AND cluster = %s RETURNING name", (kind, name, cluster)
        ))[0] is not None

    def list_quotas(self) -> list[Limit]:
        rows = self._read("SELECT kind, name, cluster, max_waiting, max_running, max_nodes FROM quotas "
                          "ORDER BY kind, name, cluster")
        return [Limit(*row) for row in rows]

    def count_queued(self, kind: str, name: str, cluster: str = "") -> int:
        """Jobs of a user (``kind`` "user") or group waiting in rainbow, on ``cluster`` ('' : any, counting
        the jobs waiting for their dependencies too, whose listing cluster is not where they will run; on one
        cluster only those placed there)."""
        # by cluster and state first: the indexes hold only what waits to be read (never the owner's history)
        column = '"user"' if kind == "user" else "grp"
        where = "cluster = %s" if cluster else "cluster IN (SELECT name FROM clusters)"
        scope = [cluster] if cluster else []
        states = ("assigned", "leased", "held") if cluster else ("assigned", "leased", "held", "depend")
        return sum(self._read(f"SELECT COUNT(*) FROM jobs WHERE {where} AND state = '{state}' "  # noqa: S608
                              f"AND {column} = %s", [*scope, name])[0][0] for state in states)

    # -- usage ----------------------------------------------------------------------------------------
    def ended_runs(self, since: float) -> list[tuple[int, UsageRecord]]:
        """(job id, run) of the jobs that ended (after they started) at ``since`` or later."""
        rows = self._read('SELECT id, "user", grp, nodes, started, ended FROM jobs '
                          "WHERE ended IS NOT NULL AND ended >= %s", (since,))
        return [(job_id, UsageRecord(user, grp, nodes, started, ended))
                for job_id, user, grp, nodes, started, ended in rows]

    def open_runs(self) -> list[UsageRecord]:
        """Runs without a reported end: running now (end None), or over by another way than a report (their
        last change is their end)."""
        rows = self._read('SELECT "user", grp, nodes, started, state, updated FROM jobs '
                          "WHERE ended IS NULL AND started IS NOT NULL")
        return [UsageRecord(user, grp, nodes, started, updated if state in _FINAL else None)
                for user, grp, nodes, started, state, updated in rows]

    def job_totals(self, by: str, since: float) -> list[JobTotal]:
        """Jobs per ``by`` ("user", "group", "cluster") and state, with the node-seconds they ran, of the jobs
        changed since ``since`` (a running job: up to its last change)."""
        column = TOTAL_KEYS[by]
        rows = self._read(
            f"SELECT {column}, state, COUNT(*), "  # noqa: S608 - the column is one of TOTAL_KEYS
            "SUM(CASE WHEN started IS NULL THEN 0 ELSE nodes * (COALESCE(ended, updated) - started) END) "
            f"FROM jobs WHERE updated >= %s GROUP BY {column}, state ORDER BY {column}, state",
            (since,),
        )
        return [JobTotal(key, state, count, float(seconds or 0.0)) for key, state, count, seconds in rows]


def _upsert_bank(tx: Any, bank: Bank, set_parent: bool, set_shares: bool) -> None:
    tx.execute("INSERT INTO groups (name, parent, shares) VALUES (%s, %s, %s) ON CONFLICT (name) DO NOTHING",
               (bank.name, bank.parent, bank.shares))
    if set_parent:
        tx.execute("UPDATE groups SET parent = %s WHERE name = %s", (bank.parent, bank.name))
    if set_shares:
        tx.execute("UPDATE groups SET shares = %s WHERE name = %s", (bank.shares, bank.name))
