"""What both backends share below their SQL: the column lists, records built from rows, and the rules of each
change as pure functions (which jobs a cancel stops now, how a report or an inventory changes a job, fencing).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from rainbow.errors import Aborted
from rainbow.lifecycle import FINAL_STATES, JobState, Urgency, can_report, fence
from rainbow.store.base import PAGE_SORTS, ClusterRecord, HeldJob, JobEvent, JobPage, JobRecord, NewJob, Rejection

JOB_COLUMNS = (
    "id, cluster, name, jobspec, command, state, created, updated, lease_owner, lease_expires, "
    "accepted, local_id, exit_code, message, cancel_requested, candidates, output, lease_token, rejections, "
    '"user", grp, nodes, priority, started, ended'
)
# What a new job's row is written with (its state 'assigned' or 'held', created and updated its submit time).
NEW_JOB_COLUMNS = ('id, cluster, name, jobspec, command, state, created, updated, candidates, submit_key, '
                   'placement, batch_id, "user", grp, nodes, priority')
CLUSTER_COLUMNS = "name, secret_hash, token_hash, state, created, updated, version, last_seen, reachable"
EVENT_COLUMNS = "seq, job_id, cluster, name, state, time, message"
# Events joined with their jobs (``e``: job_events, ``j``: jobs), so a watcher sees, and is filtered on, the owner.
OWNED_EVENT_COLUMNS = 'e.seq, e.job_id, e.cluster, e.name, e.state, e.time, e.message, j."user", j.grp'
USER_COLUMNS = "name, admin, created"
ON_CLUSTER = ("accepted", "submitted", "running")
FINAL = tuple(s.value for s in FINAL_STATES)


def job_rejections(text: str | None) -> tuple[Rejection, ...]:
    """The ``rejections`` column (JSON) as records."""
    if not text or text == "[]":  # nearly every job: no JSON to parse
        return ()
    return tuple(Rejection(r["cluster"], r["reason"], r["time"]) for r in json.loads(text or "[]"))


def job_from_row(row: Sequence[Any]) -> JobRecord:
    return JobRecord(
        id=row[0],
        cluster=row[1],
        name=row[2],
        jobspec=row[3],
        command=row[4],
        state=JobState(row[5]),
        created=row[6],
        updated=row[7],
        lease_owner=row[8],
        lease_expires=row[9],
        accepted=row[10],
        local_id=row[11],
        exit_code=row[12],
        message=row[13],
        cancel_requested=bool(row[14]),
        candidates=tuple(json.loads(row[15])),
        output=row[16],
        lease_token=row[17],
        rejections=job_rejections(row[18]),
        user=row[19],
        group=row[20],
        nodes=row[21],
        priority=row[22],
        started=row[23],
        ended=row[24],
    )


def cluster_from_row(row: Sequence[Any]) -> ClusterRecord:
    return ClusterRecord(
        name=row[0],
        secret_hash=row[1],
        token_hash=row[2],
        state=json.loads(row[3]),
        created=row[4],
        updated=row[5],
        version=row[6],
        last_seen=row[7],
        reachable=bool(row[8]),
    )


def event_from_row(row: Sequence[Any]) -> JobEvent:
    """An event from EVENT_COLUMNS, or OWNED_EVENT_COLUMNS (with its job's user and group)."""
    if len(row) > 7:
        return JobEvent(row[0], row[1], row[2], row[3], JobState(row[4]), row[5], row[6], row[7] or "", row[8] or "")
    return JobEvent(row[0], row[1], row[2], row[3], JobState(row[4]), row[5], row[6])


def report_changes(
    job: JobRecord, state: JobState, now: float, local_id: str | None, exit_code: int | None, message: str | None,
    output: str | None = None,
) -> dict[str, Any]:
    """The fields a cluster's report changes on a job (the move itself was checked with ``can_report``)."""
    return {
        "output": output or job.output,
        "state": state,
        "updated": now,
        "local_id": local_id or job.local_id,
        "exit_code": exit_code if exit_code is not None else job.exit_code,
        "message": message if message is not None else job.message,
        "accepted": job.accepted if job.accepted is not None or state in FINAL_STATES else now,
        "lease_expires": None,
        "started": job.started if job.started is not None or state != JobState.RUNNING else now,
        "ended": now if state in FINAL_STATES and job.started is not None else job.ended,
    }


def report_outcome(
    job: JobRecord, state: JobState, now: float, local_id: str | None, exit_code: int | None, message: str | None,
    output: str | None, owner: str, token: int,
) -> tuple[JobRecord, dict[str, Any] | None]:
    """A cluster's report on ``job``: (the job after it, the changed fields, None when the move is not allowed).

    Raises Aborted, changing nothing, when the reporter is fenced (another holder took the job over).
    """
    reason = fence(job.state, job.lease_owner, job.lease_token, owner, token)
    if reason is not None:
        raise Aborted(f"job {job.id}: {reason}; drop this copy", field="jobid")
    if not can_report(job.state, state):
        return job, None
    changes = report_changes(job, state, now, local_id, exit_code, message, output)
    return JobRecord(**{**job.__dict__, **changes}), changes


def cancels_now(job: JobRecord, now: float) -> bool:
    """Whether a cancel request ends the job at once: nobody holds it (waiting for its dependencies,
    assigned, held by its submitter, or its lease ran out).

    Other jobs that have not ended are flagged for their agent to cancel; ended jobs stay as they are.
    """
    return job.state in (JobState.ASSIGNED, JobState.DEPEND, JobState.HELD) or (
        job.state == JobState.LEASED and job.lease_expires is not None and job.lease_expires <= now
    )


def new_job_state(new: NewJob) -> tuple[JobState, str]:
    """A new job's first state and the message of its event: assigned, or held when submitted held."""
    return (JobState.HELD, "held at submit") if new.hold else (JobState.ASSIGNED, "")


def urgency_move(job: JobRecord, urgency: Urgency, now: float) -> tuple[JobState | None, str]:
    """(the state an urgency change moves the job to, None: it stays; why the job cannot change, "" when it can).

    Only a job that still waits can change: waiting for its dependencies (its priority only: it is held once
    it is placed), for its cluster to take it, or held. A job whose lease ran out waits again.
    """
    if job.state in FINAL_STATES:
        return None, f"job {job.id} already {job.state.value}"
    if job.state == JobState.DEPEND:
        if urgency.hold:
            return None, f"job {job.id} waits for its dependencies (depend): hold it once it is placed"
        return None, ""
    waiting = job.state in (JobState.ASSIGNED, JobState.HELD) or (
        job.state == JobState.LEASED and job.lease_expires is not None and job.lease_expires <= now
    )
    if not waiting or job.cancel_requested:
        return None, f"job {job.id} is already {job.state.value} on {job.cluster}"
    if urgency.hold:
        return (None if job.state == JobState.HELD else JobState.HELD), ""
    return (JobState.ASSIGNED if job.state == JobState.HELD else None), ""


def reconciled(entry: HeldJob | None) -> tuple[JobState, str]:
    """The state and message of an ``unknown`` job once its cluster is back, from the cluster's inventory entry."""
    if entry is None:
        return JobState.FAILED, "the cluster no longer holds this job after it came back"
    return entry.state or JobState.ACCEPTED, "reconciled from the cluster's inventory"


def rejection_changes(
    job: JobRecord, cluster: str, reason: str, now: float, target: str | None, failure: str
) -> tuple[dict[str, Any], str]:
    """The fields a rejection by ``cluster`` changes on a job, and the message of its event."""
    rejections = (*job.rejections, Rejection(cluster, reason, now))
    if target:
        message = f"rejected by {cluster}: {reason}; re-placed on {target}"
        state = JobState.ASSIGNED
    else:
        message, state = failure, JobState.FAILED
    changes = {
        "cluster": target or cluster,
        "state": state,
        "updated": now,
        "message": message,
        "local_id": None if target else job.local_id,
        "exit_code": None if target else job.exit_code,
        "accepted": None if target else job.accepted,
        "output": None if target else job.output,
        "lease_owner": None,
        "lease_expires": None,
        "candidates": tuple(c for c in job.candidates if c != cluster),
        "rejections": rejections,
    }
    return changes, message


def rejections_json(rejections: Sequence[Rejection]) -> str:
    return json.dumps([{"cluster": r.cluster, "reason": r.reason, "time": r.time} for r in rejections])


# Rows of HOLDER_COLUMNS: what fencing reads of a job.
HOLDER_COLUMNS = "id, name, cluster, state, lease_owner, lease_token, lease_expires"


def accept_plan(
    cluster: str, wanted: Sequence[int], rows: Mapping[int, Sequence[Any]], owner: str,
    tokens: Mapping[int, int],
) -> tuple[list[int], dict[int, str]]:
    """(ids to move to accepted, fenced id -> reason) for an AcceptJobs of ``wanted``.

    Jobs of another cluster, unknown or cancelled are neither: the caller refuses them.
    """
    moving: list[int] = []
    fenced: dict[int, str] = {}
    for job_id in wanted:
        row = rows.get(job_id)
        if row is None or row[2] != cluster:
            continue
        state = JobState(row[3])
        if state == JobState.CANCELLED:
            continue
        reason = fence(state, row[4], row[5], owner, tokens.get(job_id, 0))
        if reason is not None:
            fenced[job_id] = f"job {job_id}: {reason}"
        elif state in (JobState.ASSIGNED, JobState.LEASED):
            moving.append(job_id)
    return moving, fenced


def renew_plan(
    cluster: str, held: Mapping[int, int], rows: Mapping[int, Sequence[Any]], owner: str = ""
) -> tuple[list[int], list[int]]:
    """(leases to renew, ids no longer held) for ``owner``'s heartbeat inventory of job id -> lease token.

    A token that is not the job's current one is still the owner's when the job
    was handed to the same owner again. A job that already ended in rainbow is
    no longer held (agents send only jobs they have not seen end).
    """
    renew: list[int] = []
    revoked: list[int] = []
    for job_id, token in held.items():
        row = rows.get(job_id)
        if row is None or row[2] != cluster:
            revoked.append(job_id)
            continue
        if not token:
            continue
        state = JobState(row[3])
        if (row[5] != token and not (owner and row[4] == owner)) or state in FINAL_STATES or state == JobState.HELD:
            revoked.append(job_id)
        elif state == JobState.LEASED:
            renew.append(job_id)
    return renew, revoked


def page_query(query: JobPage, mark: str) -> tuple[str, list[Any]] | None:
    """The SELECT for ``Store.page_jobs`` with ``mark`` as placeholder; None when no row can match.

    Only column names from ``PAGE_SORTS`` and placeholders are put in the text.
    """
    if query.sort not in PAGE_SORTS:
        raise ValueError(f"unknown sort {query.sort!r}")
    where: list[str] = []
    params: list[Any] = []
    if query.clusters is not None:
        if not query.clusters:
            return None
        where.append(f"cluster IN ({', '.join([mark] * len(query.clusters))})")
        params.extend(query.clusters)
    if query.user is not None:
        where.append(f'"user" = {mark}')
        params.append(query.user)
    if query.state is not None:
        where.append(f"state = {mark}")
        params.append(query.state.value)
    if query.name:
        if query.name.endswith("*"):
            prefix = query.name[:-1]
            # A range, not LIKE: it uses the (name, id) index and treats % and _ as plain characters.
            where.append(f"name >= {mark} AND name < {mark}")
            params.extend([prefix, prefix + "\U0010ffff"])
        else:
            where.append(f"name = {mark}")
            params.append(query.name)
    less = "<" if query.descending else ">"
    if query.after is not None:
        if query.sort == "id":
            where.append(f"id {less} {mark}")
            params.append(query.after[1])
        else:
            where.append(f"({query.sort}, id) {less} ({mark}, {mark})")
            params.extend(query.after)
    direction = "DESC" if query.descending else "ASC"
    order = "id" if query.sort == "id" else f"{query.sort} {direction}, id"
    sql = f"SELECT {JOB_COLUMNS} FROM jobs"  # noqa: S608 - column names from PAGE_SORTS and placeholders only
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {order} {direction} LIMIT {mark}"
    params.append(max(1, min(query.limit, 1000)))
    return sql, params
