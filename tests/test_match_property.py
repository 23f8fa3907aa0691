"""Property tests: the fast matcher agrees with the brute-force reference.

Random small graphs (nested and repeated subtrees, sizes, nested same-type
vertices, a subsystem with versions) and random jobspecs (several groups, with,
replicas, slots, requires by equality and range).  The default run is short;
for a long one set ``RAINBOW_MATCH_EXAMPLES`` (e.g. ``RAINBOW_MATCH_EXAMPLES=20000``).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rainbow.graph import ClusterGraph, compile_plan, get_match_algorithm, match
from rainbow.graph.match import _decide
from rainbow.graph.reference import BudgetExceeded, reference_match
from rainbow.graph.synthetic import Vertex, subsystem_jgf, tree_jgf
from rainbow.jobspec import parse_jobspec
from rainbow.queues import QueueSet

EXAMPLES = int(os.environ.get("RAINBOW_MATCH_EXAMPLES", "200"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

TYPES = ["rack", "node", "socket", "core", "gpu", "memory"]
LEAVES = ["core", "gpu", "memory"]
VERSIONS = ["0.5", "1", "1.2.3", "2.0.1", "3.1", "not-a-version", "1.2.3-rc1"]
FEATURES = ["shm", "nvme", "gpfs"]


@st.composite
def subtrees(draw, depth: int = 0) -> Vertex:
    if depth >= 3 or draw(st.integers(0, 3)) == 0:
        kind = draw(st.sampled_from([*LEAVES, "node"]))
        size = draw(st.sampled_from([1, 1, 1, 2, 3])) if kind in ("memory", "gpu") else 1
        return Vertex(kind, size=size, extra=draw(node_properties()) if kind == "node" else {})
    kind = draw(st.sampled_from([*TYPES[:3], "node", "socket"]))
    templates = draw(st.lists(subtrees(depth + 1), min_size=1, max_size=2))
    children: list[Vertex] = []
    for template in templates:
        children.extend([template] * draw(st.integers(1, 3)))
    extra = draw(node_properties()) if kind == "node" else {}
    return Vertex(kind, size=draw(st.sampled_from([1, 1, 1, 1, 2])), children=children, extra=extra)


PROPERTIES = ["pdebug", "pbatch", "gpu"]


@st.composite
def node_properties(draw) -> dict:
    names = draw(st.lists(st.sampled_from(PROPERTIES), max_size=2, unique=True))
    return {"properties": {name: "" for name in names}} if names else {}


def numbered(doc: dict) -> dict:
    """Give node vertices distinct broker ranks (by id order), as a Flux registration does."""
    nodes = doc["graph"]["nodes"]
    metas = [n["metadata"] for n in (nodes.values() if isinstance(nodes, dict) else nodes)]
    rank = 0
    for meta in metas:
        if meta["type"] == "node":
            meta["rank"] = rank
            rank += 1
    return doc


def count_vertices(v: Vertex) -> int:
    return 1 + sum(count_vertices(c) for c in v.children)


@st.composite
def graphs(draw) -> ClusterGraph:
    root = Vertex("cluster", children=draw(st.lists(subtrees(1), min_size=1, max_size=4)))
    assume(count_vertices(root) <= 40)
    doc, order = tree_jgf(root, dialect=draw(st.sampled_from(["rainbow", "fluxion"])))
    graph = ClusterGraph.from_jgf(numbered(doc))
    if draw(st.booleans()):
        features = [
            {"type": draw(st.sampled_from(FEATURES)), "version": draw(st.sampled_from(VERSIONS))}
            for _ in range(draw(st.integers(1, 4)))
        ]
        links = set()
        for number in range(1, len(features) + 1):
            for vid in draw(st.lists(st.integers(0, len(order) - 1), min_size=1, max_size=6)):
                links.add((str(vid), number))
        graph.add_subsystem("feat", subsystem_jgf("feat", features, sorted(links)))
    return graph


@st.composite
def requires(draw) -> list[dict]:
    out = []
    for _ in range(draw(st.integers(0, 2))):
        if draw(st.booleans()):
            out.append({"name": "feat", "field": "type", "match": draw(st.sampled_from(FEATURES))})
        else:
            entry = {"name": "feat", "field": "version"}
            bounds = draw(st.sampled_from(["min", "max", "both"]))
            lo, hi = sorted(
                draw(st.lists(st.sampled_from(VERSIONS[:5]), min_size=2, max_size=2)),
                key=lambda v: tuple(int(x) for x in (v + ".0.0").split(".")[:3]),
            )
            if bounds in ("min", "both"):
                entry["min"] = lo
            if bounds in ("max", "both"):
                entry["max"] = hi
            out.append(entry)
    if draw(st.integers(0, 9)) == 0:
        out.append({"name": "nosuch", "field": "type", "match": "x"})
    return out


@st.composite
def groups(draw, depth: int = 0) -> dict:
    kind = draw(st.sampled_from(TYPES if depth < 2 else LEAVES))
    group: dict = {"type": kind}
    if draw(st.integers(0, 3)) == 0:
        group["replicas"] = draw(st.integers(1, 2))
    else:
        group["count"] = draw(st.integers(1, 3))
    if draw(st.integers(0, 2)) == 0:
        reqs = draw(requires())
        if reqs:
            group["requires"] = reqs
    if depth < 2 and draw(st.booleans()):
        group["with"] = draw(st.lists(groups(depth + 1), min_size=1, max_size=2))
    if draw(st.integers(0, 20)) == 0:
        group["type"] = "quantum"
    return group


def units(group: dict, factor: int = 1) -> int:
    here = factor * group.get("count", 1) * group.get("replicas", 1)
    return here + sum(units(c, here) for c in group.get("with", []))


@st.composite
def jobspecs(draw):
    if draw(st.integers(0, 4)) == 0:
        # Flux V1 with a slot, under a node or at the top
        inner = [{"type": "core", "count": draw(st.integers(1, 3))}]
        if draw(st.booleans()):
            inner.append({"type": "gpu", "count": draw(st.integers(1, 2))})
        slot = {"type": "slot", "count": draw(st.integers(1, 3)), "label": "task", "with": inner}
        if draw(st.booleans()):
            resources = [{"type": "node", "count": draw(st.integers(1, 3)), "with": [slot]}]
        else:
            resources = [slot]
        spec = {
            "version": 1,
            "resources": resources,
            "tasks": [{"command": ["x"], "slot": "task", "count": {"per_slot": 1}}],
        }
        return parse_jobspec(spec)
    resources = {f"g{i}": draw(groups()) for i in range(draw(st.integers(1, 3)))}
    assume(sum(units(g) for g in resources.values()) <= 14)
    return parse_jobspec({"version": 1, "resources": resources})


def agree(graph: ClusterGraph, jobspec, queues: QueueSet | None = None) -> None:
    try:
        expected = reference_match(graph, jobspec, budget=300_000, queues=queues)
    except BudgetExceeded:
        assume(False)
        return
    result = match(graph, jobspec, queues=queues)
    assert result.ok == expected, (result, jobspec.resources, jobspec.constraints, jobspec.queue)
    if not result.ok:
        assert result.reason
    if queues is None and jobspec.constraints is None:
        searched = _decide(graph.state, compile_plan(jobspec), get_match_algorithm("match"), summary=False)
        assert searched.ok == expected, (searched, jobspec.resources)


@st.composite
def constraints(draw, depth: int = 0) -> dict:
    """Random RFC 31 constraints over the test properties, node names (node0...) and ranks."""
    choice = draw(st.integers(0, 5 if depth < 2 else 2))
    if choice == 0:
        names = draw(st.lists(st.sampled_from(PROPERTIES), min_size=1, max_size=2, unique=True))
        return {"properties": [("^" + n) if draw(st.booleans()) else n for n in names]}
    if choice == 1:
        low = draw(st.integers(0, 6))
        return {"hostlist": [f"node[{low}-{low + draw(st.integers(0, 4))}]"]}
    if choice == 2:
        low = draw(st.integers(0, 6))
        return {"ranks": [f"{low}-{low + draw(st.integers(0, 4))}"]}
    op = ["and", "or", "not"][choice - 3]
    return {op: draw(st.lists(constraints(depth + 1), min_size=1, max_size=2))}


@st.composite
def queue_sets(draw) -> QueueSet:
    """No queues, or one or two with node sets, size limits, a duration limit and a default."""
    count = draw(st.integers(0, 2))
    queues = []
    for i in range(count):
        limits: dict = {"max": {}, "min": {}}
        if draw(st.booleans()):
            limits["max"]["nnodes"] = draw(st.integers(0, 4))
        if draw(st.integers(0, 3)) == 0:
            limits["max"]["ncores"] = draw(st.integers(1, 8))
        if draw(st.integers(0, 3)) == 0:
            limits["min"]["nnodes"] = draw(st.integers(1, 2))
        if draw(st.booleans()):
            limits["duration"] = draw(st.sampled_from([60, 1800]))
        queues.append(
            {
                "name": ["debug", "batch"][i],
                "default": i == count - 1 and draw(st.booleans()),
                "enabled": draw(st.integers(0, 5)) > 0,
                "requires": draw(st.lists(st.sampled_from(PROPERTIES), max_size=1)),
                "limits": limits,
                "default_duration": draw(st.sampled_from([None, 30])),
            }
        )
    return QueueSet.from_dict({"queues": queues})


def placed(jobspec, draw) -> object:
    """The jobspec with a random queue, constraint and duration in its attributes."""
    doc = jobspec.to_dict()
    section = doc.setdefault("attributes", {})
    if jobspec.dialect == "v1":
        section = section.setdefault("system", {})
    if draw(st.booleans()):
        section["constraints"] = draw(constraints())
    queue = draw(st.sampled_from([None, None, "debug", "batch", "nosuch"]))
    if queue:
        section["queue"] = queue
    section["duration"] = draw(st.sampled_from([0, 0, 30, 600, 7200]))
    return parse_jobspec(doc)


@SETTINGS
@given(graphs(), jobspecs(), queue_sets(), st.data())
def test_constraints_and_queues_agree_with_reference(graph, jobspec, queues, data):
    agree(graph, placed(jobspec, data.draw), queues)


@SETTINGS
@given(graphs(), jobspecs())
def test_fast_matcher_agrees_with_reference(graph, jobspec):
    agree(graph, jobspec)


@st.composite
def node_clusters(draw) -> ClusterGraph:
    """Flat clusters of a few heterogeneous node kinds (the shape real clusters have)."""
    kinds = draw(
        st.lists(st.tuples(st.integers(1, 4), st.integers(0, 2), st.integers(1, 4)), min_size=1, max_size=3)
    )
    nodes: list[Vertex] = []
    for cores, gpus, repeat in kinds:
        extra = draw(node_properties())
        node = Vertex("node", children=[Vertex("core")] * cores + [Vertex("gpu")] * gpus, extra=extra)
        nodes.extend([node] * repeat)
    doc, order = tree_jgf(Vertex("cluster", children=nodes))
    graph = ClusterGraph.from_jgf(numbered(doc))
    node_ids = [str(i) for i, v in enumerate(order) if v.type == "node"]
    features = [{"type": "shm", "version": "1.2"}, {"type": "nvme", "version": "2.0"}]
    links = sorted({(vid, draw(st.integers(1, 2))) for vid in draw(st.lists(st.sampled_from(node_ids)))})
    if links:
        graph.add_subsystem("feat", subsystem_jgf("feat", features, links))
    return graph


@st.composite
def node_jobspecs(draw):
    resources = {}
    for i in range(draw(st.integers(1, 3))):
        group: dict = {"type": "node", "count": draw(st.integers(1, 4))}
        inner = [{"type": "core", "count": draw(st.integers(1, 4))}]
        if draw(st.booleans()):
            inner.append({"type": "gpu", "count": draw(st.integers(1, 2))})
        group["with"] = inner
        if draw(st.integers(0, 2)) == 0:
            group["requires"] = [
                draw(
                    st.sampled_from(
                        [
                            {"name": "feat", "match": "shm"},
                            {"name": "feat", "field": "version", "min": "2"},
                            {"name": "feat", "field": "version", "max": "1.5"},
                        ]
                    )
                )
            ]
        resources[f"g{i}"] = group
    if draw(st.integers(0, 3)) == 0:
        resources["pool"] = {"type": draw(st.sampled_from(["core", "gpu"])), "count": draw(st.integers(1, 6))}
    return parse_jobspec({"version": 1, "resources": resources})


@SETTINGS
@given(node_clusters(), node_jobspecs())
def test_groups_competing_for_nodes_agree_with_reference(graph, jobspec):
    agree(graph, jobspec)


@SETTINGS
@given(node_clusters(), node_jobspecs(), queue_sets(), st.data())
def test_node_groups_with_constraints_and_queues_agree_with_reference(graph, jobspec, queues, data):
    agree(graph, placed(jobspec, data.draw), queues)
