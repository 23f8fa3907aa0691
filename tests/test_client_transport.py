"""RainbowClient transport: retries on UNAVAILABLE, waiting for a server, TLS, odd server answers.

Retries and odd answers use small stand-in servers (the generated servicer base
classes) so the behaviour under test can be forced exactly; TLS uses the real server.
"""

from __future__ import annotations

import shutil
import socket
import threading
from concurrent import futures

import grpc
import pytest
from test_tls import make_ca, make_cert

from rainbow.client import Job, RainbowClient
from rainbow.config import RainbowConfig, with_port
from rainbow.errors import InvalidArgument, PermissionDenied, Unavailable
from rainbow.protos import memory_pb2, memory_pb2_grpc, rainbow_pb2, rainbow_pb2_grpc

from conftest import EXAMPLES, REGISTRATION_SECRET

NODES = EXAMPLES / "cluster-nodes.json"
JOBSPEC = EXAMPLES / "jobspec-constraint.yaml"

Accept = rainbow_pb2.AcceptJobsResponse


class FlakyScheduler(rainbow_pb2_grpc.RainbowSchedulerServicer):
    """Answers UNAVAILABLE to the first ``failures`` UpdateState calls, then succeeds."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls = 0
        self.accepts: list[list[int]] = []
        self.submits: list[rainbow_pb2.SubmitJobRequest] = []

    def UpdateState(self, request, context):
        self.calls += 1
        if self.calls <= self.failures:
            context.abort(grpc.StatusCode.UNAVAILABLE, "warming up")
        return rainbow_pb2.UpdateStateResponse(status=rainbow_pb2.UpdateStateResponse.UPDATE_STATE_SUCCESS)

    def Register(self, request, context):
        # the Go server reports a wrong secret in the status field, not as a gRPC error
        return rainbow_pb2.RegisterResponse(status=rainbow_pb2.RegisterResponse.REGISTER_DENIED)

    def ReceiveJobs(self, request, context):
        reply = rainbow_pb2.ReceiveJobsResponse(status=rainbow_pb2.ReceiveJobsResponse.REQUEST_JOBS_SUCCESS)
        for jobid in (3, 1, 2):
            reply.jobs[jobid] = (f'{{"id": {jobid}, "cluster": "c", "name": "j{jobid}", '
                                 f'"jobspec": "js", "command": "run {jobid}"}}')
        return reply

    def SubmitJob(self, request, context):
        self.submits.append(request)
        return rainbow_pb2.SubmitJobResponse(jobid=7, cluster="keebler",
                                             status=rainbow_pb2.SubmitJobResponse.SUBMIT_SUCCESS)

    def AcceptJobs(self, request, context):
        ids = list(request.jobids)
        self.accepts.append(ids)
        if len(ids) > 1:
            return Accept(status=Accept.RESULT_TYPE_PARTIAL)  # job 2's lease ran out
        return Accept(status=Accept.RESULT_TYPE_ERROR if ids == [2] else Accept.RESULT_TYPE_SUCCESS)


class RecordingGraph(memory_pb2_grpc.MemoryGraphServicer):
    """Satisfy says every listed cluster matches; SubmitJob requests are kept (see FlakyScheduler)."""

    def __init__(self) -> None:
        self.matchers: list[str] = []

    def Satisfy(self, request, context):
        self.matchers.append(request.matcher)
        return memory_pb2.SatisfyResponse(clusters=["keebler"], total_clusters=1, total_matches=1,
                                          status=memory_pb2.SatisfyResponse.RESULT_TYPE_SUCCESS)


def serve(servicer, address="127.0.0.1:0", credentials=None, graph=None):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    rainbow_pb2_grpc.add_RainbowSchedulerServicer_to_server(servicer, server)
    if graph is not None:
        memory_pb2_grpc.add_MemoryGraphServicer_to_server(graph, server)
    port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    server.start()
    return server, port


@pytest.fixture
def flaky():
    servers = []

    def start(servicer, **kwargs):
        server, port = serve(servicer, **kwargs)
        servers.append(server)
        return port

    yield start
    for server in servers:
        server.stop(None)


def test_unavailable_is_retried_as_configured(flaky):
    servicer = FlakyScheduler(failures=2)
    port = flaky(servicer)
    with RainbowClient(f"127.0.0.1:{port}", retries=3, initial_backoff=0.05) as client:
        assert client.update_state("c", {"a": 1}, "s").status == "UPDATE_STATE_SUCCESS"
    assert servicer.calls == 3

    servicer = FlakyScheduler(failures=1)
    port = flaky(servicer)
    with RainbowClient(f"127.0.0.1:{port}", retries=0) as client, pytest.raises(Unavailable) as err:
        client.update_state("c", {"a": 1}, "s")
    assert servicer.calls == 1
    assert err.value.code == "UNAVAILABLE" and "warming up" in err.value.message


def test_retries_give_up_after_the_last_attempt(flaky):
    servicer = FlakyScheduler(failures=100)
    port = flaky(servicer)
    client = RainbowClient(f"127.0.0.1:{port}", retries=2, initial_backoff=0.01)
    with client, pytest.raises(Unavailable):
        client.update_state("c", {"a": 1}, "s")
    assert servicer.calls == 3
    with pytest.raises(InvalidArgument):
        RainbowClient(retries=5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_client_started_before_the_server_waits_for_it(flaky):
    port = free_port()
    client = RainbowClient(f"127.0.0.1:{port}", wait_for_ready=True, timeout=30, initial_backoff=0.1,
                           max_backoff=0.5)
    servicer = FlakyScheduler()
    refused = threading.Event()
    client.channel.subscribe(
        lambda state: state == grpc.ChannelConnectivity.TRANSIENT_FAILURE and refused.set(), try_to_connect=False)
    replies = []
    caller = threading.Thread(target=lambda: replies.append(client.update_state("c", {"a": 1}, "s")))
    caller.start()
    try:
        assert refused.wait(30), "the client never tried to connect"
        assert replies == [] and servicer.calls == 0  # the call waits: no server yet
        flaky(servicer, address=f"127.0.0.1:{port}")
        caller.join(60)
    finally:
        client.close()
    assert [r.status for r in replies] == ["UPDATE_STATE_SUCCESS"] and servicer.calls == 1

    # without waiting, a server that is not there fails fast with a clear message
    client = RainbowClient(f"127.0.0.1:{free_port()}", retries=1, timeout=10)
    with client, pytest.raises(Unavailable) as err:
        client.update_state("c", {"a": 1}, "s")
    assert "cannot reach the rainbow server at 127.0.0.1:" in err.value.message


def test_partial_accept_returns_only_the_accepted_jobs(flaky):
    servicer = FlakyScheduler()
    port = flaky(servicer)
    with RainbowClient(f"127.0.0.1:{port}") as client:
        jobs = client.receive_jobs(cluster="c", secret="s")
        assert jobs == [Job(1, "c", "j1", "js", "run 1"), Job(3, "c", "j3", "js", "run 3")]
        assert servicer.accepts == [[1, 2, 3], [1], [2], [3]]
        unaccepted = client.receive_jobs(cluster="c", secret="s", accept=False)
        assert [job.id for job in unaccepted] == [1, 2, 3] and len(servicer.accepts) == 4


def test_algorithms_come_from_arguments_then_config_then_server(flaky, tmp_path):
    scheduler, graph = FlakyScheduler(), RecordingGraph()
    port = flaky(scheduler, graph=graph)
    config = RainbowConfig({"clusters": [{"name": "keebler", "token": "t"}]}, tmp_path / "c.yaml")
    with RainbowClient(f"127.0.0.1:{port}", config_file=config) as client:
        assert client.submit_job("true").jobid == 7
        client.submit_job("true", match_algo="range", select_algo="random", select_options={"k": 1})
        config.set_algorithm("match", "range")
        config.set_algorithm("selection", "constraint")
        config.data["scheduler"]["algorithms"]["selection"]["options"] = {"priorities": "- priority: 1"}
        client.submit_job("true")
        client.submit_job("true", select_algo="random")
    sent = [(r.select_algorithm, dict(r.select_options)) for r in scheduler.submits]
    assert sent == [("", {}), ("random", {"k": "1"}), ("constraint", {"priorities": "- priority: 1"}),
                    ("random", {})]
    assert graph.matchers == ["", "range", "range", "range"]
    assert [(c.name, c.token) for c in scheduler.submits[0].clusters] == [("keebler", "t")]
    assert scheduler.submits[0].name == "true" and "true" in scheduler.submits[0].jobspec


def test_status_field_failures_raise(flaky):
    port = flaky(FlakyScheduler())
    with RainbowClient(f"127.0.0.1:{port}") as client, pytest.raises(PermissionDenied) as err:
        client.register("c", "s", '{"graph": {}}')
    assert "REGISTER_DENIED" in err.value.message


# -- TLS (against the real server; certificates from test_tls's openssl helpers) ---------------
@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    directory = tmp_path_factory.mktemp("pki")
    ca = make_ca(directory, "ca")
    return {
        "ca": ca,
        "server": make_cert(directory, "server", ca, server=True),
        "client": make_cert(directory, "client", ca, server=False),
        "stranger": make_cert(directory, "stranger", make_ca(directory, "other-ca"), server=False),
    }


def tls_server(server_factory, pki, mutual: bool):
    (key, cert), ca = pki["server"], pki["ca"][1]
    return server_factory(cert=str(cert), key=str(key), ca_cert=str(ca) if mutual else None)


def test_mutual_tls(server_factory, pki):
    port = tls_server(server_factory, pki, mutual=True).port
    (key, cert), ca = pki["client"], pki["ca"][1]
    with RainbowClient(f"localhost:{port}", cert=cert, key=key, ca_cert=ca, retries=0, timeout=10) as client:
        assert client.use_ssl
        assert client.register("keebler", REGISTRATION_SECRET, NODES).created
        assert client.satisfy(JOBSPEC).clusters == ("keebler",)

    stranger_key, stranger_cert = pki["stranger"]
    refused = [
        RainbowClient(f"localhost:{port}", ca_cert=ca),  # no client certificate
        RainbowClient(f"localhost:{port}", cert=stranger_cert, key=stranger_key, ca_cert=ca),
        RainbowClient(f"localhost:{port}"),  # plaintext
    ]
    for client in refused:
        with client, pytest.raises(Unavailable):
            client.satisfy(JOBSPEC)


def test_server_only_tls_and_bad_settings(server_factory, pki, tmp_path):
    port = tls_server(server_factory, pki, mutual=False).port
    with RainbowClient(f"127.0.0.1:{port}", use_ssl=True, ca_cert=pki["ca"][1], timeout=10) as client:
        assert client.register("keebler", REGISTRATION_SECRET, NODES).created
    untrusting = RainbowClient(f"127.0.0.1:{port}", use_ssl=True, retries=0, timeout=10)
    with untrusting, pytest.raises(Unavailable):  # the system roots do not trust the test CA
        untrusting.satisfy(JOBSPEC)

    with pytest.raises(InvalidArgument, match="key"):
        RainbowClient(cert=pki["client"][1])
    with pytest.raises(InvalidArgument, match=r"missing\.pem"):
        RainbowClient(ca_cert=tmp_path / "missing.pem")


@pytest.mark.parametrize(("given", "dialed"), [
    ("127.0.0.1", "127.0.0.1:50051"),
    ("keebler.example.org", "keebler.example.org:50051"),
    ("::1", "[::1]:50051"),
    ("[::1]", "[::1]:50051"),
    ("[::1]:7000", "[::1]:7000"),
    ("127.0.0.1:7000", "127.0.0.1:7000"),
    ("dns:///keebler.example.org", "dns:///keebler.example.org"),
    ("unix:/run/rainbow.sock", "unix:/run/rainbow.sock"),
])
def test_an_address_without_a_port_dials_the_rainbow_port_not_443(given, dialed):
    with RainbowClient(host=given) as client:
        assert client.host == dialed
    assert with_port(given) == dialed
