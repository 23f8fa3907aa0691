"""SubmitJobs: batches and arrays over real gRPC, placed as single jobs are and stored in one transaction."""

from __future__ import annotations

import json

import grpc
import pytest
import yaml
from test_agent_local import FINAL, register, run_until

from rainbow.client import RainbowClient
from rainbow.errors import InvalidArgument, NotFound, PermissionDenied
from rainbow.jobspec import simple
from rainbow.limits import Limits
from rainbow.protos import rainbow_pb2

from conftest import BOTH_STORES, REGISTRATION_SECRET

pytestmark = BOTH_STORES


@pytest.fixture
def cluster(server_factory, tmp_path):
    server = server_factory(limits=Limits(max_batch_jobs=50, max_batch_bytes=64 * 1024))
    cluster = register(server.address, tmp_path)
    yield cluster
    cluster.client.close()


def stored(cluster) -> list:
    return cluster.client.list_jobs(limit=1000)


def test_an_array_runs_every_copy_once_with_its_id(cluster, tmp_path):
    marker = tmp_path / "marker"
    spec = simple(["sh", "-c", f"echo {{cc}} >> {marker}"])
    result = cluster.client.submit_array(spec, 5, name="sweep-{cc}")
    assert [job.error for job in result.jobs] == [""] * 5
    assert {job.cluster for job in result.jobs} == {"keebler"}
    ids = [job.jobid for job in result.jobs]
    assert len(set(ids)) == 5 and result.batch_id
    names = {cluster.client.get_job(jobid).name for jobid in ids}
    assert names == {f"sweep-{n}" for n in range(1, 6)}

    agent = cluster.agent(tmp_path / "state")
    run_until(agent, lambda: all(cluster.info(jobid).state in FINAL for jobid in ids))
    assert all(cluster.info(jobid).state == "completed" for jobid in ids)
    assert sorted(marker.read_text().split()) == [str(n) for n in range(1, 6)]


def test_an_idset_names_the_copies(cluster):
    result = cluster.client.submit_array(simple(["app", "--seed", "{cc}"]), "3,7-8")
    commands = [cluster.client.get_job(job.jobid).command for job in result.jobs]
    assert commands == ["app --seed 3", "app --seed 7", "app --seed 8"]


def test_a_batch_is_placed_job_by_job_and_partly_when_a_job_fits_nowhere(cluster):
    result = cluster.client.submit_jobs([
        ("first", simple(["true"])),
        ("huge", simple(["true"], nodes=500, tasks=500)),
        simple(["echo", "third"]),
    ])
    assert [bool(job.error) for job in result.jobs] == [False, True, False]
    assert "no listed cluster can run this job" in result.jobs[1].error
    assert [index for index, _ in result.failed] == [1]
    jobs = {job.id: job for job in stored(cluster)}
    assert set(jobs) == {job.jobid for job in result.placed}
    assert jobs[result.jobs[0].jobid].name == "first" and jobs[result.jobs[2].jobid].command == "echo third"


def test_one_bad_jobspec_refuses_the_whole_batch(cluster):
    good = rainbow_pb2.SubmitJobsRequest.Job(name="good", jobspec=json.dumps(simple(["true"])))
    bad = rainbow_pb2.SubmitJobsRequest.Job(name="bad", jobspec="version: 1\nresources: nonsense\n")
    token = rainbow_pb2.SubmitJobRequest.Cluster(name="keebler", token=cluster.config.token_for("keebler"))
    request = rainbow_pb2.SubmitJobsRequest(clusters=[token], jobs=[good, bad, good])
    with pytest.raises(grpc.RpcError) as refused:
        cluster.client.scheduler_stub.SubmitJobs(request)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "jobs[1]." in refused.value.details()
    assert stored(cluster) == []
    assert cluster.client.submit_jobs([simple(["true"])]).placed  # the server keeps serving


def raw_submit(cluster, jobs: list[dict], **fields) -> rainbow_pb2.SubmitJobsResponse:
    """One SubmitJobs call as given (the client would split what the server does not take at once)."""
    token = rainbow_pb2.SubmitJobRequest.Cluster(name="keebler", token=cluster.config.token_for("keebler"))
    entries = [rainbow_pb2.SubmitJobsRequest.Job(jobspec=json.dumps(spec)) for spec in jobs]
    return cluster.client.scheduler_stub.SubmitJobs(
        rainbow_pb2.SubmitJobsRequest(clusters=[token], jobs=entries, **fields))


def test_limits_refuse_with_resource_exhausted(cluster):
    for jobs, fields, limit in [([simple(["true"])] * 51, {}, "max_batch_jobs"),
                                ([simple(["true"])], {"cc": "1-51"}, "max_batch_jobs"),
                                ([simple(["echo", "x" * 4000])] * 20, {}, "max_batch_bytes")]:
        with pytest.raises(grpc.RpcError) as refused:
            raw_submit(cluster, jobs, **fields)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert limit in refused.value.details()
    with pytest.raises(InvalidArgument, match="cc"):
        cluster.client.submit_array(simple(["true"]), "5-2")
    with pytest.raises(grpc.RpcError) as refused:
        raw_submit(cluster, [simple(["true"])], batch_id="not-a-batch")
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "batch_id" in refused.value.details()
    assert stored(cluster) == []
    answer = raw_submit(cluster, [simple(["true"])])
    assert (answer.max_batch_jobs, answer.max_batch_bytes) == (50, 64 * 1024)  # what a client sizes chunks by


def test_a_resent_batch_answers_the_jobs_stored_the_first_time(cluster):
    jobs = [simple(["echo", str(n)]) for n in range(4)]
    first = cluster.client.submit_jobs(jobs, idempotency_key="sweep-42")
    again = cluster.client.submit_jobs(jobs, idempotency_key="sweep-42")
    assert again == first
    assert len(stored(cluster)) == 4
    other = cluster.client.submit_jobs(jobs, idempotency_key="sweep-43")
    assert other.batch_id != first.batch_id and len(stored(cluster)) == 8
    array = cluster.client.submit_array(simple(["app", "{cc}"]), 3, idempotency_key="array-1")
    assert cluster.client.submit_array(simple(["app", "{cc}"]), 3, idempotency_key="array-1") == array
    assert len(stored(cluster)) == 11


def test_a_batch_needs_a_valid_token(cluster, tmp_path):
    client = RainbowClient(cluster.address, config_file=cluster.config)
    cluster.config.add_cluster_token("keebler", "not-the-token")
    try:
        with pytest.raises(PermissionDenied):
            client.submit_jobs([simple(["true"])])
    finally:
        client.close()



def test_a_batch_is_listed_summarized_and_cancelled_whole(cluster):
    first = cluster.client.submit_array(simple(["sleep", "{cc}"]), 3)
    other = cluster.client.submit_array(simple(["sleep", "{cc}"]), 2)
    leased = cluster.client.scheduler_stub.ReceiveJobs(rainbow_pb2.ReceiveJobsRequest(
        cluster="keebler", secret=cluster.config.cluster_secret, maxJobs=1, agent="a"))
    held = first.jobs[0].jobid
    assert list(leased.jobs) == [held]

    listed = cluster.client.list_jobs(batch=first.batch_id)
    assert sorted(job.id for job in listed) == sorted(job.jobid for job in first.jobs)
    assert cluster.client.batch_summary(first.batch_id).states == {"assigned": 2, "leased": 1}

    done = cluster.client.cancel_batch(first.batch_id, "sweep abandoned")
    assert (done.cancelled, done.cancel_requested) == (2, 1)
    summary = cluster.client.batch_summary(first.batch_id)
    assert (summary.states, summary.total) == ({"cancelled": 2, "leased": 1}, 3)
    assert cluster.info(held).cancel_requested and cluster.info(first.jobs[1].jobid).message == "sweep abandoned"
    assert cluster.client.batch_summary(other.batch_id).states == {"assigned": 2}  # another batch is untouched

    again = cluster.client.cancel_batch(first.batch_id)
    assert (again.cancelled, again.cancel_requested) == (0, 1)
    with pytest.raises(NotFound):
        cluster.client.batch_summary("0123456789abcdef")
    with pytest.raises(NotFound):
        cluster.client.cancel_batch("0123456789abcdef")


def test_an_array_with_cc_outside_the_command_parses_each_copy(cluster):
    spec = simple(["app", "--seed", "{cc}"])
    spec["attributes"] = {"user": {"seed": "seed-{cc}"}}
    result = cluster.client.submit_array(spec, "4-5")
    stored_specs = [yaml.safe_load(cluster.client.get_job(job.jobid).jobspec) for job in result.jobs]
    assert [s["attributes"]["user"]["seed"] for s in stored_specs] == ["seed-4", "seed-5"]
    assert [cluster.client.get_job(job.jobid).command for job in result.jobs] == ["app --seed 4", "app --seed 5"]


def test_a_sweep_is_stored_job_by_job_and_a_bad_command_in_it_refuses_it_whole(cluster):
    """Jobs differing only in their commands share one parse and match; each keeps its own command and text."""
    specs = [simple(["app", f"--seed={n}"]) for n in range(6)]
    result = cluster.client.submit_jobs(specs)
    jobs = {job.jobid: cluster.client.get_job(job.jobid) for job in result.jobs}
    assert [jobs[job.jobid].command for job in result.jobs] == [f"app --seed={n}" for n in range(6)]
    assert [json.loads(jobs[job.jobid].jobspec) for job in result.jobs] == specs

    bad = simple(["app", "--seed=9"])
    bad["tasks"][0]["command"] = []
    entries = [rainbow_pb2.SubmitJobsRequest.Job(jobspec=json.dumps(spec)) for spec in [*specs[:3], bad, *specs[3:]]]
    token = rainbow_pb2.SubmitJobRequest.Cluster(name="keebler", token=cluster.config.token_for("keebler"))
    with pytest.raises(grpc.RpcError) as refused:
        cluster.client.scheduler_stub.SubmitJobs(rainbow_pb2.SubmitJobsRequest(clusters=[token], jobs=entries))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details().startswith("jobs[3].tasks[0].command: ")
    assert refused.value.details().endswith("tasks[0].command: must not be empty")
    assert len(stored(cluster)) == 6


def test_a_large_submission_goes_in_chunks_within_the_limits_as_one_batch(cluster):
    """120 jobs against a server taking 50 per call (and 64 KiB): the client halves the refused first chunk,
    then sizes chunks to the limits the server answers; one batch id, every job stored once."""
    progress: list[tuple[int, int]] = []
    specs = [simple(["app", f"--seed={n}"]) for n in range(120)]
    result = cluster.client.submit_jobs(specs, idempotency_key="big-sweep", progress=lambda *p: progress.append(p))
    assert len(result.placed) == 120 and progress[-1] == (120, 120)
    assert len(progress) >= 3 and all(done <= 50 * (i + 1) for i, (done, _) in enumerate(progress))
    jobs = stored(cluster)
    assert sorted(job.command for job in jobs) == sorted(f"app --seed={n}" for n in range(120))
    assert cluster.client.batch_summary(result.batch_id).total == 120
    again = cluster.client.submit_jobs(specs, idempotency_key="big-sweep")  # a retry: nothing stored twice
    assert [job.jobid for job in again.jobs] == [job.jobid for job in result.jobs]
    assert len(stored(cluster)) == 120

    big = [simple(["echo", "x" * 3000, str(n)]) for n in range(40)]  # 40 jobs pass the job limit, not the bytes
    assert len(cluster.client.submit_jobs(big).placed) == 40

    array = cluster.client.submit_array(simple(["app", "{cc}"]), "1-130", idempotency_key="big-array")
    assert len(array.placed) == 130
    assert cluster.client.batch_summary(array.batch_id).total == 130
    commands = {cluster.client.get_job(job.jobid).command for job in array.jobs}
    assert commands == {f"app {n}" for n in range(1, 131)}
    assert len(cluster.client.submit_array(simple(["app", "{cc}"]), "1-130", idempotency_key="big-array").placed) \
        == 130
    assert len(stored(cluster)) == 120 + 40 + 130


def join(client: RainbowClient, batch_id: str, clusters=()) -> rainbow_pb2.SubmitJobsResponse:
    """A SubmitJobs call adding one job to batch ``batch_id`` (as a client's later chunk does)."""
    entries = [rainbow_pb2.SubmitJobsRequest.Job(jobspec=json.dumps(simple(["true"])))]
    return client.scheduler_stub.SubmitJobs(
        rainbow_pb2.SubmitJobsRequest(clusters=list(clusters), jobs=entries, batch_id=batch_id))


def test_a_batch_is_joined_only_by_who_may_see_all_its_jobs(server_factory, tmp_path):
    server = server_factory()
    keebler = register(server.address, tmp_path, "keebler")
    (tmp_path / "t").mkdir()
    tioga = register(server.address, tmp_path / "t", "tioga")
    with RainbowClient(server.address) as operator:
        tokens = {name: operator.add_user(name, admin=name == "root", secret=REGISTRATION_SECRET).token
                  for name in ("alice", "bob", "root")}
    users = {name: RainbowClient(server.address, user_token=token) for name, token in tokens.items()}
    try:
        batch = users["alice"].submit_jobs([simple(["true"])], idempotency_key="sweep").batch_id
        assert len(join(users["alice"], batch).jobs) == 1
        with pytest.raises(grpc.RpcError) as refused:
            join(users["bob"], batch)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "batch_id" in refused.value.details() and "may not see" in refused.value.details()
        assert users["bob"].list_jobs() == []
        assert len(join(users["root"], batch).jobs) == 1  # an admin sees every job
        assert users["root"].batch_summary(batch).total == 3

        # Without a user token: the clusters the tokens open must hold every job of the batch.
        on_keebler = keebler.client.submit_jobs([simple(["true"])]).batch_id
        tioga_token = rainbow_pb2.SubmitJobRequest.Cluster(name="tioga", token=tioga.config.token_for("tioga"))
        with pytest.raises(grpc.RpcError) as refused:
            join(tioga.client, on_keebler, [tioga_token])
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        keebler_token = rainbow_pb2.SubmitJobRequest.Cluster(name="keebler", token=keebler.config.token_for("keebler"))
        assert len(join(keebler.client, on_keebler, [keebler_token]).jobs) == 1

        # A workflow's id is not a batch's, even under the same idempotency key.
        workflow = users["alice"].submit_workflow({"name": "w", "steps": {"only": {"command": "true"}}},
                                                  idempotency_key="sweep")
        assert workflow.workflow_id != batch
        with pytest.raises(grpc.RpcError) as refused:
            join(users["alice"], workflow.workflow_id)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED and "workflow" in refused.value.details()

        # A batch holding nothing (a first chunk no cluster took, or an id nobody was answered) is joinable.
        assert len(join(users["bob"], "0123456789abcdef").jobs) == 1
        assert users["bob"].batch_summary("0123456789abcdef").states == {"assigned": 1}
    finally:
        for client in users.values():
            client.close()
        keebler.client.close()
        tioga.client.close()
