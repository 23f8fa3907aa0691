"""The Flux adapter against the in-repo fake of the `flux` calls it uses (tests/fakeflux).

The fake's answers are checked against the real outputs captured from flux-core 0.88
(tests/data/examples/flux), then the FluxExecutor and the agent are run on it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rainbow.agent.convert import to_flux_jobspec
from rainbow.agent.executor import JobRejected, Submission
from rainbow.jobspec import simple

from conftest import EXAMPLES, REGISTRATION_SECRET, subprocess_env

FAKE = Path(__file__).parent / "fakeflux"
CALLS = json.loads((EXAMPLES / "flux" / "flux-python-calls.json").read_text())


@pytest.fixture(autouse=True)
def flux_fake():
    """Put the fake `flux` first on sys.path for this module only, and a fresh instance behind it."""
    saved = {name: mod for name, mod in sys.modules.items() if name == "flux" or name.startswith("flux.")}
    for name in saved:
        del sys.modules[name]
    sys.path.insert(0, str(FAKE))
    try:
        from flux import _fake

        yield _fake
    finally:
        sys.path.remove(str(FAKE))
        for name in [n for n in sys.modules if n == "flux" or n.startswith("flux.")]:
            del sys.modules[name]
        sys.modules.update(saved)


def submission(jobid: int, command: list[str], cluster: str = "fluxy", nodes: int = 1, tasks: int = 1) -> Submission:
    spec = to_flux_jobspec(simple(command, nodes=nodes, tasks=tasks), jobid=jobid, cluster=cluster,
                           environment={"PATH": "/usr/bin:/bin"}, cwd="/tmp")
    return Submission(jobid, cluster, command[0], spec)


# -- the fake is faithful to what flux-core 0.88 returned ------------------------------------
def test_fake_answers_like_flux_core(flux_fake):
    import flux
    import flux.job
    import flux.resource

    flux_fake.use(flux_fake.FakeInstance())
    h = flux.Flux()
    listing = flux.resource.resource_list(h).get()
    for name in ("all", "free", "allocated"):
        real, fake = CALLS["resource_list"][name], getattr(listing, name)
        assert (fake.nnodes, fake.ncores, fake.ngpus, fake.nodelist, fake.ranks) == (
            real["nnodes"], real["ncores"], real["ngpus"], real["nodelist"], real["ranks"])
    assert json.loads(listing.all.encode())["execution"]["R_lite"] == CALLS["resource_list"]["all"]["R"][
        "execution"]["R_lite"]

    js = flux.job.JobspecV1.from_command(["hostname"], num_tasks=2, cores_per_task=1, num_nodes=2, duration=60,
                                         environment={"A": "1"}, cwd="/scratch/rainbow")
    js.setattr("user.rainbow", {"jobid": 7, "cluster": "fluxy"})
    real = CALLS["JobspecV1.from_command(['hostname'], num_tasks=2, cores_per_task=1, num_nodes=2) + "
                 "setattr user.rainbow"]
    assert json.loads(js.dumps()) == real
    with pytest.raises(TypeError):
        flux.job.submit(h, real)  # a plain dict is not accepted, as in flux-core
    jid = flux.job.submit(h, js)
    assert (int(jid), jid.f58) == (CALLS["submit -> JobID"]["int"], CALLS["submit -> JobID"]["f58"])
    assert flux.job.JobID(jid.f58) == jid
    consumer = flux.job.JournalConsumer(h, include_sentinel=True).start()
    names = []
    while True:
        event = consumer.poll(timeout=0.0)
        if event.is_empty():
            break
        assert event.jobid == jid
        names.append(event.name)
        if event.name == "submit":
            assert event.jobspec["attributes"]["user"] == CALLS["job_kvs_lookup jobspec attributes.user"]
    assert names == [e["name"] for e in CALLS["eventlog events"]]
    with pytest.raises(TimeoutError):
        consumer.poll(timeout=0.0)


# -- the FluxExecutor ---------------------------------------------------------------------------
def test_submit_tag_track_and_report_exit_codes(flux_fake):
    from rainbow.flux.adapter import FluxExecutor

    instance = flux_fake.use(flux_fake.FakeInstance(exit_codes={"false": 1}))
    executor = FluxExecutor(cluster="fluxy")
    assert executor.recover() == []
    ok = executor.submit(submission(1, ["hostname"], nodes=2, tasks=2))
    bad = executor.submit(submission(2, ["false"]))
    assert ok.startswith("ƒ") and ok != bad
    assert instance.submitted[0]["attributes"]["user"]["rainbow"] == {"jobid": 1, "cluster": "fluxy"}
    assert instance.submitted[0]["attributes"]["system"]["environment"]["RAINBOW_JOBID"] == "1"
    updates = [(u.jobid, u.state, u.exit_code, u.message) for u in executor.poll()]
    assert updates == [(1, "running", None, ""), (1, "completed", 0, ""),
                       (2, "running", None, ""), (2, "failed", 1, "exit code 1")]
    assert executor.poll() == []
    assert executor.find(1).local_id == ok and executor.find(1).state == "completed"
    assert executor.find(3) is None


def test_cancel_unsatisfiable_and_invalid_jobs(flux_fake):
    from rainbow.flux.adapter import FluxExecutor

    instance = flux_fake.use(flux_fake.FakeInstance(hold=True))
    executor = FluxExecutor(cluster="fluxy")
    running = executor.submit(submission(1, ["sleep", "100"], nodes=2, tasks=4))
    waiting = executor.submit(submission(2, ["sleep", "100"], nodes=2, tasks=4))
    too_big = executor.submit(submission(3, ["hostname"], nodes=5, tasks=5))
    resources = executor.resources()
    assert (resources.nodes, resources.cores, resources.nodes_free, resources.cores_free) == (2, 4, 0, 0)
    assert (resources.pending, resources.running) == (1, 1)
    assert [(u.jobid, u.state, u.message) for u in executor.poll()] == [
        (1, "running", ""),
        (3, "failed", "alloc: unsatisfiable request: need 5 node(s) with 1 cores each, only 2 eligible")]
    executor.cancel(waiting, "not needed")
    executor.cancel(running, "stop")
    updates = {u.jobid: u for u in executor.poll()}
    assert (updates[2].state, updates[2].message, updates[2].exit_code) == ("cancelled", "not needed", None)
    assert (updates[1].state, updates[1].exit_code) == ("cancelled", 143)
    executor.cancel(too_big, "already over")  # harmless
    assert executor.resources().cores_free == 4
    with pytest.raises(JobRejected, match="not a valid Flux jobspec"):
        executor.submit(Submission(9, "fluxy", "x", {"resources": [], "tasks": [], "attributes": {}}))
    assert len(instance.submitted) == 3


def test_a_restarted_executor_finds_only_this_clusters_tagged_jobs(flux_fake):
    import flux
    import flux.job

    from rainbow.flux.adapter import FluxExecutor

    flux_fake.use(flux_fake.FakeInstance(hold=True))
    first = FluxExecutor(cluster="fluxy")
    done = first.submit(submission(1, ["true"]))
    flux_fake.current().finish(int(flux.job.JobID(done)), 0)
    running = first.submit(submission(2, ["sleep", "9"]))
    first.submit(submission(3, ["true"], cluster="other-cluster"))
    flux.job.submit(flux.Flux(), flux.job.JobspecV1.from_command(["untagged"]))
    first.close()

    again = FluxExecutor(cluster="fluxy")
    found = {u.jobid: (u.local_id, u.state, u.exit_code) for u in again.recover()}
    assert found == {1: (done, "completed", 0), 2: (running, "running", None)}
    assert again.find(2).local_id == running
    flux_fake.current().finish(int(flux.job.JobID(running)), 2 << 8)
    assert [(u.jobid, u.state, u.exit_code) for u in again.poll()] == [(2, "failed", 2)]
    again.forget(running)
    forgotten = again.find(2)  # still known after forget: the agent must not run job 2 again
    assert (forgotten.local_id, forgotten.state, forgotten.exit_code) == (running, "failed", 2)
    assert 2 not in {u.jobid for u in again.recover()}


def test_instance_R_and_name(flux_fake):
    import flux

    from rainbow.flux.adapter import instance_name, instance_R

    flux_fake.use(flux_fake.FakeInstance())
    assert instance_R(flux.Flux())["execution"]["R_lite"] == [{"rank": "0-1", "children": {"core": "0-1"}}]
    assert instance_name(flux.Flux()) == "vm"
    R = json.loads((EXAMPLES / "flux" / "R-16node-gpus.json").read_text())
    flux_fake.use(flux_fake.FakeInstance(R, attrs={"jobid": "ƒJjtQaK"}))
    assert instance_name(flux.Flux()) == f"tioga-{CALLS['submit -> JobID']['int']}"
    listing = flux.resource.resource_list(flux.Flux()).get()
    assert (listing.all.nnodes, listing.all.ncores, listing.all.ngpus) == (16, 1024, 128)


# -- the agent on the fake Flux, with a real server ------------------------------------------------
def test_agent_runs_rainbow_jobs_through_flux(flux_fake, server_factory, tmp_path):
    from rainbow.agent import Agent
    from rainbow.agent.hooks import Hooks
    from rainbow.agent.link import ClusterLink
    from rainbow.client import RainbowClient
    from rainbow.config import RainbowConfig
    from rainbow.flux.adapter import FluxExecutor, instance_R
    from rainbow.flux.resources import r_to_jgf

    instance = flux_fake.use(flux_fake.FakeInstance(exit_codes={"false": 1}))
    server = server_factory()
    config = RainbowConfig.new("fluxy", host=server.address, path=tmp_path / "rainbow-config.yaml")
    client = RainbowClient(server.address, config_file=config)
    import flux

    client.register("fluxy", REGISTRATION_SECRET, r_to_jgf(instance_R(flux.Flux()), "fluxy"), save=True)
    good = client.submit_job(["hostname"], nodes=2, tasks=2).jobid
    bad = client.submit_job(["false"], nodes=1, tasks=1).jobid
    seen = []
    hooks = Hooks()
    hooks.on("job.new", lambda j: seen.append(("new", j.jobid, j.local_id)))
    hooks.on("job.inactive", lambda j: seen.append(("inactive", j.jobid, j.state)))
    agent = Agent(ClusterLink(RainbowClient(server.address, config_file=config), agent="test"),
                  FluxExecutor(cluster="fluxy"), hooks=hooks, stream=False)
    agent.run_once()
    agent.run_once()
    token = config.token_for("fluxy")
    from rainbow.protos import rainbow_pb2

    infos = {j: client.scheduler_stub.GetJob(rainbow_pb2.GetJobRequest(jobid=j, token=token)) for j in (good, bad)}
    assert (infos[good].state, infos[good].exit_code, infos[good].has_exit_code) == ("completed", 0, True)
    assert (infos[bad].state, infos[bad].exit_code, infos[bad].message) == ("failed", 1, "exit code 1")
    assert [h.state for h in infos[good].history] == [
        "assigned", "leased", "accepted", "submitted", "running", "completed"]
    local = {int(flux.job.JobID(infos[j].local_id)): j for j in (good, bad)}
    assert {instance.jobs[i].jobspec["attributes"]["user"]["rainbow"]["jobid"] for i in local} == {good, bad}
    assert ("new", good, infos[good].local_id) in seen and ("inactive", bad, "failed") in seen
    state = json.loads(json.dumps(server.scheduler.cluster_state("fluxy")))
    assert state["nodes_free"] == 2 and state["cores_free"] == 4 and state["jobs_pending"] == 0
    assert agent.stats.submitted == 2 and not agent.held
    client.close()


def test_agent_crash_between_flux_submit_and_accept_adopts_the_flux_job(flux_fake, server_factory, tmp_path):
    import flux

    from rainbow.agent import Agent
    from rainbow.agent.hooks import Hooks
    from rainbow.agent.link import ClusterLink
    from rainbow.client import RainbowClient
    from rainbow.config import RainbowConfig
    from rainbow.flux.adapter import FluxExecutor, instance_R
    from rainbow.flux.resources import r_to_jgf
    from rainbow.protos import rainbow_pb2

    instance = flux_fake.use(flux_fake.FakeInstance(hold=True))
    server = server_factory()
    config = RainbowConfig.new("fluxy", host=server.address, path=tmp_path / "rainbow-config.yaml")
    client = RainbowClient(server.address, config_file=config)
    client.register("fluxy", REGISTRATION_SECRET, r_to_jgf(instance_R(flux.Flux()), "fluxy"), save=True)
    jobid = client.submit_job(["sleep", "5"], nodes=1, tasks=1).jobid

    def agent(name: str) -> Agent:
        link = ClusterLink(RainbowClient(server.address, config_file=config), agent=name)
        return Agent(link, FluxExecutor(cluster="fluxy"), hooks=Hooks(), stream=False)

    first = agent("first")

    def crash(ids, leases=None):
        raise RuntimeError("killed before AcceptJobs")

    first.link.accept = crash
    with pytest.raises(RuntimeError):
        first.run_once()
    assert len(instance.submitted) == 1
    second = agent("second")
    second.run_once()
    token = config.token_for("fluxy")
    info = client.scheduler_stub.GetJob(rainbow_pb2.GetJobRequest(jobid=jobid, token=token))
    assert info.state == "running" and info.local_id == flux.job.JobID(next(iter(instance.jobs))).f58
    instance.finish(next(iter(instance.jobs)), 0)
    second.run_once()
    info = client.scheduler_stub.GetJob(rainbow_pb2.GetJobRequest(jobid=jobid, token=token))
    assert (info.state, info.exit_code) == ("completed", 0)
    assert len(instance.submitted) == 1 and second.stats.adopted == 1 and second.stats.submitted == 0
    client.close()


def test_status_shows_how_to_read_a_flux_jobs_output_and_logs_says_it_is_on_the_cluster(
        flux_fake, server_factory, tmp_path):
    import flux

    from rainbow.agent import Agent
    from rainbow.agent.hooks import Hooks
    from rainbow.agent.link import ClusterLink
    from rainbow.client import RainbowClient
    from rainbow.config import RainbowConfig
    from rainbow.flux.adapter import FluxExecutor, instance_R
    from rainbow.flux.resources import r_to_jgf

    instance = flux_fake.use(flux_fake.FakeInstance())
    server = server_factory()
    config_path = tmp_path / "rainbow-config.yaml"
    config = RainbowConfig.new("fluxy", host=server.address, path=config_path)
    client = RainbowClient(server.address, config_file=config)
    client.register("fluxy", REGISTRATION_SECRET, r_to_jgf(instance_R(flux.Flux()), "fluxy"), save=True)
    jobid = client.submit_job(["hostname"]).jobid
    agent = Agent(ClusterLink(RainbowClient(server.address, config_file=config), agent="test"),
                  FluxExecutor(cluster="fluxy"), hooks=Hooks(), stream=False)
    agent.run_once()
    job = client.get_job(jobid)
    assert job.state == "completed" and job.local_id
    assert (job.output.host, job.output.command) == (instance.uri, f"flux job attach {job.local_id}")

    def rainbow(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "rainbow", *args, "--config-path", str(config_path)],
                              capture_output=True, text=True, timeout=120, env=subprocess_env())

    status = rainbow("status", str(jobid))
    assert status.returncode == 0, status.stderr
    assert (f"  output:   kept by the cluster's scheduler on {instance.uri}; read it there with: "
            f"flux job attach {job.local_id}") in status.stdout.splitlines()
    logs = rainbow("logs", str(jobid))
    assert logs.returncode == 1 and logs.stdout == ""
    assert logs.stderr.splitlines() == [
        f"rainbow: error: the output of job {jobid} (local id {job.local_id} on fluxy) is kept by the cluster's "
        f"scheduler on {instance.uri}; read it there with: flux job attach {job.local_id}"]
    client.close()
    agent.link.client.close()
