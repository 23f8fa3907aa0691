"""SIGKILL the server under load, or an agent mid-hand-off: nothing acknowledged is lost, nothing runs twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import grpc

from rainbow.client import RainbowClient
from rainbow.config import RainbowConfig
from rainbow.protos import rainbow_pb2
from rainbow.store import open_store

from conftest import REGISTRATION_SECRET, example, start_server_process, stubs_for, subprocess_env


def test_kill_during_submit_and_receive(tmp_path):
    db = tmp_path / "crash.db"
    proc, address, _ = start_server_process(db, "--secret", REGISTRATION_SECRET, "--lease-seconds", "1",
                                            "--loglevel", "warning")
    stubs = stubs_for(address)
    reply = stubs.scheduler.Register(rainbow_pb2.RegisterRequest(
        name="keebler", secret=REGISTRATION_SECRET, nodes=example("cluster-nodes.json")))
    token, secret = reply.token, reply.secret
    jobspec = example("jobspec-constraint.yaml")

    acknowledged: dict[str, int] = {}
    accepted: set[int] = set()
    lock = threading.Lock()
    stop = threading.Event()

    def submitter(n: int) -> None:
        own = stubs_for(address)
        for i in range(10_000):
            if stop.is_set():
                break
            name = f"s{n}-{i}"
            try:
                job = own.scheduler.SubmitJob(rainbow_pb2.SubmitJobRequest(
                    name=name, clusters=[rainbow_pb2.SubmitJobRequest.Cluster(name="keebler", token=token)],
                    jobspec=jobspec), timeout=5)
            except grpc.RpcError:
                break
            with lock:
                acknowledged[name] = job.jobid
        own.channel.close()

    def agent() -> None:
        own = stubs_for(address)
        for _ in range(10_000):
            if stop.is_set():
                break
            try:
                got = own.scheduler.ReceiveJobs(rainbow_pb2.ReceiveJobsRequest(
                    cluster="keebler", secret=secret, maxJobs=5, agent="agent"), timeout=5)
                if got.jobs:
                    own.scheduler.AcceptJobs(rainbow_pb2.AcceptJobsRequest(
                        cluster="keebler", secret=secret, jobids=list(got.jobs), agent="agent",
                        leases=dict(got.leases)), timeout=5)
                    with lock:
                        accepted.update(got.jobs)
            except grpc.RpcError:
                break
        own.channel.close()

    threads = [threading.Thread(target=submitter, args=(n,)) for n in range(6)] + [threading.Thread(target=agent)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 150 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    stop.set()
    for t in threads:
        t.join(30)
    stubs.channel.close()
    assert len(acknowledged) >= 50, "the load did not start"

    store = open_store(str(db))
    try:
        jobs = store.list_jobs(limit=0)
    finally:
        store.close()
    by_name: dict[str, list[int]] = {}
    for job in jobs:
        by_name.setdefault(job.name, []).append(job.id)
    for name, jobid in acknowledged.items():
        assert by_name.get(name) == [jobid], name  # there, exactly once
    accepted_ids = {job.id for job in jobs if job.state.value == "accepted"}
    assert accepted <= accepted_ids

    proc, address, _ = start_server_process(db, "--secret", REGISTRATION_SECRET, "--loglevel", "warning")
    stubs = stubs_for(address)
    try:
        # Jobs leased before the kill come back once their (1 s) leases run out: poll until all did.
        pending = {job.id for job in jobs if job.state.value in ("assigned", "leased")}
        again: set[int] = set()
        deadline = time.monotonic() + 30
        while not pending <= again and time.monotonic() < deadline:
            got = stubs.scheduler.ReceiveJobs(rainbow_pb2.ReceiveJobsRequest(cluster="keebler", secret=secret))
            again.update(got.jobs)
        assert not (again & accepted)  # no accepted job is handed out again
        assert again == pending  # and every unaccepted one is
    finally:
        stubs.channel.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_kill_the_agent_between_receive_and_accept(tmp_path):
    """SIGKILL a real agent after it submitted a job but before it accepted it: the job runs once."""
    proc, address, _ = start_server_process(tmp_path / "rainbow.db", "--secret", REGISTRATION_SECRET,
                                            "--lease-seconds", "1", "--loglevel", "warning")
    config_path = tmp_path / "rainbow-config.yaml"
    RainbowConfig.new("keebler", host=address, path=config_path).save()
    marker, started = tmp_path / "runs.txt", tmp_path / "submitted"
    hooks = tmp_path / "hooks.py"
    hooks.write_text(
        "import os, pathlib, time\n"
        "from rainbow.flux import hook\n\n"
        "@hook('job.new')\n"
        "def stall(job):\n"
        "    if os.environ.get('STALL'):\n"
        f"        pathlib.Path({str(started)!r}).touch()\n"
        "        time.sleep(120)\n"
    )
    agent = [sys.executable, "-m", "rainbow", "agent", "--executor", "local", "--config-path", str(config_path),
             "--state-dir", str(tmp_path / "state"), "--hooks", str(hooks), "--interval", "0.2", "--no-stream",
             "--loglevel", "warning"]
    try:
        with RainbowClient(config_file=config_path) as client:
            client.register("keebler", REGISTRATION_SECRET, example("cluster-nodes.json"), save=True)
            client.config = RainbowConfig.load(config_path)
            jobid = client.submit_job(["sh", "-c", f"echo ran >> {marker}"], nodes=1).jobid

            first = subprocess.Popen(agent, env={**subprocess_env(), "STALL": "1"},
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 60
            while not started.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert started.exists(), "the agent never submitted the job"
            os.kill(first.pid, signal.SIGKILL)
            first.wait(30)
            assert client.get_job(jobid).state == "leased"  # received, never accepted

            second = subprocess.Popen(agent, env=subprocess_env(), stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
            try:
                deadline = time.monotonic() + 60
                while client.get_job(jobid).state != "completed" and time.monotonic() < deadline:
                    time.sleep(0.1)
                info = client.get_job(jobid)
            finally:
                second.send_signal(signal.SIGTERM)
                second.wait(30)
        assert info.state == "completed" and info.exit_code == 0
        # the next agent took it over (found by its rainbow tag, or delivered again after the lease) ...
        assert [h.state for h in info.history].count("accepted") == 1
        assert marker.read_text() == "ran\n"  # ... and it ran once
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
