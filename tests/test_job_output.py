"""Where a job's output goes: reported by the agent, shown by `rainbow status`, read by `rainbow logs`."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import grpc
import pytest

from rainbow.agent import Agent, LocalExecutor
from rainbow.agent.hooks import Hooks
from rainbow.agent.link import ClusterLink
from rainbow.client import RainbowClient
from rainbow.config import RainbowConfig
from rainbow.protos import rainbow_pb2

from conftest import REGISTRATION_SECRET, example, subprocess_env


def rainbow(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rainbow", *args], capture_output=True, text=True, timeout=120,
                          env=subprocess_env())


@pytest.fixture
def keebler(server_factory, tmp_path):
    server = server_factory()
    config_path = tmp_path / "rainbow-config.yaml"
    config = RainbowConfig.new("keebler", host=server.address, path=config_path)
    client = RainbowClient(server.address, config_file=config)
    client.register("keebler", REGISTRATION_SECRET, example("cluster-nodes.json"), save=True)
    link = ClusterLink(RainbowClient(server.address, config_file=config, retries=0, timeout=10), agent="test")
    agent = Agent(link, LocalExecutor(1, 4, state_dir=tmp_path / "state", cluster="keebler"), hooks=Hooks(),
                  stream=False, interval=0.05)
    yield server, client, agent, str(config_path)
    agent.executor.close()
    link.client.close()
    client.close()


def run_until_final(agent: Agent, client: RainbowClient, jobid: int) -> None:
    deadline = time.monotonic() + 60
    while client.get_job(jobid).state not in ("completed", "failed", "cancelled"):
        assert time.monotonic() < deadline, "the job did not end"
        agent.run_once()
        time.sleep(0.05)


def test_local_job_output_is_shown_by_status_and_printed_by_logs(keebler, tmp_path):
    _, client, agent, config_path = keebler
    jobid = client.submit_job(["sh", "-c", "echo to stdout; echo to stderr >&2; exit 3"]).jobid
    run_until_final(agent, client, jobid)
    waiting = client.submit_job(["true"]).jobid  # the agent makes no more passes: it stays assigned

    job = client.get_job(jobid)
    out = str((tmp_path / "state" / "jobs" / f"{job.local_id}.out").resolve())
    err = str((tmp_path / "state" / "jobs" / f"{job.local_id}.err").resolve())
    assert (job.output.host, job.output.stdout, job.output.stderr) == (socket.gethostname(), out, err)

    status = rainbow("status", str(jobid), "--config-path", config_path)
    assert status.returncode == 0, status.stderr
    assert f"  output:   {socket.gethostname()}:{out} (stderr: {err})" in status.stdout.splitlines()
    assert f"rainbow logs {jobid}" in status.stdout

    logs = rainbow("logs", str(jobid), "--config-path", config_path)
    assert (logs.returncode, logs.stdout, logs.stderr) == (0, "to stdout\n", "to stderr\n")
    as_json = json.loads(rainbow("logs", str(jobid), "--config-path", config_path, "--json").stdout)
    assert as_json == {"jobid": jobid, "stdout": "to stdout\n", "stderr": "to stderr\n"}

    # On a machine that does not share the agent's file system, the files are not there.
    (tmp_path / "state").rename(tmp_path / "elsewhere")
    remote = rainbow("logs", str(jobid), "--config-path", config_path)
    assert remote.returncode == 1 and remote.stdout == ""
    assert remote.stderr.splitlines() == [
        f"rainbow: error: the output of job {jobid} is on {socket.gethostname()} at {out}, which this machine "
        "cannot see (no shared file system): read it there"]

    early = rainbow("logs", str(waiting), "--config-path", config_path)
    assert early.returncode == 1
    assert early.stderr.splitlines() == [
        f"rainbow: error: job {waiting} is assigned: its cluster has not said where its output is "
        "(it does once the job is submitted there)"]


def test_a_report_with_a_bad_output_location_is_refused_and_changes_nothing(keebler):
    _, client, agent, _ = keebler
    jobid = client.submit_job(["true"]).jobid
    stub = client.scheduler_stub
    secret = agent.link.secret
    stub.ReceiveJobs(rainbow_pb2.ReceiveJobsRequest(cluster="keebler", secret=secret))
    stub.AcceptJobs(rainbow_pb2.AcceptJobsRequest(cluster="keebler", secret=secret, jobids=[jobid]))
    with pytest.raises(grpc.RpcError) as err:
        stub.ReportJobState(rainbow_pb2.ReportJobStateRequest(
            cluster="keebler", secret=secret, jobid=jobid, state="running", local_id="local-9",
            output=rainbow_pb2.JobOutput(host="h", stdout="/x" * 5000)))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "output.stdout" in err.value.details()
    job = client.get_job(jobid)
    assert (job.state, job.local_id, job.output) == ("accepted", "", None)
    stub.ReportJobState(rainbow_pb2.ReportJobStateRequest(
        cluster="keebler", secret=secret, jobid=jobid, state="running", local_id="local-9",
        output=rainbow_pb2.JobOutput(host="h", stdout="/x.out")))
    assert client.get_job(jobid).output.stdout == "/x.out"
