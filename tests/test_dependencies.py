"""The pure rules of dependencies (RFC 26 schemes) and of workflow files: no server."""

from __future__ import annotations

import itertools
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rainbow.dependencies import (
    Dependency,
    ParentFacts,
    Verdict,
    find_cycle,
    from_jobspec,
    never_reason,
    parse_dependency,
    topological,
    verdict,
)
from rainbow.errors import InvalidArgument
from rainbow.jobspec import parse_jobspec, simple, with_dependencies
from rainbow.lifecycle import JobState
from rainbow.workflow import Need, Step, check_steps, load_workflow

S, W, N = Verdict.SATISFIED, Verdict.WAIT, Verdict.NEVER
RAN_OK = ParentFacts(JobState.COMPLETED, 0, True)
RAN_FAILED = ParentFacts(JobState.FAILED, 2, True)
REJECTED = ParentFacts(JobState.FAILED, None, False)  # failed before it ran (no exit code)
CANCELLED_WAITING = ParentFacts(JobState.CANCELLED, None, False)
CANCELLED_RUNNING = ParentFacts(JobState.CANCELLED, None, True)
RUNNING = ParentFacts(JobState.RUNNING, None, True)
WAITING = ParentFacts(JobState.ASSIGNED)


@pytest.mark.parametrize(("parent", "expected"), [
    # parent                 after afterany afterok afternotok afterexcept
    (WAITING,               (W, W, W, W, W)),
    (ParentFacts(JobState.DEPEND), (W, W, W, W, W)),
    (RUNNING,               (S, W, W, W, W)),
    (RAN_OK,                (S, S, S, N, N)),
    (RAN_FAILED,            (S, S, N, S, N)),
    (ParentFacts(JobState.FAILED, 1, False), (S, S, N, S, N)),  # ended too soon to be seen running
    (REJECTED,              (N, S, N, S, S)),
    (CANCELLED_WAITING,     (N, S, N, S, S)),
    (CANCELLED_RUNNING,     (S, S, N, S, S)),
    (None,                  (N, N, N, N, N)),  # the parent does not exist
])
def test_each_scheme_against_each_parent(parent, expected):
    schemes = ("after", "afterany", "afterok", "afternotok", "afterexcept")
    assert tuple(verdict(scheme, parent) for scheme in schemes) == expected
    assert verdict("afterstart", parent) == verdict("after", parent)


def test_why_a_dependency_can_never_be_satisfied():
    assert never_reason(Dependency("afterok", 1), RAN_FAILED) == (
        "dependency afterok:1 can never be satisfied: job 1 failed (exit code 2)")
    assert never_reason(Dependency("after", 4), CANCELLED_WAITING) == (
        "dependency after:4 can never be satisfied: job 4 cancelled")
    assert never_reason(Dependency("afterok", 9), None) == (
        "dependency afterok:9 can never be satisfied: job 9 does not exist")


def test_dependencies_are_parsed_as_flux_spells_them():
    assert parse_dependency("afterok:12") == Dependency("afterok", 12)
    assert parse_dependency(" AfterAny:7") == Dependency("afterany", 7)
    for bad, message in (("afterok", "scheme:JOBID"), ("after-ok:1", "unknown dependency scheme"),
                         ("afterok:x", "positive integer"), ("afterok:0", "out of range"),
                         ("afterok:3000000000", "out of range")):
        with pytest.raises(InvalidArgument, match=message):
            parse_dependency(bad)
    assert from_jobspec([{"scheme": "afterok", "value": "5"}, {"scheme": "afterok", "value": 5}]) == (
        Dependency("afterok", 5),)
    with pytest.raises(InvalidArgument, match=r"dependencies\[0\]: must be a mapping"):
        from_jobspec(["afterok:5"])
    with pytest.raises(InvalidArgument, match=r"dependencies\[0\]\.value"):
        from_jobspec([{"scheme": "afterok", "value": True}])


def test_a_jobspec_carries_its_dependencies_in_attributes_system():
    doc = with_dependencies(simple("true"), [Dependency("afterok", 3)])
    doc = with_dependencies(doc, [Dependency("afterok", 3), Dependency("afterany", 4)])
    assert doc["attributes"]["system"]["dependencies"] == [{"scheme": "afterok", "value": 3},
                                                           {"scheme": "afterany", "value": 4}]
    assert parse_jobspec(json.dumps(doc)).dependencies == (Dependency("afterok", 3), Dependency("afterany", 4))
    v1 = {"version": 1, "resources": [{"type": "slot", "count": 1, "label": "t", "with": [{"type": "core",
          "count": 1}]}], "tasks": [{"command": ["true"], "slot": "t", "count": {"per_slot": 1}}],
          "attributes": {"system": {"dependencies": [{"scheme": "afternotok", "value": 9}]}}}
    assert parse_jobspec(v1).dependencies == (Dependency("afternotok", 9),)
    with pytest.raises(InvalidArgument, match="unknown dependency scheme"):
        parse_jobspec({**v1, "attributes": {"system": {"dependencies": [{"scheme": "before", "value": 9}]}}})


def test_cycles_are_found_and_orders_follow_needs():
    assert find_cycle({"a": ["b"], "b": ["c"], "c": []}) is None
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle({"x": [], "a": ["b"], "b": ["b"]}) == ["b", "b"]
    assert topological({"d": ["b", "c"], "b": ["a"], "c": ["a"], "a": []}) == ["a", "b", "c", "d"]


@given(st.dictionaries(st.integers(0, 30), st.sets(st.integers(0, 30), max_size=4), max_size=30))
def test_a_graph_has_a_cycle_or_an_order_where_each_node_follows_its_needs(raw):
    edges = {str(k): [str(v) for v in sorted(vs)] for k, vs in raw.items()}
    for targets in list(edges.values()):
        for target in targets:
            edges.setdefault(target, [])
    cycle = find_cycle(edges)
    if cycle is not None:
        assert cycle[0] == cycle[-1]
        assert all(b in edges[a] for a, b in itertools.pairwise(cycle))
        return
    order = topological(edges)
    assert sorted(order) == sorted(edges)
    position = {node: i for i, node in enumerate(order)}
    assert all(position[need] < position[node] for node, needs in edges.items() for need in needs)


def test_workflow_files_are_checked_whole(tmp_path):
    (tmp_path / "post.yaml").write_text("version: 1\nresources:\n  n: {type: node, with: [{type: core}]}\n"
                                        "task: {command: [post], resources: n}\n")
    (tmp_path / "wf.yaml").write_text("steps:\n  sim: {command: ./sim, nodes: 2, gpus: 1}\n"
                                      "  post: {jobspec: post.yaml, needs: sim}\n")
    name, steps = load_workflow(tmp_path / "wf.yaml")
    assert name == "wf" and [s.name for s in steps] == ["sim", "post"]
    assert steps[1].needs == (Need("sim", "afterok"),)
    sim = parse_jobspec(steps[0].jobspec)
    assert sim.name == "sim" and [(r.type, r.count) for r in sim.resources[0].with_] == [("core", 1), ("gpu", 1)]
    assert sim.resources[0].count == 2
    assert parse_jobspec(steps[1].jobspec).command == ["post"]
    for text, message in (
        ("steps: {}", "steps: {} should be non-empty"),
        ("steps: {a: {command: x, nodes: 0}}", "steps.a.nodes: 0 is less than the minimum of 1"),
        ("steps: {a: {command: x, jobspec: y.yaml}}", "steps.a: give either command"),
        ("steps: {a: {nodes: 2}}", "steps.a: give either command"),
        ("steps: {a: {command: x, color: red}}", "steps.a"),
        ("steps: {a: {jobspec: missing.yaml}}", "steps.a.jobspec: cannot read missing.yaml"),
        ("steps: {'a b': {command: x}}", "a step name is letters"),
        ("steps: {a: {command: x, needs: a}}", "needs itself"),
        ("steps: [a]", "steps: ['a'] is not of type 'object'"),
        ("steps: {a: {command: x}\n", "not valid YAML"),
    ):
        with pytest.raises(InvalidArgument, match=re.escape(message)):
            load_workflow(text, base=tmp_path)


def test_steps_from_the_wire_are_checked_the_same_way():
    spec = json.dumps(simple("true"))
    assert check_steps([Step("b", spec, (Need("a"),)), Step("a", spec)]) == [1, 0]
    with pytest.raises(InvalidArgument, match="at least one step"):
        check_steps([])
    with pytest.raises(InvalidArgument, match=r"steps\[0\]\.needs\[0\]\.scheme"):
        check_steps([Step("b", spec, (Need("a", "whenever"),)), Step("a", spec)])
