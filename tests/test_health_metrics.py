"""The gRPC health service, the Prometheus endpoint, and a server riding out a database outage."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from rainbow.protos import memory_pb2, rainbow_pb2

from conftest import REGISTRATION_SECRET, example, stubs_for

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICES = ("", "convergedcomputing.org.grpc.v1.RainbowScheduler", "service.MemoryGraph")
PGCTL_ENV = "RAINBOW_TEST_PGCTL"


def health_of(stubs, service=""):
    return health_pb2_grpc.HealthStub(stubs.channel).Check(
        health_pb2.HealthCheckRequest(service=service), timeout=10
    ).status


def wait_health(stubs, wanted, seconds=20.0):
    deadline = time.monotonic() + seconds
    while (status := health_of(stubs)) != wanted:
        assert time.monotonic() < deadline, f"health stayed {status}, wanted {wanted}"
        time.sleep(0.1)


def register(stubs, name="keebler"):
    reply = stubs.scheduler.Register(
        rainbow_pb2.RegisterRequest(name=name, secret=REGISTRATION_SECRET, nodes=example("cluster-nodes.json"))
    )
    return reply.token, reply.secret


def submit(stubs, cluster, token, name="job", timeout=30):
    return stubs.scheduler.SubmitJob(
        rainbow_pb2.SubmitJobRequest(
            name=name,
            clusters=[rainbow_pb2.SubmitJobRequest.Cluster(name=cluster, token=token)],
            jobspec=example("jobspec-constraint.yaml"),
        ),
        timeout=timeout,
    ).jobid


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_health_is_serving_for_the_server_and_both_services(rainbow):
    for service in SERVICES:
        assert health_of(rainbow, service) == SERVING
    with pytest.raises(grpc.RpcError) as err:
        health_of(rainbow, "no.such.Service")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    watch = health_pb2_grpc.HealthStub(rainbow.channel).Watch(health_pb2.HealthCheckRequest(), timeout=5)
    assert next(watch).status == SERVING
    watch.cancel()


def test_metrics_endpoint_counts_requests_jobs_clusters_and_timings(server_factory, tmp_path):
    server = server_factory(metrics_port=0)
    # a second server in the same process has its own registry: nothing of the first shows up there
    other = server_factory(tmp_path / "other.db", metrics_port=0)
    stubs = stubs_for(server.address, server)
    token, secret = register(stubs)
    submit(stubs, "keebler", token)
    submit(stubs, "keebler", token)
    with pytest.raises(grpc.RpcError):
        stubs.scheduler.ReceiveJobs(rainbow_pb2.ReceiveJobsRequest(cluster="keebler", secret="wrong"))
    stubs.graph.Satisfy(memory_pb2.SatisfyRequest(payload=example("jobspec-constraint.yaml")))
    received = stubs.scheduler.ReceiveJobs(rainbow_pb2.ReceiveJobsRequest(cluster="keebler", secret=secret, maxJobs=1))
    assert len(received.jobs) == 1

    metrics = scrape(server.server.metrics_port)
    assert metrics[("rainbow_requests_total", (("code", "OK"), ("method", "SubmitJob")))] == 2
    assert metrics[("rainbow_requests_total", (("code", "OK"), ("method", "Register")))] == 1
    assert metrics[("rainbow_requests_total", (("code", "PERMISSION_DENIED"), ("method", "ReceiveJobs")))] == 1
    assert metrics[("rainbow_request_seconds_count", (("method", "SubmitJob"),))] == 2
    assert metrics[("rainbow_request_seconds_sum", (("method", "SubmitJob"),))] > 0
    assert metrics[("rainbow_jobs", (("state", "assigned"),))] == 1
    assert metrics[("rainbow_jobs", (("state", "leased"),))] == 1
    assert metrics[("rainbow_jobs", (("state", "completed"),))] == 0
    assert metrics[("rainbow_clusters", (("reachable", "true"),))] == 1
    assert metrics[("rainbow_clusters", (("reachable", "false"),))] == 0
    assert metrics[("rainbow_match_seconds_count", ())] == 2
    assert metrics[("rainbow_selection_seconds_count", ())] == 2
    assert metrics[("rainbow_store_up", ())] == 1

    untouched = scrape(other.server.metrics_port)
    assert not any(name == "rainbow_requests_total" for name, _ in untouched)
    assert untouched[("rainbow_jobs", (("state", "assigned"),))] == 0
    stubs.channel.close()


def _outage_then_recovery(stubs, server, break_database, heal_database):
    """Jobs acknowledged before an outage survive it; during it RPCs are UNAVAILABLE and health NOT_SERVING."""
    token, secret = register(stubs)
    before = submit(stubs, "keebler", token, "before")
    assert health_of(stubs) == SERVING

    break_database()
    wait_health(stubs, NOT_SERVING)
    for service in SERVICES:
        assert health_of(stubs, service) == NOT_SERVING
    with pytest.raises(grpc.RpcError) as err:
        submit(stubs, "keebler", token, "during")
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "database" in err.value.details()
    assert scrape(server.server.metrics_port)[("rainbow_store_up", ())] == 0

    heal_database()
    wait_health(stubs, SERVING, seconds=60)
    deadline = time.monotonic() + 30
    while True:
        try:
            after = submit(stubs, "keebler", token, "after")
            break
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE and time.monotonic() < deadline
            time.sleep(0.2)
    received = stubs.scheduler.ReceiveJobs(rainbow_pb2.ReceiveJobsRequest(cluster="keebler", secret=secret))
    names = {job_id: json.loads(text)["name"] for job_id, text in received.jobs.items()}
    # the refused submission may have been written or not; the acknowledged ones are all there
    assert {before, after} <= set(names) and set(names.values()) <= {"before", "during", "after"}
    accepted = stubs.scheduler.AcceptJobs(
        rainbow_pb2.AcceptJobsRequest(cluster="keebler", secret=secret, jobids=list(received.jobs))
    )
    assert accepted.status == rainbow_pb2.AcceptJobsResponse.RESULT_TYPE_SUCCESS


@pytest.mark.postgres
def test_server_rides_out_a_lost_database(postgres_database, postgres_proxy, server_factory):
    server = server_factory(db=postgres_proxy.url(postgres_database()), metrics_port=0)
    stubs = stubs_for(server.address, server)
    _outage_then_recovery(stubs, server, postgres_proxy.cut, postgres_proxy.restore)
    stubs.channel.close()


@pytest.fixture
def pg_ctl(postgres_url) -> list[str]:
    command = os.environ.get(PGCTL_ENV, "")
    if not command:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {PGCTL_ENV} is not set: .ci/run must say how to restart PostgreSQL")
        pytest.skip(f"{PGCTL_ENV} (a pg_ctl command line with -D and -l) is needed to restart PostgreSQL")
    return shlex.split(command)


@pytest.mark.postgres
def test_server_survives_a_database_restart(postgres_database, pg_ctl, server_factory):
    server = server_factory(db=postgres_database(), metrics_port=0)
    stubs = stubs_for(server.address, server)

    def ctl(*args, check=True):
        subprocess.run([*pg_ctl, *args, "-w", "-t", "60"], check=check, timeout=90,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    try:
        _outage_then_recovery(stubs, server, lambda: ctl("stop", "-m", "fast"), lambda: ctl("start"))
    finally:
        ctl("start", check=False)  # whatever happened, leave PostgreSQL running for the other tests
        stubs.channel.close()
