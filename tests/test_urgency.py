"""Holding jobs and changing their priority (`rainbow urgency`, as `flux job urgency`), over real gRPC."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from test_agent_local import register, run_until, states
from test_fairshare_grpc import make_site

from rainbow.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, ResourceExhausted
from rainbow.jobspec import simple
from rainbow.protos import rainbow_pb2

from conftest import BOTH_STORES, REGISTRATION_SECRET, ManualClock, subprocess_env

pytestmark = BOTH_STORES


@pytest.fixture
def cluster(server_factory, tmp_path):
    server = server_factory(lease_seconds=30)
    cluster = register(server.address, tmp_path)
    cluster.server = server
    yield cluster
    cluster.client.close()


def received(cluster, count: int = 0) -> list[int]:
    return [job.id for job in cluster.client.receive_jobs(count, accept=False)]


def test_a_held_job_is_not_handed_out_until_its_urgency_is_set_again(cluster, tmp_path):
    held, other = cluster.submit(["echo", "held"]), cluster.submit(["echo", "other"])
    job = cluster.client.set_urgency(held, "hold")
    assert (job.state, job.message) == ("held", "held by its submitter")
    agent = cluster.agent(tmp_path / "agent")
    run_until(agent, lambda: states(cluster, other) == ["completed"])
    for _ in range(5):
        agent.run_once()
    assert states(cluster, held) == ["held"]
    assert cluster.client.set_urgency(held, "hold").state == "held"  # holding again changes nothing

    job = cluster.client.set_urgency(held, "default")
    assert (job.state, job.priority, job.message) == ("assigned", 0, "let go from hold")
    run_until(agent, lambda: states(cluster, held) == ["completed"])
    history = [(change.state, change.message) for change in cluster.client.get_job(held).history]
    assert history[:3] == [("assigned", ""), ("held", "held by its submitter"), ("assigned", "let go from hold")]
    assert [state for state, _ in history].count("running") == 1  # run once


def test_a_new_priority_orders_the_owners_waiting_jobs(cluster):
    first, second, third = (cluster.submit(["app", str(i)]) for i in range(3))
    assert cluster.client.set_urgency(third, 5).priority == 5
    assert cluster.client.set_urgency(second, "expedite").priority == 1_000_000
    assert [received(cluster, 1) for _ in range(3)] == [[second], [third], [first]]


def test_only_a_waiting_job_can_change_and_bad_urgencies_name_the_field(cluster):
    taken, waiting = cluster.submit(["app", "taken"]), cluster.submit(["app", "waiting"])
    assert received(cluster, 1) == [taken]
    with pytest.raises(FailedPrecondition, match=f"job {taken} is already leased on keebler: only a job that "
                       "waits can be held or given a priority"):
        cluster.client.set_urgency(taken, "hold")
    with pytest.raises(FailedPrecondition, match=f"job {taken} is already leased"):
        cluster.client.set_urgency(taken, 3)
    cluster.cancel(waiting)
    with pytest.raises(FailedPrecondition, match=f"job {waiting} already cancelled"):
        cluster.client.set_urgency(waiting, "default")

    job = cluster.submit(["app", "fresh"])
    for bad, why in (("soon", "'soon' is not hold, default, expedite or an integer"),
                     ("1000001", "1000001 is out of range: a priority is between -1000000 and 1000000")):
        with pytest.raises(InvalidArgument, match=f"^urgency: {why}$"):
            cluster.client.set_urgency(job, bad)
    with pytest.raises(grpc.RpcError) as err:
        cluster.client.scheduler_stub.SetUrgency(rainbow_pb2.SetUrgencyRequest(
            jobid=job, batch_id="b", urgency="hold", token=cluster.config.token_for("keebler")))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "give one job or one batch, not both" in err.value.details()
    assert cluster.client.get_job(job).state == "assigned"  # refusals changed nothing


def test_a_job_whose_lease_ran_out_can_be_held_and_its_old_holder_cannot_accept_it(cluster):
    clock = cluster.server.scheduler.clock = ManualClock()
    job = cluster.submit(["app"])
    (leased,) = cluster.client.receive_jobs(1, accept=False, agent="slow")
    with pytest.raises(FailedPrecondition):
        cluster.client.set_urgency(job, "hold")  # the lease still runs
    clock.advance(31)
    assert cluster.client.set_urgency(job, "hold").state == "held"
    assert cluster.client.accept_jobs([job], leases={job: leased.lease}, agent="slow") == []
    beat = cluster.client.scheduler_stub.Heartbeat(rainbow_pb2.HeartbeatRequest(
        cluster="keebler", secret=cluster.config.cluster_secret, agent="slow",
        jobs=[rainbow_pb2.HeldJob(jobid=job, state="leased", lease=leased.lease)]))
    assert list(beat.revoked) == [job]  # the old holder drops its copy
    assert received(cluster) == []
    cluster.client.set_urgency(job, 0)
    assert received(cluster) == [job]


def test_waiting_for_dependencies_a_job_takes_a_priority_but_no_hold(cluster):
    parent = cluster.submit(["app", "parent"])
    child = cluster.client.submit_jobspec(simple(["app", "child"]), dependencies=[f"afterok:{parent}"]).jobid
    with pytest.raises(FailedPrecondition, match=f"job {child} waits for its dependencies \\(depend\\): hold it "
                       "once it is placed"):
        cluster.client.set_urgency(child, "hold")
    job = cluster.client.set_urgency(child, 7)
    assert (job.state, job.priority) == ("depend", 7)


def test_a_held_job_is_cancelled_at_once(cluster):
    job = cluster.submit(["app"])
    cluster.client.set_urgency(job, "hold")
    assert cluster.client.cancel_job(job).state == "cancelled"


def test_a_batch_is_held_and_let_go_whole_except_what_its_cluster_took(cluster):
    batch = cluster.client.submit_array(simple(["app", "{cc}"]), 5)
    ids = [job.jobid for job in batch.jobs]
    assert received(cluster, 1) == ids[:1]
    held = cluster.client.set_batch_urgency(batch.batch_id, "hold")
    assert (held.changed, held.skipped) == (4, 1)
    assert cluster.client.batch_summary(batch.batch_id).states == {"leased": 1, "held": 4}
    assert received(cluster) == []
    let_go = cluster.client.set_batch_urgency(batch.batch_id, 2)
    assert (let_go.changed, let_go.skipped) == (4, 1)
    assert sorted(received(cluster)) == ids[1:]
    assert {cluster.client.get_job(i).priority for i in ids[1:]} == {2}


def rainbow(cluster, *argv: str, code: int = 0) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "rainbow", *argv, "--config-path", str(cluster.config.path)],
                            capture_output=True, text=True, timeout=60, env=subprocess_env())
    assert result.returncode == code, result.stderr
    return result


def test_the_urgency_command(cluster):
    job = cluster.submit(["app"])
    out = rainbow(cluster, "urgency", str(job), "hold").stdout
    assert out == f"Job {job} is held: it waits until its urgency is set again (rainbow urgency {job} default).\n"
    assert f"{job}" in rainbow(cluster, "jobs", "--state", "held").stdout
    assert rainbow(cluster, "urgency", str(job), "12").stdout == f"Job {job} is assigned with priority 12.\n"
    assert "\n  priority: 12\n" in rainbow(cluster, "status", str(job)).stdout

    batch = cluster.client.submit_array(simple(["app", "{cc}"]), 3).batch_id
    assert received(cluster, 2)[0] == job  # the highest priority first, then the batch's first job
    out = rainbow(cluster, "urgency", "--batch", batch, "hold").stdout
    assert out == f"Batch {batch}: urgency hold set on 2 jobs, 1 left as they were (no longer waiting).\n"
    assert "3 jobs: 3 waiting (2 held), 0 running" in rainbow(cluster, "batch", batch).stdout

    usage = rainbow(cluster, "urgency", str(job), code=2).stderr
    assert "give JOBID URGENCY, or --batch ID URGENCY" in usage
    refused = rainbow(cluster, "urgency", str(job), "later", code=1).stderr
    assert refused == "rainbow: error: urgency: 'later' is not hold, default, expedite or an integer\n"


def test_users_change_only_their_own_jobs_and_held_jobs_count_as_waiting(server_factory, tmp_path):
    site = make_site(server_factory, tmp_path)
    try:
        site.operator.set_quota(user="alice", max_waiting=3, secret=REGISTRATION_SECRET)
        with site.user("alice") as alice, site.user("bob") as bob:
            batch = alice.submit_array(simple(["app", "{cc}"]), 2).batch_id
            job = alice.submit_jobspec(simple(["app"])).jobid
            with pytest.raises(PermissionDenied):
                bob.set_urgency(job, "hold")
            with pytest.raises(NotFound):
                bob.set_batch_urgency(batch, "hold")
            assert alice.set_batch_urgency(batch, "hold").changed == 2
            assert alice.get_job(job).state == "assigned"  # not of the batch
            with pytest.raises(ResourceExhausted, match="max-waiting 3"):
                alice.submit_jobspec(simple(["app"]))
    finally:
        site.operator.close()
        site.cluster.client.close()


def test_jobs_submitted_held_wait_until_let_go(cluster):
    held = cluster.client.submit_jobspec(simple(["app", "held"]), hold=True).jobid
    again = cluster.client.submit_jobspec(simple(["app", "held"]), hold=True).jobid  # the server's cached path
    free = cluster.submit(["app", "free"])
    job = cluster.client.get_job(held)
    assert (job.state, job.cluster) == ("held", "keebler")
    assert [(h.state, h.message) for h in job.history] == [("held", "held at submit")]
    assert cluster.client.get_job(again).state == "held"
    assert received(cluster) == [free]
    cluster.client.set_urgency(held, "default")
    assert received(cluster) == [held]


@pytest.mark.parametrize("count", [3, 40])  # PostgreSQL writes 40 with COPY, 3 in one INSERT
def test_an_array_submitted_held_is_let_go_whole(cluster, count):
    batch = cluster.client.submit_array(simple(["app", "{cc}"]), count, hold=True)
    assert cluster.client.batch_summary(batch.batch_id).states == {"held": count}
    assert received(cluster) == []
    assert cluster.client.set_batch_urgency(batch.batch_id, "default").changed == count
    assert sorted(received(cluster)) == [job.jobid for job in batch.jobs]


def test_held_and_free_submits_committed_together_keep_their_own_states(cluster):
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda i: (cluster.client.submit_jobspec(simple(["app", str(i)]), hold=i % 2 == 0).jobid,
                                       i % 2 == 0), range(24)))
    assert [cluster.client.get_job(job).state for job, _ in ids] == ["held" if held else "assigned" for _, held in ids]
    assert sorted(received(cluster)) == sorted(job for job, held in ids if not held)


def test_a_job_with_dependencies_cannot_be_submitted_held(cluster):
    parent = cluster.submit(["app"])
    with pytest.raises(InvalidArgument, match="hold: a job with dependencies waits for them unplaced"):
        cluster.client.submit_jobspec(simple(["app"]), dependencies=[f"afterok:{parent}"], hold=True)
    assert [job.id for job in cluster.client.list_jobs()] == [parent]


def test_submit_and_bulksubmit_take_urgency_hold(cluster, tmp_path):
    out = rainbow(cluster, "submit", "--urgency", "hold", "-c", "app one").stdout
    assert out.startswith("Submitted job 1 (app) to cluster keebler (") and out.endswith(", held\n")
    out = rainbow(cluster, "submit", "--urgency", "hold", "--cc", "1-2", "-c", "app {cc}").stdout
    assert out.endswith(": ids 2-3 on keebler (2), held\n")
    commands = tmp_path / "commands.txt"
    commands.write_text("app a\napp b\n")
    assert rainbow(cluster, "bulksubmit", "--urgency", "expedite", "--file", str(commands)).stdout.endswith(
        ": ids 4-5 on keebler (2)\n")
    assert [job.state for job in sorted(cluster.client.list_jobs(), key=lambda j: j.id)] == [
        "held", "held", "held", "assigned", "assigned"]
    assert cluster.client.get_job(4).priority == 1_000_000
    bad = rainbow(cluster, "submit", "--urgency", "soon", "-c", "app", code=2).stderr
    assert "argument --priority/--urgency: 'soon' is not hold, default, expedite or an integer" in bad


def test_a_job_let_go_after_its_cluster_went_silent_is_placed_elsewhere(server_factory, tmp_path):
    server = server_factory(cluster_timeout=1.0)
    a, b = register(server.address, tmp_path, "a"), register(server.address, tmp_path, "b")
    both = [rainbow_pb2.SubmitJobRequest.Cluster(name=c.name, token=c.config.token_for(c.name)) for c in (a, b)]
    stubs = a.client.scheduler_stub
    on_a: dict[bool, int] = {}
    while len(on_a) < 2:  # random selection: one held job and one waiting job on "a"
        hold = not on_a.get(True)
        reply = stubs.SubmitJob(rainbow_pb2.SubmitJobRequest(clusters=both, jobspec=json.dumps(simple(["app"])),
                                                             hold=hold))
        if reply.cluster == "a":
            on_a.setdefault(hold, reply.jobid)
    held, waiting = on_a[True], on_a[False]
    deadline = time.monotonic() + 10
    while a.client.get_job(waiting).cluster != "b":  # "a" is silent: its waiting job is re-placed
        assert time.monotonic() < deadline, "the silent cluster's waiting job was not re-placed"
        b.client.scheduler_stub.Heartbeat(rainbow_pb2.HeartbeatRequest(cluster="b", secret=b.config.cluster_secret))
        time.sleep(0.2)
    job = a.client.get_job(held)
    assert (job.state, job.cluster) == ("held", "a")  # a hold is kept where it is
    job = a.client.set_urgency(held, "default")
    assert (job.state, job.cluster) == ("assigned", "b") and "re-placed from a" in job.message
    assert {held, waiting} <= {j.id for j in b.client.receive_jobs(0, accept=False)}
