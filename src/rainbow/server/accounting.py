"""Fair share, quotas and accounting as protobuf messages (the servicers' replies)."""

from __future__ import annotations

from collections.abc import Sequence

from rainbow.fairshare import Limit, Standing
from rainbow.protos import rainbow_pb2
from rainbow.scheduler import UsageReport


def standing_message(standing: Standing) -> rainbow_pb2.AccountStanding:
    return rainbow_pb2.AccountStanding(
        user=standing.user, bank=standing.bank, shares=standing.shares, norm_shares=standing.norm_shares,
        usage=standing.usage, norm_usage=standing.norm_usage, effective_usage=standing.effective_usage,
        factor=standing.factor,
    )


def quota_message(limit: Limit) -> rainbow_pb2.Quota:
    quota = rainbow_pb2.Quota(kind=limit.kind, name=limit.name, cluster=limit.cluster)
    for field in ("max_waiting", "max_running", "max_nodes"):
        value = getattr(limit, field)
        if value is not None:
            setattr(quota, field, value)
    return quota


def quota_from_message(quota: rainbow_pb2.Quota) -> Limit:
    values = {field: getattr(quota, field) if quota.HasField(field) else None
              for field in ("max_waiting", "max_running", "max_nodes")}
    return Limit(quota.kind, quota.name, quota.cluster, **values)


def quotas_reply(limits: Sequence[Limit]) -> rainbow_pb2.QuotasResponse:
    return rainbow_pb2.QuotasResponse(quotas=[quota_message(limit) for limit in limits])


def usage_reply(report: UsageReport) -> rainbow_pb2.UsageResponse:
    return rainbow_pb2.UsageResponse(
        by=report.by, since=report.since, half_life=report.half_life,
        totals=[rainbow_pb2.UsageTotal(key=t.key, state=t.state, jobs=t.jobs, node_seconds=t.node_seconds)
                for t in report.totals],
        standings=[standing_message(s) for s in report.standings],
    )
