"""Users and cluster rules across server replicas sharing one PostgreSQL database."""

from __future__ import annotations

import time

import grpc
import pytest

from rainbow.client import RainbowClient
from rainbow.config import RainbowConfig
from rainbow.errors import Unauthenticated
from rainbow.jobspec import simple
from rainbow.protos import rainbow_pb2
from rainbow.server import ServerConfig
from rainbow.server.background import BackgroundServer

from conftest import REGISTRATION_SECRET, example

pytestmark = pytest.mark.postgres


@pytest.fixture
def replicas(postgres_database):
    url = postgres_database()
    started = [BackgroundServer(ServerConfig(host="127.0.0.1:0", store=url, secret=REGISTRATION_SECRET,
                                             workers=4)).start() for _ in range(2)]
    yield started
    for server in started:
        server.stop()


def test_a_change_on_one_replica_holds_on_the_other(replicas, tmp_path):
    a, b = replicas
    config = RainbowConfig.new("quebec", host=a.address, path=tmp_path / "quebec.yaml")
    with RainbowClient(a.address, config_file=config) as cluster:
        cluster.register("quebec", REGISTRATION_SECRET, example("cluster-nodes.json"), save=True)
        token = cluster.add_user("alice", ["physics"], secret=REGISTRATION_SECRET).token
        # a user added through A is known to B at once (B has never looked the token up)
        with RainbowClient(b.address, user_token=token) as alice:
            assert alice.submit_jobspec(simple(["true"])).cluster == "quebec"
            # a rule set through A holds on B for the next request (read-your-writes of the cluster)
            cluster.set_cluster_access("quebec", user="alice", allow=False)
            with pytest.raises(grpc.RpcError) as caught:
                alice.scheduler_stub.SubmitJob(rainbow_pb2.SubmitJobRequest(
                    clusters=[rainbow_pb2.SubmitJobRequest.Cluster(name="quebec")], jobspec="{}"))
            assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
            # a token replaced through A stops working on B once B's look-up of it has expired (2 s)
            cluster.new_user_token("alice", secret=REGISTRATION_SECRET)
            deadline = time.monotonic() + 30  # a hang guard, not a speed limit
            while True:
                try:
                    alice.whoami()
                except Unauthenticated:
                    break
                assert time.monotonic() < deadline, "the replaced token kept working on the other replica"
                time.sleep(0.1)
