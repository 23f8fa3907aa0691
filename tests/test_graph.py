"""Subsystems on a cluster graph: validation before mutation, replace, remove."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from rainbow.errors import InvalidArgument
from rainbow.graph import ClusterGraph, match
from rainbow.jobspec import parse_jobspec

EXAMPLES = Path(__file__).parent / "data" / "examples"


@pytest.fixture
def graph() -> ClusterGraph:
    return ClusterGraph.from_jgf((EXAMPLES / "cluster-nodes.json").read_text(), name="keebler")


def io_doc() -> dict:
    return json.loads((EXAMPLES / "cluster-io-subsystem.json").read_text())


def test_add_and_remove_subsystem(graph):
    graph.add_subsystem("io", (EXAMPLES / "cluster-io-subsystem.json").read_text())
    assert graph.subsystems == ["io"]
    io = graph.subsystem("io")
    assert io is not None and io.links[graph.state.ids.index("2")] == (1, 2, 3, 4, 5)
    assert io.summary()["mtl2unit"] == 4
    assert graph.remove_subsystem("io") is True
    assert graph.remove_subsystem("io") is False
    assert graph.subsystems == []


def test_replace_subsystem(graph):
    graph.add_subsystem("io", io_doc())
    doc = io_doc()
    doc["graph"]["edges"] = [e for e in doc["graph"]["edges"] if "16" not in (e["source"], e["target"])]
    graph.add_subsystem("io", doc)
    assert graph.state.ids.index("16") not in graph.subsystem("io").links
    assert graph.subsystems == ["io"]


def bad(change):
    doc = io_doc()
    change(doc["graph"])
    return doc


BAD = [
    (
        lambda g: g["edges"].append({"source": "999", "target": "io1", "relation": "contains"}),
        "'999' is not a vertex",
    ),
    (
        lambda g: g["edges"].append({"source": "2", "target": "io9", "relation": "contains"}),
        "'io9' is not a vertex",
    ),
    (lambda g: g["nodes"].__setitem__("io6", {"label": "io6", "metadata": {"type": "ssd"}}), "unlinked"),
    (lambda g: g["nodes"].__setitem__("2", {"label": "2", "metadata": {"type": "ssd"}}), "collides"),
    (lambda g: g["edges"].append({"source": "io1", "target": "2", "relation": "contains"}), "cannot contain"),
    (
        lambda g: g["edges"].extend(
            [
                {"source": "io1", "target": "io2", "relation": "contains"},
                {"source": "io2", "target": "io1", "relation": "contains"},
            ]
        ),
        "cycle",
    ),
    (lambda g: g["nodes"]["io1"]["metadata"].pop("type"), "metadata.type"),
]


@pytest.mark.parametrize("change,message", BAD)
def test_bad_subsystems_leave_the_graph_unchanged(graph, change, message):
    graph.add_subsystem("io", io_doc())
    before = graph.state
    with pytest.raises(InvalidArgument) as info:
        graph.add_subsystem("io", bad(change))
    assert message in str(info.value)
    assert graph.state is before
    assert graph.subsystem("io").links[graph.state.ids.index("2")] == (1, 2, 3, 4, 5)


def test_subsystem_name_required(graph):
    with pytest.raises(InvalidArgument):
        graph.add_subsystem("", io_doc())


def test_subsystem_root_may_stand_alone(graph):
    doc = io_doc()
    assert not any(e["target"] == "io0" for e in doc["graph"]["edges"])
    graph.add_subsystem("io", doc)


def test_concurrent_matching_while_subsystems_change(graph):

    io_spec = parse_jobspec((EXAMPLES / "jobspec-io.yaml").read_text())
    plain = parse_jobspec((EXAMPLES / "jobspec-constraint.yaml").read_text())
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                assert match(graph, plain).ok
                result = match(graph, io_spec)
                assert result.ok or result.reason == "no node with io type=shm"
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for _ in range(20):
        graph.add_subsystem("io", io_doc())
        graph.remove_subsystem("io")
    stop.set()
    for t in threads:
        t.join()
    assert not errors
