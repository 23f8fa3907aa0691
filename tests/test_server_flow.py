"""The whole protocol over gRPC against a real server, with the shared examples."""

from __future__ import annotations

import json

import grpc
import pytest
import yaml

from rainbow.protos import memory_pb2, rainbow_pb2

from conftest import BOTH_STORES, REGISTRATION_SECRET, example, stubs_for

pytestmark = BOTH_STORES

RegisterResponse = rainbow_pb2.RegisterResponse


def register(stubs, name="keebler", nodes=None):
    return stubs.scheduler.Register(
        rainbow_pb2.RegisterRequest(
            name=name, secret=REGISTRATION_SECRET, nodes=nodes or example("cluster-nodes.json")
        )
    )


def submit(stubs, cluster, token, jobspec=None, **fields):
    return stubs.scheduler.SubmitJob(
        rainbow_pb2.SubmitJobRequest(
            name=fields.pop("name", "ior-job"),
            clusters=[rainbow_pb2.SubmitJobRequest.Cluster(name=cluster, token=token)],
            jobspec=jobspec or example("jobspec-io.yaml"),
            **fields,
        )
    )


def test_register_subsystem_state_satisfy_submit_receive_accept_delete(rainbow):
    reply = register(rainbow)
    assert reply.status == RegisterResponse.REGISTER_SUCCESS
    assert reply.token and reply.secret and reply.token != reply.secret
    assert len(reply.secret) >= 22  # at least 128 bits, url-safe
    token, secret = reply.token, reply.secret

    again = register(rainbow)
    assert again.status == RegisterResponse.REGISTER_EXISTS
    assert again.secret == "" and again.token == ""

    # The io jobspec needs a node with shm: not there until the subsystem is registered.
    satisfy = rainbow.graph.Satisfy(memory_pb2.SatisfyRequest(payload=example("jobspec-io.yaml")))
    assert list(satisfy.clusters) == []
    assert satisfy.total_clusters == 1 and satisfy.total_mismatches == 1
    assert "keebler" in satisfy.reasons and "io" in satisfy.reasons["keebler"]

    sub = rainbow.scheduler.RegisterSubsystem(
        rainbow_pb2.RegisterRequest(
            name="keebler", secret=secret, subsystem="io", nodes=example("cluster-io-subsystem.json")
        )
    )
    assert sub.status == RegisterResponse.REGISTER_SUCCESS

    state = rainbow.scheduler.UpdateState(
        rainbow_pb2.UpdateStateRequest(cluster="keebler", secret=secret, payload=example("cluster-state.json"))
    )
    assert state.status == rainbow_pb2.UpdateStateResponse.UPDATE_STATE_SUCCESS

    satisfy = rainbow.graph.Satisfy(
        memory_pb2.SatisfyRequest(payload=json.dumps(yaml.safe_load(example("jobspec-io.yaml"))), matcher="match")
    )
    assert satisfy.status == memory_pb2.SatisfyResponse.RESULT_TYPE_SUCCESS
    assert list(satisfy.clusters) == ["keebler"]
    assert (satisfy.total_clusters, satisfy.total_matches, satisfy.total_mismatches) == (1, 1, 0)

    only = submit(rainbow, "keebler", token, satisfy_only=True)
    assert only.status == rainbow_pb2.SubmitJobResponse.SUBMIT_SUCCESS
    assert list(only.clusters) == ["keebler"] and only.jobid == 0
    nothing = rainbow.scheduler.ReceiveJobs(rainbow_pb2.ReceiveJobsRequest(cluster="keebler", secret=secret))
    assert nothing.status == rainbow_pb2.ReceiveJobsResponse.REQUEST_JOBS_NORESULTS

    first = submit(rainbow, "keebler", token)
    second = submit(rainbow, "keebler", token, name="second")
    assert first.status == rainbow_pb2.SubmitJobResponse.SUBMIT_SUCCESS
    assert first.cluster == "keebler" and first.jobid > 0 and second.jobid > first.jobid

    one = rainbow.scheduler.ReceiveJobs(
        rainbow_pb2.ReceiveJobsRequest(cluster="keebler", secret=secret, maxJobs=1)
    )
    assert one.status == rainbow_pb2.ReceiveJobsResponse.REQUEST_JOBS_SUCCESS
    assert list(one.jobs) == [first.jobid]
    job = json.loads(one.jobs[first.jobid])
    assert job == {
        "id": first.jobid,
        "cluster": "keebler",
        "name": "ior-job",
        "jobspec": example("jobspec-io.yaml"),
        "command": "ior",
    }

    rest = rainbow.scheduler.ReceiveJobs(rainbow_pb2.ReceiveJobsRequest(cluster="keebler", secret=secret))
    assert list(rest.jobs) == [second.jobid]

    accepted = rainbow.scheduler.AcceptJobs(
        rainbow_pb2.AcceptJobsRequest(cluster="keebler", secret=secret, jobids=[first.jobid, second.jobid])
    )
    assert accepted.status == rainbow_pb2.AcceptJobsResponse.RESULT_TYPE_SUCCESS
    # accepted jobs are never handed out again
    empty = rainbow.scheduler.ReceiveJobs(rainbow_pb2.ReceiveJobsRequest(cluster="keebler", secret=secret))
    assert empty.status == rainbow_pb2.ReceiveJobsResponse.REQUEST_JOBS_NORESULTS
    # accepting twice changes nothing and is not an error
    twice = rainbow.scheduler.AcceptJobs(
        rainbow_pb2.AcceptJobsRequest(cluster="keebler", secret=secret, jobids=[first.jobid])
    )
    assert twice.status == rainbow_pb2.AcceptJobsResponse.RESULT_TYPE_SUCCESS

    gone = rainbow.scheduler.DeleteSubsystem(rainbow_pb2.DeleteRequest(name="keebler", secret=secret, subsytem="io"))
    assert gone.status == rainbow_pb2.DeleteResponse.DELETE_SUCCESS
    satisfy = rainbow.graph.Satisfy(memory_pb2.SatisfyRequest(payload=example("jobspec-io.yaml")))
    assert list(satisfy.clusters) == []

    deleted = rainbow.scheduler.Delete(rainbow_pb2.DeleteRequest(name="keebler", secret=secret))
    assert deleted.status == rainbow_pb2.DeleteResponse.DELETE_SUCCESS
    satisfy = rainbow.graph.Satisfy(memory_pb2.SatisfyRequest(payload=example("jobspec-constraint.yaml")))
    assert satisfy.total_clusters == 0
    with pytest.raises(grpc.RpcError) as err:
        rainbow.scheduler.ReceiveJobs(rainbow_pb2.ReceiveJobsRequest(cluster="keebler", secret=secret))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    # the name is free again
    assert register(rainbow).status == RegisterResponse.REGISTER_SUCCESS


def test_submit_picks_only_matching_clusters(rainbow):
    big = register(rainbow, "big")
    small_nodes = json.loads(example("cluster-nodes.json"))
    # keep the cluster, rack and the first node subtree only
    keep = {v for v, n in small_nodes["graph"]["nodes"].items()
            if "/node0" in n["metadata"]["paths"]["containment"] or n["metadata"]["type"] in ("cluster", "rack")}
    small_nodes["graph"]["nodes"] = {k: v for k, v in small_nodes["graph"]["nodes"].items() if k in keep}
    small_nodes["graph"]["edges"] = [e for e in small_nodes["graph"]["edges"]
                                     if e["source"] in keep and e["target"] in keep]
    small = register(rainbow, "small", json.dumps(small_nodes))
    assert small.status == RegisterResponse.REGISTER_SUCCESS

    two_nodes = example("jobspec-constraint.yaml")  # node replicas 2
    request = rainbow_pb2.SubmitJobRequest(
        name="two",
        clusters=[
            rainbow_pb2.SubmitJobRequest.Cluster(name="small", token=small.token),
            rainbow_pb2.SubmitJobRequest.Cluster(name="big", token=big.token),
        ],
        jobspec=two_nodes,
    )
    for _ in range(5):
        assert rainbow.scheduler.SubmitJob(request).cluster == "big"
    satisfy = rainbow.graph.Satisfy(memory_pb2.SatisfyRequest(payload=two_nodes))
    assert list(satisfy.clusters) == ["big"]
    assert satisfy.reasons["small"]


def test_restart_keeps_clusters_subsystems_state_and_jobs(server_factory, tmp_path):
    db = tmp_path / "persist.db"
    server = server_factory(db)
    stubs = stubs_for(server.address)
    reply = register(stubs)
    secret, token = reply.secret, reply.token
    stubs.scheduler.RegisterSubsystem(
        rainbow_pb2.RegisterRequest(name="keebler", secret=secret, subsystem="io",
                                    nodes=example("cluster-io-subsystem.json"))
    )
    stubs.scheduler.UpdateState(
        rainbow_pb2.UpdateStateRequest(cluster="keebler", secret=secret, payload='{"nodes_free": 3}')
    )
    job = submit(stubs, "keebler", token)
    stubs.channel.close()
    server.stop()

    server = server_factory(db, secret=None)  # the stored registration secret still applies
    stubs = stubs_for(server.address)
    assert register(stubs).status == RegisterResponse.REGISTER_EXISTS
    satisfy = stubs.graph.Satisfy(memory_pb2.SatisfyRequest(payload=example("jobspec-io.yaml")))
    assert list(satisfy.clusters) == ["keebler"]  # graph + subsystem rebuilt from the store
    assert server.scheduler.cluster_state("keebler") == {"nodes_free": 3}
    received = stubs.scheduler.ReceiveJobs(rainbow_pb2.ReceiveJobsRequest(cluster="keebler", secret=secret))
    assert list(received.jobs) == [job.jobid]
    later = submit(stubs, "keebler", token)
    assert later.jobid > job.jobid
    stubs.channel.close()


def test_idempotency_key_stores_a_resent_job_once(rainbow):
    reply = register(rainbow)
    spec = example("jobspec-constraint.yaml")
    first = submit(rainbow, "keebler", reply.token, spec, idempotency_key="req-1")
    again = submit(rainbow, "keebler", reply.token, spec, idempotency_key="req-1")
    other = submit(rainbow, "keebler", reply.token, spec, idempotency_key="req-2")
    assert again.jobid == first.jobid and again.cluster == "keebler"
    assert other.jobid != first.jobid
    assert rainbow.server.scheduler.store.count_jobs() == 2
    received = rainbow.scheduler.ReceiveJobs(rainbow_pb2.ReceiveJobsRequest(cluster="keebler", secret=reply.secret))
    assert sorted(received.jobs) == sorted([first.jobid, other.jobid])


def test_graph_service_register_replaces_a_graph_or_a_subsystem(rainbow):
    """MemoryGraph.Register: the cluster secret travels in metadata; the cluster must exist."""
    reply = register(rainbow)
    secret = [("rainbow-secret", reply.secret)]
    nodes = json.loads(example("cluster-nodes.json"))
    first_node = {v for v, n in nodes["graph"]["nodes"].items()
                  if n["metadata"]["type"] in ("cluster", "rack") or "/node0" in n["metadata"]["paths"]["containment"]}
    smaller = {"graph": {"nodes": {k: v for k, v in nodes["graph"]["nodes"].items() if k in first_node},
                         "edges": [e for e in nodes["graph"]["edges"]
                                   if e["source"] in first_node and e["target"] in first_node]}}
    two_nodes = example("jobspec-constraint.yaml")
    assert list(rainbow.graph.Satisfy(memory_pb2.SatisfyRequest(payload=two_nodes)).clusters) == ["keebler"]

    for metadata, code in [([], grpc.StatusCode.PERMISSION_DENIED), ([("rainbow-secret", "wrong")],
                                                                      grpc.StatusCode.PERMISSION_DENIED)]:
        with pytest.raises(grpc.RpcError) as err:
            rainbow.graph.Register(memory_pb2.RegisterRequest(name="keebler", payload=json.dumps(smaller)),
                                   metadata=metadata)
        assert err.value.code() == code
    with pytest.raises(grpc.RpcError) as err:
        rainbow.graph.Register(memory_pb2.RegisterRequest(name="ghost", payload=json.dumps(smaller)),
                               metadata=secret)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND

    # a subsystem through the graph service, then a graph its links no longer fit is refused
    done = rainbow.graph.Register(memory_pb2.RegisterRequest(
        name="keebler", subsystem="io", payload=example("cluster-io-subsystem.json")), metadata=secret)
    assert done.status == memory_pb2.Response.RESULT_TYPE_SUCCESS
    with pytest.raises(grpc.RpcError) as err:
        rainbow.graph.Register(memory_pb2.RegisterRequest(name="keebler", payload=json.dumps(smaller)),
                               metadata=secret)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "io" in err.value.details()
    rainbow.scheduler.DeleteSubsystem(rainbow_pb2.DeleteRequest(name="keebler", secret=reply.secret, subsytem="io"))

    replaced = rainbow.graph.Register(memory_pb2.RegisterRequest(name="keebler", payload=json.dumps(smaller)),
                                      metadata=secret)
    assert replaced.status == memory_pb2.Response.RESULT_TYPE_SUCCESS
    satisfy = rainbow.graph.Satisfy(memory_pb2.SatisfyRequest(payload=two_nodes))
    assert list(satisfy.clusters) == [] and "node" in satisfy.reasons["keebler"]
