"""What the client returns for fair share, quotas and accounting (``RainbowClient.usage`` and friends)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from rainbow.fairshare import Limit, Standing
from rainbow.protos import rainbow_pb2

QUOTA_FIELDS = ("max_waiting", "max_running", "max_nodes")


def standing_from_wire(message: rainbow_pb2.AccountStanding) -> Standing:
    return Standing(message.user, message.bank, message.shares, message.norm_shares, message.usage,
                    message.norm_usage, message.effective_usage, message.factor)


def quota_from_wire(message: rainbow_pb2.Quota) -> Limit:
    return Limit(message.kind, message.name, message.cluster,
                 **{field: getattr(message, field) if message.HasField(field) else None for field in QUOTA_FIELDS})


def quota_to_wire(limit: Limit) -> rainbow_pb2.Quota:
    quota = rainbow_pb2.Quota(kind=limit.kind, name=limit.name, cluster=limit.cluster)
    for field in QUOTA_FIELDS:
        if getattr(limit, field) is not None:
            setattr(quota, field, getattr(limit, field))
    return quota


@dataclass(frozen=True)
class UsageTotal:
    """Jobs of one user, group or cluster (``key``) in one state, and the node-hours they ran."""

    key: str
    state: str
    jobs: int
    node_hours: float


@dataclass(frozen=True)
class Usage:
    """``rainbow usage``: job totals, and each association's fair-share standing (as ``sshare`` shows it)."""

    by: str
    since: float
    half_life: float
    totals: tuple[UsageTotal, ...]
    standings: tuple[Standing, ...]

    @classmethod
    def from_wire(cls, reply: rainbow_pb2.UsageResponse) -> Usage:
        totals = tuple(UsageTotal(t.key, t.state, t.jobs, t.node_seconds / 3600.0) for t in reply.totals)
        return cls(reply.by, reply.since, reply.half_life, totals,
                   tuple(standing_from_wire(s) for s in reply.standings))

    def to_dict(self) -> dict[str, Any]:
        return {"by": self.by, "since": self.since, "half_life": self.half_life,
                "totals": [asdict(t) for t in self.totals],
                "shares": [{**asdict(s), "usage_node_hours": s.usage / 3600.0} for s in self.standings]}
