"""When a cluster's Flux says no anyway: the agent reports a rejection, rainbow places the job elsewhere.

Two fake Flux instances (tests/fakeflux) on the captured 16-node R: tioga and keebler, each with its own
agent and a real server. tioga is registered with a picture Flux no longer agrees with (a stale
registration: its debug queue said 4 nodes, or it claimed more nodes), so rainbow places a job there
that its Flux refuses, at submit or as an unsatisfiable allocation.
"""

from __future__ import annotations

import json

import pytest
import test_flux_adapter
from test_health_metrics import scrape

from conftest import EXAMPLES, REGISTRATION_SECRET

flux_fake = test_flux_adapter.flux_fake  # the fixture putting the fake `flux` first on sys.path

R16 = json.loads((EXAMPLES / "flux" / "R-16node-gpus.json").read_text())
CAPTURE = json.loads((EXAMPLES / "flux" / "queues-and-rejections.json").read_text())
CONFIG = {"queues": CAPTURE["config.get queues"], "policy": CAPTURE["config.get policy"]}


def queues(debug_max: int) -> dict:
    return {"queues": [
        {"name": "debug", "default": False, "requires": ["pdebug"],
         "limits": {"max": {"nnodes": debug_max}, "duration": 1800}},
        {"name": "batch", "default": True, "requires": ["pbatch"]},
    ]}


def jobspec(nodes: int, **system) -> dict:
    return {
        "version": 1,
        "resources": [{"type": "node", "count": nodes, "with": [
            {"type": "slot", "count": 1, "label": "task", "with": [{"type": "core", "count": 1}]}]}],
        "tasks": [{"command": ["hostname"], "slot": "task", "count": {"per_slot": 1}}],
        "attributes": {"system": {"duration": 600.0, **system}},
    }


class Site:
    """A server, clusters on fake Flux instances with their agents, and a submitter holding every token."""

    def __init__(self, fake, server, tmp_path) -> None:
        from rainbow.client import RainbowClient
        from rainbow.config import RainbowConfig

        self.fake, self.server, self.tmp = fake, server, tmp_path
        self.submitter = RainbowConfig.new("submitter", host=server.address, path=tmp_path / "submitter.yaml")
        self.client = RainbowClient(server.address, config_file=self.submitter)
        self.agents = {}
        self.clients = {}

    def cluster(self, name: str, registered_queues: dict | None, cost: float, config: dict | None = None,
                registered_R: dict | None = None):
        import flux

        from rainbow.agent import Agent
        from rainbow.agent.link import ClusterLink
        from rainbow.client import RainbowClient
        from rainbow.config import RainbowConfig
        from rainbow.flux.adapter import FluxExecutor
        from rainbow.flux.resources import r_to_jgf

        instance = self.fake.use(self.fake.FakeInstance(R16, config=config, hold=True))
        handle = flux.Flux()
        own = RainbowConfig.new(name, host=self.server.address, path=self.tmp / f"{name}.yaml")
        client = RainbowClient(self.server.address, config_file=own)
        client.register(name, REGISTRATION_SECRET, r_to_jgf(registered_R or R16, name, registered_queues), save=True)
        client.update_state(name, {"cost_per_node_hour": cost})
        self.submitter.add_cluster_token(name, own.token_for(name))
        self.clients[name] = client
        self.agents[name] = Agent(ClusterLink(client, agent=f"{name}-agent"),
                                  FluxExecutor(handle=handle, cluster=name), stream=False)
        return instance

    def submit(self, spec: dict) -> int:
        return self.client.submit_jobspec(spec, name="job", select_algo="cheapest").jobid

    def job(self, jobid: int):
        from rainbow.protos import rainbow_pb2

        for name in self.agents:
            token = self.submitter.token_for(name)
            try:
                return self.client.scheduler_stub.GetJob(rainbow_pb2.GetJobRequest(jobid=jobid, token=token))
            except Exception:
                continue
        raise AssertionError(f"no token opens job {jobid}")


@pytest.fixture
def site(flux_fake, server_factory, tmp_path):
    site = Site(flux_fake, server_factory(metrics_port=0), tmp_path)
    yield site
    site.client.close()


def test_refused_at_submit_the_job_is_re_placed_and_runs_on_the_other_cluster(site):
    tioga = site.cluster("tioga", queues(debug_max=4), cost=1, config=CONFIG)  # Flux says at most 2 now
    relaxed = json.loads(json.dumps(CONFIG))
    relaxed["queues"]["debug"]["policy"]["limits"]["job-size"]["max"]["nnodes"] = 4
    keebler = site.cluster("keebler", queues(debug_max=4), cost=2, config=relaxed)
    jobid = site.submit(jobspec(3, queue="debug"))
    assert site.job(jobid).cluster == "tioga"  # the cheaper one

    site.agents["tioga"].run_once()
    moved = site.job(jobid)
    assert (moved.cluster, moved.state) == ("keebler", "assigned")
    assert [(r.cluster, r.reason) for r in moved.rejections] == [
        ("tioga", "requested nnodes (3) exceeds policy limit of 2 for queue debug")]
    assert moved.message == (
        "rejected by tioga: requested nnodes (3) exceeds policy limit of 2 for queue debug; re-placed on keebler")
    assert not tioga.submitted and not site.agents["tioga"].held
    assert site.agents["tioga"].stats.rejected == 1

    site.agents["keebler"].run_once()
    ran = site.job(jobid)
    assert (ran.cluster, ran.state) == ("keebler", "running")
    (flux_job,) = keebler.submitted
    assert flux_job["attributes"]["system"]["queue"] == "debug"
    states = [(h.state, h.message) for h in ran.history]
    assert ("assigned", moved.message) in states and states[-1][0] == "running"

    metrics = scrape(site.server.server.metrics_port)
    assert metrics[("rainbow_job_rejections_total", (("cluster", "tioga"), ("outcome", "replaced")))] == 1


    # the same rejection sent again (a reply lost on the way) answers with the job as it is now
    from rainbow.protos import rainbow_pb2

    tioga_client = site.clients["tioga"]
    again = tioga_client.scheduler_stub.ReportJobState(rainbow_pb2.ReportJobStateRequest(
        cluster="tioga", secret=tioga_client.config.cluster_secret, jobid=jobid, state="failed",
        message="requested nnodes (3) exceeds policy limit of 2 for queue debug", rejected=True))
    assert again.state == "running"
    assert len(site.job(jobid).rejections) == 1


def test_unsatisfiable_after_submit_is_a_rejection_too(site):
    from rainbow.queues import QueueSet

    bigger = json.loads(json.dumps(R16))  # both registered when they had 32 nodes
    bigger["execution"]["R_lite"][0]["rank"] = "0-31"
    bigger["execution"]["nodelist"] = ["tioga[1-32]"]
    site.cluster("tioga", None, cost=1, registered_R=bigger)
    site.cluster("keebler", None, cost=2, registered_R=bigger)
    jobid = site.submit(jobspec(20))
    assert site.job(jobid).cluster == "tioga"
    closed = QueueSet.from_dict({"queues": [{"name": "batch", "enabled": False, "reason": "maintenance"}]})
    site.clients["keebler"].update_state("keebler", {"queues": closed.to_json()})
    site.agents["tioga"].run_once()  # submitted; Flux answers with an alloc exception, reported as a rejection
    job = site.job(jobid)
    assert job.state == "failed"  # keebler's queue is closed by now: nowhere left
    assert [(r.cluster, r.reason) for r in job.rejections] == [
        ("tioga", "alloc: unsatisfiable request: need 20 node(s) with 1 cores each, only 16 eligible")]
    assert job.message == ("no cluster can run this job: tioga: rejected: alloc: unsatisfiable request: need 20 "
                           "node(s) with 1 cores each, only 16 eligible; keebler: queue 'batch' is disabled: "
                           "maintenance")
    assert not site.agents["tioga"].held
    metrics = scrape(site.server.server.metrics_port)
    assert metrics[("rainbow_job_rejections_total", (("cluster", "tioga"), ("outcome", "failed")))] == 1


def test_a_job_that_ran_and_failed_is_not_re_placed(site):
    tioga = site.cluster("tioga", None, cost=1)
    site.cluster("keebler", None, cost=2)
    jobid = site.submit(jobspec(2))
    site.agents["tioga"].run_once()
    import flux.job

    local = site.job(jobid).local_id
    tioga.finish(int(flux.job.JobID(local)), 3 << 8)
    site.agents["tioga"].run_once()
    job = site.job(jobid)
    assert (job.cluster, job.state, job.exit_code, list(job.rejections)) == ("tioga", "failed", 3, [])


def test_rejections_show_in_rainbow_status_and_the_event_stream(site, tmp_path):
    import subprocess
    import sys

    from conftest import subprocess_env

    tioga = site.cluster("tioga", queues(debug_max=4), cost=1, config=CONFIG)
    site.cluster("keebler", queues(debug_max=2), cost=2)
    since = site.server.server.scheduler.store.last_event_seq()
    jobid = site.submit(jobspec(2, queue="debug", constraints={"ranks": ["0-1"]}))
    tioga.set_queue("debug", enabled=False, reason="closed for maintenance")  # `flux queue disable` on tioga
    site.agents["tioga"].run_once()
    site.submitter.save()
    out = subprocess.run([sys.executable, "-m", "rainbow", "status", str(jobid), "--config-path",
                          str(site.submitter.path)], capture_output=True, text=True, env=subprocess_env(),
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"Job {jobid} (job) on keebler: assigned" in out.stdout
    assert "  rejected: by tioga at " in out.stdout
    assert out.stdout.rstrip().endswith(
        "rejected by tioga: job submission to debug is disabled: closed for maintenance; re-placed on keebler")
    events = site.server.server.scheduler.store.events_since(since, None, jobid)
    assert [(e.cluster, e.state.value) for e in events][-1] == ("keebler", "assigned")
    assert events[-1].message.startswith("rejected by tioga: job submission to debug is disabled")


def test_only_the_holding_cluster_can_reject_and_not_after_the_job_ran(site):
    import grpc

    from rainbow.protos import rainbow_pb2

    site.cluster("tioga", None, cost=1)
    site.cluster("keebler", None, cost=2)
    jobid = site.submit(jobspec(2))

    def reject(name: str):
        client = site.clients[name]
        return client.scheduler_stub.ReportJobState(rainbow_pb2.ReportJobStateRequest(
            cluster=name, secret=client.config.cluster_secret, jobid=jobid, state="failed", message="no",
            rejected=True))

    with pytest.raises(grpc.RpcError) as caught:
        reject("keebler")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    site.agents["tioga"].run_once()  # now it runs on tioga
    assert reject("tioga").state == "running"
    job = site.job(jobid)
    assert (job.cluster, job.state, list(job.rejections)) == ("tioga", "running", [])
