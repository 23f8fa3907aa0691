"""Bad input gets the right gRPC status and a message naming the problem; nothing is half-written."""

from __future__ import annotations

import json

import grpc
import pytest

from rainbow.limits import Limits
from rainbow.protos import memory_pb2, rainbow_pb2

from conftest import REGISTRATION_SECRET, example, stubs_for

Code = grpc.StatusCode


def rpc_error(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call(request)
    return err.value


@pytest.fixture
def cluster(rainbow):
    reply = rainbow.scheduler.Register(
        rainbow_pb2.RegisterRequest(name="keebler", secret=REGISTRATION_SECRET, nodes=example("cluster-nodes.json"))
    )
    return rainbow, reply.token, reply.secret


def test_register_rejections_store_nothing(rainbow):
    call = rainbow.scheduler.Register
    cases = [
        (dict(name="a", secret="wrong", nodes=example("cluster-nodes.json")), Code.PERMISSION_DENIED, "secret"),
        (dict(name="a", secret="", nodes=example("cluster-nodes.json")), Code.PERMISSION_DENIED, "secret"),
        (dict(name="", secret=REGISTRATION_SECRET, nodes=example("cluster-nodes.json")), Code.INVALID_ARGUMENT, "name"),
        (
            dict(name="   ", secret=REGISTRATION_SECRET, nodes=example("cluster-nodes.json")),
            Code.INVALID_ARGUMENT,
            "name",
        ),
        (dict(name="a", secret=REGISTRATION_SECRET, nodes=""), Code.INVALID_ARGUMENT, "nodes"),
        (dict(name="a", secret=REGISTRATION_SECRET, nodes="{not json"), Code.INVALID_ARGUMENT, ""),
        (dict(name="a", secret=REGISTRATION_SECRET, nodes='{"graph": 3}'), Code.INVALID_ARGUMENT, "graph"),
        (
            dict(
                name="a",
                secret=REGISTRATION_SECRET,
                nodes=json.dumps(
                    {
                        "graph": {
                            "nodes": {"0": {"metadata": {"type": "cluster"}}},
                            "edges": [{"source": "0", "target": "9", "relation": "contains"}],
                        }
                    }
                ),
            ),
            Code.INVALID_ARGUMENT,
            "9",
        ),
    ]
    for fields, code, mentioned in cases:
        error = rpc_error(call, rainbow_pb2.RegisterRequest(**fields))
        assert error.code() == code, (fields, error.details())
        assert mentioned in error.details(), error.details()
    assert rainbow.server.scheduler.store.list_clusters() == []
    ok = call(rainbow_pb2.RegisterRequest(name="a", secret=REGISTRATION_SECRET, nodes=example("cluster-nodes.json")))
    assert ok.status == rainbow_pb2.RegisterResponse.REGISTER_SUCCESS


def test_subsystem_rejections(cluster):
    stubs, _token, secret = cluster
    io = json.loads(example("cluster-io-subsystem.json"))
    unlinked = json.loads(example("cluster-io-subsystem.json"))
    unlinked["graph"]["edges"] = [e for e in unlinked["graph"]["edges"] if e["target"] != "io1"]
    dangling = json.loads(example("cluster-io-subsystem.json"))
    dangling["graph"]["edges"].append({"source": "99999", "target": "io1", "relation": "contains"})
    cases = [
        (dict(name="keebler", secret="nope", subsystem="io", nodes=json.dumps(io)), Code.PERMISSION_DENIED),
        (dict(name="nobody", secret=secret, subsystem="io", nodes=json.dumps(io)), Code.NOT_FOUND),
        (dict(name="keebler", secret=secret, subsystem="", nodes=json.dumps(io)), Code.INVALID_ARGUMENT),
        (dict(name="keebler", secret=secret, subsystem="io", nodes=""), Code.INVALID_ARGUMENT),
        (dict(name="keebler", secret=secret, subsystem="io", nodes=json.dumps(unlinked)), Code.INVALID_ARGUMENT),
        (dict(name="keebler", secret=secret, subsystem="io", nodes=json.dumps(dangling)), Code.INVALID_ARGUMENT),
    ]
    for fields, code in cases:
        error = rpc_error(stubs.scheduler.RegisterSubsystem, rainbow_pb2.RegisterRequest(**fields))
        assert error.code() == code, (fields["subsystem"], error.details())
    assert stubs.server.scheduler.store.list_subsystems("keebler") == {}
    satisfy = stubs.graph.Satisfy(memory_pb2.SatisfyRequest(payload=example("jobspec-io.yaml")))
    assert list(satisfy.clusters) == []


def test_state_rejections_leave_state_unchanged(cluster):
    stubs, _token, secret = cluster
    good = stubs.scheduler.UpdateState(
        rainbow_pb2.UpdateStateRequest(cluster="keebler", secret=secret, payload='{"nodes_free": 4}')
    )
    assert good.status == rainbow_pb2.UpdateStateResponse.UPDATE_STATE_SUCCESS
    cases = [
        ("not json", Code.INVALID_ARGUMENT, "JSON"),
        ("[1, 2]", Code.INVALID_ARGUMENT, "object"),
        ('{"nested": {"a": 1}}', Code.INVALID_ARGUMENT, "nested"),
        ('{"nodes_free": NaN}', Code.INVALID_ARGUMENT, "nodes_free"),
        ("", Code.INVALID_ARGUMENT, "payload"),
        (json.dumps({"blob": "x" * 200_000}), Code.RESOURCE_EXHAUSTED, "payload"),
        (json.dumps({f"k{i}": i for i in range(600)}), Code.RESOURCE_EXHAUSTED, "keys"),
    ]
    for payload, code, mentioned in cases:
        error = rpc_error(
            stubs.scheduler.UpdateState,
            rainbow_pb2.UpdateStateRequest(cluster="keebler", secret=secret, payload=payload),
        )
        assert error.code() == code, (payload[:40], error.details())
        assert mentioned in error.details()
    error = rpc_error(
        stubs.scheduler.UpdateState, rainbow_pb2.UpdateStateRequest(cluster="keebler", secret="bad", payload="{}")
    )
    assert error.code() == Code.PERMISSION_DENIED
    error = rpc_error(
        stubs.scheduler.UpdateState, rainbow_pb2.UpdateStateRequest(cluster="ghost", secret=secret, payload="{}")
    )
    assert error.code() == Code.NOT_FOUND
    assert stubs.server.scheduler.cluster_state("keebler") == {"nodes_free": 4}


def test_submit_rejections_store_no_job(cluster):
    stubs, token, secret = cluster
    Cluster = rainbow_pb2.SubmitJobRequest.Cluster
    jobspec = example("jobspec-constraint.yaml")
    cases = [
        (dict(clusters=[Cluster(name="keebler", token="wrong")], jobspec=jobspec), Code.PERMISSION_DENIED, "token"),
        (dict(clusters=[Cluster(name="keebler", token="")], jobspec=jobspec), Code.PERMISSION_DENIED, "token"),
        (dict(clusters=[Cluster(name="ghost", token=token)], jobspec=jobspec), Code.NOT_FOUND, "ghost"),
        (dict(clusters=[], jobspec=jobspec), Code.INVALID_ARGUMENT, "clusters"),
        (dict(clusters=[Cluster(name="keebler", token=token)], jobspec=""), Code.INVALID_ARGUMENT, "jobspec"),
        (
            dict(clusters=[Cluster(name="keebler", token=token)], jobspec="version: 1\nresources: ["),
            Code.INVALID_ARGUMENT,
            "",
        ),
        (
            dict(clusters=[Cluster(name="keebler", token=token)], jobspec=jobspec.replace("count: 2", "count: -2")),
            Code.INVALID_ARGUMENT,
            "count",
        ),
        (
            dict(
                clusters=[Cluster(name="keebler", token=token)], jobspec=jobspec.replace("replicas: 2", "replicas: 100")
            ),
            Code.FAILED_PRECONDITION,
            "keebler",
        ),
        (
            dict(clusters=[Cluster(name="keebler", token=token)], jobspec=jobspec, select_algorithm="nope"),
            Code.INVALID_ARGUMENT,
            "nope",
        ),
    ]
    for fields, code, mentioned in cases:
        error = rpc_error(stubs.scheduler.SubmitJob, rainbow_pb2.SubmitJobRequest(name="j", **fields))
        assert error.code() == code, (fields, error.details())
        assert mentioned in error.details(), error.details()
    assert stubs.server.scheduler.store.count_jobs() == 0
    received = stubs.scheduler.ReceiveJobs(rainbow_pb2.ReceiveJobsRequest(cluster="keebler", secret=secret))
    assert received.status == rainbow_pb2.ReceiveJobsResponse.REQUEST_JOBS_NORESULTS


def test_receive_accept_delete_rejections(cluster, rainbow):
    stubs, token, secret = cluster
    other = stubs.scheduler.Register(
        rainbow_pb2.RegisterRequest(name="other", secret=REGISTRATION_SECRET, nodes=example("cluster-nodes.json"))
    )
    job = stubs.scheduler.SubmitJob(
        rainbow_pb2.SubmitJobRequest(
            name="j",
            clusters=[rainbow_pb2.SubmitJobRequest.Cluster(name="keebler", token=token)],
            jobspec=example("jobspec-constraint.yaml"),
        )
    )

    error = rpc_error(stubs.scheduler.ReceiveJobs, rainbow_pb2.ReceiveJobsRequest(cluster="keebler", secret="x"))
    assert error.code() == Code.PERMISSION_DENIED
    error = rpc_error(stubs.scheduler.ReceiveJobs, rainbow_pb2.ReceiveJobsRequest(cluster="keebler"))
    assert error.code() == Code.PERMISSION_DENIED
    # another cluster's secret does not open keebler's queue
    error = rpc_error(
        stubs.scheduler.ReceiveJobs, rainbow_pb2.ReceiveJobsRequest(cluster="keebler", secret=other.secret)
    )
    assert error.code() == Code.PERMISSION_DENIED
    error = rpc_error(
        stubs.scheduler.AcceptJobs, rainbow_pb2.AcceptJobsRequest(cluster="keebler", secret=secret, jobids=[])
    )
    assert error.code() == Code.INVALID_ARGUMENT and "jobids" in error.details()
    # other cannot accept keebler's job
    foreign = stubs.scheduler.AcceptJobs(
        rainbow_pb2.AcceptJobsRequest(cluster="other", secret=other.secret, jobids=[job.jobid])
    )
    assert foreign.status == rainbow_pb2.AcceptJobsResponse.RESULT_TYPE_ERROR
    partial = stubs.scheduler.AcceptJobs(
        rainbow_pb2.AcceptJobsRequest(cluster="keebler", secret=secret, jobids=[job.jobid, 987654])
    )
    assert partial.status == rainbow_pb2.AcceptJobsResponse.RESULT_TYPE_PARTIAL

    error = rpc_error(stubs.scheduler.Delete, rainbow_pb2.DeleteRequest(name="keebler", secret="bad"))
    assert error.code() == Code.PERMISSION_DENIED
    error = rpc_error(stubs.scheduler.Delete, rainbow_pb2.DeleteRequest(name="ghost", secret=secret))
    assert error.code() == Code.NOT_FOUND
    error = rpc_error(
        stubs.scheduler.DeleteSubsystem, rainbow_pb2.DeleteRequest(name="keebler", secret=secret, subsytem="nothing")
    )
    assert error.code() == Code.NOT_FOUND and "nothing" in error.details()
    assert stubs.server.scheduler.store.get_cluster("keebler") is not None


@pytest.mark.parametrize(
    "name",
    [
        "keebler'; DROP TABLE clusters; --",
        'quote"double',
        "🌈 unicode-クラスタ",
        "robert');DELETE FROM jobs;--",
    ],
)
def test_hostile_names_round_trip(rainbow, name):
    reply = rainbow.scheduler.Register(
        rainbow_pb2.RegisterRequest(name=name, secret=REGISTRATION_SECRET, nodes=example("cluster-nodes.json"))
    )
    assert reply.status == rainbow_pb2.RegisterResponse.REGISTER_SUCCESS
    job = rainbow.scheduler.SubmitJob(
        rainbow_pb2.SubmitJobRequest(
            name=name,
            clusters=[rainbow_pb2.SubmitJobRequest.Cluster(name=name, token=reply.token)],
            jobspec=example("jobspec-constraint.yaml"),
        )
    )
    assert job.cluster == name
    received = rainbow.scheduler.ReceiveJobs(rainbow_pb2.ReceiveJobsRequest(cluster=name, secret=reply.secret))
    assert json.loads(received.jobs[job.jobid])["name"] == name
    satisfy = rainbow.graph.Satisfy(memory_pb2.SatisfyRequest(payload=example("jobspec-constraint.yaml")))
    assert list(satisfy.clusters) == [name]
    names = [c.name for c in rainbow.server.scheduler.store.list_clusters()]
    assert names == [name]


def test_server_keeps_serving_after_bad_requests(cluster):
    stubs, token, _secret = cluster
    for _ in range(20):
        with pytest.raises(grpc.RpcError):
            stubs.scheduler.SubmitJob(
                rainbow_pb2.SubmitJobRequest(
                    clusters=[rainbow_pb2.SubmitJobRequest.Cluster(name="keebler", token=token)], jobspec="{{{"
                )
            )
    reply = stubs.scheduler.SubmitJob(
        rainbow_pb2.SubmitJobRequest(
            name="fine",
            clusters=[rainbow_pb2.SubmitJobRequest.Cluster(name="keebler", token=token)],
            jobspec=example("jobspec-constraint.yaml"),
        )
    )
    assert reply.status == rainbow_pb2.SubmitJobResponse.SUBMIT_SUCCESS


def test_limits_give_resource_exhausted_and_store_nothing(server_factory):
    server = server_factory(limits=Limits(max_jgf_vertices=10, max_jobspec_bytes=2048, max_receive_jobs=2))
    stubs = stubs_for(server.address)
    error = rpc_error(stubs.scheduler.Register, rainbow_pb2.RegisterRequest(
        name="big", secret=REGISTRATION_SECRET, nodes=example("cluster-nodes.json")))
    assert error.code() == Code.RESOURCE_EXHAUSTED and "more than 10 vertices" in error.details()
    assert server.scheduler.cluster_names == []
    small = json.dumps({"graph": {"nodes": {"0": {"metadata": {"type": "cluster"}},
                                            "1": {"metadata": {"type": "node"}},
                                            "2": {"metadata": {"type": "core"}}},
                                  "edges": [{"source": "0", "target": "1"}, {"source": "1", "target": "2"}]}})
    reply = stubs.scheduler.Register(rainbow_pb2.RegisterRequest(name="small", secret=REGISTRATION_SECRET,
                                                                 nodes=small))
    cluster = [rainbow_pb2.SubmitJobRequest.Cluster(name="small", token=reply.token)]
    huge = "version: 1\n# " + "x" * 4096 + "\nresources: {}\n"
    error = rpc_error(stubs.scheduler.SubmitJob, rainbow_pb2.SubmitJobRequest(name="j", clusters=cluster,
                                                                            jobspec=huge))
    assert error.code() == Code.RESOURCE_EXHAUSTED and "jobspec" in error.details()
    spec = "version: 1\nresources:\n  r: {type: core, count: 1}\ntasks: [{command: [x], resources: r}]\n"
    for _ in range(3):
        stubs.scheduler.SubmitJob(rainbow_pb2.SubmitJobRequest(name="j", clusters=cluster, jobspec=spec))
    got = stubs.scheduler.ReceiveJobs(rainbow_pb2.ReceiveJobsRequest(cluster="small", secret=reply.secret))
    assert len(got.jobs) == 2  # capped per receive; the third waits for the next one
    stubs.channel.close()


def test_update_state_takes_a_json_string_holding_an_object_as_the_published_client_sends(cluster):
    stubs, _, secret = cluster
    text = example("cluster-state.json")
    reply = stubs.scheduler.UpdateState(
        rainbow_pb2.UpdateStateRequest(cluster="keebler", secret=secret, payload=json.dumps(text))
    )
    assert reply.status == rainbow_pb2.UpdateStateResponse.UPDATE_STATE_SUCCESS
    assert stubs.server.scheduler.cluster_state("keebler") == json.loads(text)
    for payload in ('"[1, 2]"', '"not json"', json.dumps('"nested"'), json.dumps(json.dumps(text))):
        err = rpc_error(stubs.scheduler.UpdateState,
                        rainbow_pb2.UpdateStateRequest(cluster="keebler", secret=secret, payload=payload))
        assert err.code() == Code.INVALID_ARGUMENT, payload
        assert "payload" in err.details()
