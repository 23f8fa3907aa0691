"""SIGKILL the server while it stores large batches: an acknowledged batch is whole, any other whole or absent."""

from __future__ import annotations

import json
import signal
import threading

import grpc

from rainbow.jobspec import simple
from rainbow.protos import rainbow_pb2
from rainbow.scheduler.batches import batch_identity
from rainbow.store import open_store

from conftest import REGISTRATION_SECRET, example, start_server_process, stubs_for

COPIES = 2_000


def test_kill_while_storing_batches(tmp_path):
    db = tmp_path / "crash.db"
    proc, address, _ = start_server_process(db, "--secret", REGISTRATION_SECRET, "--loglevel", "warning")
    stubs = stubs_for(address)
    reply = stubs.scheduler.Register(rainbow_pb2.RegisterRequest(
        name="keebler", secret=REGISTRATION_SECRET, nodes=example("cluster-nodes.json")))
    listed = [rainbow_pb2.SubmitJobRequest.Cluster(name="keebler", token=reply.token)]
    template = rainbow_pb2.SubmitJobsRequest.Job(name="sweep", jobspec=json.dumps(simple(["app", "{cc}"])))
    sent: list[str] = []
    acknowledged: list[str] = []
    first = threading.Event()

    def submitter() -> None:
        for n in range(1_000):
            key = f"crash-{n}"
            sent.append(key)
            try:
                answer = stubs.scheduler.SubmitJobs(rainbow_pb2.SubmitJobsRequest(
                    clusters=listed, jobs=[template], cc=f"1-{COPIES}", idempotency_key=key), timeout=60)
            except grpc.RpcError:
                break
            assert len([job for job in answer.jobs if job.jobid]) == COPIES
            acknowledged.append(key)
            first.set()

    thread = threading.Thread(target=submitter)
    thread.start()
    assert first.wait(120), "no batch was acknowledged"
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    thread.join(60)
    stubs.channel.close()

    store = open_store(str(db))
    try:
        counts = {key: len(store.list_jobs(None, limit=0, batch=batch_identity(key))) for key in sent}
    finally:
        store.close()
    assert acknowledged and all(counts[key] == COPIES for key in acknowledged)
    assert all(count in (0, COPIES) for count in counts.values()), counts
