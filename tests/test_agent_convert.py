"""Rainbow jobs -> Flux V1 jobspecs (pure: dict in, dict out), checked against real Flux output."""

from __future__ import annotations

import json

import pytest
import yaml

from rainbow.agent.convert import default_environment, job_shape, rainbow_tag, to_flux_jobspec
from rainbow.errors import InvalidArgument
from rainbow.jobspec import simple

from conftest import EXAMPLES

CALLS = json.loads((EXAMPLES / "flux" / "flux-python-calls.json").read_text())
FROM_COMMAND = CALLS[
    "JobspecV1.from_command(['hostname'], num_tasks=2, cores_per_task=1, num_nodes=2) + setattr user.rainbow"]


def test_nextgen_becomes_what_flux_from_command_builds():
    """simple(hostname, 2 nodes, 2 tasks) converts to the jobspec flux-core 0.88 built for the same request."""
    spec = to_flux_jobspec(simple(["hostname"], nodes=2, tasks=2), jobid=7, cluster="fluxy",
                           environment={"A": "1"}, cwd="/scratch/rainbow", duration=60)
    assert spec["version"] == 1
    assert spec["resources"] == FROM_COMMAND["resources"]
    assert spec["tasks"] == FROM_COMMAND["tasks"]
    assert spec["attributes"]["user"] == FROM_COMMAND["attributes"]["user"]
    system = spec["attributes"]["system"]
    assert system["duration"] == 60.0 and system["cwd"] == "/scratch/rainbow"
    assert system["environment"] == {"A": "1", "RAINBOW_JOBID": "7", "RAINBOW_CLUSTER": "fluxy"}
    assert rainbow_tag(spec) == (7, "fluxy")


def test_v1_passes_through_with_its_own_attributes():
    original = json.loads(json.dumps(FROM_COMMAND))
    del original["attributes"]["user"]
    original["attributes"]["system"]["environment"] = {"OWN": "yes", "A": "job"}
    spec = to_flux_jobspec(yaml.safe_dump(original), jobid=12, cluster="tioga", environment={"A": "base", "B": "b"},
                           cwd="/elsewhere")
    assert spec["resources"] == original["resources"] and spec["tasks"] == original["tasks"]
    system = spec["attributes"]["system"]
    assert system["cwd"] == "/scratch/rainbow"  # the jobspec's own cwd wins
    assert system["duration"] == 60.0
    assert system["environment"] == {"A": "job", "B": "b", "OWN": "yes", "RAINBOW_JOBID": "12",
                                     "RAINBOW_CLUSTER": "tioga"}
    assert spec["attributes"]["user"]["rainbow"] == {"jobid": 12, "cluster": "tioga"}


def test_environment_is_explicit_never_the_agents(monkeypatch):
    monkeypatch.setenv("RAINBOW_SECRET_FOR_TEST", "do-not-leak")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    spec = to_flux_jobspec(simple("true"), jobid=1, cluster="c")
    assert set(spec["attributes"]["system"]["environment"]) == {"RAINBOW_JOBID", "RAINBOW_CLUSTER"}
    base = default_environment()
    assert base["PATH"] == "/usr/bin:/bin" and "RAINBOW_SECRET_FOR_TEST" not in base
    spec = to_flux_jobspec(simple("true"), jobid=1, cluster="c", environment=base)
    assert "RAINBOW_SECRET_FOR_TEST" not in spec["attributes"]["system"]["environment"]


def test_name_gpus_and_shape():
    nextgen = {
        "version": 1,
        "resources": {"work": {"type": "node", "replicas": 2, "with": [{"type": "core", "count": 4},
                                                                        {"type": "gpu", "count": 2}]}},
        "tasks": [{"command": ["app", "--fast"], "resources": "work", "count": {"per_slot": 1}}],
    }
    spec = to_flux_jobspec(nextgen, jobid=3, cluster="c", name="my-app")
    assert spec["attributes"]["system"]["job"]["name"] == "my-app"
    assert spec["tasks"][0]["command"] == ["app", "--fast"]
    shape = job_shape(spec)
    assert (shape.nodes, shape.slots, shape.cores_per_slot, shape.gpus_per_slot, shape.tasks) == (2, 2, 4, 2, 2)
    assert (shape.cores, shape.gpus) == (8, 4)
    assert job_shape(FROM_COMMAND).tasks == 2


def test_slot_only_v1_shape():
    spec = {"version": 1, "resources": [{"type": "slot", "count": 3, "label": "task",
                                         "with": [{"type": "core", "count": 2}]}],
            "tasks": [{"command": ["x"], "slot": "task", "count": {"total": 5}}], "attributes": {"system": {}}}
    shape = job_shape(spec)
    assert (shape.nodes, shape.slots, shape.cores, shape.tasks) == (0, 3, 6, 5)


@pytest.mark.parametrize(("jobspec", "field"), [
    ("version: 1\nresources: [", "jobspec"),
    ({"version": 1, "resources": {"a": {"type": "node", "count": 1}, "b": {"type": "node", "count": 1}},
      "tasks": [{"command": ["x"], "resources": "a", "count": {"per_slot": 1}}]}, "resources"),
])
def test_jobs_without_a_v1_form_are_refused(jobspec, field):
    with pytest.raises(InvalidArgument):
        to_flux_jobspec(jobspec, jobid=1, cluster="c")


def test_rainbow_tag_of_untagged_jobspecs():
    assert rainbow_tag(None) is None
    assert rainbow_tag({"attributes": {"system": {}}}) is None
    assert rainbow_tag({"attributes": {"user": {"rainbow": {"jobid": "x"}}}}) is None
