"""Job lifecycle over gRPC: leases, states, cancel, watch, fast hand-off, lost clusters."""

from __future__ import annotations

import threading
import time

import grpc
import pytest

from rainbow.protos import rainbow_pb2

from conftest import BOTH_STORES, REGISTRATION_SECRET, ManualClock, example, stubs_for

pytestmark = BOTH_STORES

Cluster = rainbow_pb2.SubmitJobRequest.Cluster


def register(stubs, name):
    reply = stubs.scheduler.Register(
        rainbow_pb2.RegisterRequest(name=name, secret=REGISTRATION_SECRET, nodes=example("cluster-nodes.json"))
    )
    return reply.token, reply.secret


def submit(stubs, clusters, name="job"):
    return stubs.scheduler.SubmitJob(
        rainbow_pb2.SubmitJobRequest(
            name=name,
            clusters=[Cluster(name=n, token=t) for n, t in clusters],
            jobspec=example("jobspec-constraint.yaml"),
        )
    )


def receive(stubs, cluster, secret, agent="", max_jobs=0):
    reply = stubs.scheduler.ReceiveJobs(
        rainbow_pb2.ReceiveJobsRequest(cluster=cluster, secret=secret, maxJobs=max_jobs, agent=agent)
    )
    return sorted(reply.jobs)


def accept(stubs, cluster, secret, ids, agent=""):
    return stubs.scheduler.AcceptJobs(
        rainbow_pb2.AcceptJobsRequest(cluster=cluster, secret=secret, jobids=ids, agent=agent))


def report(stubs, cluster, secret, jobid, state, **fields):
    return stubs.scheduler.ReportJobState(
        rainbow_pb2.ReportJobStateRequest(cluster=cluster, secret=secret, jobid=jobid, state=state, **fields)
    )


def get(stubs, jobid, token):
    return stubs.scheduler.GetJob(rainbow_pb2.GetJobRequest(jobid=jobid, token=token))


@pytest.fixture
def one(rainbow):
    token, secret = register(rainbow, "keebler")
    return rainbow, token, secret


def test_each_transition_with_history(one):
    stubs, token, secret = one
    job = submit(stubs, [("keebler", token)]).jobid
    assert get(stubs, job, token).state == "assigned"
    assert receive(stubs, "keebler", secret, agent="agent-1") == [job]
    assert get(stubs, job, token).state == "leased"
    accept(stubs, "keebler", secret, [job], agent="agent-1")
    assert get(stubs, job, token).state == "accepted"
    reply = report(stubs, "keebler", secret, job, "submitted", local_id="ƒJjtQaK")
    assert reply.state == "submitted" and not reply.cancel
    report(stubs, "keebler", secret, job, "running")
    # never backwards
    assert report(stubs, "keebler", secret, job, "submitted").state == "running"
    report(stubs, "keebler", secret, job, "completed", exit_code=0, has_exit_code=True, message="done")
    info = get(stubs, job, token)
    assert (info.state, info.local_id, info.exit_code, info.has_exit_code, info.message) == (
        "completed", "ƒJjtQaK", 0, True, "done")
    assert [h.state for h in info.history] == ["assigned", "leased", "accepted", "submitted", "running", "completed"]
    times = [h.time for h in info.history]
    assert times == sorted(times)
    # a final job stays final
    assert report(stubs, "keebler", secret, job, "failed").state == "completed"


def test_report_rejections(one):
    stubs, token, secret = one
    job = submit(stubs, [("keebler", token)]).jobid
    other_token, other_secret = register(stubs, "other")
    for state, code in [("bogus", grpc.StatusCode.INVALID_ARGUMENT), ("assigned", grpc.StatusCode.INVALID_ARGUMENT)]:
        with pytest.raises(grpc.RpcError) as err:
            report(stubs, "keebler", secret, job, state)
        assert err.value.code() == code and "state" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        report(stubs, "other", other_secret, job, "running")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        get(stubs, job, other_token)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as err:
        get(stubs, 424242, token)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_lease_expiry_redelivers_to_another_caller(server_factory):
    server = server_factory(lease_seconds=30)
    clock = server.scheduler.clock = ManualClock()
    stubs = stubs_for(server.address)
    token, secret = register(stubs, "keebler")
    job = submit(stubs, [("keebler", token)]).jobid
    assert receive(stubs, "keebler", secret, agent="a") == [job]
    clock.advance(29)
    assert receive(stubs, "keebler", secret, agent="b") == []
    clock.advance(2)
    assert receive(stubs, "keebler", secret, agent="b") == [job]
    accept(stubs, "keebler", secret, [job], agent="b")
    clock.advance(60)
    assert receive(stubs, "keebler", secret, agent="a") == []
    stubs.channel.close()


def test_two_agents_racing_take_each_job_once(one):
    stubs, token, secret = one
    jobs = {submit(stubs, [("keebler", token)], name=f"j{i}").jobid for i in range(60)}
    taken: dict[str, list[int]] = {}

    def agent(name):
        own = stubs_for(stubs.address)
        mine = []
        while True:
            got = receive(own, "keebler", secret, agent=name, max_jobs=4)
            if not got:
                break
            status = accept(own, "keebler", secret, got, agent=name).status
            assert status == rainbow_pb2.AcceptJobsResponse.RESULT_TYPE_SUCCESS
            mine.extend(got)
        taken[name] = mine
        own.channel.close()

    threads = [threading.Thread(target=agent, args=(f"agent-{n}",)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    every = taken["agent-0"] + taken["agent-1"]
    assert sorted(every) == sorted(jobs)
    assert len(every) == len(set(every))
    listed = stubs.scheduler.ListJobs(rainbow_pb2.ListJobsRequest(clusters=[Cluster(name="keebler", token=token)],
                                                                  state="accepted"))
    assert {j.id for j in listed.jobs} == jobs


def test_cancel_at_every_state(one):
    stubs, token, secret = one
    cancel = stubs.scheduler.CancelJob

    waiting = submit(stubs, [("keebler", token)], "waiting").jobid
    reply = cancel(rainbow_pb2.CancelJobRequest(jobid=waiting, token=token, reason="changed my mind"))
    assert reply.state == "cancelled"
    assert receive(stubs, "keebler", secret) == []  # never reaches the cluster

    leased = submit(stubs, [("keebler", token)], "leased").jobid
    running = submit(stubs, [("keebler", token)], "running").jobid
    assert receive(stubs, "keebler", secret) == sorted([leased, running])
    accept(stubs, "keebler", secret, [running])
    report(stubs, "keebler", secret, running, "running", local_id="f1")

    for jobid, state in [(leased, "leased"), (running, "running")]:
        reply = cancel(rainbow_pb2.CancelJobRequest(jobid=jobid, token=token))
        assert reply.state == state and reply.cancel_requested
    # the agent is told on its next contact
    beat = stubs.scheduler.Heartbeat(rainbow_pb2.HeartbeatRequest(
        cluster="keebler", secret=secret, jobs=[rainbow_pb2.HeldJob(jobid=running, state="running")]))
    assert sorted(beat.cancel) == sorted([leased, running])
    assert report(stubs, "keebler", secret, running, "running").cancel
    report(stubs, "keebler", secret, running, "cancelled", message="flux job canceled")
    assert get(stubs, running, token).state == "cancelled"
    # accepting a leased job whose cancel was asked for still reports it for cancellation
    accept(stubs, "keebler", secret, [leased])
    assert report(stubs, "keebler", secret, leased, "submitted").cancel

    done = submit(stubs, [("keebler", token)], "done").jobid
    receive(stubs, "keebler", secret)
    accept(stubs, "keebler", secret, [done])
    report(stubs, "keebler", secret, done, "completed", exit_code=0, has_exit_code=True)
    with pytest.raises(grpc.RpcError) as err:
        cancel(rainbow_pb2.CancelJobRequest(jobid=done, token=token))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    # cancelling twice is harmless
    assert cancel(rainbow_pb2.CancelJobRequest(jobid=waiting, token=token)).state == "cancelled"


def test_watch_streams_every_event_in_order(one):
    stubs, token, secret = one
    events = []
    live = threading.Event()
    stream = stubs.scheduler.WatchJobs(rainbow_pb2.WatchJobsRequest(clusters=[Cluster(name="keebler", token=token)]))

    def read():
        for event in stream:
            live.set()
            events.append(event)
            if event.state == "completed":  # only the job below completes
                return

    reader = threading.Thread(target=read)
    reader.start()
    # The stream starts at the latest event when it subscribes: wait until it delivers a new one.
    for _ in range(60):
        sentinel = submit(stubs, [("keebler", token)], name="sentinel").jobid
        if live.wait(0.5):
            break
    assert live.is_set(), "the watch delivered no event"
    job = submit(stubs, [("keebler", token)]).jobid
    assert job > sentinel
    receive(stubs, "keebler", secret)
    accept(stubs, "keebler", secret, [job])
    report(stubs, "keebler", secret, job, "running")
    report(stubs, "keebler", secret, job, "completed", exit_code=0, has_exit_code=True)
    reader.join(10)
    stream.cancel()
    events = [e for e in events if e.jobid == job]
    assert [(e.jobid, e.state) for e in events] == [
        (job, s) for s in ("assigned", "leased", "accepted", "running", "completed")]
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    # replay from the start gives the same events
    replay = stubs.scheduler.WatchJobs(rainbow_pb2.WatchJobsRequest(
        clusters=[Cluster(name="keebler", token=token)], since=-1, jobid=job))
    again = [next(replay) for _ in range(5)]
    replay.cancel()
    assert [e.seq for e in again] == [e.seq for e in events]


def test_stream_jobs_hands_off_jobs_assigned_while_it_is_open(one):
    stubs, token, secret = one
    stream = stubs.scheduler.StreamJobs(rainbow_pb2.ReceiveJobsRequest(cluster="keebler", secret=secret,
                                                                        agent="fast"), timeout=60)
    first = submit(stubs, [("keebler", token)]).jobid
    assert list(next(stream).jobs) == [first]  # the stream is open and has taken what was waiting
    second = submit(stubs, [("keebler", token)]).jobid
    assert list(next(stream).jobs) == [second]
    stream.cancel()
    assert [get(stubs, j, token).state for j in (first, second)] == ["leased", "leased"]


def test_silent_cluster_jobs_unknown_waiting_jobs_replaced(server_factory):
    server = server_factory(cluster_timeout=1.0)
    stubs = stubs_for(server.address)
    a_token, a_secret = register(stubs, "a")
    b_token, b_secret = register(stubs, "b")
    both = [("a", a_token), ("b", b_token)]
    running = waiting = None
    while running is None or waiting is None:  # random selection: get one job of each kind on "a"
        reply = submit(stubs, both)
        if reply.cluster != "a":
            continue
        if running is None:
            running = reply.jobid
            receive(stubs, "a", a_secret)
            accept(stubs, "a", a_secret, [running])
            report(stubs, "a", a_secret, running, "running", local_id="f-1")
        else:
            waiting = reply.jobid

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        stubs.scheduler.Heartbeat(rainbow_pb2.HeartbeatRequest(cluster="b", secret=b_secret))
        if get(stubs, running, a_token).state == "unknown" and get(stubs, waiting, a_token).cluster == "b":
            break
        time.sleep(0.2)
    assert get(stubs, running, a_token).state == "unknown"
    moved = get(stubs, waiting, a_token)
    assert moved.cluster == "b" and moved.state == "assigned" and "re-placed from a" in moved.message
    assert waiting in receive(stubs, "b", b_secret)

    stubs.scheduler.Heartbeat(rainbow_pb2.HeartbeatRequest(
        cluster="a", secret=a_secret, jobs=[rainbow_pb2.HeldJob(jobid=running, state="running", local_id="f-1")]))
    assert get(stubs, running, a_token).state == "running"
    assert receive(stubs, "a", a_secret) == []  # the re-placed job never comes back to "a"
    stubs.channel.close()
