"""gRPC servicers: protobuf in, Scheduler call, protobuf out.

Each RPC logs one line (method, outcome, duration). Scheduler errors become
gRPC status codes with their message; anything unexpected becomes INTERNAL with
a request id, and the traceback goes to the log only.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

import grpc

from rainbow.errors import InvalidArgument, RainbowError, Unauthenticated
from rainbow.lifecycle import FINAL_STATES, JobState, parse_state
from rainbow.protos import memory_pb2, memory_pb2_grpc, rainbow_pb2, rainbow_pb2_grpc
from rainbow.scheduler import PendingSubmit, Scheduler, SubmitOutcome
from rainbow.scheduler.workflows import WorkflowView
from rainbow.server.accounting import quota_from_message, quotas_reply, standing_message, usage_reply
from rainbow.server.events import EventHub
from rainbow.server.metrics import Metrics
from rainbow.server.writer import JobWriter
from rainbow.store import AccessRule, HeldJob, JobEvent, JobRecord, UserRecord
from rainbow.workflow import Need, Step

log = logging.getLogger("rainbow.server")

T = TypeVar("T")

SECRET_METADATA_KEY = "rainbow-secret"  # noqa: S105 - a metadata key name
# A user token: "authorization: Bearer TOKEN" (a rainbow user token or an OIDC JWT).
AUTHORIZATION_METADATA_KEY = "authorization"

# A job stream that asks for no limit (maxJobs < 1) holds at most this many leases not yet accepted.
STREAM_WINDOW = 64


async def _abort(context: grpc.aio.ServicerContext, name: str, exc: BaseException, start: float) -> None:
    """Turn an exception into a gRPC status; never leak a traceback to the caller."""
    elapsed = (time.perf_counter() - start) * 1000
    if isinstance(exc, RainbowError):
        log.warning("%s -> %s: %s (%.1f ms)", name, exc.code, exc.message, elapsed)
        await context.abort(getattr(grpc.StatusCode, exc.code, grpc.StatusCode.UNKNOWN), exc.message)
    request_id = uuid.uuid4().hex[:12]
    log.error("%s failed unexpectedly (request %s)", name, request_id, exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, f"internal server error (request {request_id})")


def _code(context: grpc.aio.ServicerContext, exc: BaseException) -> str:
    """The status a request ends with, as a metrics label."""
    if isinstance(exc, RainbowError):
        return exc.code
    if isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
        return "CANCELLED"
    if isinstance(exc, grpc.aio.AbortError):
        code = context.code()
        return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
    return "INTERNAL"


# What a method adds to its request's log line (each RPC runs in its own task, so its own context).
_detail: contextvars.ContextVar[str] = contextvars.ContextVar("rainbow_rpc_detail", default="")


def rpc(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Log (one debug line per request), time and translate errors for one unary servicer method."""
    name = method.__name__

    @functools.wraps(method)
    async def wrapper(self, request, context: grpc.aio.ServicerContext):
        start = time.perf_counter()
        code = "OK"
        _detail.set("")
        try:
            reply = await method(self, request, context)
        except (grpc.aio.AbortError, asyncio.CancelledError) as exc:
            code = _code(context, exc)
            raise
        except Exception as exc:
            code = _code(context, exc)
            await _abort(context, name, exc, start)
        finally:
            if self.metrics is not None:
                self.metrics.observe_request(name, code, time.perf_counter() - start)
        log.debug("%s ok%s (%.1f ms)", name, _detail.get(), (time.perf_counter() - start) * 1000)
        return reply

    return wrapper


def stream(method: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    """Log and translate errors for one server-streaming method."""
    name = method.__name__

    @functools.wraps(method)
    async def wrapper(self, request, context: grpc.aio.ServicerContext):
        start = time.perf_counter()
        code = "OK"
        log.debug("%s stream opened by %s", name, context.peer())
        try:
            async for item in method(self, request, context):
                yield item
        except (grpc.aio.AbortError, asyncio.CancelledError, GeneratorExit) as exc:
            code = _code(context, exc)
            raise
        except Exception as exc:
            code = _code(context, exc)
            await _abort(context, name, exc, start)
        finally:
            if self.metrics is not None:
                self.metrics.observe_request(name, code, None)
            log.debug("%s stream closed (%.1f s)", name, time.perf_counter() - start)

    return wrapper


class _Base:
    def __init__(
        self,
        scheduler: Scheduler,
        executor: Executor,
        hub: EventHub | None = None,
        metrics: Metrics | None = None,
        writer: JobWriter | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.executor = executor
        self.hub = hub or EventHub()
        self.metrics = metrics
        self.writer = writer or JobWriter(scheduler)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking scheduler work (store, match) off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args))


def user_token(context: grpc.aio.ServicerContext) -> str:
    """The user token of a call ('' when it has none): its ``authorization: Bearer TOKEN`` metadata."""
    for key, value in context.invocation_metadata() or ():
        if key == AUTHORIZATION_METADATA_KEY:
            scheme, _, token = str(value).strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("authorization metadata: expected 'Bearer TOKEN'", field="authorization")
            return token.strip()
    return ""


def user_info(user: UserRecord) -> rainbow_pb2.UserInfo:
    return rainbow_pb2.UserInfo(name=user.name, groups=list(user.groups), admin=user.admin, created=user.created)


def access_reply(cluster: str, rules: tuple[AccessRule, ...]) -> rainbow_pb2.ClusterAccessResponse:
    return rainbow_pb2.ClusterAccessResponse(cluster=cluster, rules=[
        rainbow_pb2.ClusterAccessRule(kind=rule.kind, name=rule.name, allow=rule.allow) for rule in rules
    ])


def _request_id() -> str:
    return os.urandom(16).hex()


def placed_cluster(job: JobRecord) -> str:
    """The cluster a job is on; none while it waits for its dependencies (it is placed when released)."""
    return "" if job.state == JobState.DEPEND else job.cluster


def job_info(
    job: JobRecord,
    history: list[JobEvent] | None = None,
    dependencies: list[str] | None = None,
    step: tuple[str, str] | None = None,
) -> rainbow_pb2.JobInfo:
    info = rainbow_pb2.JobInfo(
        id=job.id,
        cluster=placed_cluster(job),
        name=job.name,
        state=job.state.value,
        jobspec=job.jobspec,
        command=job.command,
        local_id=job.local_id or "",
        message=job.message or "",
        created=job.created,
        updated=job.updated,
        cancel_requested=job.cancel_requested,
        user=job.user,
        group=job.group,
        priority=job.priority,
        nodes=job.nodes,
    )
    if job.exit_code is not None:
        info.exit_code = job.exit_code
        info.has_exit_code = True
    for event in history or []:
        info.history.add(state=event.state.value, time=event.time, message=event.message)
    if job.output:
        info.output.CopyFrom(rainbow_pb2.JobOutput(**json.loads(job.output)))
    for rejection in job.rejections:
        info.rejections.add(cluster=rejection.cluster, reason=rejection.reason, time=rejection.time)
    info.dependencies.extend(dependencies or [])
    if step is not None:
        info.workflow_id, info.step = step
    return info


def workflow_info(view: WorkflowView) -> rainbow_pb2.WorkflowInfo:
    record = view.record
    info = rainbow_pb2.WorkflowInfo(workflow_id=record.id, name=record.name, created=record.created)
    for step, job, needs in view.steps:
        entry = info.steps.add(name=step.name, job=job_info(job, step=(record.id, step.name)))
        for name, scheme in needs:
            entry.needs.add(step=name, scheme=scheme)
    return info


def _steps(request: rainbow_pb2.SubmitWorkflowRequest) -> list[Step]:
    return [Step(step.name, step.jobspec, tuple(Need(need.step, need.scheme or "afterok") for need in step.needs))
            for step in request.steps]


def job_event(event: JobEvent) -> rainbow_pb2.JobEvent:
    # A job starting to wait for its dependencies is on no cluster yet.
    cluster = "" if event.state == JobState.DEPEND else event.cluster
    return rainbow_pb2.JobEvent(
        seq=event.seq, jobid=event.job_id, cluster=cluster, state=event.state.value,
        time=event.time, message=event.message, name=event.name, user=event.user, group=event.group,
    )


def _held(job: rainbow_pb2.HeldJob) -> HeldJob:
    try:
        state = parse_state(job.state) if job.state else None
    except ValueError as exc:
        raise InvalidArgument(f"jobs[{job.jobid}].state: {exc}", field="jobs") from None
    return HeldJob(job.jobid, state, job.local_id or None, job.lease)


class RainbowSchedulerServicer(_Base, rainbow_pb2_grpc.RainbowSchedulerServicer):
    @rpc
    async def Register(self, request, context):
        outcome = await self.run(self.scheduler.register, request.name, request.secret, request.nodes)
        reply = rainbow_pb2.RegisterResponse(request_id=_request_id())
        if not outcome.created:
            reply.status = rainbow_pb2.RegisterResponse.REGISTER_EXISTS
            return reply
        reply.status = rainbow_pb2.RegisterResponse.REGISTER_SUCCESS
        reply.token = outcome.token
        reply.secret = outcome.secret
        return reply

    @rpc
    async def RegisterSubsystem(self, request, context):
        await self.run(
            self.scheduler.register_subsystem, request.name, request.secret, request.subsystem, request.nodes
        )
        return rainbow_pb2.RegisterResponse(
            request_id=_request_id(), status=rainbow_pb2.RegisterResponse.REGISTER_SUCCESS
        )

    @rpc
    async def Delete(self, request, context):
        await self.run(self.scheduler.delete_cluster, request.name, request.secret)
        return rainbow_pb2.DeleteResponse(status=rainbow_pb2.DeleteResponse.DELETE_SUCCESS)

    @rpc
    async def DeleteSubsystem(self, request, context):
        await self.run(self.scheduler.delete_subsystem, request.name, request.secret, request.subsytem)
        return rainbow_pb2.DeleteResponse(status=rainbow_pb2.DeleteResponse.DELETE_SUCCESS)

    @rpc
    async def UpdateState(self, request, context):
        await self.run(self.scheduler.update_state, request.cluster, request.secret, request.payload)
        return rainbow_pb2.UpdateStateResponse(status=rainbow_pb2.UpdateStateResponse.UPDATE_STATE_SUCCESS)

    async def prepare_submit(
        self, request: rainbow_pb2.SubmitJobRequest, context: grpc.aio.ServicerContext
    ) -> SubmitOutcome | PendingSubmit:
        """What SubmitJob does before storing: authorize, place (``Scheduler.prepare_submit``)."""
        clusters = [(c.name, c.token) for c in request.clusters]
        options = dict(request.select_options)
        args = (request.name, clusters, request.jobspec, request.select_algorithm, options, request.satisfy_only)
        key = request.idempotency_key
        bearer = user_token(context)
        # Placing a job whose jobspec and matches are known is a few hashes and dict look-ups:
        # cheaper here than a trip to a worker thread. Anything else (parsing, matching) goes there.
        prepared = self.scheduler.prepare_submit(*args, cached_only=True, key=key, user_token=bearer,
                                                 priority=request.priority, hold=request.hold)
        if prepared is None:
            prepared = await self.run(functools.partial(self.scheduler.prepare_submit, *args, key=key,
                                                        user_token=bearer, priority=request.priority,
                                                        hold=request.hold))
        return prepared

    @rpc
    async def SubmitJob(self, request, context):
        prepared = await self.prepare_submit(request, context)
        outcome = prepared if isinstance(prepared, SubmitOutcome) else await self.writer.submit(prepared)
        if outcome.job is not None and log.isEnabledFor(logging.DEBUG):  # the request's debug line only
            job = outcome.job
            reason = ""
            if outcome.selection is not None:
                reason = f" among {list(outcome.selection.candidates)}, {outcome.selection.reason}"
            where = f"assigned to cluster {job.cluster}" if job.state != JobState.DEPEND else "waits (depend)"
            _detail.set(f": job {job.id} ({job.name}) {where}{reason}")
        reply = rainbow_pb2.SubmitJobResponse(
            request_id=_request_id(),
            status=rainbow_pb2.SubmitJobResponse.SUBMIT_SUCCESS,
            clusters=outcome.clusters,
        )
        if outcome.job is not None:
            reply.jobid = outcome.job.id
            reply.cluster = placed_cluster(outcome.job)
        return reply

    @rpc
    async def SubmitJobs(self, request, context):
        clusters = [(c.name, c.token) for c in request.clusters]
        jobs = [(job.name, job.jobspec) for job in request.jobs]
        outcome = await self.run(
            functools.partial(self.scheduler.submit_batch, clusters, jobs, request.cc, request.select_algorithm,
                              dict(request.select_options), request.idempotency_key, user_token(context),
                              request.priority, request.batch_id, request.hold)
        )
        limits = self.scheduler.limits
        reply = rainbow_pb2.SubmitJobsResponse(batch_id=outcome.batch_id, max_batch_jobs=limits.max_batch_jobs,
                                               max_batch_bytes=limits.max_batch_bytes)
        placed = 0
        for result in outcome.results:
            if isinstance(result, str):
                reply.jobs.add(error=result)
            else:
                reply.jobs.add(jobid=result.id, cluster=result.cluster)
                placed += 1
        _detail.set(f": batch {outcome.batch_id}, {placed} of {len(outcome.results)} jobs stored")
        return reply

    async def _jobs_reply(self, jobs: list[JobRecord]) -> rainbow_pb2.ReceiveJobsResponse:
        reply = rainbow_pb2.ReceiveJobsResponse(request_id=_request_id(), lease_seconds=self.scheduler.lease_seconds)
        if not jobs:
            reply.status = rainbow_pb2.ReceiveJobsResponse.REQUEST_JOBS_NORESULTS
            return reply
        for job in jobs:
            reply.jobs[job.id] = job.wire_json()
            reply.leases[job.id] = job.lease_token
            if job.user:
                owner = reply.owners[job.id]
                owner.user = job.user
                owner.group = job.group
        # What each job depended on, beside the job (the jobs map keeps its JSON as it is).
        for job_id, parents in (await self.run(self.scheduler.depends_of, jobs)).items():
            reply.depends[job_id] = parents
        reply.status = rainbow_pb2.ReceiveJobsResponse.REQUEST_JOBS_SUCCESS
        return reply

    @rpc
    async def ReceiveJobs(self, request, context):
        owner = request.agent or context.peer()
        jobs = await self.run(self.scheduler.receive, request.cluster, request.secret, request.maxJobs, owner)
        return await self._jobs_reply(jobs)

    @stream
    async def StreamJobs(self, request, context):
        """Lease jobs as they are assigned; an empty poll waits for the next event (or a second).

        Flow control: the holder has at most ``maxJobs`` (else STREAM_WINDOW)
        leases not yet accepted; accepting frees room. While the stream is open
        the holder is alive, so its leases are renewed every third of a lease.
        """
        owner = request.agent or context.peer()
        window = request.maxJobs if request.maxJobs > 0 else STREAM_WINDOW
        every = max(self.scheduler.lease_seconds / 3, 0.05)
        renewed = self.scheduler.clock()
        while not context.done():
            version = self.hub.version
            if self.scheduler.clock() - renewed >= every:
                await self.run(self.scheduler.renew, request.cluster, request.secret, owner)
                renewed = self.scheduler.clock()
            jobs = await self.run(self.scheduler.receive, request.cluster, request.secret, window, owner, window)
            if jobs:
                yield await self._jobs_reply(jobs)
                continue
            await self.hub.wait(version, timeout=min(1.0, every))

    @rpc
    async def AcceptJobs(self, request, context):
        owner = request.agent or context.peer()
        outcome = await self.run(self.scheduler.accept, request.cluster, request.secret, list(request.jobids),
                                 owner, dict(request.leases))
        if not outcome.refused:
            status = rainbow_pb2.AcceptJobsResponse.RESULT_TYPE_SUCCESS
        elif outcome.accepted:
            status = rainbow_pb2.AcceptJobsResponse.RESULT_TYPE_PARTIAL
        else:
            status = rainbow_pb2.AcceptJobsResponse.RESULT_TYPE_ERROR
        return rainbow_pb2.AcceptJobsResponse(status=status)

    @rpc
    async def ReportJobState(self, request, context):
        exit_code = request.exit_code if request.has_exit_code else None
        output = ({f.name: value for f, value in request.output.ListFields()}
                  if request.HasField("output") else None)
        if request.rejected:
            job = await self.run(
                self.scheduler.reject, request.cluster, request.secret, request.jobid, request.message,
                request.agent if request.lease else "", request.lease,
            )
            return rainbow_pb2.ReportJobStateResponse(state=job.state.value)
        job = await self.run(
            self.scheduler.report_state, request.cluster, request.secret, request.jobid, request.state,
            request.local_id, exit_code, request.message, output, request.agent if request.lease else "",
            request.lease,
        )
        return rainbow_pb2.ReportJobStateResponse(
            state=job.state.value, cancel=job.cancel_requested and job.state not in FINAL_STATES
        )

    @rpc
    async def Heartbeat(self, request, context):
        held = [_held(job) for job in request.jobs]
        cancel, revoked = await self.run(self.scheduler.heartbeat, request.cluster, request.secret, held,
                                         request.agent)
        return rainbow_pb2.HeartbeatResponse(cancel=cancel, timeout=self.scheduler.cluster_timeout,
                                             revoked=revoked, lease_seconds=self.scheduler.lease_seconds)

    @rpc
    async def GetJob(self, request, context):
        job, history, dependencies, step = await self.run(self.scheduler.get_job_with_links, request.jobid,
                                                          request.token, user_token(context))
        return job_info(job, history, dependencies, step)

    @rpc
    async def ListJobs(self, request, context):
        clusters = [(c.name, c.token) for c in request.clusters]
        jobs = await self.run(self.scheduler.list_jobs, clusters, request.state, request.name, request.limit,
                              request.batch, user_token(context))
        return rainbow_pb2.ListJobsResponse(jobs=[job_info(job) for job in jobs])

    @rpc
    async def GetBatch(self, request, context):
        clusters = [(c.name, c.token) for c in request.clusters]
        states = await self.run(self.scheduler.batch_states, clusters, request.batch_id, user_token(context))
        return rainbow_pb2.BatchSummary(batch_id=request.batch_id, states=states, total=sum(states.values()))

    @rpc
    async def CancelBatch(self, request, context):
        clusters = [(c.name, c.token) for c in request.clusters]
        outcome = await self.run(self.scheduler.cancel_batch, clusters, request.batch_id, request.reason,
                                 user_token(context))
        return rainbow_pb2.CancelBatchResponse(cancelled=outcome.cancelled, cancel_requested=outcome.requested)

    @rpc
    async def CancelJob(self, request, context):
        job = await self.run(self.scheduler.cancel, request.jobid, request.token, request.reason,
                             user_token(context))
        return rainbow_pb2.CancelJobResponse(state=job.state.value, cancel_requested=job.cancel_requested)

    @rpc
    async def SetUrgency(self, request, context):
        if request.batch_id and request.jobid:
            raise InvalidArgument("jobid and batch_id: give one job or one batch, not both", field="batch_id")
        if request.batch_id:
            clusters = [(c.name, c.token) for c in request.clusters]
            outcome = await self.run(self.scheduler.set_batch_urgency, clusters, request.batch_id, request.urgency,
                                     user_token(context))
            return rainbow_pb2.SetUrgencyResponse(changed=outcome.changed, skipped=outcome.skipped)
        outcome = await self.run(self.scheduler.set_urgency, request.jobid, request.token, request.urgency,
                                 user_token(context))
        job = outcome.job
        return rainbow_pb2.SetUrgencyResponse(changed=outcome.changed, state=job.state.value, priority=job.priority)

    @rpc
    async def SubmitWorkflow(self, request, context):
        clusters = [(c.name, c.token) for c in request.clusters]
        view = await self.run(functools.partial(
            self.scheduler.submit_workflow, clusters, request.name, _steps(request), request.select_algorithm,
            dict(request.select_options), request.idempotency_key, user_token(context), request.priority))
        _detail.set(f": workflow {view.record.id} ({view.record.name}), {len(view.steps)} steps")
        return workflow_info(view)

    @rpc
    async def GetWorkflow(self, request, context):
        clusters = [(c.name, c.token) for c in request.clusters]
        view = await self.run(self.scheduler.workflow, clusters, request.workflow_id, user_token(context))
        return workflow_info(view)

    @rpc
    async def CancelWorkflow(self, request, context):
        clusters = [(c.name, c.token) for c in request.clusters]
        outcome = await self.run(self.scheduler.cancel_workflow, clusters, request.workflow_id, request.reason,
                                 user_token(context))
        return rainbow_pb2.CancelBatchResponse(cancelled=outcome.cancelled, cancel_requested=outcome.requested)

    @stream
    async def WatchJobs(self, request, context):
        """Every event of the listed clusters (or one job) in order, replayed from ``since``."""
        clusters = [(c.name, c.token) for c in request.clusters]
        job_id = request.jobid or None
        scope, owner = await self.run(self.scheduler.watcher, clusters, job_id, user_token(context))
        store = self.scheduler.store
        if request.since < 0:
            seq = 0
        elif request.since > 0:
            seq = request.since
        else:
            seq = await self.run(store.last_event_seq)

        async def fetch(
            after: int, clusters: list[str] | None, job: int | None, limit: int, user: str | None = None
        ) -> list[JobEvent]:
            return await self.run(store.events_since, after, clusters, job, limit, user)

        async def last() -> int:
            return await self.run(store.last_event_seq)

        while not context.done():
            version = self.hub.version
            events = await self.hub.events_since(seq, scope, job_id, 500, fetch, last, owner)
            for event in events:
                seq = event.seq
                yield job_event(event)
            if not events:
                await self.hub.wait(version, timeout=1.0)


    # -- users and cluster access ---------------------------------------------
    @rpc
    async def AddUser(self, request, context):
        user, token = await self.run(self.scheduler.add_user, request.name, list(request.groups), request.admin,
                                     request.secret, user_token(context))
        return rainbow_pb2.UserReply(user=user_info(user), token=token)

    @rpc
    async def RemoveUser(self, request, context):
        await self.run(self.scheduler.remove_user, request.name, request.secret, user_token(context))
        return rainbow_pb2.UserReply(user=rainbow_pb2.UserInfo(name=request.name))

    @rpc
    async def NewUserToken(self, request, context):
        user, token = await self.run(self.scheduler.new_user_token, request.name, request.secret,
                                     user_token(context))
        return rainbow_pb2.UserReply(user=user_info(user), token=token)

    @rpc
    async def ListUsers(self, request, context):
        users = await self.run(self.scheduler.list_users, request.secret, user_token(context))
        return rainbow_pb2.ListUsersResponse(users=[user_info(user) for user in users])

    @rpc
    async def SetClusterAccess(self, request, context):
        rule = request.rule
        allow = None if request.remove else rule.allow
        rules = await self.run(self.scheduler.set_cluster_access, request.cluster, rule.kind, rule.name, allow,
                               request.secret, user_token(context))
        return access_reply(request.cluster, rules)

    @rpc
    async def GetClusterAccess(self, request, context):
        rules = await self.run(self.scheduler.cluster_access, request.cluster, request.secret, user_token(context))
        return access_reply(request.cluster, rules)

    @rpc
    async def RenewClusterCredentials(self, request, context):
        renewed = await self.run(self.scheduler.renew_cluster_credentials, request.cluster, request.secret,
                                 user_token(context))
        return rainbow_pb2.RegisterResponse(request_id=_request_id(), token=renewed.token, secret=renewed.secret,
                                            status=rainbow_pb2.RegisterResponse.REGISTER_SUCCESS)

    @rpc
    async def WhoAmI(self, request, context):
        principal = await self.run(self.scheduler.whoami, user_token(context))
        return rainbow_pb2.UserInfo(name=principal.user, groups=list(principal.groups), admin=principal.admin)

    # -- fair share, quotas and accounting ---------------------------------------
    @rpc
    async def SetShares(self, request, context):
        standings = await self.run(self.scheduler.set_shares, request.kind, request.name, request.shares,
                                   request.parent, request.secret, user_token(context))
        return rainbow_pb2.SharesResponse(standings=[standing_message(s) for s in standings])

    @rpc
    async def LoadAccounts(self, request, context):
        created = await self.run(self.scheduler.load_accounts, request.document, request.secret, user_token(context))
        return rainbow_pb2.LoadAccountsResponse(created=[
            rainbow_pb2.UserReply(user=rainbow_pb2.UserInfo(name=name), token=token) for name, token in created
        ])

    @rpc
    async def SetQuota(self, request, context):
        limits = await self.run(self.scheduler.set_quota, quota_from_message(request.quota), request.remove,
                                request.secret, user_token(context))
        return quotas_reply(limits)

    @rpc
    async def ListQuotas(self, request, context):
        return quotas_reply(await self.run(self.scheduler.list_quotas, request.secret, user_token(context)))

    @rpc
    async def GetUsage(self, request, context):
        report = await self.run(self.scheduler.usage, request.by, request.since, request.secret, user_token(context))
        return usage_reply(report)


class MemoryGraphServicer(_Base, memory_pb2_grpc.MemoryGraphServicer):
    @rpc
    async def Satisfy(self, request, context):
        outcome = await self.run(self.scheduler.satisfy, request.payload, request.matcher, user_token(context))
        return memory_pb2.SatisfyResponse(
            clusters=outcome.clusters,
            status=memory_pb2.SatisfyResponse.RESULT_TYPE_SUCCESS,
            total_clusters=outcome.total,
            total_matches=len(outcome.clusters),
            total_mismatches=outcome.total - len(outcome.clusters),
            reasons=outcome.reasons,
        )

    @rpc
    async def Register(self, request, context):
        """Replace a registered cluster's graph, or one of its subsystems.

        The message has no credential field, so the cluster secret travels in
        the ``rainbow-secret`` call metadata.
        """
        secret = dict(context.invocation_metadata()).get(SECRET_METADATA_KEY, "")
        if request.subsystem:
            await self.run(
                self.scheduler.register_subsystem, request.name, secret, request.subsystem, request.payload
            )
        else:
            await self.run(self.scheduler.replace_graph, request.name, secret, request.payload)
        return memory_pb2.Response(status=memory_pb2.Response.RESULT_TYPE_SUCCESS)
