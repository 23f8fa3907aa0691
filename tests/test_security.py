"""Credentials: every RPC with the wrong credential is refused; secrets never reach logs or the store."""

from __future__ import annotations

import logging
import sqlite3

import grpc
import pytest

from rainbow.protos import memory_pb2, rainbow_pb2

from conftest import REGISTRATION_SECRET, example

Cluster = rainbow_pb2.SubmitJobRequest.Cluster
DENIED = grpc.StatusCode.PERMISSION_DENIED


@pytest.fixture
def two(rainbow):
    creds = {}
    for name in ("a", "b"):
        reply = rainbow.scheduler.Register(rainbow_pb2.RegisterRequest(
            name=name, secret=REGISTRATION_SECRET, nodes=example("cluster-nodes.json")))
        creds[name] = (reply.token, reply.secret)
    job_b = rainbow.scheduler.SubmitJob(rainbow_pb2.SubmitJobRequest(
        name="b-job", clusters=[Cluster(name="b", token=creds["b"][0])],
        jobspec=example("jobspec-constraint.yaml"))).jobid
    return rainbow, creds, job_b


def code_of(call, request):
    try:
        call(request)
    except grpc.RpcError as err:
        return err.code()
    return grpc.StatusCode.OK


def test_a_credentials_never_open_b(two):
    stubs, creds, job_b = two
    s = stubs.scheduler
    a_token, a_secret = creds["a"]
    b_token, b_secret = creds["b"]
    attempts = {
        "Register with a cluster secret": (s.Register, rainbow_pb2.RegisterRequest(
            name="c", secret=a_secret, nodes=example("cluster-nodes.json"))),
        "Register with a token": (s.Register, rainbow_pb2.RegisterRequest(
            name="c", secret=a_token, nodes=example("cluster-nodes.json"))),
        "RegisterSubsystem": (s.RegisterSubsystem, rainbow_pb2.RegisterRequest(
            name="b", secret=a_secret, subsystem="io", nodes=example("cluster-io-subsystem.json"))),
        "RegisterSubsystem with b's token": (s.RegisterSubsystem, rainbow_pb2.RegisterRequest(
            name="b", secret=b_token, subsystem="io", nodes=example("cluster-io-subsystem.json"))),
        "DeleteSubsystem": (s.DeleteSubsystem, rainbow_pb2.DeleteRequest(name="b", secret=a_secret, subsytem="io")),
        "Delete": (s.Delete, rainbow_pb2.DeleteRequest(name="b", secret=a_secret)),
        "Delete with the registration secret": (s.Delete, rainbow_pb2.DeleteRequest(
            name="b", secret=REGISTRATION_SECRET)),
        "UpdateState": (s.UpdateState, rainbow_pb2.UpdateStateRequest(cluster="b", secret=a_secret, payload="{}")),
        "SubmitJob with a's token": (s.SubmitJob, rainbow_pb2.SubmitJobRequest(
            name="x", clusters=[Cluster(name="b", token=a_token)], jobspec=example("jobspec-constraint.yaml"))),
        "SubmitJob with b's secret": (s.SubmitJob, rainbow_pb2.SubmitJobRequest(
            name="x", clusters=[Cluster(name="b", token=b_secret)], jobspec=example("jobspec-constraint.yaml"))),
        "ReceiveJobs": (s.ReceiveJobs, rainbow_pb2.ReceiveJobsRequest(cluster="b", secret=a_secret)),
        "ReceiveJobs with b's token": (s.ReceiveJobs, rainbow_pb2.ReceiveJobsRequest(cluster="b", secret=b_token)),
        "AcceptJobs": (s.AcceptJobs, rainbow_pb2.AcceptJobsRequest(cluster="b", secret=a_secret, jobids=[job_b])),
        "ReportJobState": (s.ReportJobState, rainbow_pb2.ReportJobStateRequest(
            cluster="b", secret=a_secret, jobid=job_b, state="running")),
        "Heartbeat": (s.Heartbeat, rainbow_pb2.HeartbeatRequest(cluster="b", secret=a_secret)),
        "GetJob": (s.GetJob, rainbow_pb2.GetJobRequest(jobid=job_b, token=a_token)),
        "GetJob with b's secret": (s.GetJob, rainbow_pb2.GetJobRequest(jobid=job_b, token=b_secret)),
        "CancelJob": (s.CancelJob, rainbow_pb2.CancelJobRequest(jobid=job_b, token=a_token)),
        "ListJobs": (s.ListJobs, rainbow_pb2.ListJobsRequest(clusters=[Cluster(name="b", token=a_token)])),
        "SetUrgency": (s.SetUrgency, rainbow_pb2.SetUrgencyRequest(jobid=job_b, token=a_token, urgency="hold")),
    }
    for what, (call, request) in attempts.items():
        assert code_of(call, request) == DENIED, what
    for wrong in (a_secret, b_token):  # neither b's secret nor the registration secret
        assert code_of(s.RenewClusterCredentials, rainbow_pb2.RenewCredentialsRequest(
            cluster="b", secret=wrong)) == grpc.StatusCode.UNAUTHENTICATED
    s.Heartbeat(rainbow_pb2.HeartbeatRequest(cluster="b", secret=b_secret))  # b's secret still works
    stream = s.WatchJobs(rainbow_pb2.WatchJobsRequest(clusters=[Cluster(name="b", token=a_token)]))
    with pytest.raises(grpc.RpcError) as err:
        next(stream)
    assert err.value.code() == DENIED
    stream = s.StreamJobs(rainbow_pb2.ReceiveJobsRequest(cluster="b", secret=a_secret))
    with pytest.raises(grpc.RpcError) as err:
        next(stream)
    assert err.value.code() == DENIED
    # a's own job list holds nothing of b, and a cannot accept or report b's job through its own name
    listed = s.ListJobs(rainbow_pb2.ListJobsRequest(clusters=[Cluster(name="a", token=a_token)]))
    assert list(listed.jobs) == []
    assert s.AcceptJobs(rainbow_pb2.AcceptJobsRequest(cluster="a", secret=a_secret, jobids=[job_b])).status == \
        rainbow_pb2.AcceptJobsResponse.RESULT_TYPE_ERROR
    assert code_of(s.ReportJobState, rainbow_pb2.ReportJobStateRequest(
        cluster="a", secret=a_secret, jobid=job_b, state="running")) == grpc.StatusCode.NOT_FOUND
    # nothing changed for b
    info = s.GetJob(rainbow_pb2.GetJobRequest(jobid=job_b, token=b_token))
    assert info.state == "assigned" and not info.cancel_requested
    assert stubs.server.scheduler.cluster_state("b") == {}


def test_secrets_never_logged_or_stored_in_clear(rainbow, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    reply = rainbow.scheduler.Register(rainbow_pb2.RegisterRequest(
        name="keebler", secret=REGISTRATION_SECRET, nodes=example("cluster-nodes.json")))
    token, secret = reply.token, reply.secret
    rainbow.scheduler.UpdateState(rainbow_pb2.UpdateStateRequest(cluster="keebler", secret=secret, payload="{}"))
    job = rainbow.scheduler.SubmitJob(rainbow_pb2.SubmitJobRequest(
        name="j", clusters=[Cluster(name="keebler", token=token)], jobspec=example("jobspec-constraint.yaml")))
    rainbow.scheduler.ReceiveJobs(rainbow_pb2.ReceiveJobsRequest(cluster="keebler", secret=secret))
    rainbow.scheduler.GetJob(rainbow_pb2.GetJobRequest(jobid=job.jobid, token=token))
    renewed = rainbow.scheduler.RenewClusterCredentials(rainbow_pb2.RenewCredentialsRequest(
        cluster="keebler", secret=secret))
    assert renewed.secret not in (secret, token) and renewed.token not in (secret, token)
    for wrong in ("x" + secret, token + "y"):
        code_of(rainbow.scheduler.ReceiveJobs, rainbow_pb2.ReceiveJobsRequest(cluster="keebler", secret=wrong))
        code_of(rainbow.graph.Satisfy, memory_pb2.SatisfyRequest(payload=wrong))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "registered cluster keebler" in logged and "cluster keebler has new credentials" in logged
    for value in (REGISTRATION_SECRET, secret, token, renewed.secret, renewed.token):
        assert value not in logged
    assert len(secret) >= 22 and len(token) >= 22  # >= 128 bits, url-safe base64

    db_path = rainbow.server.scheduler.store.path
    with sqlite3.connect(db_path) as db:
        dump = "\n".join(db.iterdump())
    for value in (REGISTRATION_SECRET, secret, token, renewed.secret, renewed.token):
        assert value not in dump


def test_generated_secrets_never_look_like_a_flag(monkeypatch):
    """A secret is pasted after a flag (``--delete-secret VALUE``); one starting with '-' would be read as an option."""
    from rainbow import credentials

    draws = iter(["-looks-like-a-flag", "-again", "fine-secret"])
    monkeypatch.setattr(credentials.secrets, "token_urlsafe", lambda n: next(draws))
    assert credentials.new_secret() == "fine-secret"
