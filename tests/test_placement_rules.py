"""Placement the local Flux accepts: constraints, durations, queues and their explanations.

The queue setup is the one of the real capture in
tests/data/examples/flux/queues-and-rejections.json (tioga, 16 nodes, pdebug on
tioga[1-4], pbatch on tioga[5-16], a debug queue of at most 2 nodes and 30
minutes, a default batch queue).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from rainbow.constraints import Constraint, NodeLabel, parse_requires, to_text, validate_constraint
from rainbow.durations import format_duration, parse_duration
from rainbow.errors import InvalidArgument
from rainbow.flux.resources import r_to_jgf
from rainbow.graph import ClusterGraph, match, satisfy
from rainbow.jobspec import parse_jobspec, to_flux_v1
from rainbow.queues import QueueSet

DATA = Path(__file__).parent / "data" / "examples" / "flux"
CAPTURE = json.loads((DATA / "queues-and-rejections.json").read_text())
R16 = json.loads((DATA / "R-16node-gpus.json").read_text())

TIOGA_QUEUES = {
    "queues": [
        {"name": "debug", "default": False, "requires": ["pdebug"], "limits": {"max": {"nnodes": 2}, "duration": 1800}},
        {"name": "batch", "default": True, "requires": ["pbatch"]},
    ]
}


def cluster(name: str, queues: dict | None = None) -> ClusterGraph:
    jgf = r_to_jgf(R16, name)
    if queues is not None:
        jgf["graph"]["metadata"] = queues
    return ClusterGraph.from_jgf(json.dumps(jgf), name=name)


def v1(nodes: int, gpus: int = 0, **system) -> dict:
    inner = [{"type": "core", "count": 1}] + ([{"type": "gpu", "count": gpus}] if gpus else [])
    return {
        "version": 1,
        "resources": [{"type": "node", "count": nodes, "with": [{"type": "slot", "count": 1, "label": "task",
                                                                   "with": inner}]}],
        "tasks": [{"command": ["hostname"], "slot": "task", "count": {"per_slot": 1}}],
        "attributes": {"system": system},
    }


def nextgen(nodes: int, **attributes) -> dict:
    return {
        "version": 1,
        "resources": {"work": {"type": "node", "replicas": nodes, "with": [{"type": "core", "count": 1}]}},
        "tasks": [{"command": ["hostname"], "resources": "work"}],
        "attributes": attributes,
    }


# -- RFC 35 -> RFC 31 ------------------------------------------------------------


@pytest.mark.parametrize("text", sorted(CAPTURE["RFC35 -> RFC31 (flux submit --requires)"]))
def test_requires_text_becomes_what_flux_submit_sends(text):
    assert parse_requires(text) == CAPTURE["RFC35 -> RFC31 (flux submit --requires)"][text]


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("", {}),
        ("a b", {"and": [{"properties": ["a"]}, {"properties": ["b"]}]}),
        ("a && (b || not c)", {"and": [{"properties": ["a"]},
                                       {"or": [{"properties": ["b"]}, {"not": [{"properties": ["c"]}]}]}]}),
        ("properties:x or rank:4", {"or": [{"properties": ["x"]}, {"ranks": ["4"]}]}),
        ("- x -rank:0-3", {"and": [{"not": [{"properties": ["x"]}]}, {"not": [{"ranks": ["0-3"]}]}]}),
        # as flux-core reads them: `!` is no operator and keywords are lower case
        ("!x", {"properties": ["!x"]}),
        ("NOT x", {"and": [{"properties": ["NOT"]}, {"properties": ["x"]}]}),
        ("hosts:'n[1-2]'", {"hostlist": ["n[1-2]"]}),
    ],
)
def test_requires_grammar(text, tree):
    assert parse_requires(text) == tree
    if tree:
        assert parse_requires(to_text(tree)) == tree or Constraint(parse_requires(to_text(tree))).key


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a and", "a term is missing"),
        ("(a", "missing ')'"),
        ("a )", "unexpected ')'"),
        ("color:red", "unknown constraint operator 'color'"),
        ("property:x", "unknown constraint operator 'property'"),
        ("HOST:n1", "unknown constraint operator 'HOST'"),
        ("!host:n1", "unknown constraint operator '!host'"),
        ("-(a|b)", "'-' negates one term (use 'not' for an expression)"),
        ("--a", "'-' negates one term"),
        ("host:", "has no value"),
        ("a^b", "is not a property name"),
        ("(" * 5000 + "a" + ")" * 5000, "nested too deeply"),
    ],
)
def test_bad_requires_text_is_refused_with_the_field(text, message):
    with pytest.raises(InvalidArgument, match=re.escape(message)) as caught:
        parse_requires(text, "requires")
    assert caught.value.field == "requires"


@pytest.mark.parametrize(
    ("tree", "field"),
    [
        ({"color": ["x"]}, "c"),
        ({"properties": "x"}, "c.properties"),
        ({"and": [{"hostlist": ["n[3-1]"]}]}, "c.and[0].hostlist[0]"),
        ({"ranks": ["x-y"]}, "c.ranks[0]"),
        ({"properties": ["a"], "ranks": ["1"]}, "c"),
        ({"ranks": ["0-4000000000"]}, "c.ranks[0]"),
        ({"or": [{"hostlist": ["n[0-999]x[0-999]"]}]}, "c.or[0].hostlist[0]"),
    ],
)
def test_bad_rfc31_names_the_field(tree, field):
    with pytest.raises(InvalidArgument) as caught:
        validate_constraint(tree, "c")
    assert caught.value.field == field


def test_constraint_evaluation_on_properties_hosts_and_ranks():
    node = NodeLabel(properties=frozenset({"pdebug", "gpu"}), hostname="tioga3", rank=2)
    allows = [
        ({}, True),
        ({"properties": ["pdebug", "gpu"]}, True),
        ({"properties": ["pdebug", "^gpu"]}, False),
        ({"hostlist": ["tioga[1-4]"]}, True),
        ({"hostlist": ["tioga[5-16]", "login1"]}, False),
        ({"ranks": ["0-1", "2"]}, True),
        ({"ranks": ["4-15"]}, False),
        ({"or": [{"ranks": ["9"]}, {"properties": ["gpu"]}]}, True),
        ({"not": [{"properties": ["pdebug"]}, {"ranks": ["2"]}]}, False),
        ({"not": [{"properties": ["pdebug"]}, {"ranks": ["3"]}]}, True),
        ({"and": [{"properties": ["pdebug"]}, {"not": [{"hostlist": ["tioga3"]}]}]}, False),
    ]
    for tree, expected in allows:
        assert Constraint(tree).allows(node) is expected, tree


# -- durations --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30m", 1800), ("2h", 7200), ("1.5d", 129600), ("90", 90), ("45s", 45), ("0", 0), ("inf", math.inf),
     ("unlimited", math.inf), (".5m", 30)],
)
def test_flux_durations_parse(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "-5m", "3w", "1h30m", "abc"])
def test_bad_durations_name_the_field(text):
    with pytest.raises(InvalidArgument) as caught:
        parse_duration(text, "time_limit")
    assert caught.value.field == "time_limit"


@pytest.mark.parametrize(
    ("seconds", "text"), [(1800, "30m"), (7200, "2h"), (129600, "1.5d"), (45, "45s"), (5400, "1.5h"),
                          (math.inf, "unlimited")]
)
def test_flux_durations_format(seconds, text):
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


# -- jobspecs ---------------------------------------------------------------------


def test_v1_jobspec_carries_queue_constraints_and_duration():
    spec = parse_jobspec(v1(2, queue="debug", duration=600.0, constraints={"properties": ["pdebug"]}))
    assert (spec.queue, spec.duration, spec.constraints) == ("debug", 600.0, {"properties": ["pdebug"]})


def test_nextgen_jobspec_maps_to_the_same_fields_and_converts_to_flux():
    spec = parse_jobspec(nextgen(2, queue="debug", duration=600, constraints={"hostlist": ["tioga[1-2]"]}))
    assert (spec.queue, spec.duration, spec.constraints) == ("debug", 600.0, {"hostlist": ["tioga[1-2]"]})
    system = to_flux_v1(spec)["attributes"]["system"]
    assert system["queue"] == "debug"
    assert system["duration"] == 600.0
    assert system["constraints"] == {"hostlist": ["tioga[1-2]"]}


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (v1(1, constraints={"ranks": ["z"]}), "attributes.system.constraints.ranks[0]"),
        (v1(1, queue=""), "attributes.system.queue"),
        (nextgen(1, constraints={"nope": []}), "attributes.constraints"),
        (nextgen(1, queue=5), "attributes.queue"),
    ],
)
def test_bad_placement_fields_name_the_field(spec, field):
    with pytest.raises(InvalidArgument) as caught:
        parse_jobspec(spec)
    assert caught.value.field == field


# -- matching and explanations -----------------------------------------------------


@pytest.fixture(scope="module")
def tioga() -> ClusterGraph:
    return cluster("tioga", TIOGA_QUEUES)


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        (v1(4, queue="debug", duration=60.0), "queue 'debug' allows at most 2 nodes, job needs 4"),
        (v1(2, queue="debug", duration=7200.0), "duration 2h exceeds queue 'debug' limit 30m"),
        (v1(2, queue="debug"), "duration unlimited exceeds queue 'debug' limit 30m"),
        (v1(13), "13 nodes with property 'pbatch' needed, 12 have it"),
        (v1(5, constraints={"properties": ["pdebug"]}, queue="debug", duration=60.0),
         "queue 'debug' allows at most 2 nodes, job needs 5"),
        (v1(2, constraints={"properties": ["pdebug"]}),
         "2 nodes matching 'pbatch and pdebug' needed, 0 have it"),
        (v1(3, queue="batch", constraints={"hostlist": ["tioga[5-6]"]}),
         "3 nodes matching 'pbatch and host:tioga[5-6]' needed, 2 have it"),
        (v1(1, queue="nosuch"), "no queue 'nosuch'"),
        (v1(2, gpus=9), "needs 2 nodes with 1 core, 9 gpus, has 0 on the 12 nodes with property 'pbatch'"),
    ],
)
def test_refusals_say_exactly_why(tioga, spec, reason):
    result = match(tioga, parse_jobspec(spec))
    assert not result.ok
    assert result.reason == reason


@pytest.mark.parametrize(
    "spec",
    [
        v1(2, queue="debug", duration=1800.0),
        v1(12),
        v1(12, queue="batch", constraints={"properties": ["^pdebug"]}),
        v1(1, queue="debug", duration=60.0, constraints={"ranks": ["3"]}),
        nextgen(2, queue="debug", duration=60),
    ],
)
def test_jobs_within_the_rules_match(tioga, spec):
    assert match(tioga, parse_jobspec(spec)).ok


def test_a_cluster_without_queues_has_one_unlimited_anonymous_queue():
    keebler = cluster("keebler")
    assert keebler.queues.anonymous
    assert match(keebler, parse_jobspec(v1(16))).ok
    assert match(keebler, parse_jobspec(v1(4, constraints={"properties": ["pdebug"]}))).ok
    refused = match(keebler, parse_jobspec(v1(5, constraints={"properties": ["pdebug"]})))
    assert refused.reason == "5 nodes with property 'pdebug' needed, 4 have it"
    assert match(keebler, parse_jobspec(v1(1, queue="debug"))).describe("keebler") == "keebler: no queue 'debug'"


def test_disabled_queue_and_missing_default_refuse():
    queues = QueueSet.from_dict(
        {"queues": [{"name": "batch", "enabled": False, "reason": "closed for maintenance", "default": False},
                    {"name": "debug", "default": False}]}
    )
    graph = cluster("tioga")
    assert match(graph, parse_jobspec(v1(1, queue="batch")), queues=queues).reason == (
        "queue 'batch' is disabled: closed for maintenance"
    )
    assert match(graph, parse_jobspec(v1(1)), queues=queues).reason == "no default queue; name one of 'batch', 'debug'"
    assert match(graph, parse_jobspec(v1(1, queue="debug")), queues=queues).ok


def test_min_limits_and_default_duration():
    queues = QueueSet.from_dict(
        {"queues": [{"name": "wide", "limits": {"min": {"nnodes": 4}, "max": {"ngpus": 8}, "duration": 600},
                     "default_duration": 300}]}
    )
    graph = cluster("tioga")
    assert match(graph, parse_jobspec(v1(2)), queues=queues).reason == (
        "queue 'wide' needs at least 4 nodes, job asks for 2"
    )
    assert match(graph, parse_jobspec(v1(8, gpus=2)), queues=queues).reason == (
        "queue 'wide' allows at most 8 GPUs, job needs 16"
    )
    assert match(graph, parse_jobspec(v1(4)), queues=queues).ok  # the default 5m is within 10m


def test_satisfy_takes_queues_per_cluster(tioga):
    keebler = cluster("keebler")
    results = satisfy({"tioga": tioga, "keebler": keebler}, parse_jobspec(v1(2, queue="debug", duration=60.0)))
    assert results["tioga"].ok
    assert results["keebler"].reason == "no queue 'debug'"
    swapped = satisfy({"tioga": tioga}, parse_jobspec(v1(2, queue="debug", duration=60.0)),
                      queues={"tioga": QueueSet()})
    assert swapped["tioga"].reason == "no queue 'debug'"


def test_queue_descriptions_round_trip_and_bad_ones_are_refused_at_registration():
    queues = QueueSet.from_dict(TIOGA_QUEUES)
    assert QueueSet.from_json(queues.to_json()) == queues
    jgf = r_to_jgf(R16, "tioga")
    jgf["graph"]["metadata"] = {"queues": [{"name": "a", "limits": {"max": {"nnodes": -1}}}]}
    with pytest.raises(InvalidArgument) as caught:
        ClusterGraph.from_jgf(json.dumps(jgf))
    assert caught.value.field == "graph.metadata.queues[0].limits.max.nnodes"


def test_graph_metadata_that_is_not_an_object_is_ignored_as_before():
    jgf = r_to_jgf(R16, "old")
    jgf["graph"]["metadata"] = ["anything"]
    for source in (jgf, json.dumps(jgf)):
        assert ClusterGraph.from_jgf(source).queues.anonymous
