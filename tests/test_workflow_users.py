"""Dependencies and workflows of users (user tokens): a dependent job belongs to its submitter, may depend only
on jobs its user may read, and is released only to the clusters its user may use at that moment."""

from __future__ import annotations

import pytest
from test_workflows import FINAL, Grid, big_graph, gpu_graph

from rainbow.client import RainbowClient
from rainbow.errors import NotFound, PermissionDenied
from rainbow.jobspec import simple

from conftest import BOTH_STORES, REGISTRATION_SECRET

pytestmark = BOTH_STORES


@pytest.fixture
def users(server_factory, tmp_path):
    grid = Grid(server_factory(), tmp_path)
    grid.register("gpu", gpu_graph(), nodes=2, cores=4, gpus=2)
    tokens = {name: grid.client.add_user(name, ["physics"], secret=REGISTRATION_SECRET).token
              for name in ("alice", "bob")}
    clients = {name: RainbowClient(grid.server.address, user_token=token) for name, token in tokens.items()}
    yield grid, clients
    for client in clients.values():
        client.close()
    grid.close()


def test_a_users_dependent_job_is_theirs_and_only_they_may_depend_on_their_jobs(users):
    grid, clients = users
    alice, bob = clients["alice"], clients["bob"]
    parent = alice.submit_jobspec(simple(["true"]), name="parent").jobid
    child = alice.submit_jobspec(simple(["true"]), name="child", dependencies=[f"afterok:{parent}"]).jobid
    waiting = alice.get_job(child)
    assert (waiting.state, waiting.user, waiting.group) == ("depend", "alice", "physics")
    assert waiting.dependencies == (f"afterok:{parent}",)

    with pytest.raises(PermissionDenied, match=f"job {parent} belongs to another user"):
        bob.submit_jobspec(simple(["true"]), dependencies=[f"afterok:{parent}"])
    with pytest.raises(PermissionDenied):
        bob.get_job(child)

    grid.run(lambda: grid.job(child).state in FINAL)
    done = alice.get_job(child)
    assert (done.state, done.cluster, done.user) == ("completed", "gpu", "alice")


def test_a_users_step_is_released_only_to_a_cluster_they_may_use_then(users):
    grid, clients = users
    alice, bob = clients["alice"], clients["bob"]
    steps = {"first": {"command": "true"}, "wide": {"command": "true", "tasks": 64, "needs": "first"}}
    workflow = alice.submit_workflow({"steps": steps})  # no cluster has 64 cores yet
    first, wide = (step.job.id for step in workflow.steps)
    with pytest.raises(NotFound):
        bob.get_workflow(workflow.workflow_id)
    grid.register("big", big_graph(), nodes=1, cores=64)  # after the submission, closed to alice
    grid.client.set_cluster_access("big", user="alice", allow=False, secret=REGISTRATION_SECRET)
    grid.run(lambda: grid.job(wide).state in FINAL, "gpu", "big")
    assert grid.job(first).cluster == "gpu"
    job = alice.get_job(wide)
    assert job.state == "failed" and "no cluster can run it now" in job.message
    # only alice's clusters were considered; the one she may not use is named as SubmitJob names it
    assert "gpu: needs 64 cores" in job.message
    assert "big: user alice may not use this cluster (its access rules)" in job.message
    assert [step.job.user for step in alice.get_workflow(workflow.workflow_id).steps] == ["alice", "alice"]

    grid.client.set_cluster_access("big", user="alice", remove=True, secret=REGISTRATION_SECRET)
    again = alice.submit_workflow({"steps": steps})
    wide = again.steps[1].job.id
    grid.run(lambda: grid.job(wide).state in FINAL, "gpu", "big")
    assert (grid.job(wide).state, grid.job(wide).cluster) == ("completed", "big")
