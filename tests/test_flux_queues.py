"""Flux queues against the fake (tests/fakeflux), checked first against flux-core 0.88's real answers.

The instance is the captured one: R-16node-gpus.json (pdebug on tioga[1-4], pbatch on tioga[5-16]) with
the queues.toml of queues-and-rejections.json (debug: pdebug, at most 2 nodes and 30m; batch: pbatch,
the default).
"""

from __future__ import annotations

import io
import json
import math
from contextlib import redirect_stdout

import pytest
import test_flux_adapter

from rainbow.agent.convert import to_flux_jobspec
from rainbow.agent.executor import JobRejected, Submission
from rainbow.flux.resources import expand_hostlist
from rainbow.queues import QueueSet

from conftest import EXAMPLES

flux_fake = test_flux_adapter.flux_fake  # the fixture putting the fake `flux` first on sys.path

CAPTURE = json.loads((EXAMPLES / "flux" / "queues-and-rejections.json").read_text())
R16 = json.loads((EXAMPLES / "flux" / "R-16node-gpus.json").read_text())
CONFIG = {"queues": CAPTURE["config.get queues"], "policy": CAPTURE["config.get policy"]}


def tioga(fake, **kwargs):
    return fake.use(fake.FakeInstance(R16, config=CONFIG, **kwargs))


def jobspec(nodes: int, **system) -> dict:
    spec = {
        "version": 1,
        "resources": [{"type": "node", "count": nodes, "with": [
            {"type": "slot", "count": 1, "label": "task", "with": [{"type": "core", "count": 1}]}]}],
        "tasks": [{"command": ["hostname"], "slot": "task", "count": {"per_slot": 1}}],
        "attributes": {"system": {"duration": 0.0, **system}},
    }
    return spec


def test_fake_queue_list_answers_like_flux_core(flux_fake):
    import flux
    import flux.queue

    tioga(flux_fake)
    handle = flux.Flux()
    assert handle.rpc("config.get").get()["queues"] == CAPTURE["config.get queues"]
    for real, fake in zip(CAPTURE["QueueList"], flux.queue.QueueList(handle), strict=True):
        assert (fake.name, fake.is_default, fake.enabled, fake.started) == (
            real["name"], real["is_default"], real["enabled"], real["started"])
        assert not hasattr(fake, "parent")  # flux-core 0.88 has no virtual queues
        assert vars(fake.limits.min) == real["limits"]["min"]
        assert vars(fake.limits.max) == real["limits"]["max"]
        assert fake.limits.duration == real["limits"]["duration"]
        assert fake.defaults.duration == real["defaults"]["duration"]
        assert fake.resources.all.nnodes == real["resources_all_nnodes"]
        assert expand_hostlist(fake.resources.all.nodelist) == expand_hostlist(real["resources_all_nodelist"])
        assert fake.config["queues"][fake.name]["requires"] == real["config_requires"]


CASES = {
    "debug, no duration": jobspec(1, queue="debug"),
    "debug, 3 nodes, 5m": jobspec(3, queue="debug", duration=300.0),
    "debug, 2h": jobspec(1, queue="debug", duration=7200.0),
    "no such queue": jobspec(1, queue="nosuch"),
    "pdebug x5 (only 4 have it)": jobspec(5, queue="debug", duration=300.0, constraints={"properties": ["pdebug"]}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fake_submit_refuses_like_flux_core(flux_fake, case):
    import flux
    import flux.job

    tioga(flux_fake)
    real = CAPTURE["flux.job.submit errors"][case]
    with pytest.raises(OSError) as caught:
        flux.job.submit(flux.Flux(), json.dumps(CASES[case]))
    assert type(caught.value).__name__ == real["exception"]
    assert (caught.value.errno, str(caught.value)) == (real["errno"], real["message"])


def test_fake_submit_refuses_a_disabled_queue_like_flux_core(flux_fake):
    import flux
    import flux.job

    instance = tioga(flux_fake)
    instance.set_queue("batch", enabled=False, reason="closed for maintenance")
    with pytest.raises(OSError) as caught:
        flux.job.submit(flux.Flux(), json.dumps(jobspec(1, queue="batch")))
    assert str(caught.value) == CAPTURE["flux.job.submit errors"]["batch disabled"]["message"]


UNSATISFIABLE = {
    "17 nodes, default queue batch (12 nodes)": jobspec(17),
    "pdebug x2 in batch queue (constraint conflicts with queue)": jobspec(
        2, queue="batch", constraints={"properties": ["pdebug"]}),
    "13 nodes ^pdebug, no queue": jobspec(13, constraints={"properties": ["^pdebug"]}),
}


@pytest.mark.parametrize("case", sorted(UNSATISFIABLE))
def test_fake_fails_unsatisfiable_jobs_before_they_run_like_flux_core(flux_fake, case):
    import flux
    import flux.job

    instance = tioga(flux_fake)
    jobid = flux.job.submit(flux.Flux(), json.dumps(UNSATISFIABLE[case]))
    real = CAPTURE["refused after submit (alloc exception before the job ran)"][case]
    events = instance.jobs[int(jobid)].events
    assert [e["name"] for e in events] == [e["name"] for e in real["eventlog"]]
    assert events[-2]["context"] == real["eventlog"][-2]["context"]


def test_instance_queues_read_limits_node_sets_and_state(flux_fake):
    import flux

    from rainbow.flux.adapter import instance_queues

    instance = tioga(flux_fake)
    queues = instance_queues(flux.Flux())
    debug, batch = queues.get("debug"), queues.get("batch")
    assert (debug.default, debug.requires, debug.max_size["nnodes"], debug.duration) == (False, ("pdebug",), 2, 1800)
    assert (batch.default, batch.requires, batch.max_size["nnodes"], batch.duration) == (True, ("pbatch",), math.inf,
                                                                                         math.inf)
    assert QueueSet.from_json(queues.to_json()) == queues
    instance.set_queue("batch", enabled=False)
    assert not instance_queues(flux.Flux()).get("batch").enabled


def test_an_instance_without_queues_has_one_anonymous_queue(flux_fake):
    import flux

    from rainbow.flux.adapter import instance_queues

    flux_fake.use(flux_fake.FakeInstance(R16))
    queues = instance_queues(flux.Flux())
    assert queues.anonymous
    assert queues.queues[0].max_size["nnodes"] == math.inf


def test_virtual_queue_takes_its_parents_node_set(flux_fake):
    import flux

    from rainbow.flux.adapter import instance_queues

    config = json.loads(json.dumps(CONFIG))
    config["queues"]["short"] = {"parent": "debug", "policy": {"limits": {"duration": "5m"}}}
    flux_fake.use(flux_fake.FakeInstance(R16, config=config, virtual_queues=True))
    short = instance_queues(flux.Flux()).get("short")
    assert (short.requires, short.duration, short.max_size["nnodes"]) == (("pdebug",), 300, 2)
    assert instance_queues(flux.Flux()).get("debug").requires == ("pdebug",)


def test_executor_reports_queues_in_its_state(flux_fake):
    from rainbow.flux.adapter import FluxExecutor

    instance = tioga(flux_fake)
    executor = FluxExecutor(cluster="tioga")
    state = executor.resources().state()
    assert QueueSet.from_json(state["queues"]).names == ["debug", "batch"]
    instance.set_queue("debug", enabled=False, reason="drained")
    debug = QueueSet.from_json(executor.resources().state()["queues"]).get("debug")
    assert (debug.enabled, debug.reason) == (False, "drained")
    assert QueueSet.from_json(executor.resources().state()["queues"]).get("batch").reason == ""


def test_registration_puts_the_queues_in_the_graph(flux_fake, tmp_path):
    from rainbow.flux.register import main
    from rainbow.graph import ClusterGraph

    tioga(flux_fake)
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["--config-path", str(tmp_path / "c.yaml"), "--cluster-name", "tioga", "--dry-run"]) == 0
    graph = ClusterGraph.from_jgf(out.getvalue())
    assert graph.queues.names == ["debug", "batch"]
    assert graph.queues.get("debug").requires == ("pdebug",)


def test_executor_passes_queue_and_constraints_and_flux_refusals_reject(flux_fake):
    from rainbow.flux.adapter import FluxExecutor
    from rainbow.jobspec import parse_jobspec

    instance = tioga(flux_fake)
    executor = FluxExecutor(cluster="tioga")
    spec = parse_jobspec({"version": 1, "resources": {"w": {"type": "node", "replicas": 2,
                                                             "with": [{"type": "core", "count": 1}]}},
                          "tasks": [{"command": ["hostname"], "resources": "w"}],
                          "attributes": {"queue": "debug", "duration": 60, "constraints": {"ranks": ["0-1"]}}})
    flux_spec = to_flux_jobspec(spec.to_dict(), jobid=1, cluster="tioga", environment={}, cwd="/tmp")
    executor.submit(Submission(1, "tioga", "hostname", flux_spec))
    system = instance.submitted[-1]["attributes"]["system"]
    assert (system["queue"], system["duration"], system["constraints"]) == ("debug", 60.0, {"ranks": ["0-1"]})
    too_long = to_flux_jobspec({**spec.to_dict(), "attributes": {"queue": "debug", "duration": 7200}},
                               jobid=2, cluster="tioga", environment={}, cwd="/tmp")
    with pytest.raises(JobRejected, match="exceeds policy limit of 30m for queue debug"):
        executor.submit(Submission(2, "tioga", "hostname", too_long))


# -- the server's view of queues follows the agent's state reports ----------------------------------
def test_queue_state_reports_change_matching_without_reregistering(server_factory, tmp_path):
    from rainbow.client import RainbowClient
    from rainbow.config import RainbowConfig
    from rainbow.errors import InvalidArgument
    from rainbow.flux.resources import r_to_jgf

    from conftest import REGISTRATION_SECRET

    server = server_factory()
    config = RainbowConfig.new("tioga", host=server.address, path=tmp_path / "rainbow-config.yaml")
    client = RainbowClient(server.address, config_file=config)
    registered = QueueSet.from_dict({"queues": [
        {"name": "debug", "default": False, "requires": ["pdebug"], "limits": {"max": {"nnodes": 2}, "duration": 1800}},
        {"name": "batch", "default": True, "requires": ["pbatch"]},
    ]})
    client.register("tioga", REGISTRATION_SECRET, r_to_jgf(R16, "tioga", registered.to_dict()), save=True)
    client.register("keebler", REGISTRATION_SECRET, r_to_jgf(R16, "keebler"))
    debug_job = jobspec(2, queue="debug", duration=600.0)
    first = client.satisfy(debug_job)
    assert first.clusters == ("tioga",)
    assert first.reasons == {"keebler": "no queue 'debug'"}

    closed = QueueSet(tuple(q if q.name != "debug" else type(q)(**{**vars(q), "enabled": False, "reason": "drained"})
                            for q in registered.queues))
    client.update_state("tioga", {"queues": closed.to_json()})
    assert client.satisfy(debug_job).reasons["tioga"] == "queue 'debug' is disabled: drained"

    client.update_state("tioga", {"queues": registered.to_json()})
    assert client.satisfy(debug_job).clusters == ("tioga",)

    for bad in ("{not json", json.dumps({"queues": [{"name": "a", "limits": {"duration": -1}}]}), 5):
        with pytest.raises(InvalidArgument) as caught:
            client.update_state("tioga", {"queues": bad})
        assert "payload.queues" in str(caught.value)
    assert client.satisfy(debug_job).clusters == ("tioga",)


def test_unsatisfiable_before_start_is_a_rejection_and_submit_refusals_keep_fluxs_words(flux_fake):
    from rainbow.flux.adapter import FluxExecutor

    tioga(flux_fake, hold=True)
    executor = FluxExecutor(cluster="tioga")
    executor.submit(Submission(1, "tioga", "too-big", jobspec(17)))
    executor.submit(Submission(2, "tioga", "fits", jobspec(2)))
    updates = {u.jobid: u for u in executor.poll()}
    assert (updates[1].state, updates[1].rejected) == ("failed", True)
    assert updates[1].message == "alloc: unsatisfiable request: need 17 node(s) with 1 cores each, only 12 eligible"
    assert (updates[2].state, updates[2].rejected) == ("running", False)
    with pytest.raises(JobRejected) as caught:
        executor.submit(Submission(3, "tioga", "x", jobspec(1, queue="nosuch")))
    assert str(caught.value) == "Invalid queue 'nosuch' specified"


def test_fluxions_unsatisfiable_is_a_rejection_too(flux_fake):
    from rainbow.flux.adapter import FluxExecutor

    tioga(flux_fake, hold=True, scheduler="fluxion")
    executor = FluxExecutor(cluster="tioga")
    executor.submit(Submission(1, "tioga", "too-big", jobspec(17)))
    (update,) = executor.poll()
    assert (update.state, update.rejected) == ("failed", True)
    assert update.message == 'alloc: alloc denied due to type="unsatisfiable"'


def test_a_job_that_ran_and_failed_is_not_a_rejection(flux_fake):
    import flux.job

    from rainbow.flux.adapter import FluxExecutor

    instance = tioga(flux_fake, hold=True)
    executor = FluxExecutor(cluster="tioga")
    local = executor.submit(Submission(1, "tioga", "fits", jobspec(2)))
    executor.poll()
    instance.finish(int(flux.job.JobID(local)), 1 << 8)
    (update,) = executor.poll()
    assert (update.state, update.exit_code, update.rejected) == ("failed", 1, False)


HWLOC2 = ('<?xml version="1.0"?><topology version="2.0"><object type="Machine" os_index="0">'
          '<object type="Package"><object type="NUMANode" os_index="0" local_memory="68719476736"/>'
          '<object type="Core"/></object><object type="Package">'
          '<object local_memory="34359738368" type="NUMANode" os_index="1"/></object></object></topology>')
HWLOC1 = ('<topology><object type="Machine" os_index="0" local_memory="17179869184">'
          '<object type="Core"/></object></topology>')


def test_memory_comes_from_each_ranks_hwloc_topology(flux_fake, tmp_path):
    from rainbow.flux.register import main
    from rainbow.flux.resources import hwloc_memory_gb
    from rainbow.graph import ClusterGraph, match
    from rainbow.jobspec import parse_jobspec

    assert (hwloc_memory_gb(HWLOC2), hwloc_memory_gb(HWLOC1), hwloc_memory_gb("<topology/>")) == (96, 16, 0)
    flux_fake.use(flux_fake.FakeInstance(R16, xml=[HWLOC2] * 8 + [HWLOC1] * 8))
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["--config-path", str(tmp_path / "c.yaml"), "--cluster-name", "tioga", "--dry-run"]) == 0
    graph = ClusterGraph.from_jgf(out.getvalue())
    assert graph.summary()["memory"] == 8 * 96 + 8 * 16

    def wants(nodes: int, gb: int):
        return parse_jobspec({"version": 1, "resources": {"m": {"type": "node", "count": nodes,
                                                                 "with": [{"type": "memory", "count": gb}]}}})

    assert match(graph, wants(8, 96)).ok
    assert match(graph, wants(9, 96)).reason == "needs 9 nodes with 96 memory, has 8"


def test_no_topology_memory_means_no_memory_vertices(flux_fake, tmp_path):
    from rainbow.flux.register import main
    from rainbow.graph import ClusterGraph

    tioga(flux_fake)
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["--config-path", str(tmp_path / "c.yaml"), "--cluster-name", "tioga", "--dry-run"]) == 0
    assert "memory" not in ClusterGraph.from_jgf(out.getvalue()).summary()


def test_a_rank_that_does_not_answer_gets_no_memory(flux_fake, tmp_path, caplog):
    from rainbow.flux.register import main

    flux_fake.use(flux_fake.FakeInstance(R16, xml=[HWLOC2] * 3 + [None] + [HWLOC1] * 12))
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["--config-path", str(tmp_path / "c.yaml"), "--cluster-name", "tioga", "--dry-run"]) == 0
    vertices = json.loads(out.getvalue())["graph"]["nodes"]
    edges = json.loads(out.getvalue())["graph"]["edges"]
    memory = {vertices[e["source"]]["metadata"]["name"]: vertices[e["target"]]["metadata"]["size"] for e in edges
              if vertices[e["target"]]["metadata"]["type"] == "memory"}
    assert sorted(memory.items()) == sorted(
        [(f"tioga{n}", 96) for n in (1, 2, 3)] + [(f"tioga{n}", 16) for n in range(5, 17)])
    assert "resource.topo-get: rank 3: No route to host" in caplog.text
