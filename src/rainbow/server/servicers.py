"""gRPC servicers: protobuf in, Scheduler call, protobuf out.

Each RPC logs one line (method, outcome, duration). Scheduler errors become
gRPC status codes with their message; anything unexpected becomes INTERNAL with
a request id, and the traceback goes to the log only.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

import grpc

from rainbow.errors import RainbowError
from rainbow.protos import memory_pb2, memory_pb2_grpc, rainbow_pb2, rainbow_pb2_grpc
from rainbow.scheduler import Scheduler

log = logging.getLogger("rainbow.server")

T = TypeVar("T")

SECRET_METADATA_KEY = "rainbow-secret"


def rpc(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Log, time and translate errors for one servicer method."""
    name = method.__name__

    @functools.wraps(method)
    async def wrapper(self, request, context: grpc.aio.ServicerContext):
        start = time.perf_counter()
        try:
            reply = await method(self, request, context)
        except RainbowError as exc:
            elapsed = (time.perf_counter() - start) * 1000
            log.warning("%s -> %s: %s (%.1f ms)", name, exc.code, exc.message, elapsed)
            await context.abort(getattr(grpc.StatusCode, exc.code, grpc.StatusCode.UNKNOWN), exc.message)
        except (grpc.aio.AbortError, asyncio.CancelledError):
            raise
        except Exception:
            request_id = uuid.uuid4().hex[:12]
            log.exception("%s failed unexpectedly (request %s)", name, request_id)
            await context.abort(grpc.StatusCode.INTERNAL, f"internal server error (request {request_id})")
        log.info("%s ok (%.1f ms)", name, (time.perf_counter() - start) * 1000)
        return reply

    return wrapper


class _Base:
    def __init__(self, scheduler: Scheduler, executor: Executor) -> None:
        self.scheduler = scheduler
        self.executor = executor

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking scheduler work (store, match) off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args))


def _request_id() -> str:
    return uuid.uuid4().hex


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

    @rpc
    async def SubmitJob(self, request, context):
        clusters = [(c.name, c.token) for c in request.clusters]
        outcome = await self.run(
            self.scheduler.submit,
            request.name,
            clusters,
            request.jobspec,
            request.select_algorithm,
            dict(request.select_options),
            request.satisfy_only,
        )
        reply = rainbow_pb2.SubmitJobResponse(
            request_id=_request_id(),
            status=rainbow_pb2.SubmitJobResponse.SUBMIT_SUCCESS,
            clusters=outcome.clusters,
        )
        if outcome.job is not None:
            reply.jobid = outcome.job.id
            reply.cluster = outcome.job.cluster
        return reply

    @rpc
    async def ReceiveJobs(self, request, context):
        jobs = await self.run(
            self.scheduler.receive, request.cluster, request.secret, request.maxJobs, context.peer()
        )
        reply = rainbow_pb2.ReceiveJobsResponse(request_id=_request_id())
        if not jobs:
            reply.status = rainbow_pb2.ReceiveJobsResponse.REQUEST_JOBS_NORESULTS
            return reply
        for job in jobs:
            reply.jobs[job.id] = job.wire_json()
        reply.status = rainbow_pb2.ReceiveJobsResponse.REQUEST_JOBS_SUCCESS
        return reply

    @rpc
    async def AcceptJobs(self, request, context):
        outcome = await self.run(self.scheduler.accept, request.cluster, request.secret, list(request.jobids))
        if not outcome.refused:
            status = rainbow_pb2.AcceptJobsResponse.RESULT_TYPE_SUCCESS
        elif outcome.accepted:
            status = rainbow_pb2.AcceptJobsResponse.RESULT_TYPE_PARTIAL
        else:
            status = rainbow_pb2.AcceptJobsResponse.RESULT_TYPE_ERROR
        return rainbow_pb2.AcceptJobsResponse(status=status)


class MemoryGraphServicer(_Base, memory_pb2_grpc.MemoryGraphServicer):
    @rpc
    async def Satisfy(self, request, context):
        outcome = await self.run(self.scheduler.satisfy, request.payload, request.matcher)
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
