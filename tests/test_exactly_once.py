"""Exactly once while the holder lives: leases renewed, holders fenced, no job started twice by one agent.

The server's clock is a :class:`ManualClock`: a lease runs out when a test
moves the clock past it, never because a machine was slow.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc
import pytest
from test_agent_local import Cluster, register, run_until, states

from rainbow.agent import LocalExecutor
from rainbow.agent import core as agent_core
from rainbow.agent.executor import ExecutorUnavailable
from rainbow.client import RainbowClient
from rainbow.errors import RainbowError
from rainbow.protos import rainbow_pb2

from conftest import BOTH_STORES, ManualClock, stubs_for

pytestmark = BOTH_STORES

LEASE = 30.0


@pytest.fixture
def setup(server_factory, tmp_path):
    server = server_factory(lease_seconds=LEASE)
    clock = server.scheduler.clock = ManualClock()
    cluster = register(server.address, tmp_path)
    stubs = stubs_for(server.address)
    yield server, clock, cluster, stubs
    stubs.channel.close()
    cluster.client.close()


def marking(marker: Path) -> list[str]:
    """A command that leaves one line per run in ``marker``."""
    return ["sh", "-c", f'echo "$RAINBOW_JOBID $RAINBOW_LOCAL_ID" >> {marker}']


def runs(marker: Path) -> list[str]:
    return marker.read_text().splitlines() if marker.exists() else []


def receive(stubs, cluster: Cluster, agent: str, max_jobs: int = 0) -> rainbow_pb2.ReceiveJobsResponse:
    return stubs.scheduler.ReceiveJobs(rainbow_pb2.ReceiveJobsRequest(
        cluster=cluster.name, secret=cluster.config.cluster_secret, agent=agent, maxJobs=max_jobs))


def history(cluster: Cluster, jobid: int) -> list[str]:
    return [change.state for change in cluster.info(jobid).history]


def finish(cluster: Cluster, agent, jobid: int) -> None:
    cluster.cancel(jobid)
    run_until(agent, lambda: states(cluster, jobid)[0] in ("cancelled", "completed", "failed"))


def test_a_working_agent_keeps_its_lease_while_the_local_scheduler_is_down(setup, tmp_path):
    _server, clock, cluster, stubs = setup
    jobid = cluster.submit(["sleep", "30"])
    agent = cluster.agent(tmp_path / "a", agent_id="a")
    submit = agent.executor.submit

    def down(_job):
        raise ExecutorUnavailable("flux is restarting")

    agent.executor.submit = down
    for _ in range(6):  # three leases long, one pass every half lease: each heartbeat renews the lease
        agent.run_once()
        clock.advance(LEASE / 2)
        assert not receive(stubs, cluster, "b").jobs
    agent.executor.submit = submit
    run_until(agent, lambda: states(cluster, jobid) == ["running"])
    assert history(cluster, jobid) == ["assigned", "leased", "accepted", "submitted", "running"]
    finish(cluster, agent, jobid)


def test_an_open_stream_keeps_its_leases(setup):
    server, clock, cluster, stubs = setup
    jobid = cluster.submit(["sleep", "30"])
    stream = stubs.scheduler.StreamJobs(rainbow_pb2.ReceiveJobsRequest(
        cluster=cluster.name, secret=cluster.config.cluster_secret, agent="streamer"))
    assert list(next(stream).jobs) == [jobid]
    store = server.scheduler.store
    for _ in range(3):
        clock.advance(LEASE * 0.9)
        deadline = time.monotonic() + 30
        while store.get_job(jobid).lease_expires < clock.now + LEASE / 2:  # the stream renewed it
            assert time.monotonic() < deadline, "the open stream did not renew its lease"
            time.sleep(0.02)
        assert not receive(stubs, cluster, "b").jobs
    stream.cancel()
    clock.advance(LEASE + 1)  # a holder that stopped talking loses its lease
    assert list(receive(stubs, cluster, "b").jobs) == [jobid]


def test_a_paused_agent_is_fenced_and_drops_its_copy(setup, tmp_path):
    _server, clock, cluster, _stubs = setup
    jobid = cluster.submit(["sleep", "30"])
    paused = cluster.agent(tmp_path / "a", agent_id="a")
    live = cluster.agent(tmp_path / "b", agent_id="b")
    accept = paused.link.accept

    def pause_then_accept(ids, leases=None):
        clock.advance(LEASE + 1)  # "a" stalls past its lease after starting its copy ...
        run_until(live, lambda: states(cluster, jobid) == ["running"])  # ... and "b" takes the job over
        return accept(ids, leases)

    paused.link.accept = pause_then_accept
    paused.run_once()
    assert not paused.held
    paused.executor.poll()
    assert paused.executor.find(jobid).state == "cancelled"  # its copy was stopped, not reported
    info = cluster.info(jobid)
    assert info.state == "running" and info.local_id == live.executor.find(jobid).local_id
    assert history(cluster, jobid) == ["assigned", "leased", "leased", "accepted", "submitted", "running"]
    finish(cluster, live, jobid)


def test_a_stale_holder_is_refused_everywhere(setup):
    _server, clock, cluster, stubs = setup
    secret = cluster.config.cluster_secret
    jobid = cluster.submit(["true"])
    first = receive(stubs, cluster, "a")
    stale = first.leases[jobid]
    assert first.lease_seconds == LEASE and stale > 0
    clock.advance(LEASE + 1)
    second = receive(stubs, cluster, "b")
    assert list(second.jobs) == [jobid] and second.leases[jobid] > stale

    def accept(agent, lease):
        return stubs.scheduler.AcceptJobs(rainbow_pb2.AcceptJobsRequest(
            cluster=cluster.name, secret=secret, jobids=[jobid], agent=agent, leases={jobid: lease}))

    with pytest.raises(grpc.RpcError) as err:
        accept("a", stale)
    assert err.value.code() == grpc.StatusCode.ABORTED and f"job {jobid}" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        stubs.scheduler.ReportJobState(rainbow_pb2.ReportJobStateRequest(
            cluster=cluster.name, secret=secret, jobid=jobid, state="failed", agent="a", lease=stale))
    assert err.value.code() == grpc.StatusCode.ABORTED and f"job {jobid}" in err.value.details()
    beat = stubs.scheduler.Heartbeat(rainbow_pb2.HeartbeatRequest(
        cluster=cluster.name, secret=secret, agent="a", jobs=[rainbow_pb2.HeldJob(jobid=jobid, lease=stale)]))
    assert list(beat.revoked) == [jobid] and beat.lease_seconds == LEASE

    assert accept("b", second.leases[jobid]).status == rainbow_pb2.AcceptJobsResponse.RESULT_TYPE_SUCCESS
    # After a replica outage: the job is accepted by "b"; the stale holder is still refused, not told "success".
    with pytest.raises(grpc.RpcError) as err:
        accept("a", stale)
    assert err.value.code() == grpc.StatusCode.ABORTED
    report = stubs.scheduler.ReportJobState(rainbow_pb2.ReportJobStateRequest(
        cluster=cluster.name, secret=secret, jobid=jobid, state="completed", agent="b", lease=second.leases[jobid]))
    assert report.state == "completed"
    assert cluster.info(jobid).state == "completed"


def test_a_client_without_tokens_keeps_the_original_accept(setup):
    _server, _clock, cluster, stubs = setup
    secret = cluster.config.cluster_secret
    jobid = cluster.submit(["true"])
    assert list(receive(stubs, cluster, "").jobs) == [jobid]
    old = rainbow_pb2.AcceptJobsRequest(cluster=cluster.name, secret=secret, jobids=[jobid])
    ok = rainbow_pb2.AcceptJobsResponse.RESULT_TYPE_SUCCESS
    assert stubs.scheduler.AcceptJobs(old).status == ok
    assert stubs.scheduler.AcceptJobs(old).status == ok  # accepting twice is harmless
    assert cluster.info(jobid).state == "accepted"


def test_a_re_lease_to_the_same_agent_after_its_copy_completed(setup, tmp_path):
    _server, clock, cluster, _stubs = setup
    marker = tmp_path / "runs.txt"
    jobid = cluster.submit(marking(marker))
    agent = cluster.agent(tmp_path / "a", agent_id="a")
    accept = agent.link.accept

    def outage(ids, leases=None):
        raise RainbowError("the replica went away")

    agent.link.accept = outage
    with pytest.raises(RainbowError):
        agent.run_once()  # started, not accepted
    clock.advance(LEASE + 1)  # the lease runs out during the outage ...
    again = agent.link.receive()  # ... and the job is handed to the same agent again (its stream)
    assert [job.id for job in again] == [jobid] and again[0].lease > agent.held[jobid].lease
    agent._arrivals.put(again)
    agent.link.accept = accept
    run_until(agent, lambda: states(cluster, jobid) == ["completed"] and not agent.held)
    assert runs(marker) == [f"{jobid} local-1"]
    # A late duplicate of the first hand-out, after the job ended and was forgotten: still not run again.
    agent._arrivals.put(again)
    agent.run_once()
    assert runs(marker) == [f"{jobid} local-1"]
    assert agent.stats.submitted == 1 and cluster.info(jobid).state == "completed"


def test_an_agent_restart_with_completed_jobs_in_its_state_directory(setup, tmp_path):
    _server, clock, cluster, _stubs = setup
    marker = tmp_path / "runs.txt"
    state = tmp_path / "state"
    finished = cluster.submit(marking(marker))
    first = cluster.agent(state, agent_id="first")
    run_until(first, lambda: states(cluster, finished) == ["completed"] and not first.held)
    assert first.executor.find(finished).state == "completed"  # forgotten, still remembered
    unaccepted = cluster.submit(marking(marker))
    first.link.accept = lambda ids, leases=None: (_ for _ in ()).throw(RainbowError("killed"))
    with pytest.raises(RainbowError):
        first.run_once()  # the second job started, and the agent died before AcceptJobs
    deadline = time.monotonic() + 30
    while first.executor.find(unaccepted).state != "completed":
        assert time.monotonic() < deadline, "the local job did not end"
        time.sleep(0.05)
        first.executor.poll()
    assert LocalExecutor(state_dir=state, cluster=cluster.name).find(finished).state == "completed"

    clock.advance(LEASE + 1)  # the dead agent's lease runs out; the job is handed out again
    second = cluster.agent(state, agent_id="second")
    run_until(second, lambda: states(cluster, finished, unaccepted) == ["completed", "completed"])
    second._arrivals.put([cluster_job(cluster, finished)])  # even if the server sent the finished one again
    second.run_once()
    assert sorted(runs(marker)) == sorted([f"{finished} local-1", f"{unaccepted} local-2"])
    assert second.stats.submitted == 0


def cluster_job(cluster: Cluster, jobid: int):
    from rainbow.client import Job

    info = cluster.info(jobid)
    return Job(info.id, info.cluster, info.name, info.jobspec, info.command)


def test_flow_control_leases_only_the_window(setup):
    _server, _clock, cluster, stubs = setup
    secret = cluster.config.cluster_secret
    jobs = [cluster.submit(["true"]) for _ in range(8)]
    stream = stubs.scheduler.StreamJobs(rainbow_pb2.ReceiveJobsRequest(
        cluster=cluster.name, secret=secret, agent="slow", maxJobs=3))
    first = next(stream)
    assert sorted(first.jobs) == jobs[:3]
    assert [cluster.info(j).state for j in jobs[3:]] == ["assigned"] * 5  # nothing more while none is accepted
    stubs.scheduler.AcceptJobs(rainbow_pb2.AcceptJobsRequest(
        cluster=cluster.name, secret=secret, jobids=jobs[:2], agent="slow", leases=dict(first.leases)))
    second = next(stream)
    assert sorted(second.jobs) == jobs[3:5]  # two accepted, two more leased
    stream.cancel()
    assert [cluster.info(j).state for j in jobs[5:]] == ["assigned"] * 3
    assert sorted(receive(stubs, cluster, "other", max_jobs=2).jobs) == jobs[5:7]


def test_completions_are_reported_as_they_happen(server_factory, tmp_path):
    server = server_factory(lease_seconds=3600)
    cluster = register(server.address, tmp_path)
    agent = cluster.agent(tmp_path / "a", agent_id="a", interval=600)
    jobid = cluster.submit(["sleep", "0.2"])
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60  # far below the agent's 600 s between passes
        while states(cluster, jobid) != ["completed"]:
            assert time.monotonic() < deadline, "the completion waited for the next pass"
            time.sleep(0.05)
    finally:
        agent.stop()
        thread.join(30)
        cluster.client.close()
    assert not thread.is_alive()


def test_the_python_client_sends_a_chosen_idempotency_key(setup):
    _server, _clock, cluster, _stubs = setup
    with RainbowClient(cluster.address, config_file=cluster.config) as client:
        first = client.submit_job(["true"], idempotency_key="nightly-2026-12-01")
        retry = client.submit_job(["true"], idempotency_key="nightly-2026-12-01")
        other = client.submit_job(["true"])
    assert first.jobid == retry.jobid and other.jobid != first.jobid


def test_a_job_ended_in_rainbow_is_stopped_on_the_agent(setup, tmp_path, caplog):
    server, clock, cluster, stubs = setup
    jobid = cluster.submit(["sleep", "30"])
    agent = cluster.agent(tmp_path / "a", agent_id="a")
    run_until(agent, lambda: states(cluster, jobid) == ["running"])
    # The cluster went silent and another agent of it came back without the job: rainbow failed it.
    store = server.scheduler.store
    store.mark_unreachable(clock.now + 1, clock.now)
    stubs.scheduler.Heartbeat(rainbow_pb2.HeartbeatRequest(
        cluster=cluster.name, secret=cluster.config.cluster_secret, agent="other"))
    assert states(cluster, jobid) == ["failed"]
    agent.run_once()
    assert not agent.held
    agent.executor.poll()
    assert agent.executor.find(jobid).state == "cancelled"  # the copy rainbow gave up on does not run on
    assert states(cluster, jobid) == ["failed"]
    told = [r for r in caplog.records if r.name == "rainbow.agent" and f"job {jobid}:" in r.getMessage()]
    assert len(told) == 1 and told[0].levelname == "WARNING"


def test_a_job_queued_past_its_lease_is_checked_before_it_starts(setup, tmp_path):
    _server, clock, cluster, stubs = setup
    marker = tmp_path / "runs.txt"
    jobid = cluster.submit(marking(marker))
    stalled = cluster.agent(tmp_path / "a", agent_id="a")
    late = stalled.link.receive()  # delivered to "a" (its stream), which then stalls ...
    clock.advance(LEASE + 1)
    assert list(receive(stubs, cluster, "b").jobs) == [jobid]  # ... and "b" holds the job now
    stalled._note_arrival(late)
    stalled._arrived[jobid] -= LEASE  # "a" received it a lease ago by its own clock
    stalled._arrivals.put(late)
    stalled.run_once()
    assert stalled.stats.submitted == 0 and not stalled.held and not runs(marker)
    assert states(cluster, jobid) == ["leased"]


def test_a_long_batch_accepts_jobs_as_they_start(setup, tmp_path, monkeypatch):
    _server, _clock, cluster, _stubs = setup
    monkeypatch.setattr(agent_core, "ACCEPT_EVERY", 0.0)  # every start counts as a long batch
    jobs = [cluster.submit(["true"]) for _ in range(3)]
    agent = cluster.agent(tmp_path / "a", agent_id="a")
    seen: list[list[str]] = []
    submit = agent.executor.submit

    def watching(job):
        seen.append(states(cluster, *jobs))
        return submit(job)

    agent.executor.submit = watching
    agent.run_once()
    # A crash in the middle of the batch would leave only the job being started unaccepted.
    assert seen == [["leased"] * 3, ["accepted", "leased", "leased"], ["accepted", "accepted", "leased"]]
