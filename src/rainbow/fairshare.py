"""Fair share: who gets the next job, from usage and shares (pure functions over plain data).

The model is that of Slurm's accounts and flux-accounting's banks: groups are *banks* in a tree (a bank
may have a parent bank), a user's jobs are accounted to one bank (their first group; none: the root),
and each (user, bank) *association* holds shares within its bank, as each bank does within its parent.

Usage is node-seconds: a job that ran on ``n`` nodes from ``start`` to ``end`` (a running job: to now)
used ``n * (end - start)``, decayed with a half-life ``h`` so that a node-second ``a`` seconds ago counts
``2^(-a/h)``. Integrated over the run:  ``n * h/ln 2 * (2^(-(now-end)/h) - 2^(-(now-start)/h))``.

The factor is Slurm's classic fair-share formula ``F = 2^(-U_E / S)``:

* ``S``, normalized shares: the association's shares over the sum of its siblings' shares, times its
  bank's normalized shares, up to the root;
* ``U``, normalized usage: its decayed usage over the usage of everyone;
* ``U_E``, effective usage: ``U + (U_E(parent) - U) * s / sum(s of siblings)`` below a bank, and ``U``
  for what sits directly under the root (a bank's heavy usage weighs on all its members).

``F`` is 1 for an association that used nothing, 0.5 when it used exactly its share, and falls toward 0
as it uses more. The hand-out (``hand_out``) orders waiting jobs by the same quantity in node-seconds,
``(U_E * total + charge) / S``, where every job handed out and not yet ended (and each job already picked
in this hand-out) charges its user ``charge_seconds`` per node: so jobs handed out before their usage is
known still count, and two users with no usage alternate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

ROOT = ""  # the root bank: users without a group, banks without a parent
DEFAULT_HALF_LIFE = 7 * 24 * 3600.0
DEFAULT_CHARGE = 3600.0  # node-seconds a handed-out job counts per node until it ends


@dataclass(frozen=True)
class Bank:
    """A group as an account: its parent bank (``ROOT``: none) and its shares within the parent."""

    name: str
    parent: str = ROOT
    shares: int = 1


@dataclass(frozen=True)
class Association:
    """A user in a bank (``ROOT``: no group) with their shares within it."""

    user: str
    bank: str = ROOT
    shares: int = 1


@dataclass(frozen=True)
class UsageRecord:
    """One job's run: ``nodes`` from ``start`` to ``end`` (None: still running)."""

    user: str
    bank: str
    nodes: int
    start: float
    end: float | None = None


@dataclass(frozen=True)
class Standing:
    """An association's place in the tree: the terms of ``F = 2^(-U_E/S)``, and its raw decayed usage."""

    user: str
    bank: str
    shares: int
    norm_shares: float
    usage: float  # decayed node-seconds
    norm_usage: float
    effective_usage: float
    factor: float


class Waiting(NamedTuple):
    """A waiting job as the hand-out sees it (a tuple: a lease builds thousands)."""

    id: int
    user: str
    bank: str
    priority: int = 0
    nodes: int = 1


class Held(NamedTuple):
    """Jobs of an association handed out on a cluster and not yet ended: how many, on how many nodes."""

    user: str
    bank: str
    cluster: str
    jobs: int
    nodes: int


@dataclass(frozen=True)
class Limit:
    """A quota on a user (``kind`` "user") or group ("group"), on one cluster or all (``cluster`` "")."""

    kind: str
    name: str
    cluster: str = ""
    max_waiting: int | None = None
    max_running: int | None = None
    max_nodes: int | None = None

    def describe(self) -> str:
        where = f" on cluster {self.cluster}" if self.cluster else ""
        return f"{self.kind} {self.name}{where}"


@dataclass(frozen=True)
class HandOut:
    """The jobs to hand out, in order, and the jobs a quota holds back (id -> why)."""

    ids: list[int]
    held_back: dict[int, str] = field(default_factory=dict)


def decayed_usage(records: Iterable[UsageRecord], now: float, half_life: float) -> dict[tuple[str, str], float]:
    """Decayed node-seconds per (user, bank); ``half_life`` <= 0 or infinite: no decay."""
    usage: dict[tuple[str, str], float] = {}
    decay = half_life > 0 and math.isfinite(half_life)
    rate = math.log(2) / half_life if decay else 0.0
    for record in records:
        end = now if record.end is None else min(record.end, now)
        start = min(record.start, end)
        if decay:
            used = record.nodes * (math.exp(-rate * (now - end)) - math.exp(-rate * (now - start))) / rate
        else:
            used = record.nodes * (end - start)
        key = (record.user, record.bank)
        usage[key] = usage.get(key, 0.0) + max(used, 0.0)
    return usage


def decay(usage: Mapping[tuple[str, str], float], seconds: float, half_life: float) -> dict[tuple[str, str], float]:
    """Decayed usage ``seconds`` later: each value times ``2^(-seconds/half_life)`` (unchanged without decay)."""
    if not (half_life > 0 and math.isfinite(half_life)):
        return dict(usage)
    factor = 2.0 ** (-max(seconds, 0.0) / half_life)
    return {key: value * factor for key, value in usage.items()}


def _bank_path(banks: Mapping[str, Bank], name: str) -> list[str]:
    """The bank and its ancestors up to (not including) the root; a cycle or unknown parent ends at the root."""
    path: list[str] = []
    while name != ROOT and name in banks and name not in path:
        path.append(name)
        name = banks[name].parent
    return path


def standings(
    banks: Iterable[Bank],
    associations: Iterable[Association],
    usage: Mapping[tuple[str, str], float],
) -> dict[tuple[str, str], Standing]:
    """Each association's standing (also those only seen in ``usage``, with one share), keyed (user, bank).

    A bank whose parent is unknown hangs from the root; an association of an unknown bank sits in the root.
    """
    bank_of = {bank.name: bank for bank in banks if bank.name != ROOT}
    for name in list(bank_of):  # a parent cycle is cut where it closes: that bank hangs from the root
        bank = bank_of[name]
        if bank.parent != ROOT and name in _bank_path(bank_of, bank.parent):
            bank_of[name] = Bank(name, ROOT, bank.shares)
    folded: dict[tuple[str, str], float] = {}  # usage of an unknown bank counts in the root
    for (user, bank), used in usage.items():
        key = (user, bank if bank in bank_of else ROOT)
        folded[key] = folded.get(key, 0.0) + used
    members: dict[tuple[str, str], int] = {}
    for association in associations:
        bank = association.bank if association.bank in bank_of else ROOT
        members[(association.user, bank)] = max(association.shares, 0)
    for key in folded:
        members.setdefault(key, 1)
    # The tree below each bank (ROOT included): (kind, name, shares), kind "bank" or "user".
    children: dict[str, list[tuple[str, object, int]]] = {}
    for bank in bank_of.values():
        parent = bank.parent if bank.parent in bank_of else ROOT
        children.setdefault(parent, []).append(("bank", bank.name, max(bank.shares, 0)))
    for key, shares in members.items():
        children.setdefault(key[1], []).append(("user", key, shares))
    raw: dict[tuple[str, object], float] = {}

    def total(kind: str, name: object) -> float:
        value = (folded.get(name, 0.0) if kind == "user"  # type: ignore[call-overload]
                 else sum(total(k, n) for k, n, _ in children.get(str(name), [])))
        raw[(kind, name)] = value
        return value

    everything = total("bank", ROOT)
    result: dict[tuple[str, str], Standing] = {}

    def visit(bank: str, norm_shares: float, effective: float, top: bool) -> None:
        siblings = children.get(bank, [])
        shares_sum = sum(shares for _, _, shares in siblings)
        for kind, name, shares in siblings:
            fraction = shares / shares_sum if shares_sum else 0.0
            node_shares = norm_shares * fraction
            used = raw.get((kind, name), 0.0)
            norm_usage = used / everything if everything > 0 else 0.0
            node_effective = norm_usage if top else norm_usage + (effective - norm_usage) * fraction
            if kind == "bank":
                visit(str(name), node_shares, node_effective, False)
                continue
            assert isinstance(name, tuple)
            result[name] = Standing(name[0], name[1], shares, node_shares, used, norm_usage, node_effective,
                                    factor(node_effective, node_shares))

    visit(ROOT, 1.0, 1.0, True)
    return result


def factor(effective_usage: float, norm_shares: float) -> float:
    """``2^(-U_E/S)``; no shares: 0 (runs only when nobody else waits)."""
    if norm_shares <= 0:
        return 0.0
    return 2.0 ** (-effective_usage / norm_shares)


def _quota_terms(
    limits: Sequence[Limit], cluster: str, user: str, bank: str
) -> list[tuple[tuple[str, str, str], Limit]]:
    """The running/nodes quotas that apply to a job of (user, bank) on ``cluster``, with their counter keys."""
    terms = []
    for limit in limits:
        if limit.max_running is None and limit.max_nodes is None:
            continue
        if limit.cluster and limit.cluster != cluster:
            continue
        if (limit.kind == "user" and limit.name == user) or (limit.kind == "group" and bank and limit.name == bank):
            terms.append(((limit.kind, limit.name, limit.cluster), limit))
    return terms


def held_counts(held: Iterable[Held], limits: Sequence[Limit]) -> dict[tuple[str, str, str], list[int]]:
    """Per quota counter (kind, name, cluster): [jobs, nodes] held now."""
    counts: dict[tuple[str, str, str], list[int]] = {}
    for limit in limits:
        counts[(limit.kind, limit.name, limit.cluster)] = [0, 0]
    for entry in held:
        for (kind, name, cluster), count in counts.items():
            if cluster and cluster != entry.cluster:
                continue
            if (kind == "user" and name == entry.user) or (kind == "group" and entry.bank and name == entry.bank):
                count[0] += entry.jobs
                count[1] += entry.nodes
    return counts


def hand_out(
    waiting: Sequence[Waiting],
    limit: int,
    cluster: str = "",
    standing: Mapping[tuple[str, str], Standing] | None = None,
    total_usage: float = 0.0,
    held: Sequence[Held] = (),
    limits: Sequence[Limit] = (),
    charge_seconds: float = DEFAULT_CHARGE,
    default_shares: float | None = None,
) -> HandOut:
    """Which waiting jobs of ``cluster`` to hand out (at most ``limit``; < 1: all), best first.

    Order: fair share (lowest ``(U_E * total_usage + charge) / S`` first), then the job's priority (higher
    first), then submission (lower id first); when every waiting job goes and no quota applies, the order
    among them changes nothing and is submission order. ``standing`` comes from ``standings``; an association missing
    from it has no usage and ``default_shares`` (None: the smallest known, else 1). A job that would take
    its user or group past a ``max_running`` or ``max_nodes`` quota is held back (with why).
    """
    wanted = limit if limit >= 1 else len(waiting)
    quotas = [q for q in limits if q.max_running is not None or q.max_nodes is not None]
    if wanted >= len(waiting) and not quotas:
        # every waiting job goes: the order among them changes nothing, submission order it is
        return HandOut(sorted(job.id for job in waiting))
    standing = standing or {}
    if default_shares is None:
        known = [s.norm_shares for s in standing.values() if s.norm_shares > 0]
        default_shares = min(known) if known else 1.0
    in_flight: dict[tuple[str, str], int] = {}
    for entry in held:
        key = (entry.user, entry.bank)
        in_flight[key] = in_flight.get(key, 0) + entry.nodes
    queues: dict[tuple[str, str], list[Waiting]] = {}
    for job in waiting:
        queues.setdefault((job.user, job.bank), []).append(job)
    keyed: list[tuple[float, int, int, Waiting]] = []
    for key, jobs in queues.items():
        jobs.sort(key=lambda job: (-job.priority, job.id))
        entry = standing.get(key)
        shares = entry.norm_shares if entry is not None else default_shares
        base = (entry.effective_usage * total_usage if entry is not None else 0.0) + charge_seconds * in_flight.get(
            key, 0
        )
        for job in jobs:
            base += charge_seconds * max(job.nodes, 1)
            virtual = base / shares if shares > 0 else math.inf
            keyed.append((virtual, -job.priority, job.id, job))
    keyed.sort(key=lambda item: item[:3])
    if not quotas:
        return HandOut([item[3].id for item in keyed[:wanted]])
    counts = held_counts(held, quotas)
    ids: list[int] = []
    held_back: dict[int, str] = {}
    for *_, job in keyed:
        if len(ids) >= wanted:
            break
        terms = _quota_terms(quotas, cluster, job.user, job.bank)
        reason = _over(terms, counts, job)
        if reason:
            held_back[job.id] = reason
            continue
        for key, _ in terms:
            counts[key][0] += 1
            counts[key][1] += max(job.nodes, 1)
        ids.append(job.id)
    return HandOut(ids, held_back)


def _over(
    terms: Sequence[tuple[tuple[str, str, str], Limit]], counts: Mapping[tuple[str, str, str], list[int]], job: Waiting
) -> str:
    """Why handing out ``job`` would break a quota ('' when it would not)."""
    for key, limit in terms:
        jobs, nodes = counts[key]
        if limit.max_running is not None and jobs + 1 > limit.max_running:
            return f"quota: {limit.describe()} has {jobs} of max-running {limit.max_running} jobs running"
        if limit.max_nodes is not None and nodes + max(job.nodes, 1) > limit.max_nodes:
            return (f"quota: {limit.describe()} has {nodes} of max-nodes {limit.max_nodes} nodes in use "
                    f"(this job asks for {max(job.nodes, 1)})")
    return ""
