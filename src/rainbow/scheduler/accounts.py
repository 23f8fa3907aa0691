"""Fair share, quotas and accounting: banks and shares, the order of a hand-out, what a submit may add, and
what the job records say was used.

The arithmetic is ``rainbow.fairshare`` (pure); this module feeds it from the store and keeps what it
read for ``refresh`` seconds (the usage of ended jobs changes slowly; the jobs held now are read inside
every lease). Credentials are checked before any of this (``Authorization.operator``).
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jsonschema
import yaml

from rainbow import credentials
from rainbow.errors import InvalidArgument, NotFound, ResourceExhausted
from rainbow.fairshare import (
    DEFAULT_CHARGE,
    DEFAULT_HALF_LIFE,
    ROOT,
    Bank,
    Held,
    Limit,
    Standing,
    Waiting,
    decay,
    decayed_usage,
    hand_out,
    standings,
)
from rainbow.lifecycle import MAX_PRIORITY, JobState
from rainbow.scheduler.context import SchedulerContext, log
from rainbow.scheduler.validation import check_name
from rainbow.store import AccountUser, JobRecord, JobTotal, LeaseOrder, NewJob

KINDS = ("user", "group")
TOTALS_BY = ("user", "group", "cluster")
MAX_SHARES = 1_000_000
MAX_QUOTA = 1_000_000_000
# Usage older than this many half-lives weighs less than 2^-20: it is not read.
HORIZON_HALF_LIVES = 20
# Runs that ended this long before the last read are read again (a slow commit, another replica's clock).
LATE_ENDS = 300.0
MAX_ACCOUNTS = 10_000  # banks plus users in one accounts file

_COUNT = {"type": "integer", "minimum": 0, "maximum": MAX_SHARES}
ACCOUNTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "banks": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name"],
                "properties": {"name": {"type": "string"}, "parent": {"type": "string"}, "shares": _COUNT},
            },
        },
        "users": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name"],
                "properties": {
                    "name": {"type": "string"},
                    "banks": {"type": "array", "items": {"type": "string"}},
                    "shares": _COUNT,
                    "admin": {"type": "boolean"},
                },
            },
        },
    },
}


@dataclass(frozen=True)
class UsageReport:
    """``rainbow usage``: job totals per key and state, and each association's fair-share standing."""

    by: str
    since: float
    totals: list[JobTotal]
    standings: list[Standing]
    half_life: float


class EndedUsage:
    """The decayed usage of every run that ended, kept up to date by reading only the runs that ended since.

    Decay multiplies every run's decayed node-seconds alike, so the sum of the runs read before is decayed as
    one number per association and only new ends are added; a run is counted once (by id) however often it
    is read again within ``LATE_ENDS``.
    """

    def __init__(self) -> None:
        self.usage: dict[tuple[str, str], float] = {}
        self.read: float | None = None
        self.counted: dict[int, float] = {}  # job id -> end, of the runs that ended within LATE_ENDS of the read

    def update(self, store: Any, now: float, half_life: float) -> dict[tuple[str, str], float]:
        decays = half_life > 0 and math.isfinite(half_life)
        if self.read is None or now < self.read:
            since = now - HORIZON_HALF_LIVES * half_life if decays else -math.inf
            self.usage, self.counted = {}, {}
        else:
            since = self.read - LATE_ENDS
            self.usage = decay(self.usage, now - self.read, half_life)
        new = [(job_id, run) for job_id, run in store.ended_runs(since) if job_id not in self.counted]
        for key, used in decayed_usage([run for _, run in new], now, half_life).items():
            self.usage[key] = self.usage.get(key, 0.0) + used
        self.counted.update((job_id, run.end or now) for job_id, run in new)
        self.counted = {job_id: end for job_id, end in self.counted.items() if end >= now - LATE_ENDS}
        self.read = now
        return self.usage


@dataclass(frozen=True)
class _View:
    read: float
    standings: dict[tuple[str, str], Standing]
    total: float


def check_priority(priority: int, field: str = "priority") -> int:
    if not -MAX_PRIORITY <= priority <= MAX_PRIORITY:
        raise InvalidArgument(f"{field}: between {-MAX_PRIORITY} and {MAX_PRIORITY} (got {priority})", field=field)
    return priority


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidArgument(f"kind: one of {', '.join(KINDS)} (got {kind!r})", field="kind")
    return kind


def _check_count(value: int | None, field: str, maximum: int) -> int | None:
    if value is not None and not 0 <= value <= maximum:
        raise InvalidArgument(f"{field}: between 0 and {maximum} (got {value})", field=field)
    return value


def _schema_problem(error: jsonschema.ValidationError) -> tuple[str, str]:
    path = ".".join(f"[{part}]" if isinstance(part, int) else str(part) for part in error.absolute_path)
    path = path.replace(".[", "[")
    return path or "accounts", error.message


class _NoAliasLoader(yaml.SafeLoader):
    """Safe YAML without aliases: a small file cannot stand for a huge tree."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.events.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "aliases are not allowed in an accounts file",
                                              event.start_mark)
        return super().compose_node(parent, index)


def parse_accounts(text: str, max_bytes: int) -> Any:
    """An accounts file (YAML or JSON) as plain data; InvalidArgument naming the problem."""
    if len(text.encode()) > max_bytes:
        raise InvalidArgument(f"document: more than {max_bytes} bytes", field="document")
    try:
        document = yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader without aliases
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"document: not YAML or JSON ({exc})".replace("\n", " "), field="document") from None
    return {} if document is None else document


def check_tree(banks: Mapping[str, Bank]) -> None:
    """InvalidArgument when a bank's parent is unknown or the parents form a loop."""
    for name, bank in banks.items():
        seen = [name]
        parent = bank.parent
        while parent != ROOT:
            if parent not in banks:
                raise InvalidArgument(f"bank {name}: parent {parent!r} is not a group", field="parent")
            if parent in seen:
                raise InvalidArgument(f"bank {name}: parents form a loop ({' -> '.join([*seen, parent])})",
                                      field="parent")
            seen.append(parent)
            parent = banks[parent].parent


class Accounts:
    def __init__(self, context: SchedulerContext) -> None:
        self.context = context
        self.store: Any = context.store  # a SQLStore: both backends hold the accounts tables
        self.half_life = DEFAULT_HALF_LIFE
        self.charge_seconds = DEFAULT_CHARGE
        self.refresh = 10.0  # seconds the usage, tree and quotas read from the store are reused
        self._lock = threading.Lock()
        self._view: _View | None = None
        self._ended = EndedUsage()
        self._reading = threading.Lock()  # one thread reads usage from the store at a time
        self._quotas: tuple[float, list[Limit]] | None = None
        self._held_back: dict[str, dict[int, str]] = {}  # cluster -> job id -> why the last hand-out skipped it

    def forget(self) -> None:
        """Read usage, shares and quotas afresh at the next use (after a change)."""
        with self._lock:
            self._view = None
            self._quotas = None

    # -- banks and shares ------------------------------------------------------------------
    def set_shares(self, kind: str, name: str, shares: int, parent: str | None = None) -> None:
        """A user's shares within their banks, or a group's (bank's) shares within its parent (and the parent)."""
        _check_kind(kind)
        check_name(name, "name", self.context.limits)
        _check_count(shares, "shares", MAX_SHARES)
        if kind == "user":
            if parent:
                raise InvalidArgument("parent: only a group (bank) has a parent", field="parent")
            if not self.store.set_user_shares(name, shares):
                raise NotFound(f"user {name!r} does not exist (rainbow user add {name})", field="name")
        else:
            if parent:
                check_name(parent, "parent", self.context.limits)
                banks = {bank.name: bank for bank in self.store.account_tree()[0]}
                banks[name] = Bank(name, parent, shares)
                check_tree(banks)
            self.store.set_bank(name, parent if parent is not None else None, shares)
        self.forget()
        log.info("shares: %s %s has %d%s", kind, name, shares, f" in bank {parent}" if parent else "")

    def load(self, document: Any) -> list[tuple[str, str]]:
        """Apply an accounts document (banks, users with their banks and shares) in one transaction.

        Returns (name, token) for each user it created (tokens are shown this once).
        """
        validator = jsonschema.Draft7Validator(ACCOUNTS_SCHEMA)
        error = jsonschema.exceptions.best_match(validator.iter_errors(document))
        if error is not None:
            where, message = _schema_problem(error)
            raise InvalidArgument(f"{where}: {message}", field=where)
        limits = self.context.limits
        banks_in = document.get("banks", [])
        users_in = document.get("users", [])
        if len(banks_in) + len(users_in) > MAX_ACCOUNTS:
            raise InvalidArgument(f"accounts: at most {MAX_ACCOUNTS} banks and users", field="accounts")
        banks = {bank.name: bank for bank in self.store.account_tree()[0]}
        loaded: list[Bank] = []
        for index, entry in enumerate(banks_in):
            check_name(entry["name"], f"banks[{index}].name", limits)
            if entry.get("parent"):
                check_name(entry["parent"], f"banks[{index}].parent", limits)
            bank = Bank(entry["name"], entry.get("parent", ROOT), entry.get("shares", 1))
            banks[bank.name] = bank
            loaded.append(bank)
        users: list[AccountUser] = []
        tokens: dict[str, str] = {}
        for index, entry in enumerate(users_in):
            check_name(entry["name"], f"users[{index}].name", limits)
            groups = entry.get("banks")
            for position, group in enumerate(groups or ()):
                check_name(group, f"users[{index}].banks[{position}]", limits)
                banks.setdefault(group, Bank(group))
            tokens[entry["name"]] = credentials.new_secret()
            users.append(AccountUser(entry["name"], tuple(groups) if groups is not None else None,
                                     entry.get("shares"), entry.get("admin", False),
                                     credentials.hash_secret(tokens[entry["name"]])))
        check_tree(banks)
        created = self.store.load_accounts(loaded, users, self.context.clock())
        self.forget()
        log.info("accounts loaded: %d banks, %d users (%d new)", len(loaded), len(users), len(created))
        return [(name, tokens[name]) for name in created]

    # -- quotas ------------------------------------------------------------------------------------
    def counts_waiting(self) -> bool:
        """Whether a submit may have to count jobs in the store: some quota has max_waiting, or the quotas are
        not known lately (reading them is store work too). Reads nothing itself."""
        with self._lock:
            cached = self._quotas
        if cached is None or self.context.clock() - cached[0] >= self.refresh:
            return True
        return any(quota.max_waiting is not None for quota in cached[1])

    def quotas(self) -> list[Limit]:
        with self._lock:
            cached = self._quotas
        now = self.context.clock()
        if cached is not None and now - cached[0] < self.refresh:
            return cached[1]
        quotas = self.store.list_quotas()
        with self._lock:
            self._quotas = (now, quotas)
        return quotas

    def set_quota(self, limit: Limit, remove: bool = False) -> list[Limit]:
        """Set (or with ``remove`` forget) a quota; every quota after."""
        check_name(limit.name, _check_kind(limit.kind), self.context.limits)
        if limit.cluster:
            check_name(limit.cluster, "cluster", self.context.limits)
        if remove:
            if not self.store.remove_quota(limit.kind, limit.name, limit.cluster):
                raise NotFound(f"no quota on {limit.describe()}", field="name")
        else:
            _check_count(limit.max_waiting, "max_waiting", MAX_QUOTA)
            _check_count(limit.max_running, "max_running", MAX_QUOTA)
            _check_count(limit.max_nodes, "max_nodes", MAX_QUOTA)
            if limit.max_waiting is None and limit.max_running is None and limit.max_nodes is None:
                raise InvalidArgument("a quota needs max_waiting, max_running or max_nodes", field="max_waiting")
            self.store.set_quota(limit)
        self.forget()
        log.info("quota on %s %s", limit.describe(), "removed" if remove else
                 f"set: max-waiting {limit.max_waiting}, max-running {limit.max_running}, max-nodes {limit.max_nodes}")
        return self.quotas()

    def admit(self, jobs: Sequence[NewJob], priority: int = 0) -> list[NewJob]:
        """The jobs stamped with their ``priority``; ResourceExhausted (naming the quota) when adding them all
        would take their user or group past a ``max_waiting`` quota."""
        check_priority(priority)
        if priority:
            jobs = [dataclasses.replace(job, priority=priority) for job in jobs]
        quotas = [quota for quota in self.quotas() if quota.max_waiting is not None]
        if not quotas or not jobs:
            return list(jobs)
        for quota in quotas:
            owner = "user" if quota.kind == "user" else "group"
            # A job stored waiting for dependencies counts where it is placed once released, not where it is
            # listed meanwhile: against a quota naming no cluster only.
            adding = sum(1 for job in jobs if getattr(job, owner) == quota.name
                         and (not quota.cluster or (job.cluster == quota.cluster and not job.depends)))
            if not adding:
                continue
            queued = self.store.count_queued(quota.kind, quota.name, quota.cluster)
            assert quota.max_waiting is not None
            if queued + adding > quota.max_waiting:
                raise ResourceExhausted(
                    f"quota: {quota.describe()} allows max-waiting {quota.max_waiting} jobs; {queued} are waiting "
                    f"and this submit adds {adding}", field="max_waiting")
        return list(jobs)

    # -- the hand-out ------------------------------------------------------------------------------
    def view(self) -> _View:
        """Each association's standing and everyone's decayed usage, read at most every ``refresh`` seconds."""
        with self._reading:
            now = self.context.clock()
            with self._lock:
                cached = self._view
            if cached is not None and 0 <= now - cached.read < self.refresh:
                return cached
            usage = dict(self._ended.update(self.store, now, self.half_life))
            for key, used in decayed_usage(self.store.open_runs(), now, self.half_life).items():
                usage[key] = usage.get(key, 0.0) + used
            banks, associations = self.store.account_tree()
            view = _View(now, standings(banks, associations, usage), sum(usage.values()))
            with self._lock:
                self._view = view
            return view

    def order(self, cluster: str) -> LeaseOrder:
        """The store's lease order for ``cluster``: fair share, then priority, then submission; quotas hold back."""
        view = self.view()
        quotas = self.quotas()

        def pick(waiting: list[Waiting], held: list[Held], limit: int) -> list[int]:
            out = hand_out(waiting, limit, cluster, view.standings, view.total, held, quotas, self.charge_seconds)
            with self._lock:
                self._held_back[cluster] = out.held_back
            return out.ids

        return pick

    def explain(self, job: JobRecord) -> JobRecord:
        """The job, with why it waits in its message when a quota held it back at its cluster's last hand-out."""
        if job.state not in (JobState.ASSIGNED, JobState.LEASED):
            return job
        with self._lock:
            reason = self._held_back.get(job.cluster, {}).get(job.id)
        return dataclasses.replace(job, message=f"waiting: {reason}") if reason else job

    # -- accounting ------------------------------------------------------------------------------
    def current(self) -> list[Standing]:
        """Every association's standing, read afresh, by bank then user."""
        with self._lock:
            self._view = None
        return sorted(self.view().standings.values(), key=lambda s: (s.bank, s.user))

    def report(self, by: str = "user", since: float | None = None) -> UsageReport:
        if by not in TOTALS_BY:
            raise InvalidArgument(f"by: one of {', '.join(TOTALS_BY)} (got {by!r})", field="by")
        since = 0.0 if since is None else since
        if not math.isfinite(since):
            raise InvalidArgument("since: a time (seconds since the epoch)", field="since")
        return UsageReport(by, since, self.store.job_totals(by, since), self.current(), self.half_life)
