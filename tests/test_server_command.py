"""`rainbow server` as a real process: generated secret, restart on the same file, flags."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import grpc

from rainbow.protos import memory_pb2, rainbow_pb2

from conftest import example, start_server_process, stubs_for, subprocess_env


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0


def test_generated_secret_printed_once_and_kept(tmp_path):
    db = tmp_path / "rainbow.db"
    proc, address, lines = start_server_process(db)
    text = "\n".join(lines)
    assert "generated a registration secret" in text
    secret = re.search(r"^\s+(\S{30,})$", text, re.M).group(1)
    stubs = stubs_for(address)
    reply = stubs.scheduler.Register(
        rainbow_pb2.RegisterRequest(name="keebler", secret=secret, nodes=example("cluster-nodes.json")))
    assert reply.status == rainbow_pb2.RegisterResponse.REGISTER_SUCCESS
    job = stubs.scheduler.SubmitJob(rainbow_pb2.SubmitJobRequest(
        name="j", clusters=[rainbow_pb2.SubmitJobRequest.Cluster(name="keebler", token=reply.token)],
        jobspec=example("jobspec-constraint.yaml")))
    stubs.channel.close()
    stop(proc)

    # the secret is stored hashed only
    assert secret.encode() not in db.read_bytes()

    proc, address, lines = start_server_process(db)
    assert "generated a registration secret" not in "\n".join(lines)
    stubs = stubs_for(address)
    other = stubs.scheduler.Register(
        rainbow_pb2.RegisterRequest(name="second", secret=secret, nodes=example("cluster-nodes.json")))
    assert other.status == rainbow_pb2.RegisterResponse.REGISTER_SUCCESS
    satisfy = stubs.graph.Satisfy(memory_pb2.SatisfyRequest(payload=example("jobspec-constraint.yaml")))
    assert sorted(satisfy.clusters) == ["keebler", "second"]
    received = stubs.scheduler.ReceiveJobs(rainbow_pb2.ReceiveJobsRequest(cluster="keebler", secret=reply.secret))
    assert list(received.jobs) == [job.jobid]
    stubs.channel.close()
    stop(proc)


def test_global_token_and_cleanup(tmp_path):
    db = tmp_path / "rainbow.db"
    proc, address, _ = start_server_process(db, "--secret", "s3", "--global-token", "shared-token")
    stubs = stubs_for(address)
    reply = stubs.scheduler.Register(
        rainbow_pb2.RegisterRequest(name="keebler", secret="s3", nodes=example("cluster-nodes.json")))
    assert reply.token == "shared-token"
    stubs.channel.close()
    stop(proc)

    proc, address, _ = start_server_process(db, "--secret", "s3", "--cleanup")
    stubs = stubs_for(address)
    satisfy = stubs.graph.Satisfy(memory_pb2.SatisfyRequest(payload=example("jobspec-constraint.yaml")))
    assert satisfy.total_clusters == 0
    try:
        stubs.scheduler.Register(
            rainbow_pb2.RegisterRequest(name="keebler", secret="wrong", nodes=example("cluster-nodes.json")))
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    stubs.channel.close()
    stop(proc)


def test_bad_settings_refuse_to_start(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "rainbow", "server", "--host", "127.0.0.1:0", "--db", str(tmp_path / "x.db"),
         "--select-algorithm", "no-such-algorithm"],
        capture_output=True, text=True, timeout=60, env=subprocess_env(),
    )
    assert result.returncode != 0
    assert "no-such-algorithm" in result.stderr
    assert "Traceback" not in result.stderr
