"""Jobspecs that differ only in their commands: one full parse per command shape, the others take its parse.

``with_commands`` must give exactly what ``parse_jobspec`` gives, and never
accept a command that the full parse would refuse.
"""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest

from rainbow.errors import InvalidArgument
from rainbow.jobspec import MAX_NODES, command_shape, copy_with, load_json, parse_jobspec, simple, with_commands
from rainbow.scheduler.context import SchedulerContext
from rainbow.scheduler.placement import Placer
from rainbow.scheduler.registry import ClusterRegistry
from rainbow.selection import get_selector
from rainbow.store.sqlite import SQLiteStore

V1 = {
    "version": 1,
    "resources": [{"type": "node", "count": 1, "with": [
        {"type": "slot", "count": 1, "label": "task", "with": [{"type": "core", "count": 2}]}]}],
    "tasks": [{"command": ["app", "--case=1"], "slot": "task", "count": {"per_slot": 1}}],
    "attributes": {"system": {"duration": 60, "job": {"name": "v1-job"}}},
}
NEXTGEN_STRING = {
    "version": 1,
    "resources": {"spack": {"type": "node", "count": 1, "with": [{"type": "core", "count": 1}]}},
    "task": {"command": "app --case=1", "resources": "spack"},
}
TWO_TASKS = {
    "version": 1,
    "resources": {"a": {"type": "node"}, "b": {"type": "core", "count": 2}},
    "tasks": [{"command": ["first", "1"], "resources": "a"}, {"command": ["second"], "resources": "b"}],
}
DOCS = [simple(["app", "--seed=1"], nodes=2, tasks=4), V1, NEXTGEN_STRING, TWO_TASKS]


def with_command(doc: dict, *commands) -> dict:
    out = copy.deepcopy(doc)
    tasks = out["tasks"] if "tasks" in out else [out["task"]]
    for task, command in zip(tasks, commands, strict=False):
        task["command"] = command
    return out


@pytest.mark.parametrize("doc", DOCS, ids=["nextgen", "v1", "nextgen-string", "two-tasks"])
@pytest.mark.parametrize("command", [["other", "--seed=2"], ["x"], ["with space", "'quoted'", "ü"]])
def test_a_jobspec_of_the_same_shape_is_its_own_full_parse(doc, command):
    template = parse_jobspec(json.dumps(doc))
    other = with_command(doc, command)
    text = json.dumps(other)
    loaded = load_json(text)
    assert command_shape(loaded) == command_shape(load_json(json.dumps(doc)))
    fast = with_commands(template, loaded)
    full = parse_jobspec(text)
    assert fast == full
    assert fast.command == full.command == command
    assert fast.tasks == full.tasks and fast.raw == full.raw and fast.name == full.name


def test_copy_with_makes_what_dataclasses_replace_makes():
    template = parse_jobspec(json.dumps(V1))
    copied = copy_with(template, command=["app", "--case=2"])
    replaced = dataclasses.replace(template, command=["app", "--case=2"])
    assert copied == replaced and copied is not template and template.command == ["app", "--case=1"]
    assert vars(copied) == vars(replaced) and copied._cache is template._cache
    with pytest.raises(dataclasses.FrozenInstanceError):
        copied.command = []  # type: ignore[misc]
    assert copy_with(template, _cache={})._cache == {} and template._cache is not copy_with(template, _cache={})._cache


def test_a_string_command_takes_the_same_path_in_nextgen():
    template = parse_jobspec(json.dumps(NEXTGEN_STRING))
    doc = load_json(json.dumps(with_command(NEXTGEN_STRING, "run 'a b' c")))
    assert with_commands(template, doc) == parse_jobspec(json.dumps(doc))
    assert with_commands(template, doc).command == ["run", "a b", "c"]


@pytest.mark.parametrize("command", [[], "", 5, None, ["ok", 3], {"a": 1}])
def test_a_command_the_schema_may_refuse_takes_the_full_parse(command):
    for doc in (DOCS[0], V1):
        template = parse_jobspec(json.dumps(doc))
        assert with_commands(template, with_command(doc, command)) is None


def test_a_string_command_is_left_to_the_full_parse_in_v1():
    template = parse_jobspec(json.dumps(V1))
    assert with_commands(template, with_command(V1, "app --case=2")) is None


def test_anything_but_the_command_makes_another_shape():
    base = load_json(json.dumps(DOCS[0]))
    shape = command_shape(base)
    wider = copy.deepcopy(base)
    wider["resources"]["task-resources"]["replicas"] = 3
    assert command_shape(wider) != shape
    named = copy.deepcopy(base)
    named["tasks"][0]["name"] = "n"
    assert command_shape(named) != shape
    without = copy.deepcopy(base)
    del without["tasks"][0]["command"]
    assert command_shape(without) != shape
    assert command_shape({"tasks": "not a list"}) is None


@pytest.mark.parametrize("value", [True, 1.0, "1", None, [1], {"1": 1}])
def test_values_equal_in_python_but_not_in_json_make_another_shape(value):
    base = load_json(json.dumps(DOCS[0]))
    base["tasks"][0]["count"]["per_slot"] = 1
    other = copy.deepcopy(base)
    other["tasks"][0]["count"]["per_slot"] = value
    assert command_shape(other) != command_shape(base)
    assert command_shape(load_json(json.dumps(other))) == command_shape(other)


def test_keys_in_another_order_make_another_shape():
    base = load_json(json.dumps(DOCS[0]))
    reordered = dict(reversed(list(base.items())))
    assert reordered == base and command_shape(reordered) != command_shape(base)


def test_load_json_leaves_yaml_invalid_and_oversized_texts_to_the_full_parse():
    assert load_json("version: 1\n") is None
    assert load_json("{not json") is None
    assert load_json('["a list"]') is None
    deep = "{" + '"a":{' * 200 + "}" * 201
    assert load_json(deep) is None
    wide = json.dumps({"tasks": [{"command": ["x"] * (MAX_NODES + 1)}]})
    assert load_json(wide) is None
    with pytest.raises(InvalidArgument, match="more than"):
        parse_jobspec(wide)


@pytest.fixture
def placer(tmp_path):
    store = SQLiteStore(tmp_path / "shapes.db")
    context = SchedulerContext(store)
    yield Placer(context, ClusterRegistry(context, registration_secret="s", global_token=None), "match",
                 get_selector("random", {}))
    store.close()


def test_the_placer_places_a_sweep_by_its_first_jobspec(placer):
    first, placed_by = placer.parse_for_placement(json.dumps(simple(["app", "1"])))
    assert placed_by is first
    second, second_by = placer.parse_for_placement(json.dumps(simple(["app", "2"])))
    assert second_by is first and second.command == ["app", "2"]
    assert placer.parse_jobspec(json.dumps(simple(["app", "2"]))) is second  # the text itself is cached too
    other, other_by = placer.parse_for_placement(json.dumps(simple(["app", "3"], nodes=2, tasks=2)))
    assert other_by is other


def test_the_placer_gives_a_bad_command_the_full_parse_error(placer):
    placer.parse_for_placement(json.dumps(simple(["app", "1"])))
    bad = json.dumps(with_command(simple(["app", "1"]), []))
    with pytest.raises(InvalidArgument) as fast:
        placer.parse_for_placement(bad)
    with pytest.raises(InvalidArgument) as full:
        parse_jobspec(bad)
    assert str(fast.value) == str(full.value) and fast.value.field == full.value.field == "tasks[0].command"
