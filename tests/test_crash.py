"""SIGKILL the server under load: acknowledged jobs survive exactly once; accepted jobs never come back."""

from __future__ import annotations

import signal
import threading
import time

import grpc

from rainbow.protos import rainbow_pb2
from rainbow.store import open_store

from conftest import REGISTRATION_SECRET, example, start_server_process, stubs_for


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
                        cluster="keebler", secret=secret, jobids=list(got.jobs)), timeout=5)
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

    time.sleep(1.2)  # leases taken before the kill run out
    proc, address, _ = start_server_process(db, "--secret", REGISTRATION_SECRET, "--loglevel", "warning")
    stubs = stubs_for(address)
    try:
        again = stubs.scheduler.ReceiveJobs(rainbow_pb2.ReceiveJobsRequest(cluster="keebler", secret=secret))
        assert not (set(again.jobs) & accepted)  # no accepted job is handed out again
        pending = {job.id for job in jobs if job.state.value in ("assigned", "leased")}
        assert set(again.jobs) == pending  # and every unaccepted one is
    finally:
        stubs.channel.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
