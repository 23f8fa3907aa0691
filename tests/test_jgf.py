"""JGF reading (both dialects) and cluster graph validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rainbow.errors import InvalidArgument, ResourceExhausted
from rainbow.graph import ClusterGraph
from rainbow.graph.synthetic import Vertex, tree_jgf
from rainbow.jgf import read_jgf

EXAMPLES = Path(__file__).parent / "data" / "examples"


EXAMPLE_SUMMARY = {"cluster": 1, "rack": 1, "node": 3, "socket": 3, "core": 36}


def nodes_example() -> dict:
    return json.loads((EXAMPLES / "cluster-nodes.json").read_text())


def to_fluxion(doc: dict) -> dict:
    graph = doc["graph"]
    nodes = [{"id": vid, "metadata": node["metadata"]} for vid, node in graph["nodes"].items()]
    edges = [
        {"source": e["source"], "target": e["target"], "metadata": {"name": {"containment": "contains"}}}
        for e in graph["edges"]
        if e["relation"] == "contains"
    ]
    return {"graph": {"nodes": nodes, "edges": edges}}


def test_rainbow_dialect_example():
    graph = ClusterGraph.from_jgf((EXAMPLES / "cluster-nodes.json").read_text(), name="keebler")
    assert graph.n_vertices == 44
    assert graph.summary() == {"cluster": 1, "rack": 1, "node": 3, "socket": 3, "core": 36}
    assert graph.name == "keebler"


@pytest.mark.parametrize("as_text", [True, False])
def test_fluxion_dialect_gives_the_same_graph(as_text):
    doc = to_fluxion(nodes_example())
    graph = ClusterGraph.from_jgf(json.dumps(doc) if as_text else doc)
    assert graph.summary() == {"cluster": 1, "rack": 1, "node": 3, "socket": 3, "core": 36}


def test_fluxion_dialect_minimal_metadata_defaults():
    doc = {
        "graph": {
            "nodes": [
                {"id": "0", "metadata": {"type": "cluster", "paths": {"containment": "/c"}}},
                {"id": "1", "metadata": {"type": "memory", "size": 256, "paths": {"containment": "/c/m"}}},
            ],
            "edges": [{"source": "0", "target": "1", "metadata": {"name": {"containment": "contains"}}}],
        }
    }
    assert ClusterGraph.from_jgf(doc).summary() == {"cluster": 1, "memory": 256}


def test_bytes_and_dict_inputs_agree():
    text = (EXAMPLES / "cluster-nodes.json").read_text()
    a = ClusterGraph.from_jgf(text.encode())
    b = ClusterGraph.from_jgf(json.loads(text))
    assert a.summary() == b.summary()
    assert a.state.classes.n == b.state.classes.n


def test_edges_before_nodes():
    doc = nodes_example()
    text = json.dumps({"graph": {"edges": doc["graph"]["edges"], "nodes": doc["graph"]["nodes"]}})
    assert ClusterGraph.from_jgf(text).n_vertices == 44
    flux = to_fluxion(doc)
    text = json.dumps({"graph": {"edges": flux["graph"]["edges"], "nodes": flux["graph"]["nodes"]}})
    assert ClusterGraph.from_jgf(text).n_vertices == 44


def test_identical_subtrees_share_a_class():
    doc, _ = tree_jgf(Vertex("cluster", children=[Vertex("node", children=[Vertex("core")] * 4)] * 50))
    graph = ClusterGraph.from_jgf(doc)
    assert graph.state.classes.n == 3
    assert graph.n_vertices == 1 + 50 + 200


def small() -> dict:
    doc, _ = tree_jgf(Vertex("cluster", children=[Vertex("node", children=[Vertex("core")] * 2)] * 2))
    return doc


def mutate(change) -> dict:
    doc = small()
    change(doc["graph"])
    return doc


BAD_GRAPHS = [
    (
        lambda g: g["edges"].append({"source": "0", "target": "99", "relation": "contains"}),
        "target '99' is not a vertex",
    ),
    (
        lambda g: g["edges"].append({"source": "42", "target": "1", "relation": "in"}),
        "source '42' is not a vertex",
    ),
    (lambda g: g["edges"].append({"source": "2", "target": "0", "relation": "contains"}), "no root"),
    (lambda g: g["edges"].append({"source": "4", "target": "2", "relation": "contains"}), "two parents"),
    (lambda g: g["edges"].append({"source": "3", "target": "3", "relation": "contains"}), "contains itself"),
    (lambda g: g.__setitem__("edges", [e for e in g["edges"] if e["target"] != "1"]), "2 root vertices"),
    (lambda g: g["nodes"]["1"]["metadata"].pop("type"), "graph.nodes['1'].metadata.type"),
    (lambda g: g["nodes"]["1"]["metadata"].__setitem__("size", -1), "graph.nodes['1'].metadata.size"),
    (lambda g: g["nodes"]["1"]["metadata"].__setitem__("size", "big"), "metadata.size"),
    (lambda g: g.update(nodes={}, edges=[]), "no vertices"),
    (lambda g: g.update(nodes=[], edges=[]), "no vertices"),
    (lambda g: g.__setitem__("nodes", 3), "graph.nodes"),
    (lambda g: g.__setitem__("edges", {}), "graph.edges"),
    (lambda g: g["edges"].append("x"), "graph.edges"),
]


@pytest.mark.parametrize("change,message", BAD_GRAPHS)
@pytest.mark.parametrize("as_text", [True, False])
def test_bad_graphs(change, message, as_text):
    doc = mutate(change)
    with pytest.raises(InvalidArgument) as info:
        ClusterGraph.from_jgf(json.dumps(doc) if as_text else doc)
    assert message in str(info.value)


def test_cycle_below_a_root_is_found():
    doc = small()
    # 3 and 4 (cores of node 2) are re-wired into a 2-cycle away from the root.
    doc["graph"]["edges"] = [e for e in doc["graph"]["edges"] if e["target"] not in ("3", "4")]
    doc["graph"]["edges"] += [
        {"source": "3", "target": "4", "relation": "contains"},
        {"source": "4", "target": "3", "relation": "contains"},
    ]
    with pytest.raises(InvalidArgument, match="cycle"):
        ClusterGraph.from_jgf(doc)


@pytest.mark.parametrize("text", ["", "{", "[]", '{"graph": 3}', '{"nodes": {}}', "\xff"])
def test_not_a_graph(text):
    with pytest.raises(InvalidArgument):
        ClusterGraph.from_jgf(text)


def test_read_jgf_keeps_metadata_on_request():
    data = read_jgf(
        (EXAMPLES / "cluster-io-subsystem.json").read_text(),
        keep_metadata=True,
        external={str(i): i for i in range(44)},
    )
    assert data.n == 6
    assert data.metadata[1]["mount_point"] == "/dev/shm"
    assert len(data.edge_src) == 15


@pytest.mark.parametrize("indent", [None, 2, "\t"])
def test_streaming_reader_handles_any_layout(indent):
    doc = nodes_example()
    doc["graph"]["metadata"] = {"note": "x", "nodes": [1, 2]}
    doc["extra"] = {"graph": "not this one"}
    text = json.dumps(doc, indent=indent)
    assert ClusterGraph.from_jgf(text).summary() == EXAMPLE_SUMMARY


def test_escaped_ids_and_odd_edges():
    text = json.dumps(
        {
            "graph": {
                "nodes": {
                    'r\\"0': {"label": "r", "metadata": {"type": "cluster"}},
                    "n\u00e91": {"label": "n", "metadata": {"type": "node", "size": 2.0}},
                },
                "edges": [
                    {"relation": "contains", "source": 'r\\"0', "target": "n\u00e91"},
                    {"source": 'r\\"0', "target": "n\u00e91", "relation": "in", "metadata": {"a": 1}},
                ],
            }
        },
        ensure_ascii=True,
    )
    graph = ClusterGraph.from_jgf(text)
    assert graph.summary() == {"cluster": 1, "node": 2}
    assert 'r\\"0' in graph.state.ids


def test_missing_vertex_position_in_canonical_edges():
    doc = small()
    doc["graph"]["edges"].insert(3, {"source": "1", "target": "77", "relation": "in"})
    with pytest.raises(InvalidArgument, match=r"graph.edges\[3\]: target '77' is not a vertex"):
        ClusterGraph.from_jgf(json.dumps(doc, separators=(",", ":")))


@pytest.mark.parametrize(
    "text",
    [
        '{"graph": {"nodes": {"0": {"metadata": {"type": "a"}},}, "edges": []}}',
        '{"graph": {"nodes": {"0": {"metadata": {"type": "a"}}}, "edges": [,]}}',
        '{"graph": {"nodes": {"0": {"metadata": {"type": "a"}}}, "edges": []}} x',
        '{"graph": {"nodes": {"0" {"metadata": {"type": "a"}}}}}',
        '{"graph": {"nodes": {"0": {"metadata": {"type": "a"}}}, "edges": [{"source": "0"]}}',
        '{"graph": {"nodes": [{"id": "0", "metadata": {"type": "a"}}] "edges": []}}',
        '{"graph": {"nodes": {"0": {"metadata": {"type": "a"}}}, "edges": 5}}',
        '{"graph": {"nodes": "x"}}',
        '{"graph": []}',
        '{"graf": {}}',
        '{"graph": {"nodes": [{"id": "0", "metadata": {"type": "a"}}, 3]}}',
    ],
)
def test_malformed_text(text):
    with pytest.raises(InvalidArgument):
        ClusterGraph.from_jgf(text)


@pytest.mark.parametrize("bad", [["core"], {"a": 1}, 3, "", None, True])
def test_bad_vertex_types_in_text(bad):
    doc = small()
    doc["graph"]["nodes"]["1"]["metadata"]["type"] = bad
    with pytest.raises(InvalidArgument, match=r"graph.nodes\['1'\].metadata.type"):
        ClusterGraph.from_jgf(json.dumps(doc))


@pytest.mark.parametrize("size,ok", [(True, False), (2.0, True), (2.5, False), (0, True), ("1", False)])
def test_vertex_sizes_in_text(size, ok):
    doc = small()
    doc["graph"]["nodes"]["3"]["metadata"]["size"] = size
    if ok:
        assert ClusterGraph.from_jgf(json.dumps(doc)).summary()["core"] == 3 + int(size)
    else:
        with pytest.raises(InvalidArgument, match="size"):
            ClusterGraph.from_jgf(json.dumps(doc))


def test_duplicate_vertex_ids_in_text():
    text = json.dumps(small())
    text = text.replace('"nodes": {', '"nodes": {"1": {"label": "1", "metadata": {"type": "x"}}, ', 1)
    with pytest.raises(InvalidArgument, match="duplicate"):
        ClusterGraph.from_jgf(text)


def test_vertex_and_edge_limits_stop_reading():
    text = (EXAMPLES / "cluster-nodes.json").read_text()
    for source in (text, json.loads(text)):
        with pytest.raises(ResourceExhausted, match="more than 10 vertices"):
            ClusterGraph.from_jgf(source, max_vertices=10)
        with pytest.raises(ResourceExhausted, match="more than 5 edges"):
            ClusterGraph.from_jgf(source, max_edges=5)
        assert ClusterGraph.from_jgf(source, max_vertices=44).n_vertices == 44
