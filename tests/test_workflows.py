"""Dependencies and workflows for real: a server over gRPC, clusters whose graphs differ (one with GPUs, one with
an io subsystem), local agents that run the steps as processes, releases decided as the parents' reports arrive."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import yaml

from rainbow.agent import Agent, LocalExecutor
from rainbow.agent.hooks import Hooks
from rainbow.agent.link import ClusterLink
from rainbow.client import RainbowClient
from rainbow.config import RainbowConfig
from rainbow.errors import FailedPrecondition, InvalidArgument, PermissionDenied, Unavailable
from rainbow.graph.synthetic import Vertex, tree_jgf
from rainbow.lifecycle import JobState
from rainbow.protos import rainbow_pb2
from rainbow.store import open_store

from conftest import BOTH_STORES, REGISTRATION_SECRET, example

pytestmark = BOTH_STORES

GLOBAL_TOKEN = "workflow-global-token"
FINAL = ("completed", "failed", "cancelled")
IO_JOBSPEC = yaml.safe_load(example("jobspec-io.yaml"))


def gpu_graph() -> str:
    """Two nodes of 4 cores and 2 GPUs (no io subsystem)."""
    node = Vertex("node", children=[Vertex("core")] * 4 + [Vertex("gpu")] * 2)
    return json.dumps(tree_jgf(Vertex("cluster", children=[node, node]))[0])


def big_graph() -> str:
    """One node of 64 cores: the only cluster that can run a 64-core step."""
    return json.dumps(tree_jgf(Vertex("cluster", children=[Vertex("node", children=[Vertex("core")] * 64)]))[0])


@dataclass
class Site:
    """A registered cluster with its own config (secret) and a local agent."""

    name: str
    config: RainbowConfig
    agent: Agent


class Grid:
    def __init__(self, server, tmp_path: Path) -> None:
        self.server = server
        self.tmp_path = tmp_path
        self.sites: dict[str, Site] = {}
        self.config = RainbowConfig.new("submitter", host=server.address, path=tmp_path / "submitter.yaml")
        self.client = RainbowClient(server.address, config_file=self.config)

    def register(self, name: str, graph: str, nodes: int, cores: int, gpus: int = 0, io: bool = False) -> Site:
        config = RainbowConfig.new(name, host=self.server.address, path=self.tmp_path / f"{name}.yaml")
        with RainbowClient(self.server.address, config_file=config) as client:
            registration = client.register(name, REGISTRATION_SECRET, graph, save=True)
            if io:
                client.register_subsystem(name, "io", None, example("cluster-io-subsystem.json"))
        self.config.add_cluster_token(name, registration.token)
        self.config.save()
        executor = LocalExecutor(nodes, cores, gpus_per_node=gpus, state_dir=self.tmp_path / f"{name}-state",
                                 cluster=name)
        link = ClusterLink(RainbowClient(self.server.address, config_file=config, retries=0, timeout=5),
                           agent=f"{name}-agent", timeout=5)
        site = Site(name, config, Agent(link, executor, hooks=Hooks(), stream=False, interval=0.05,
                                        cwd=str(self.tmp_path)))
        self.sites[name] = site
        return site

    def job(self, jobid: int):
        return self.client.get_job(jobid)

    def run(self, done, *names: str, timeout: float = 30.0) -> None:
        """Run the named clusters' agents, a pass each in turn, until ``done()``."""
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, "the agents did not get there in time"
            for name in names or self.sites:
                self.sites[name].agent.run_once()
            time.sleep(0.02)

    def events(self) -> list:
        return self.server.scheduler.store.events_since(0, limit=100_000)

    def close(self) -> None:
        for site in self.sites.values():
            site.agent.executor.close()
            site.agent.link.client.close()
        self.client.close()


@pytest.fixture
def grid(server_factory, tmp_path):
    grid = Grid(server_factory(global_token=GLOBAL_TOKEN), tmp_path)
    yield grid
    grid.close()


def with_gpu_and_io(grid: Grid) -> None:
    grid.register("gpu", gpu_graph(), nodes=2, cores=4, gpus=2)
    grid.register("io", example("cluster-nodes.json"), nodes=3, cores=12, io=True)


def seq_of(events, jobid: int, state: str) -> int:
    found = [e.seq for e in events if e.job_id == jobid and e.state.value == state]
    assert len(found) == 1, f"job {jobid}: {len(found)} {state} events"
    return found[0]


def diamond(out: Path) -> dict:
    """simulate (GPU) -> post (io) and plot (GPU, afterany) -> archive (io); each step records what it got."""
    def record(step: str) -> str:
        return f'sh -c \'printf "%s" "$RAINBOW_DEPENDS" > {out}/{step}.json\''

    return {
        "name": "diamond",
        "steps": {
            "simulate": {"command": record("simulate"), "gpus": 1},
            "post": {"jobspec": {**IO_JOBSPEC, "task": {"command": ["sh", "-c", f'printf "%s" "$RAINBOW_DEPENDS" > '
                                                                                  f"{out}/post.json"]}},
                     "needs": "simulate"},
            "plot": {"command": record("plot"), "gpus": 1, "needs": {"simulate": "afterany"}},
            "archive": {"jobspec": {**IO_JOBSPEC, "task": {"command": ["true"]}}, "needs": ["post", "plot"]},
        },
    }


def test_a_diamond_runs_each_step_where_it_can_after_its_condition(grid, tmp_path):
    with_gpu_and_io(grid)
    out = tmp_path / "out"
    out.mkdir()
    workflow = grid.client.submit_workflow(diamond(out))
    steps = {step.name: step for step in workflow.steps}
    assert steps["simulate"].job.state == "assigned" and steps["simulate"].job.cluster == "gpu"
    for name in ("post", "plot", "archive"):
        assert steps[name].job.state == "depend" and steps[name].job.cluster == ""
    assert steps["archive"].needs == (("post", "afterok"), ("plot", "afterok"))
    assert "waits for" in steps["post"].job.message

    ids = {name: step.job.id for name, step in steps.items()}
    grid.run(lambda: grid.job(ids["archive"]).state in FINAL, timeout=60)

    final = grid.client.get_workflow(workflow.workflow_id)
    clusters = {step.name: step.job.cluster for step in final.steps}
    assert clusters == {"simulate": "gpu", "post": "io", "plot": "gpu", "archive": "io"}
    assert {step.job.state for step in final.steps} == {"completed"}
    events = grid.events()
    # Each step is released once, and only after what it needs happened.
    done = seq_of(events, ids["simulate"], "completed")
    assert seq_of(events, ids["post"], "assigned") > done
    assert seq_of(events, ids["plot"], "assigned") > done
    assert seq_of(events, ids["archive"], "assigned") > max(seq_of(events, ids["post"], "completed"),
                                                            seq_of(events, ids["plot"], "completed"))
    # A step reads what it depended on from RAINBOW_DEPENDS: ids, clusters and local ids.
    simulate = grid.job(ids["simulate"])
    (parent,) = json.loads((out / "post.json").read_text())
    assert parent == {"id": ids["simulate"], "name": "simulate", "step": "simulate", "cluster": "gpu",
                      "local_id": simulate.local_id, "state": "completed", "scheme": "afterok"}
    assert json.loads((out / "plot.json").read_text())[0]["scheme"] == "afterany"
    assert (out / "simulate.json").read_text() == ""
    info = grid.job(ids["archive"])
    assert info.workflow_id == workflow.workflow_id and info.step == "archive"
    assert set(info.dependencies) == {f"afterok:{ids['post']}", f"afterok:{ids['plot']}"}


def test_a_cluster_registered_after_submission_receives_a_later_step(grid):
    grid.register("gpu", gpu_graph(), nodes=2, cores=4, gpus=2)
    workflow = grid.client.submit_workflow({"steps": {
        "first": {"command": "true"},
        "wide": {"command": "true", "tasks": 64, "needs": "first"},  # no cluster has 64 cores yet
    }})
    first, wide = (step.job.id for step in workflow.steps)
    grid.register("big", big_graph(), nodes=1, cores=64)  # after the submission
    grid.run(lambda: grid.job(wide).state in FINAL, "gpu", "big")
    assert grid.job(first).cluster == "gpu"
    job = grid.job(wide)
    assert (job.state, job.cluster) == ("completed", "big")


def test_a_step_no_cluster_can_run_when_released_fails_with_why(grid):
    grid.register("gpu", gpu_graph(), nodes=2, cores=4, gpus=2)
    workflow = grid.client.submit_workflow({"steps": {
        "first": {"command": "true"},
        "wide": {"command": "true", "tasks": 64, "needs": "first"},
        "after": {"command": "true", "needs": "wide"},
    }})
    _, wide, after = (step.job.id for step in workflow.steps)
    grid.run(lambda: grid.job(after).state in FINAL)
    job = grid.job(wide)
    assert job.state == "failed"
    assert "no cluster can run it now" in job.message and "gpu:" in job.message
    assert grid.job(after).state == "cancelled"
    assert f"job {wide} failed" in grid.job(after).message


def test_a_failed_parent_cancels_its_dependents_transitively_and_releases_the_other_branches(grid):
    grid.register("gpu", gpu_graph(), nodes=2, cores=4, gpus=2)
    workflow = grid.client.submit_workflow({"steps": {
        "broken": {"command": "sh -c 'exit 3'"},
        "next": {"command": "true", "needs": "broken"},
        "after-next": {"command": "true", "needs": "next"},
        "last": {"command": "true", "needs": {"after-next": "afterany"}},
        "cleanup": {"command": "true", "needs": {"broken": "afterany"}},
        "rescue": {"command": "true", "needs": {"broken": "afternotok"}},
        "on-exception": {"command": "true", "needs": {"broken": "afterexcept"}},
        "started": {"command": "true", "needs": {"broken": "after"}},
    }})
    ids = {step.name: step.job.id for step in workflow.steps}
    grid.run(lambda: all(grid.job(j).state in FINAL for j in ids.values()))
    state = {name: grid.job(jobid).state for name, jobid in ids.items()}
    assert state == {"broken": "failed", "next": "cancelled", "after-next": "cancelled", "last": "completed",
                     "cleanup": "completed", "rescue": "completed", "on-exception": "cancelled",
                     "started": "completed"}
    assert grid.job(ids["next"]).message == (f"dependency afterok:{ids['broken']} can never be satisfied: "
                                             f"job {ids['broken']} failed (exit code 3)")
    # The cascade is one transaction: next and after-next are cancelled at one time, with nothing else between.
    events = grid.events()
    cancelled = [e for e in events if e.state.value == "cancelled" and e.job_id in (ids["next"], ids["after-next"])]
    assert [e.job_id for e in cancelled] == [ids["next"], ids["after-next"]]
    between = [e for e in events if cancelled[0].seq <= e.seq <= cancelled[1].seq]
    assert {(e.state.value, e.time) for e in between} == {("cancelled", cancelled[0].time)}


def test_a_job_submitted_with_dependency_waits_for_it_and_a_cancel_cascades(grid):
    grid.register("gpu", gpu_graph(), nodes=2, cores=4, gpus=2)
    parent = grid.client.submit_job("sleep 30", name="parent").jobid
    child = grid.client.submit_job("true", name="child", dependencies=[f"afterok:{parent}"])
    assert child.cluster == ""
    grandchild = grid.client.submit_job("true", dependencies=[f"afterany:{child.jobid}"]).jobid
    assert grid.job(child.jobid).state == "depend"
    assert grid.job(child.jobid).dependencies == (f"afterok:{parent}",)
    grid.client.cancel_job(parent)
    grid.run(lambda: grid.job(grandchild).state in FINAL)
    assert grid.job(parent).state == "cancelled"
    assert grid.job(child.jobid).state == "cancelled"
    assert grid.job(grandchild).state == "completed"  # afterany: satisfied by the cancellation


def test_a_dependency_on_a_job_that_already_ended_is_decided_at_submit(grid):
    grid.register("gpu", gpu_graph(), nodes=2, cores=4, gpus=2)
    parent = grid.client.submit_job("sh -c 'exit 1'").jobid
    grid.run(lambda: grid.job(parent).state in FINAL)
    doomed = grid.client.submit_job("true", dependencies=[f"afterok:{parent}"]).jobid
    released = grid.client.submit_job("true", dependencies=[f"afternotok:{parent}"])
    assert grid.job(doomed).state == "cancelled"
    assert (released.cluster, grid.job(released.jobid).state) == ("gpu", "assigned")


def test_cycles_unknown_steps_and_unknown_jobs_are_refused_and_nothing_is_stored(grid):
    grid.register("gpu", gpu_graph(), nodes=2, cores=4, gpus=2)
    client = grid.client
    store = grid.server.scheduler.store
    with pytest.raises(InvalidArgument, match="cycle: a needs b needs c needs a"):
        client.submit_workflow({"steps": {"a": {"command": "true", "needs": "b"},
                                          "b": {"command": "true", "needs": "c"},
                                          "c": {"command": "true", "needs": "a"}}})
    # The server checks a workflow whole too (a client that skipped the checks).
    stub = client.scheduler_stub
    clusters = [rainbow_pb2.SubmitJobRequest.Cluster(name="gpu", token=GLOBAL_TOKEN)]
    spec = json.dumps({"version": 1, "resources": {"n": {"type": "node", "with": [{"type": "core"}]}},
                       "task": {"command": ["true"], "resources": "n"}})
    for steps, message in (
        ([("a", ["b"]), ("b", ["a"])], "cycle"),
        ([("a", ["nowhere"])], "unknown step in needs: a needs 'nowhere'"),
        ([("a", []), ("a", [])], "named twice"),
    ):
        request = rainbow_pb2.SubmitWorkflowRequest(clusters=clusters, steps=[
            rainbow_pb2.WorkflowStep(name=name, jobspec=spec, needs=[rainbow_pb2.WorkflowNeed(step=n) for n in needs])
            for name, needs in steps])
        with pytest.raises(grpc.RpcError) as error:
            stub.SubmitWorkflow(request)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in error.value.details()
    many = rainbow_pb2.SubmitWorkflowRequest(clusters=clusters, steps=[
        rainbow_pb2.WorkflowStep(name="a", jobspec=spec),
        rainbow_pb2.WorkflowStep(name="b", jobspec=spec, needs=[rainbow_pb2.WorkflowNeed(step="a")] * 40)])
    with pytest.raises(grpc.RpcError) as error:
        stub.SubmitWorkflow(many)
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "40 needs for 2 steps" in error.value.details()
    with pytest.raises(InvalidArgument, match="unknown job 999999"):
        client.submit_job("true", dependencies=["afterok:999999"])
    with pytest.raises(InvalidArgument, match="unknown job 999998"):
        waits = {"system": {"dependencies": [{"scheme": "afterok", "value": 999998}]}}
        client.submit_workflow({"steps": {"a": {"jobspec": {**json.loads(spec), "attributes": waits}}}})
    with pytest.raises(InvalidArgument, match="unknown dependency scheme"):
        client.submit_job("true", dependencies=["afterwards:1"])
    assert store.count_jobs() == 0
    assert client.submit_job("true").jobid  # the server keeps serving


def test_a_dependency_on_a_job_the_tokens_do_not_open_is_refused(server_factory, tmp_path):
    grid = Grid(server_factory(), tmp_path)  # no global token: each cluster has its own
    try:
        grid.register("gpu", gpu_graph(), nodes=2, cores=4, gpus=2)
        hidden = grid.client.submit_job("true").jobid
        grid.register("big", big_graph(), nodes=1, cores=64)
        other = RainbowConfig.new("other", host=grid.server.address, path=tmp_path / "other.yaml")
        other.add_cluster_token("big", grid.config.token_for("big"))
        with RainbowClient(grid.server.address, config_file=other) as client:
            with pytest.raises(PermissionDenied, match=f"do not open job {hidden}"):
                client.submit_job("true", dependencies=[f"afterok:{hidden}"])
            visible = client.submit_job("true").jobid
            assert client.submit_job("true", dependencies=[f"afterok:{visible}"]).jobid
        # Resending another submitter's key does not answer that submitter's job.
        mine = grid.client.submit_job("true", dependencies=[f"afterok:{hidden}"], idempotency_key="key-of-gpu")
        assert grid.client.submit_job("true", dependencies=[f"afterok:{hidden}"],
                                      idempotency_key="key-of-gpu").jobid == mine.jobid
        only_big = RainbowConfig.new("only-big", host=grid.server.address, path=tmp_path / "only-big.yaml")
        only_big.add_cluster_token("big", grid.config.token_for("big"))
        with RainbowClient(grid.server.address, config_file=only_big) as client:
            parent = client.submit_job("true").jobid
            with pytest.raises(PermissionDenied, match="idempotency_key"):
                client.submit_job("true", dependencies=[f"afterok:{parent}"], idempotency_key="key-of-gpu")
    finally:
        grid.close()


def test_cancel_workflow_cancels_every_step_not_ended(grid):
    grid.register("gpu", gpu_graph(), nodes=2, cores=4, gpus=2)
    workflow = grid.client.submit_workflow({"steps": {"a": {"command": "sleep 30"},
                                                      "b": {"command": "true", "needs": "a"}}})
    outcome = grid.client.cancel_workflow(workflow.workflow_id)
    assert (outcome.cancelled, outcome.cancel_requested) == (2, 0)
    assert {step.job.state for step in grid.client.get_workflow(workflow.workflow_id).steps} == {"cancelled"}


def test_a_restart_in_the_middle_releases_nothing_twice_and_loses_nothing(server_factory, tmp_path, store_target):
    db = tmp_path / "workflow.db"
    grid = Grid(server_factory(db, global_token=GLOBAL_TOKEN), tmp_path)
    grid.register("gpu", gpu_graph(), nodes=2, cores=4, gpus=2)
    workflow = grid.client.submit_workflow({"steps": {
        "a": {"command": "true"},
        "b": {"command": "sleep 60", "needs": "a"},
        "c": {"command": "true", "needs": "b"},
        "d": {"command": "true", "needs": "c"},
        "x": {"command": "sleep 60", "needs": "a"},
        "y": {"command": "true", "needs": "x"},
    }})
    a, b, c, d, x, y = (step.job.id for step in workflow.steps)
    grid.run(lambda: grid.job(b).state == "running" and grid.job(x).state == "running")
    grid.close()
    grid.server.stop()
    # While the server is down, b and x end in the store. x's end is stored and nothing more (a server that
    # stopped right after storing a report); b's dependent c is even decided ready, but not released (a server
    # that stopped between the two transactions).
    store = open_store(store_target(db))
    store.report_state("gpu", b, JobState.COMPLETED, time.time(), exit_code=0)
    store.report_state("gpu", x, JobState.COMPLETED, time.time(), exit_code=0)
    assert store.settle_dependents([b], time.time()) == ([c], [])
    assert (store.get_job(c).state, store.get_job(y).state) == (JobState.DEPEND, JobState.DEPEND)
    store.close()

    grid = Grid(server_factory(db, global_token=GLOBAL_TOKEN), tmp_path)
    grid.config = RainbowConfig.load(tmp_path / "submitter.yaml")
    grid.client = RainbowClient(grid.server.address, config_file=grid.config)
    # Both released at start.
    assert (grid.job(c).state, grid.job(y).state) == ("assigned", "assigned")
    config = RainbowConfig.load(tmp_path / "gpu.yaml")
    link = ClusterLink(RainbowClient(grid.server.address, config_file=config, retries=0, timeout=5),
                       agent="gpu-agent-2", timeout=5)
    executor = LocalExecutor(2, 4, gpus_per_node=2, state_dir=tmp_path / "gpu-state-2", cluster="gpu")
    grid.sites["gpu"] = Site("gpu", config, Agent(link, executor, hooks=Hooks(), stream=False, interval=0.05,
                                                  cwd=str(tmp_path)))
    try:
        grid.run(lambda: grid.job(d).state in FINAL and grid.job(y).state in FINAL)
        assert [grid.job(j).state for j in (a, b, c, d, x, y)] == ["completed"] * 6
        events = grid.events()
        for jobid in (a, b, c, d, x, y):
            assert sum(1 for e in events if e.job_id == jobid and e.state.value == "assigned") == 1
    finally:
        grid.close()


def test_a_workflow_is_stored_whole_or_not_at_all_and_a_resend_answers_the_first(grid):
    grid.register("gpu", gpu_graph(), nodes=2, cores=4, gpus=2)
    store = grid.server.scheduler.store
    with pytest.raises(FailedPrecondition, match=r"steps\[1\] \(wide\): no listed cluster can run this job"):
        grid.client.submit_workflow({"steps": {"small": {"command": "true"},
                                               "wide": {"command": "true", "tasks": 64}}})
    assert store.count_jobs() == 0
    workflow = {"steps": {"a": {"command": "true"}, "b": {"command": "true", "needs": "a"}}}
    first = grid.client.submit_workflow(workflow, idempotency_key="the-same-workflow")
    again = grid.client.submit_workflow(workflow, idempotency_key="the-same-workflow")
    assert again.workflow_id == first.workflow_id
    assert [s.job.id for s in again.steps] == [s.job.id for s in first.steps]
    assert store.count_jobs() == 2


def test_a_decision_that_fails_does_not_fail_the_report_and_is_made_by_the_next_check(grid, monkeypatch):
    grid.register("gpu", gpu_graph(), nodes=2, cores=4, gpus=2)
    scheduler = grid.server.scheduler
    parent = grid.client.submit_job("true").jobid
    child = grid.client.submit_job("true", dependencies=[f"afterok:{parent}"]).jobid
    real = scheduler.store.settle_dependents
    failures = []

    def unavailable(*args, **kwargs):
        failures.append(args)
        raise Unavailable("the database is unreachable: test")

    monkeypatch.setattr(scheduler.store, "settle_dependents", unavailable)
    grid.run(lambda: grid.job(parent).state in FINAL)
    assert grid.job(parent).state == "completed"  # its report was stored and answered
    assert failures and grid.job(child).state == "depend" and scheduler.dependents.behind
    monkeypatch.setattr(scheduler.store, "settle_dependents", real)
    scheduler.check_clusters()
    assert grid.job(child).state == "assigned" and not scheduler.dependents.behind
