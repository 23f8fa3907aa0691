"""Selection over gRPC: server config, per-request override, state persistence, bad input."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import grpc
import pytest
import yaml

from rainbow.protos import rainbow_pb2

from conftest import EXAMPLES, REGISTRATION_SECRET, example, stubs_for, subprocess_env

Cluster = rainbow_pb2.SubmitJobRequest.Cluster

# build_cost = cost_per_node_hour * memory_per_node * seconds_per_gb / 3600 (seconds_per_gb = 0.4)
STATES = {
    "red": {"cost_per_node_hour": 3, "nodes_free": 20, "memory_per_node": 200},  # 0.0667
    "green": {"cost_per_node_hour": 9, "nodes_free": 4, "memory_per_node": 100},  # 0.1
    "blue": {"cost_per_node_hour": 50, "nodes_free": 0, "memory_per_node": 400},  # filtered out
}


def priorities(*steps_per_priority: list[dict]) -> str:
    return yaml.safe_dump([{"priority": i + 1, "steps": steps} for i, steps in enumerate(steps_per_priority)])


def setup(stubs, states=STATES):
    clusters = []
    for name, state in states.items():
        reply = stubs.scheduler.Register(
            rainbow_pb2.RegisterRequest(name=name, secret=REGISTRATION_SECRET, nodes=example("cluster-nodes.json")))
        stubs.scheduler.UpdateState(
            rainbow_pb2.UpdateStateRequest(cluster=name, secret=reply.secret, payload=json.dumps(state)))
        clusters.append(Cluster(name=name, token=reply.token))
    return clusters


def submit(stubs, clusters, **fields):
    return stubs.scheduler.SubmitJob(rainbow_pb2.SubmitJobRequest(
        name="sel", clusters=clusters, jobspec=example("jobspec-constraint.yaml"), **fields))


@pytest.fixture
def configured(server_factory, tmp_path):
    """A server whose config file selects with the example's constraint priorities."""
    config = tmp_path / "rainbow-config.yaml"
    config.write_text(example("rainbow-selection-config.yaml"))
    server = server_factory(config_file=str(config), secret=None)
    stubs = stubs_for(server.address, server)
    yield stubs
    stubs.channel.close()


def test_server_config_constraint_filters_and_sorts(configured, caplog):
    clusters = setup(configured)
    assert configured.server.scheduler.selector.name == "constraint"
    caplog.set_level(logging.INFO, logger="rainbow.scheduler")
    ranked = submit(configured, clusters, satisfy_only=True)
    # priority 1: filter nodes_free > 0 drops blue; sort_descending build_cost; select random
    assert sorted(ranked.clusters) == ["green", "red"]
    chosen = {submit(configured, clusters).cluster for _ in range(12)}
    assert chosen <= {"green", "red"} and chosen
    assert any("selection for job" in r.getMessage() and "blue" in r.getMessage()
               for r in caplog.records)


def test_each_step_kind_per_request(rainbow):
    clusters = setup(rainbow)
    cases = [
        ([{"filter": "nodes_free > 0"}, {"sort_ascending": "cost_per_node_hour"}, {"select": "first"}], "red"),
        ([{"filter": "nodes_free > 0"}, {"sort_ascending": "cost_per_node_hour"}, {"select": "last"}], "green"),
        ([{"calc": "build_cost=cost_per_node_hour * (memory_per_node * seconds_per_gb)/60/60"},
          {"sort_descending": "build_cost"}, {"select": "first"}], "blue"),
        ([{"filter": "nodes_free > 0"},
          {"calc": "build_cost=cost_per_node_hour * (memory_per_node * seconds_per_gb)/60/60"},
          {"sort_descending": "build_cost"}, {"select": "first"}], "green"),
        ([{"filter": "memory_per_node >= 200 and not (nodes_free == 0)"}, {"select": "random"}], "red"),
        ([{"calc": "m=max(100, memory_per_node - 100)"}, {"sort_descending": "m"}, {"select": "first"}], "blue"),
    ]
    for steps, expected in cases:
        reply = submit(rainbow, clusters, select_algorithm="constraint",
                       select_options={"priorities": priorities(steps)})
        assert reply.cluster == expected, steps


def test_priority_fallback_and_satisfy_only_order(rainbow):
    clusters = setup(rainbow)
    options = {"priorities": priorities(
        [{"filter": "nodes_free > 100"}, {"select": "first"}],
        [{"filter": "nodes_free >= 0"}, {"sort_descending": "nodes_free"}, {"select": "first"}],
    )}
    reply = submit(rainbow, clusters, select_algorithm="constraint", select_options=options, satisfy_only=True)
    assert list(reply.clusters) == ["red", "green", "blue"]
    assert submit(rainbow, clusters, select_algorithm="constraint", select_options=options).cluster == "red"


def test_no_cluster_passes_names_algorithm_and_step(rainbow):
    clusters = setup(rainbow)
    options = {"priorities": priorities([{"filter": "nodes_free > 1000"}, {"select": "first"}])}
    with pytest.raises(grpc.RpcError) as err:
        submit(rainbow, clusters, select_algorithm="constraint", select_options=options)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "constraint" in err.value.details() and "nodes_free > 1000" in err.value.details()
    empty = submit(rainbow, clusters, select_algorithm="constraint", select_options=options, satisfy_only=True)
    assert list(empty.clusters) == []
    assert rainbow.server.scheduler.store.count_jobs() == 0


def test_missing_state_skips_the_cluster(rainbow):
    clusters = setup(rainbow, {"red": {"cost_per_node_hour": 3}, "green": {"nodes_free": 2}})
    options = {"priorities": priorities([{"filter": "nodes_free > 0"}, {"select": "first"}])}
    assert submit(rainbow, clusters, select_algorithm="constraint", select_options=options).cluster == "green"


@pytest.mark.parametrize("steps, mentioned", [
    ([{"filter": "nodes_free >"}], "filter"),
    ([{"explode": "now"}], "explode"),
    ([{"select": "best"}], "best"),
    ([{"calc": "no_equals_sign"}], "calc"),
    ([{"calc": "x=1/0"}], "zero"),
    ([{"filter": "__import__('os').system('true')"}], "filter"),
    ([{"filter": "().__class__"}], "filter"),
])
def test_bad_options_are_invalid_argument(rainbow, steps, mentioned):
    clusters = setup(rainbow)
    with pytest.raises(grpc.RpcError) as err:
        submit(rainbow, clusters, select_algorithm="constraint", select_options={"priorities": priorities(steps)})
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert mentioned in err.value.details()
    assert rainbow.server.scheduler.store.count_jobs() == 0


def test_wrong_type_state_drops_that_cluster(rainbow):
    clusters = setup(rainbow, {"red": {"nodes_free": "20"}, "green": {"nodes_free": 3}})
    options = {"priorities": priorities([{"filter": "nodes_free > 0"}, {"select": "first"}])}
    assert submit(rainbow, clusters, select_algorithm="constraint", select_options=options).cluster == "green"


def test_unknown_algorithm_and_parameter_errors(rainbow):
    clusters = setup(rainbow)
    with pytest.raises(grpc.RpcError) as err:
        submit(rainbow, clusters, select_algorithm="fastest")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "fastest" in err.value.details()
    jobspec = example("jobspec-constraint.yaml").replace("seconds_per_gb: 0.4", "seconds_per_gb: 0")
    options = {"priorities": priorities([{"calc": "x=memory_per_node / seconds_per_gb"}, {"select": "first"}])}
    with pytest.raises(grpc.RpcError) as err:
        rainbow.scheduler.SubmitJob(rainbow_pb2.SubmitJobRequest(
            name="p", clusters=clusters, jobspec=jobspec, select_algorithm="constraint", select_options=options))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_presets_by_name(rainbow):
    clusters = setup(rainbow)
    assert submit(rainbow, clusters, select_algorithm="cheapest").cluster == "red"
    assert submit(rainbow, clusters, select_algorithm="least-loaded").cluster == "red"
    reply = submit(rainbow, clusters, select_algorithm="least-loaded", satisfy_only=True)
    assert list(reply.clusters) == ["red", "green", "blue"]


def test_state_survives_restart_and_drives_selection(server_factory, tmp_path):
    db = tmp_path / "state.db"
    server = server_factory(db, select_algorithm="cheapest")
    stubs = stubs_for(server.address)
    clusters = setup(stubs)
    assert submit(stubs, clusters).cluster == "red"
    stubs.channel.close()
    server.stop()
    server = server_factory(db, select_algorithm="cheapest")
    stubs = stubs_for(server.address)
    assert server.scheduler.cluster_state("green") == STATES["green"]
    assert submit(stubs, clusters).cluster == "red"
    stubs.channel.close()


def test_bad_server_config_refuses_to_start(tmp_path):
    config = yaml.safe_load((EXAMPLES / "rainbow-selection-config.yaml").read_text())
    config["scheduler"]["algorithms"]["selection"]["options"]["priorities"] = priorities([{"calc": "oops"}])
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "rainbow", "server", "--host", "127.0.0.1:0", "--db", str(tmp_path / "x.db"),
         "--config", str(path)],
        capture_output=True, text=True, timeout=60, env=subprocess_env(),
    )
    assert result.returncode != 0
    assert "calc" in result.stderr and "Traceback" not in result.stderr


def test_a_batch_and_an_array_spread_over_the_clusters_job_by_job(rainbow):
    """The random selector draws every job of a batch on its own: a batch and an array of one jobspec reach
    every matching cluster, and each job's placement record names its own cluster."""
    clusters = setup(rainbow)
    jobspec = example("jobspec-constraint.yaml")
    batch = rainbow.scheduler.SubmitJobs(rainbow_pb2.SubmitJobsRequest(
        clusters=clusters, jobs=[rainbow_pb2.SubmitJobsRequest.Job(name=f"j{i}", jobspec=jobspec) for i in range(60)]))
    array = rainbow.scheduler.SubmitJobs(rainbow_pb2.SubmitJobsRequest(
        clusters=clusters, jobs=[rainbow_pb2.SubmitJobsRequest.Job(name="a{cc}", jobspec=jobspec)], cc="1-60"))
    store = rainbow.server.scheduler.store
    for reply in (batch, array):
        assert [job.error for job in reply.jobs] == [""] * 60
        # Each cluster is drawn with probability 1/3: missing one of three in 60 draws is about 1e-10.
        assert {job.cluster for job in reply.jobs} == set(STATES)
        for job in reply.jobs:
            record = json.loads(store.job_placement(job.jobid))
            assert record["chosen"] == job.cluster == store.get_job(job.jobid).cluster
            assert record["reason"] == f"random: picked {job.cluster!r} among 3"
            assert record["matched"] == list(STATES) and record["listed"] == list(STATES)
            assert next(iter(record["states"])) == job.cluster


def test_a_placement_record_holds_the_cluster_states_of_its_submit(rainbow):
    """Records are remembered for submissions placed alike, but never across a state report: the record
    of a job keeps the states selection decided from at its submit."""
    clusters, secrets = [], {}
    for name, state in STATES.items():
        reply = rainbow.scheduler.Register(rainbow_pb2.RegisterRequest(
            name=name, secret=REGISTRATION_SECRET, nodes=example("cluster-nodes.json")))
        secrets[name] = reply.secret
        rainbow.scheduler.UpdateState(
            rainbow_pb2.UpdateStateRequest(cluster=name, secret=reply.secret, payload=json.dumps(state)))
        clusters.append(Cluster(name=name, token=reply.token))
    store = rainbow.server.scheduler.store

    def records() -> list[dict]:
        ids = [submit(rainbow, clusters).jobid for _ in range(12)]
        return [json.loads(store.job_placement(jobid)) for jobid in ids]

    before = records()
    assert {record["states"]["red"]["nodes_free"] for record in before} == {20}
    for name in STATES:
        rainbow.scheduler.UpdateState(rainbow_pb2.UpdateStateRequest(
            cluster=name, secret=secrets[name], payload=json.dumps({"nodes_free": 7})))
    after = records()
    assert {record["states"]["red"]["nodes_free"] for record in after} == {7}
    assert all(record["states"]["red"] == {**STATES["red"], "nodes_free": 7} for record in after)
    assert all(record["chosen"] == next(iter(record["states"])) for record in before + after)
