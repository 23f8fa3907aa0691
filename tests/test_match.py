"""Matching on the example files and hand-made graphs, with reasons."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rainbow.errors import InvalidArgument
from rainbow.graph import MATCH_ALGORITHMS, ClusterGraph, MatchResult, get_match_algorithm, match, satisfy
from rainbow.graph.synthetic import Vertex, subsystem_jgf, tree_jgf
from rainbow.jobspec import parse_jobspec, simple

EXAMPLES = Path(__file__).parent / "data" / "examples"


@pytest.fixture
def keebler() -> ClusterGraph:
    graph = ClusterGraph.from_jgf((EXAMPLES / "cluster-nodes.json").read_text(), name="keebler")
    graph.add_subsystem("io", (EXAMPLES / "cluster-io-subsystem.json").read_text())
    return graph


def group(type_: str, count: int = 1, *children: dict, replicas: int | None = None, requires=None) -> dict:
    out: dict = {"type": type_, "count": count}
    if replicas is not None:
        out = {"type": type_, "replicas": replicas}
    if children:
        out["with"] = list(children)
    if requires:
        out["requires"] = requires
    return out


def spec(**groups: dict):
    return parse_jobspec({"version": 1, "resources": groups})


def flux_cluster(nodes: int, cores: int, gpus: int = 0) -> ClusterGraph:
    node = Vertex("node", children=[Vertex("core")] * cores + [Vertex("gpu")] * gpus)
    doc, _ = tree_jgf(Vertex("cluster", children=[node] * nodes))
    return ClusterGraph.from_jgf(doc, name="fluxy")


def test_io_subsystem_shm_matches(keebler):
    js = parse_jobspec((EXAMPLES / "jobspec-io.yaml").read_text())
    assert match(keebler, js) == MatchResult(True, None)
    keebler.remove_subsystem("io")
    assert match(keebler, js) == MatchResult(False, "no node with io type=shm")


def test_io_subsystem_other_fields(keebler):
    def with_req(req):
        return spec(ior=group("node", 1, group("core", 2), requires=[req]))

    assert match(keebler, with_req({"name": "io", "field": "mount_point", "match": "/dev/shm"})).ok
    assert match(keebler, with_req({"name": "io", "field": "byte_addressable", "match": True})).ok
    assert match(keebler, with_req({"name": "io", "field": "parallelism", "match": 32})).ok
    assert match(keebler, with_req({"name": "io", "field": "parallelism", "match": "32"})).ok
    assert not match(keebler, with_req({"name": "io", "field": "no_such_field", "match": "x"})).ok
    result = match(keebler, with_req({"name": "nosuch", "field": "type", "match": "shm"}))
    assert result == MatchResult(False, "no node with nosuch type=shm")


def test_several_requires_of_one_subsystem_must_all_hold(keebler):
    both = [{"name": "io", "match": "shm"}, {"name": "io", "match": "nvme"}]
    assert match(keebler, spec(g=group("node", 3, requires=both))).ok
    missing = [{"name": "io", "match": "shm"}, {"name": "io", "match": "gpfs"}]
    assert match(keebler, spec(g=group("node", 1, requires=missing))) == MatchResult(
        False, "no node with io type=gpfs"
    )


def test_constraint_example(keebler):
    js = parse_jobspec((EXAMPLES / "jobspec-constraint.yaml").read_text())
    assert match(keebler, js).ok


def test_old_client_simple_jobspec_on_racks(keebler):
    def old(nodes, tasks):
        return parse_jobspec(
            {
                "version": 1,
                "resources": {
                    "task-resources": {
                        "type": "rack",
                        "replicas": 1,
                        "label": "x",
                        "with": {"type": "node", "count": nodes, "with": {"type": "core", "count": tasks}},
                    }
                },
                "tasks": [{"command": ["hostname"], "resources": "task-resources", "count": {"per_slot": 1}}],
            }
        )

    assert match(keebler, old(3, 12)).ok
    assert not match(keebler, old(3, 13)).ok
    assert match(keebler, old(4, 1)) == MatchResult(False, "needs 4 nodes, has 3")


def test_reasons(keebler):
    assert match(keebler, parse_jobspec(simple("x", nodes=100, tasks=100))) == MatchResult(
        False, "needs 100 nodes, has 3"
    )
    assert match(keebler, spec(g=group("node", 1, group("core", 13)))) == MatchResult(
        False, "needs 1 node with 13 cores, has 0"
    )
    assert match(keebler, spec(g=group("gpu", 1))) == MatchResult(False, "needs 1 gpu, has 0")
    two = spec(a=group("node", 2, group("core", 8)), b=group("node", 2, group("core", 1)))
    assert match(keebler, two) == MatchResult(False, "needs 4 nodes, has 3")
    fit = spec(a=group("socket", 1, group("core", 12)), b=group("node", 3, group("core", 1)))
    assert match(keebler, fit) == MatchResult(False, "resource groups a, b do not fit together")
    assert match(
        keebler, spec(a=group("socket", 1, group("core", 11)), b=group("node", 3, group("core", 1)))
    ).ok
    assert match(keebler, spec(a=group("node", 1, group("core", 12)), b=group("core", 24))).ok
    assert not match(keebler, spec(a=group("node", 1, group("core", 12)), b=group("core", 25))).ok


def test_flux_v1_jobspec_on_flux_shaped_cluster():
    calls = json.loads((EXAMPLES / "flux" / "flux-python-calls.json").read_text())
    v1 = next(v for k, v in calls.items() if k.startswith("JobspecV1.from_command"))
    js = parse_jobspec(v1)
    assert match(flux_cluster(2, 2), js).ok
    assert match(flux_cluster(1, 4), js) == MatchResult(False, "needs 2 nodes, has 1")


def test_simple_jobspec_on_flux_cluster():
    graph = flux_cluster(16, 64, gpus=8)
    assert match(graph, parse_jobspec(simple("x", nodes=16, tasks=1024))).ok
    assert not match(graph, parse_jobspec(simple("x", nodes=16, tasks=1025))).ok
    gpus = spec(g=group("node", 16, group("core", 64), group("gpu", 8)))
    assert match(graph, gpus).ok
    assert match(graph, spec(g=group("node", 1, group("gpu", 9)))) == MatchResult(
        False, "needs 1 node with 9 gpus, has 0"
    )


def spack_cluster() -> ClusterGraph:
    graph = flux_cluster(3, 2)
    ids = graph.state.ids
    nodes = [vid for i, vid in enumerate(ids) if graph.state.types[graph.state.type_of[i]] == "node"]
    packages = [
        {"type": "package", "name": "ior", "version": "3.3.0"},
        {"type": "package", "name": "ior", "version": "4.0"},
        {"type": "package", "name": "lammps", "version": "develop"},
        {"type": "package", "name": "zlib", "version": "1.2.13"},
    ]
    links = [(nodes[0], 1), (nodes[1], 2), (nodes[1], 4), (nodes[2], 3)]
    graph.add_subsystem("spack", subsystem_jgf("spack", packages, links))
    return graph


@pytest.mark.parametrize(
    "bounds,nodes_ok",
    [
        ({"min": "3"}, 2),
        ({"min": "3.3.1"}, 1),
        ({"max": "3.3"}, 2),  # zlib 1.2.13 counts too: the field is version, any package
        ({"min": "0.5", "max": "1.2.13"}, 1),
        ({"min": "1.2.14", "max": "3.2"}, 0),
        ({"min": "5"}, 0),
    ],
)
def test_range_with_spack_like_versions(bounds, nodes_ok):
    graph = spack_cluster()
    req = {"name": "spack", "field": "version", **bounds}
    for n in (1, 2, 3):
        js = spec(g=group("node", n, requires=[req]))
        assert match(graph, js).ok == (n <= nodes_ok), (bounds, n)


def test_range_and_match_together():
    graph = spack_cluster()
    reqs = [
        {"name": "spack", "field": "name", "match": "zlib"},
        {"name": "spack", "field": "version", "min": "4"},
    ]
    assert match(graph, spec(g=group("node", 1, requires=reqs))).ok
    assert not match(graph, spec(g=group("node", 2, requires=reqs))).ok


def test_algorithms():
    assert get_match_algorithm("") is MATCH_ALGORITHMS["match"]
    assert get_match_algorithm(None).name == "match"
    assert {"match", "equals", "range"} <= set(MATCH_ALGORITHMS)
    with pytest.raises(
        InvalidArgument, match=r"unknown match algorithm 'nope' \(known: equals, match, range"
    ):
        get_match_algorithm("nope")
    graph = spack_cluster()
    ranged = spec(g=group("node", 1, requires=[{"name": "spack", "field": "version", "min": "4"}]))
    equal = spec(g=group("node", 1, requires=[{"name": "spack", "field": "name", "match": "ior"}]))
    assert match(graph, ranged, "range").ok and match(graph, equal, "equals").ok
    with pytest.raises(InvalidArgument, match=r"resources.g.requires\[0\]: match algorithm 'equals'"):
        match(graph, ranged, "equals")
    with pytest.raises(InvalidArgument, match="does not support match"):
        satisfy({"a": graph}, equal, "range")
    with pytest.raises(InvalidArgument):
        match(graph, equal, "bogus")


def test_satisfy_many(keebler):
    clusters = {"keebler": keebler, "big": flux_cluster(8, 16), "tiny": flux_cluster(1, 1)}
    results = satisfy(clusters, parse_jobspec(simple("x", nodes=4, tasks=8)))
    assert results["big"].ok
    assert results["keebler"] == MatchResult(False, "needs 4 nodes, has 3")
    assert results["tiny"].describe("tiny") == "tiny: needs 4 nodes, has 1"


def test_unknown_types_do_not_match(keebler):
    assert match(keebler, spec(g=group("quantum", 1))) == MatchResult(False, "needs 1 quantum, has 0")
    assert not match(keebler, spec(g=group("node", 1, group("gpu", 1)))).ok


def test_sizes_count_as_units():
    node = Vertex("node", children=[Vertex("core")] * 2 + [Vertex("memory", size=128)] * 2)
    doc, _ = tree_jgf(Vertex("cluster", children=[node] * 2))
    graph = ClusterGraph.from_jgf(doc)
    assert graph.summary()["memory"] == 512
    assert match(graph, spec(g=group("node", 2, group("memory", 256)))).ok
    assert not match(graph, spec(g=group("node", 1, group("memory", 257)))).ok
    assert match(graph, spec(g=group("memory", 512))).ok
    assert match(graph, spec(g=group("memory", 500), h=group("memory", 12))).ok
    assert not match(graph, spec(g=group("memory", 500), h=group("memory", 13))).ok


def test_slot_repeats_subtree():
    graph = flux_cluster(2, 4)
    v1 = {
        "version": 1,
        "resources": [
            {
                "type": "node",
                "count": 1,
                "with": [{"type": "slot", "count": 2, "label": "t", "with": [{"type": "core", "count": 2}]}],
            }
        ],
        "tasks": [{"command": ["a"], "slot": "t", "count": {"per_slot": 1}}],
    }
    assert match(graph, parse_jobspec(v1)).ok
    v1["resources"][0]["with"][0]["count"] = 3
    assert not match(graph, parse_jobspec(v1)).ok
    top_slot = {
        "version": 1,
        "resources": [{"type": "slot", "count": 4, "label": "t", "with": [{"type": "core", "count": 2}]}],
        "tasks": [{"command": ["a"], "slot": "t", "count": {"per_slot": 1}}],
    }
    assert match(graph, parse_jobspec(top_slot)).ok
    top_slot["resources"][0]["count"] = 5
    assert match(graph, parse_jobspec(top_slot)) == MatchResult(False, "needs 10 cores, has 8")


def test_competing_groups_reason():
    big = Vertex("node", children=[Vertex("core")] * 8)
    small = Vertex("node", children=[Vertex("core")] * 2)
    doc, _ = tree_jgf(Vertex("cluster", children=[big, big, small, small]))
    graph = ClusterGraph.from_jgf(doc)
    js = spec(a=group("node", 2, group("core", 4)), b=group("node", 1, group("core", 8)))
    assert match(graph, js) == MatchResult(False, "needs 3 nodes for groups a, b together, has 2")
    assert match(graph, spec(a=group("node", 1, group("core", 4)), b=group("node", 1, group("core", 8)))).ok
    assert match(graph, spec(a=group("node", 2, group("core", 2)), b=group("node", 2, group("core", 8)))).ok


def test_pool_takes_what_groups_leave():
    graph = flux_cluster(4, 8)
    assert match(graph, spec(n=group("node", 2, group("core", 8)), pool=group("core", 16))).ok
    assert match(graph, spec(n=group("node", 2, group("core", 8)), pool=group("core", 17))) == MatchResult(
        False, "needs 33 cores, has 32"
    )


def test_pool_with_requires_and_scarce_nodes():
    graph = flux_cluster(2, 4)
    needs_x = [{"name": "x", "match": "y"}]
    js = spec(s=group("node", 1, group("core", 3)), c=group("core", 2, requires=needs_x))
    assert match(graph, js) == MatchResult(False, "no core with x type=y")
    both = spec(a=group("node", 2, group("core", 3)), b=group("node", 1, group("core", 1)))
    assert match(graph, both) == MatchResult(False, "needs 3 nodes, has 2")


def test_register_algorithm():
    from rainbow.graph import MatchAlgorithm, register_match_algorithm

    custom = MatchAlgorithm("versions-only", "range entries", frozenset({"range"}))
    register_match_algorithm(custom)
    register_match_algorithm(custom)
    assert get_match_algorithm("versions-only") is custom
    with pytest.raises(InvalidArgument, match="already registered"):
        register_match_algorithm(MatchAlgorithm("match", "again", frozenset({"match"})))
    with pytest.raises(InvalidArgument, match="unknown requirement kinds"):
        register_match_algorithm(MatchAlgorithm("odd", "odd", frozenset({"regex"})))
    del MATCH_ALGORITHMS["versions-only"]


def test_counts_read_as_english():
    from rainbow.graph.match import units
    from rainbow.scheduler import plural

    assert [units(1, "node"), units(64, "node"), units(2, "gpus"), units(4, "memory")] == [
        "1 node", "64 nodes", "2 gpus", "4 memory"]
    assert [plural(0, "cluster"), plural(1, "cluster"), plural(2, "job")] == ["0 clusters", "1 cluster", "2 jobs"]
