"""Every RPC against every kind of caller, over real gRPC: the status code each gets.

Roles: anonymous (no credential at all), legacy (the cluster's submit token, as clients before users send it),
user (alice, the owner of the jobs asked about), other (bob, another user), admin (an admin user), cluster (the
cluster's own secret, wherever the request has a credential field: a cluster secret grants nothing user-side)
and operator (the registration secret). A user token travels as ``authorization: Bearer`` metadata.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from rainbow.client import RainbowClient
from rainbow.config import RainbowConfig
from rainbow.jobspec import simple
from rainbow.protos import memory_pb2, rainbow_pb2

from conftest import BOTH_STORES, REGISTRATION_SECRET, example, stubs_for

pytestmark = BOTH_STORES

ROLES = ("anonymous", "legacy", "user", "other", "admin", "cluster", "operator")

# OK: served; PD: PERMISSION_DENIED; UN: UNAUTHENTICATED; NF: NOT_FOUND.
EXPECTED = """
rpc                     anonymous legacy user other admin cluster operator
Register                PD        PD     PD   PD    PD    PD      OK
RegisterSubsystem       PD        PD     PD   PD    PD    OK      PD
DeleteSubsystem         PD        PD     PD   PD    PD    OK      PD
Delete                  PD        PD     PD   PD    PD    OK      PD
UpdateState             PD        PD     PD   PD    PD    OK      PD
ReceiveJobs             PD        PD     PD   PD    PD    OK      PD
AcceptJobs              PD        PD     PD   PD    PD    OK      PD
ReportJobState          PD        PD     PD   PD    PD    OK      PD
Heartbeat               PD        PD     PD   PD    PD    OK      PD
StreamJobs              PD        PD     PD   PD    PD    OK      PD
SubmitJob               PD        OK     OK   OK    OK    PD      PD
SubmitJobs              PD        OK     OK   OK    OK    PD      PD
GetJob                  PD        OK     OK   PD    OK    PD      PD
SetUrgency              PD        OK     OK   PD    OK    PD      PD
CancelJob               PD        OK     OK   PD    OK    PD      PD
ListJobs                PD        OK     OK   OK    OK    PD      PD
WatchJobs               PD        OK     OK   OK    OK    PD      PD
GetBatch                PD        OK     OK   NF    OK    PD      PD
CancelBatch             PD        OK     OK   NF    OK    PD      PD
SubmitWorkflow          PD        OK     OK   OK    OK    PD      PD
GetWorkflow             PD        OK     OK   NF    OK    PD      PD
CancelWorkflow          PD        OK     OK   NF    OK    PD      PD
AddUser                 UN        UN     PD   PD    OK    UN      OK
RemoveUser              UN        UN     PD   PD    OK    UN      OK
NewUserToken            UN        UN     PD   PD    OK    UN      OK
ListUsers               UN        UN     PD   PD    OK    UN      OK
SetClusterAccess        UN        UN     PD   PD    OK    OK      OK
GetClusterAccess        UN        UN     PD   PD    OK    OK      OK
RenewClusterCredentials UN        UN     PD   PD    OK    OK      OK
WhoAmI                  UN        UN     OK   OK    OK    UN      UN
SetShares               UN        UN     PD   PD    OK    UN      OK
LoadAccounts            UN        UN     PD   PD    OK    UN      OK
SetQuota                UN        UN     PD   PD    OK    UN      OK
ListQuotas              UN        UN     PD   PD    OK    UN      OK
GetUsage                UN        UN     PD   PD    OK    UN      OK
Satisfy                 OK        OK     OK   OK    OK    OK      OK
GraphRegister           PD        PD     PD   PD    PD    OK      PD
"""
WORKFLOW = {"name": "pipeline", "steps": {"make": {"command": "true"}, "use": {"command": "true", "needs": "make"}}}
CODES = {"OK": "OK", "PD": "PERMISSION_DENIED", "UN": "UNAUTHENTICATED", "NF": "NOT_FOUND"}


def expected() -> dict[tuple[str, str], str]:
    lines = [line.split() for line in EXPECTED.strip().splitlines()]
    header = lines[0][1:]
    assert tuple(header) == ROLES
    return {(row[0], role): CODES[code] for row in lines[1:] for role, code in zip(header, row[1:], strict=True)}


@dataclass
class World:
    stubs: Any
    token: str  # keebler's submit token
    secret: str  # keebler's cluster secret
    tokens: dict[str, str]  # alice, bob, root -> user token
    job: int  # alice's job
    batch: str  # alice's batch
    workflow: str  # alice's workflow
    config: RainbowConfig
    counter: Any = None

    def unique(self, prefix: str) -> str:
        return f"{prefix}{next(self.counter)}"

    def credential(self, role: str) -> tuple[str, list[tuple[str, str]]]:
        """What a role puts in a request's credential field, and the call metadata it sends."""
        bearer = {"user": "alice", "other": "bob", "admin": "root"}
        if role in bearer:
            return "", [("authorization", f"Bearer {self.tokens[bearer[role]]}")]
        return {"anonymous": "", "legacy": self.token, "cluster": self.secret,
                "operator": REGISTRATION_SECRET}[role], []


@pytest.fixture
def world(server_factory, tmp_path):
    server = server_factory()
    config = RainbowConfig.new("keebler", host=server.address, path=tmp_path / "keebler.yaml")
    with RainbowClient(server.address, config_file=config) as client:
        registration = client.register("keebler", REGISTRATION_SECRET, example("cluster-nodes.json"), save=True)
        tokens = {name: client.add_user(name, ["physics"], admin=name == "root", secret=REGISTRATION_SECRET).token
                  for name in ("alice", "bob", "root")}
    with RainbowClient(server.address, user_token=tokens["alice"]) as alice:
        job = alice.submit_jobspec(simple(["true"]), name="alice-job").jobid
        batch = alice.submit_array(simple(["app", "{cc}"]), 2).batch_id
        workflow = alice.submit_workflow(WORKFLOW).workflow_id
    with RainbowClient(server.address, user_token=tokens["bob"]) as bob:
        bob.submit_jobspec(simple(["true"]), name="bob-job")
    stubs = stubs_for(server.address, server)
    yield World(stubs, registration.token, registration.secret, tokens, job, batch, workflow, config,
                itertools.count(1))
    stubs.channel.close()


def _clusters(world: World, token: str) -> list[rainbow_pb2.SubmitJobRequest.Cluster]:
    return [rainbow_pb2.SubmitJobRequest.Cluster(name="keebler", token=token)]


def _first(stream: Any) -> Any:
    """Read one message of a server stream, then end it."""
    try:
        return next(iter(stream))
    finally:
        stream.cancel()


def _call(world: World, rpc: str, role: str) -> str:
    value, metadata = world.credential(role)
    stubs = world.stubs
    scheduler = stubs.scheduler
    spec = json.dumps(simple(["true"]))
    nodes = example("cluster-nodes.json")

    def unary(method: Callable, request: Any) -> Any:
        return method(request, metadata=metadata, timeout=30)

    def secret_setup(what: Callable[[], None]) -> None:
        if role == "cluster":
            what()

    calls: dict[str, Callable[[], Any]] = {
        "Register": lambda: unary(scheduler.Register, rainbow_pb2.RegisterRequest(
            name=world.unique("new"), secret=value, nodes=nodes)),
        "RegisterSubsystem": lambda: unary(scheduler.RegisterSubsystem, rainbow_pb2.RegisterRequest(
            name="keebler", secret=value, subsystem="io", nodes=example("cluster-io-subsystem.json"))),
        "DeleteSubsystem": lambda: (
            secret_setup(lambda: scheduler.RegisterSubsystem(rainbow_pb2.RegisterRequest(
                name="keebler", secret=world.secret, subsystem="io", nodes=example("cluster-io-subsystem.json")))),
            unary(scheduler.DeleteSubsystem, rainbow_pb2.DeleteRequest(name="keebler", secret=value,
                                                                      subsytem="io")))[1],
        "Delete": lambda: _delete(world, role, unary),
        "UpdateState": lambda: unary(scheduler.UpdateState, rainbow_pb2.UpdateStateRequest(
            cluster="keebler", secret=value, payload='{"nodes_free": 1}')),
        "ReceiveJobs": lambda: unary(scheduler.ReceiveJobs, rainbow_pb2.ReceiveJobsRequest(
            cluster="keebler", secret=value, maxJobs=1, agent="matrix")),
        "AcceptJobs": lambda: unary(scheduler.AcceptJobs, rainbow_pb2.AcceptJobsRequest(
            cluster="keebler", secret=value, jobids=[world.job], agent="matrix")),
        "ReportJobState": lambda: unary(scheduler.ReportJobState, rainbow_pb2.ReportJobStateRequest(
            cluster="keebler", secret=value, jobid=world.job, state="running")),
        "Heartbeat": lambda: unary(scheduler.Heartbeat, rainbow_pb2.HeartbeatRequest(
            cluster="keebler", secret=value, agent="matrix")),
        "StreamJobs": lambda: (
            secret_setup(lambda: scheduler.SubmitJob(rainbow_pb2.SubmitJobRequest(
                clusters=_clusters(world, world.token), jobspec=spec))),
            _first(scheduler.StreamJobs(rainbow_pb2.ReceiveJobsRequest(cluster="keebler", secret=value, maxJobs=1,
                                                                       agent="matrix"), metadata=metadata)))[1],
        "SubmitJob": lambda: unary(scheduler.SubmitJob, rainbow_pb2.SubmitJobRequest(
            clusters=_clusters(world, value) if not metadata else [], jobspec=spec)),
        "SubmitJobs": lambda: unary(scheduler.SubmitJobs, rainbow_pb2.SubmitJobsRequest(
            clusters=_clusters(world, value) if not metadata else [],
            jobs=[rainbow_pb2.SubmitJobsRequest.Job(jobspec=spec)])),
        "GetJob": lambda: unary(scheduler.GetJob, rainbow_pb2.GetJobRequest(jobid=world.job, token=value)),
        "SetUrgency": lambda: unary(scheduler.SetUrgency, rainbow_pb2.SetUrgencyRequest(
            jobid=_waiting_job(world), token=value, urgency="hold")),
        "CancelJob": lambda: unary(scheduler.CancelJob, rainbow_pb2.CancelJobRequest(jobid=world.job, token=value)),
        "ListJobs": lambda: unary(scheduler.ListJobs, rainbow_pb2.ListJobsRequest(
            clusters=_clusters(world, value) if not metadata else [])),
        "WatchJobs": lambda: _first(scheduler.WatchJobs(rainbow_pb2.WatchJobsRequest(
            clusters=_clusters(world, value) if not metadata else [], since=-1), metadata=metadata)),
        "GetBatch": lambda: unary(scheduler.GetBatch, rainbow_pb2.GetBatchRequest(
            clusters=_clusters(world, value) if not metadata else [], batch_id=world.batch)),
        "CancelBatch": lambda: unary(scheduler.CancelBatch, rainbow_pb2.CancelBatchRequest(
            clusters=_clusters(world, value) if not metadata else [], batch_id=world.batch)),
        "SubmitWorkflow": lambda: unary(scheduler.SubmitWorkflow, rainbow_pb2.SubmitWorkflowRequest(
            clusters=_clusters(world, value) if not metadata else [], name="matrix",
            steps=[rainbow_pb2.WorkflowStep(name="only", jobspec=spec)])),
        "GetWorkflow": lambda: unary(scheduler.GetWorkflow, rainbow_pb2.GetWorkflowRequest(
            clusters=_clusters(world, value) if not metadata else [], workflow_id=world.workflow)),
        "CancelWorkflow": lambda: unary(scheduler.CancelWorkflow, rainbow_pb2.CancelWorkflowRequest(
            clusters=_clusters(world, value) if not metadata else [], workflow_id=world.workflow)),
        "AddUser": lambda: unary(scheduler.AddUser, rainbow_pb2.AddUserRequest(
            name=world.unique("someone"), secret=value)),
        "RemoveUser": lambda: unary(scheduler.RemoveUser, rainbow_pb2.UserRequest(
            name=_victim(world), secret=value)),
        "NewUserToken": lambda: unary(scheduler.NewUserToken, rainbow_pb2.UserRequest(
            name=_victim(world), secret=value)),
        "ListUsers": lambda: unary(scheduler.ListUsers, rainbow_pb2.ListUsersRequest(secret=value)),
        "SetClusterAccess": lambda: unary(scheduler.SetClusterAccess, rainbow_pb2.ClusterAccessRequest(
            cluster="keebler", secret=value, rule=rainbow_pb2.ClusterAccessRule(kind="user", name="nobody"))),
        "GetClusterAccess": lambda: unary(scheduler.GetClusterAccess, rainbow_pb2.ClusterAccessRequest(
            cluster="keebler", secret=value)),
        "RenewClusterCredentials": lambda: _renew(world, role, unary),
        "WhoAmI": lambda: unary(scheduler.WhoAmI, rainbow_pb2.WhoAmIRequest()),
        "SetShares": lambda: unary(scheduler.SetShares, rainbow_pb2.SetSharesRequest(
            kind="group", name="physics", shares=2, secret=value)),
        "LoadAccounts": lambda: unary(scheduler.LoadAccounts, rainbow_pb2.LoadAccountsRequest(
            document="banks: [{name: chemistry, shares: 1}]", secret=value)),
        "SetQuota": lambda: unary(scheduler.SetQuota, rainbow_pb2.SetQuotaRequest(
            quota=rainbow_pb2.Quota(kind="user", name="nobody", max_waiting=1000), secret=value)),
        "ListQuotas": lambda: unary(scheduler.ListQuotas, rainbow_pb2.ListQuotasRequest(secret=value)),
        "GetUsage": lambda: unary(scheduler.GetUsage, rainbow_pb2.GetUsageRequest(secret=value)),
        "Satisfy": lambda: unary(stubs.graph.Satisfy, memory_pb2.SatisfyRequest(payload=spec)),
        "GraphRegister": lambda: stubs.graph.Register(
            memory_pb2.RegisterRequest(name="keebler", payload=nodes),
            metadata=[*metadata, ("rainbow-secret", value)], timeout=30),
    }
    try:
        calls[rpc]()
    except grpc.RpcError as exc:
        return exc.code().name
    return "OK"


def _delete(world: World, role: str, unary: Callable) -> Any:
    """Delete a cluster registered for the purpose (its own secret for the cluster role)."""
    name = world.unique("doomed")
    registered = world.stubs.scheduler.Register(rainbow_pb2.RegisterRequest(
        name=name, secret=REGISTRATION_SECRET, nodes=example("cluster-nodes.json")))
    value, _ = world.credential(role)
    secret = registered.secret if role == "cluster" else value
    return unary(world.stubs.scheduler.Delete, rainbow_pb2.DeleteRequest(name=name, secret=secret))


def _waiting_job(world: World) -> int:
    """A job of alice's that still waits (the cluster role's ReceiveJobs took the others)."""
    with RainbowClient(world.stubs.address, user_token=world.tokens["alice"]) as alice:
        return alice.submit_jobspec(simple(["true"]), name="alice-waiting").jobid


def _renew(world: World, role: str, unary: Callable) -> Any:
    """Renew the credentials of a cluster registered for the purpose (its own secret for the cluster role):
    keebler's are the other calls'."""
    name = world.unique("renewed")
    registered = world.stubs.scheduler.Register(rainbow_pb2.RegisterRequest(
        name=name, secret=REGISTRATION_SECRET, nodes=example("cluster-nodes.json")))
    value, _ = world.credential(role)
    secret = registered.secret if role == "cluster" else value
    return unary(world.stubs.scheduler.RenewClusterCredentials,
                 rainbow_pb2.RenewCredentialsRequest(cluster=name, secret=secret))


def _victim(world: World) -> str:
    """A user made for a call that removes it or replaces its token."""
    name = world.unique("victim")
    world.stubs.scheduler.AddUser(rainbow_pb2.AddUserRequest(name=name, secret=REGISTRATION_SECRET))
    return name


def test_every_rpc_answers_every_role_with_its_status_code(world):
    rpcs = [line.split()[0] for line in EXPECTED.strip().splitlines()[1:]]
    services = {m.name for m in rainbow_pb2.DESCRIPTOR.services_by_name["RainbowScheduler"].methods}
    services |= {"Satisfy", "GraphRegister"}
    assert services == set(rpcs), "every RPC has a row"
    want = expected()
    got = {(rpc, role): _call(world, rpc, role) for rpc in rpcs for role in ROLES}
    wrong = {key: (got[key], want[key]) for key in want if got[key] != want[key]}
    assert wrong == {}
