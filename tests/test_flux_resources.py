"""Rv1 -> rainbow JGF (cluster > node > core/gpu), with both captured R files."""

from __future__ import annotations

import json

import pytest

from rainbow.errors import InvalidArgument
from rainbow.flux.resources import (
    encode_idset,
    expand_hostlist,
    expand_idset,
    r_nodes,
    r_summary,
    r_to_jgf,
)

from conftest import EXAMPLES

FLUX = EXAMPLES / "flux"


def tioga_R() -> dict:
    return json.loads((FLUX / "R-16node-gpus.json").read_text())


def instance_R() -> dict:
    return json.loads((FLUX / "flux-python-calls.json").read_text())["resource_list"]["all"]["R"]


@pytest.mark.parametrize(("text", "ids"), [
    ("0-3", [0, 1, 2, 3]), ("0,2,5-6", [0, 2, 5, 6]), ("[1-2]", [1, 2]), ("", []), ("7", [7]), (None, []),
])
def test_expand_idset(text, ids):
    assert expand_idset(text) == ids
    if ids:
        assert expand_idset(encode_idset(ids)) == ids


@pytest.mark.parametrize("bad", ["a", "3-1", "1-"])
def test_bad_idsets_name_the_problem(bad):
    with pytest.raises(InvalidArgument, match="idset"):
        expand_idset(bad)


@pytest.mark.parametrize(("text", "hosts"), [
    ("tioga[1-3]", ["tioga1", "tioga2", "tioga3"]),
    ("vm,vm", ["vm", "vm"]),
    ("node[01-03,07],login1", ["node01", "node02", "node03", "node07", "login1"]),
    ("r[1-2]n[1-2]", ["r1n1", "r1n2", "r2n1", "r2n2"]),
    ("", []),
])
def test_expand_hostlist(text, hosts):
    assert expand_hostlist(text) == hosts


def test_bad_hostlists():
    with pytest.raises(InvalidArgument, match="unbalanced"):
        expand_hostlist("tioga[1-3")
    with pytest.raises(InvalidArgument, match="runs backwards"):
        expand_hostlist("tioga[3-1]")


def _by_type(jgf: dict) -> dict[str, list[dict]]:
    kinds: dict[str, list[dict]] = {}
    for vertex in jgf["graph"]["nodes"].values():
        kinds.setdefault(vertex["metadata"]["type"], []).append(vertex["metadata"])
    return kinds


def _children(jgf: dict, parent: str) -> list[str]:
    return [e["target"] for e in jgf["graph"]["edges"] if e["source"] == parent and e["relation"] == "contains"]


def test_tioga_R_to_jgf():
    jgf = r_to_jgf(tioga_R(), "tioga")
    kinds = _by_type(jgf)
    assert {k: len(v) for k, v in kinds.items()} == {"cluster": 1, "node": 16, "core": 16 * 64, "gpu": 16 * 8}
    nodes = sorted(kinds["node"], key=lambda m: m["rank"])
    assert [n["name"] for n in nodes] == [f"tioga{i}" for i in range(1, 17)]
    assert nodes[0]["basename"] == "tioga" and nodes[0]["id"] == "1" and nodes[0]["rank"] == 0
    assert nodes[0]["paths"]["containment"] == "/tioga0/tioga1"
    assert [n.get("properties") for n in nodes[:4]] == [{"pdebug": ""}] * 4
    assert all(n["properties"] == {"pbatch": ""} for n in nodes[4:])
    root = next(k for k, v in jgf["graph"]["nodes"].items() if v["metadata"]["type"] == "cluster")
    assert jgf["graph"]["nodes"][root]["metadata"]["name"] == "tioga0"
    node_ids = _children(jgf, root)
    assert len(node_ids) == 16
    first = _children(jgf, node_ids[0])
    types = sorted(jgf["graph"]["nodes"][c]["metadata"]["type"] for c in first)
    assert types.count("core") == 64 and types.count("gpu") == 8
    core = jgf["graph"]["nodes"][first[0]]["metadata"]
    assert core["paths"]["containment"].startswith("/tioga0/tioga1/")
    # every contains edge has its reverse "in" edge; ids are unique and match uniq_id
    edges = {(e["source"], e["target"], e["relation"]) for e in jgf["graph"]["edges"]}
    assert all((t, s, "in") in edges for s, t, r in edges if r == "contains")
    assert all(str(v["metadata"]["uniq_id"]) == k for k, v in jgf["graph"]["nodes"].items())
    assert len({v["metadata"]["paths"]["containment"] for v in jgf["graph"]["nodes"].values()}) == len(
        jgf["graph"]["nodes"])


def test_test_instance_R_with_repeated_hostnames():
    """A test instance runs every broker on one host: `vm,vm`; paths stay unique."""
    jgf = r_to_jgf(instance_R(), "vm")
    kinds = _by_type(jgf)
    assert {k: len(v) for k, v in kinds.items()} == {"cluster": 1, "node": 2, "core": 4}
    assert sorted(n["paths"]["containment"] for n in kinds["node"]) == ["/vm0/vm-0", "/vm0/vm-1"]
    assert [n["name"] for n in kinds["node"]] == ["vm", "vm"]
    assert "gpu" not in kinds


def test_summary_and_nodes():
    assert r_summary(tioga_R()) == {"nodes": 16, "cores": 1024, "gpus": 128}
    assert r_summary(instance_R()) == {"nodes": 2, "cores": 4, "gpus": 0}
    nodes = r_nodes(tioga_R())
    assert (nodes[3].hostname, nodes[3].properties, nodes[4].properties) == ("tioga4", ("pdebug",), ("pbatch",))


def test_nodelist_maps_to_ranks_in_order():
    R = {"version": 1, "execution": {"R_lite": [{"rank": "4-5", "children": {"core": "0-3"}},
                                                 {"rank": "9", "children": {"core": "0-1", "gpu": "0"}}],
                                     "nodelist": ["big[1-2],gpu7"]}}
    nodes = r_nodes(R)
    assert [(n.rank, n.hostname, len(n.cores), len(n.gpus)) for n in nodes] == [
        (4, "big1", 4, 0), (5, "big2", 4, 0), (9, "gpu7", 2, 1)]


@pytest.mark.parametrize(("R", "message"), [
    ({"version": 2, "execution": {}}, "version"),
    ({"version": 1}, "execution"),
    ({"version": 1, "execution": {"R_lite": [{"children": {}}]}}, "rank"),
    ({"version": 1, "execution": {"R_lite": [{"rank": "0-1", "children": {"core": "0"}}], "nodelist": ["a"]}},
     "1 hosts for 2 ranks"),
    ({"version": 1, "execution": {"R_lite": []}}, "no resources"),
])
def test_bad_R_is_refused_with_the_field(R, message):
    with pytest.raises(InvalidArgument, match=message):
        r_to_jgf(R, "x")


def test_the_graph_loads_and_matches():
    from rainbow.graph import ClusterGraph, match
    from rainbow.jobspec import parse_jobspec, simple

    graph = ClusterGraph.from_jgf(r_to_jgf(tioga_R(), "tioga"), name="tioga")
    assert graph.summary()["node"] == 16
    assert match(graph, parse_jobspec(simple(["hostname"], nodes=16, tasks=16))).ok
    assert not match(graph, parse_jobspec(simple(["hostname"], nodes=17, tasks=17))).ok
