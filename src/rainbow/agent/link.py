"""The agent's side of the wire: the cluster RPCs, with the cluster's credentials.

Built on :class:`rainbow.client.RainbowClient` (its channel, TLS and error
mapping); every failure is a :class:`rainbow.errors.RainbowError` whose
``code`` is the gRPC status name, so the agent can tell an outage
(``UNAVAILABLE``/``DEADLINE_EXCEEDED``: back off and retry) from a refusal.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc

from rainbow.client import Job, RainbowClient, accept_each, rpc_error
from rainbow.errors import InvalidArgument
from rainbow.protos import rainbow_pb2

T = TypeVar("T")

OUTAGE_CODES = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED", "RESOURCE_EXHAUSTED"})


@dataclass(frozen=True)
class Report:
    """The server's answer to a job state report."""

    state: str
    cancel: bool


@dataclass(frozen=True)
class Beat:
    """The server's answer to a heartbeat."""

    cancel: list[int]
    timeout: float
    # Held jobs this agent no longer holds (lease taken over, job moved): drop the local copy.
    revoked: list[int] = field(default_factory=list)
    # Seconds a lease lasts unless renewed (0: a server without fencing).
    lease_seconds: float = 0.0


class ClusterLink:
    """One cluster's connection to the rainbow server (thread-safe: gRPC channels are)."""

    def __init__(self, client: RainbowClient, cluster: str | None = None, secret: str | None = None,
                 agent: str = "", timeout: float = 30.0) -> None:
        config = client.config
        self.client = client
        self.cluster = cluster or (config.cluster_name if config else None) or ""
        self.secret = secret or (config.cluster_secret if config and self.cluster == config.cluster_name else None)
        if not self.cluster:
            raise InvalidArgument("the agent needs a cluster name (cluster.name in the config)", field="cluster")
        if not self.secret:
            raise InvalidArgument(
                f"the agent needs the secret of cluster {self.cluster!r} (cluster.secret in the config; "
                "register the cluster with --save to write it)", field="secret")
        self.agent = agent
        self.timeout = timeout
        # The server's lease length, learnt from its replies (0: not known yet).
        self.lease_seconds = 0.0
        self._streams: list[Any] = []
        self._lock = threading.Lock()

    @property
    def host(self) -> str:
        return self.client.host

    def _call(self, method: Callable[..., T], request: Any) -> T:
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise rpc_error(exc, self.client.host, self.client.transport) from exc

    def update_state(self, state: Mapping[str, Any]) -> None:
        request = rainbow_pb2.UpdateStateRequest(cluster=self.cluster, secret=self.secret, payload=json.dumps(state))
        self._call(self.client.scheduler_stub.UpdateState, request)

    def receive(self, max_jobs: int = 0) -> list[Job]:
        request = rainbow_pb2.ReceiveJobsRequest(cluster=self.cluster, secret=self.secret, maxJobs=max_jobs,
                                                 agent=self.agent)
        request.sent.GetCurrentTime()
        reply = self._call(self.client.scheduler_stub.ReceiveJobs, request)
        self._note_lease(reply.lease_seconds)
        return Job.from_reply(reply)

    def _note_lease(self, seconds: float) -> None:
        if seconds > 0:
            self.lease_seconds = seconds

    def accept(self, jobids: Sequence[int], leases: Mapping[int, int] | None = None) -> list[int]:
        """Accept jobs with their lease tokens; returns those the server confirmed.

        One by one when the answer is partial or fenced: a job whose lease another
        holder took over is left out.
        """
        ids = list(dict.fromkeys(int(j) for j in jobids))
        return accept_each(lambda chunk: self._accept(chunk, leases or {}), ids)

    def _accept(self, ids: list[int], leases: Mapping[int, int]) -> int:
        request = rainbow_pb2.AcceptJobsRequest(
            cluster=self.cluster, secret=self.secret, jobids=ids, agent=self.agent,
            leases={j: leases[j] for j in ids if leases.get(j)},
        )
        request.sent.GetCurrentTime()
        return self._call(self.client.scheduler_stub.AcceptJobs, request).status

    def report(self, jobid: int, state: str, local_id: str = "", exit_code: int | None = None,
               message: str = "", output: Mapping[str, str] | None = None, lease: int = 0,
               rejected: bool = False) -> Report:
        """Report a job's state (``output``: where its output is, the fields of ``JobOutput``).

        ``rejected``: the local scheduler refused the job before it ran (``message``
        says why); the server places it elsewhere, and the reply's state is then
        ``assigned``, or ``failed`` when no cluster remains.
        ABORTED (a RainbowError) when this agent's lease was taken over.
        """
        request = rainbow_pb2.ReportJobStateRequest(
            cluster=self.cluster, secret=self.secret, jobid=jobid, state=state, local_id=local_id or "",
            message=message or "", agent=self.agent, lease=lease, rejected=rejected,
        )
        if output:
            request.output.CopyFrom(rainbow_pb2.JobOutput(**output))
        if exit_code is not None:
            request.exit_code = exit_code
            request.has_exit_code = True
        reply = self._call(self.client.scheduler_stub.ReportJobState, request)
        return Report(reply.state, reply.cancel)

    def heartbeat(self, held: Sequence[tuple[int, str, str, int]]) -> Beat:
        """Say the agent is alive with its inventory (job id, state, local id, lease token); renews its leases."""
        request = rainbow_pb2.HeartbeatRequest(
            cluster=self.cluster, secret=self.secret, agent=self.agent,
            jobs=[rainbow_pb2.HeldJob(jobid=j, state=s, local_id=local or "", lease=lease)
                  for j, s, local, lease in held],
        )
        reply = self._call(self.client.scheduler_stub.Heartbeat, request)
        self._note_lease(reply.lease_seconds)
        return Beat(list(reply.cancel), reply.timeout, list(reply.revoked), reply.lease_seconds)

    def stream(self, max_jobs: int = 0) -> Iterator[list[Job]]:
        """Jobs as the server assigns them (leased on the way); ends when :meth:`close_streams` is called.

        Raises a RainbowError with code ``UNIMPLEMENTED`` when the server has no streaming.
        """
        request = rainbow_pb2.ReceiveJobsRequest(cluster=self.cluster, secret=self.secret, maxJobs=max_jobs,
                                                 agent=self.agent)
        call = self.client.scheduler_stub.StreamJobs(request)
        with self._lock:
            self._streams.append(call)
        try:
            for reply in call:
                self._note_lease(reply.lease_seconds)
                yield Job.from_reply(reply)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.CANCELLED and call.cancelled():
                return
            raise rpc_error(exc, self.client.host, self.client.transport) from exc
        finally:
            with self._lock:
                if call in self._streams:
                    self._streams.remove(call)

    def close_streams(self) -> None:
        with self._lock:
            streams, self._streams = list(self._streams), []
        for call in streams:
            call.cancel()
