"""Jobspec parsing, validation, conversion (both dialects)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from rainbow.errors import InvalidArgument
from rainbow.jobspec import JOBSPEC_SCHEMAS, parse_jobspec, simple, to_flux_v1

EXAMPLES = Path(__file__).parent / "data" / "examples"


def flux_v1_example() -> dict:
    calls = json.loads((EXAMPLES / "flux" / "flux-python-calls.json").read_text())
    return next(v for k, v in calls.items() if k.startswith("JobspecV1.from_command"))


OLD_CLIENT = {
    "version": 1,
    "resources": {
        "task-resources": {
            "type": "rack",
            "replicas": 1,
            "label": "hello",
            "with": {"type": "node", "count": 2, "with": {"type": "core", "count": 4}},
        }
    },
    "tasks": [{"command": ["echo", "hi"], "resources": "task-resources", "count": {"per_slot": 1}}],
}


def test_nextgen_io_example():
    js = parse_jobspec((EXAMPLES / "jobspec-io.yaml").read_text())
    assert js.dialect == "nextgen"
    (top,) = js.resources
    assert (top.type, top.count, top.replicas) == ("node", 1, 1)
    assert top.requires[0].subsystem == "io" and top.requires[0].value == "shm"
    assert [(c.type, c.count) for c in top.with_] == [("core", 2)]
    assert js.command == ["ior"]
    assert js.name == "ior"


def test_nextgen_constraint_example_parameters():
    js = parse_jobspec((EXAMPLES / "jobspec-constraint.yaml").read_text())
    assert js.parameters == {"seconds_per_gb": 0.4}
    assert js.resources[0].count == 2  # replicas 2
    assert js.tasks[0]["resources"] == "spack"


def test_old_client_simple_jobspec_with_dict_with():
    js = parse_jobspec(json.dumps(OLD_CLIENT))
    rack = js.resources[0]
    assert rack.type == "rack" and rack.label == "hello"
    node = rack.with_[0]
    assert (node.type, node.count, node.with_[0].type, node.with_[0].count) == ("node", 2, "core", 4)
    assert js.name == "hello"


def test_flux_v1_from_command():
    js = parse_jobspec(flux_v1_example())
    assert js.dialect == "v1"
    (node,) = js.resources
    assert (node.type, node.count) == ("node", 2)
    assert [(c.type, c.count) for c in node.with_] == [("core", 1)]
    assert js.command == ["hostname"]
    assert to_flux_v1(js) == flux_v1_example()


def test_v1_top_level_slot_multiplies():
    js = parse_jobspec(
        {
            "version": 1,
            "resources": [
                {"type": "slot", "count": 3, "label": "task", "with": [{"type": "core", "count": 2}]}
            ],
            "tasks": [{"command": ["a"], "slot": "task", "count": {"total": 3}}],
        }
    )
    assert [(r.type, r.count) for r in js.resources] == [("core", 6)]


def test_yaml_and_json_agree():
    text = yaml.safe_dump(OLD_CLIENT)
    assert parse_jobspec(text).resources == parse_jobspec(json.dumps(OLD_CLIENT)).resources
    assert parse_jobspec(json.dumps(OLD_CLIENT).encode()).resources == parse_jobspec(OLD_CLIENT).resources


def test_round_trips():
    js = parse_jobspec(OLD_CLIENT)
    for text in (js.to_json(), js.to_yaml()):
        assert parse_jobspec(text).resources == js.resources
    assert js.to_dict() == OLD_CLIENT


def test_simple_is_node_level():
    spec = simple("hostname -f", nodes=2, tasks=4, name="hi")
    js = parse_jobspec(spec)
    (top,) = js.resources
    assert (top.type, top.count, top.with_[0].type, top.with_[0].count) == ("node", 2, "core", 2)
    assert js.command == ["hostname", "-f"]
    assert js.name == "hi"
    v1 = to_flux_v1(js)
    assert v1["resources"][0]["type"] == "node" and v1["resources"][0]["count"] == 2
    slot = v1["resources"][0]["with"][0]
    assert slot["type"] == "slot" and slot["with"] == [{"type": "core", "count": 2}]
    assert v1["tasks"] == [{"command": ["hostname", "-f"], "slot": "task", "count": {"per_slot": 2}}]
    assert parse_jobspec(v1).dialect == "v1"


def test_simple_uneven_tasks_use_total():
    spec = simple(["a"], nodes=2, tasks=3)
    assert spec["tasks"][0]["count"] == {"total": 3}
    assert spec["resources"]["task-resources"]["with"][0]["count"] == 2


@pytest.mark.parametrize("nodes,tasks", [(0, 1), (1, 0), (3, 2), (-1, 5)])
def test_simple_rejects_bad_counts(nodes, tasks):
    with pytest.raises(InvalidArgument):
        simple("a", nodes=nodes, tasks=tasks)


def test_to_flux_v1_flattens_rack_and_sockets():
    js = parse_jobspec(
        {
            "version": 1,
            "resources": {
                "g": {
                    "type": "rack",
                    "count": 2,
                    "with": [
                        {
                            "type": "node",
                            "count": 3,
                            "with": [
                                {"type": "socket", "count": 2, "with": [{"type": "core", "count": 4}]},
                                {"type": "gpu", "count": 1},
                                {"type": "memory", "count": 64},
                            ],
                        }
                    ],
                }
            },
            "tasks": [{"command": "run it", "resources": "g"}],
            "attributes": {"duration": 30, "cwd": "/tmp"},
        }
    )
    v1 = to_flux_v1(js)
    assert v1["resources"] == [
        {
            "type": "node",
            "count": 6,
            "with": [
                {
                    "type": "slot",
                    "count": 1,
                    "label": "task",
                    "with": [{"type": "core", "count": 8}, {"type": "gpu", "count": 1}],
                }
            ],
        }
    ]
    assert v1["attributes"]["system"]["duration"] == 30.0
    assert v1["attributes"]["system"]["cwd"] == "/tmp"
    assert v1["tasks"][0]["command"] == ["run", "it"]


def test_to_flux_v1_core_only_group():
    js = parse_jobspec({"version": 1, "resources": {"g": {"type": "core", "replicas": 4, "count": 2}}})
    assert to_flux_v1(js)["resources"] == [
        {"type": "slot", "count": 4, "label": "task", "with": [{"type": "core", "count": 2}]}
    ]


def test_to_flux_v1_rejects_several_groups():
    js = parse_jobspec({"version": 1, "resources": {"a": {"type": "node"}, "b": {"type": "node"}}})
    with pytest.raises(InvalidArgument, match="resource groups"):
        to_flux_v1(js)


def test_flux_jobspec_accepts_conversion():
    flux_job = pytest.importorskip("flux.job")
    v1 = to_flux_v1(parse_jobspec(simple("hostname", nodes=2, tasks=2)))
    flux_job.JobspecV1(**v1)


NODE = "version: 1\nresources:\n  ior:\n    type: node\n"
REQ = NODE + "    requires:\n"

BAD = [
    (
        NODE + "    with:\n    - type: core\n      count: 0\n",
        "resources.ior.with[0].count: must be >= 1",
    ),
    (
        NODE + "    with:\n      type: core\n      count: -2\n",
        "resources.ior.with.count: must be >= 1",
    ),
    (
        NODE + "    replicas: 0\n",
        "resources.ior.replicas: must be >= 1",
    ),
    (
        REQ + "    - field: type\n      match: shm\n",
        "resources.ior.requires[0]: missing required field 'name'",
    ),
    (
        REQ + "    - name: spack\n      field: version\n      min: not-a-version\n",
        "resources.ior.requires[0].min: 'not-a-version' is not a semantic version",
    ),
    (
        REQ + "    - name: spack\n      max: 1.2.3.4.5\n",
        "resources.ior.requires[0].max",
    ),
    (
        REQ + "    - name: io\n      match: shm\n      min: '1'\n",
        "not both",
    ),
    (REQ + "    - name: io\n", "needs match"),
    (
        REQ + "    - {name: s, min: '2', max: '1'}\n",
        "above max",
    ),
    (NODE + "    cout: 3\n", "resources.ior"),
    ("version: 1\nresources:\n  ior:\n    count: 3\n", "resources.ior: missing required field 'type'"),
    ("version: 1\nresources: {}\n", "resources: must not be empty"),
    ("version: 2\nresources:\n  a: {type: node}\n", "version: must be 1"),
    ("version: 1\nresources:\n  a: {type: node, count: 1.5}\n", "resources.a.count"),
    ("version: 1\nresources:\n  a: {type: node, count: true}\n", "resources.a.count"),
    (
        "version: 1\nresources:\n  a: {type: node}\ntasks:\n- {command: x, resources: b}\n",
        "tasks[0].resources: unknown resource group 'b'",
    ),
    ('{"version": 1, "resources": [{"type": "node", "count": 0, "with": []}], "tasks": []}', "resources[0]"),
    (
        '{"version": 1, "resources": [{"type": "node", "count": 1}],'
        ' "tasks": [{"command": ["a"], "slot": "s", "count": {"per_slot": 1}}]}',
        "exactly one slot",
    ),
    (
        '{"version": 1, "resources": [{"type": "slot", "count": 1, "label": "t",'
        ' "with": [{"type": "core", "count": 1}]}],'
        ' "tasks": [{"command": ["a"], "slot": "x", "count": {"per_slot": 1}}]}',
        "tasks[0].slot: unknown slot 'x'",
    ),
    ("[1, 2]", "jobspec: must be a mapping"),
    ("a: [", "jobspec: not valid YAML: line 1, column 5: expected the node content, but found '<stream end>'"),
    ("", "jobspec: empty"),
    ("version: 1\n", "resources: missing"),
    ("version: 1\nresources: 3\n", "resources: must be a map"),
]


@pytest.mark.parametrize("text,message", BAD)
def test_bad_jobspecs_name_the_path(text, message):
    with pytest.raises(InvalidArgument) as info:
        parse_jobspec(text)
    assert message in str(info.value)
    assert info.value.code == "INVALID_ARGUMENT"


def test_yaml_alias_bomb_is_rejected_quickly():
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 12):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]")
    lines.append("version: 1\nresources:\n  g: {type: node}")
    with pytest.raises(InvalidArgument, match="more than"):
        parse_jobspec("\n".join(lines))


def test_deep_nesting_is_rejected():
    group: dict = {"type": "core"}
    for _ in range(200):
        group = {"type": "x", "with": [group]}
    with pytest.raises(InvalidArgument, match="deeper"):
        parse_jobspec({"version": 1, "resources": {"g": group}})
    with pytest.raises(InvalidArgument):
        parse_jobspec("[" * 100_000 + "]" * 100_000)


def test_schemas_are_exported():
    assert set(JOBSPEC_SCHEMAS) == {"nextgen", "v1"}
    assert JOBSPEC_SCHEMAS["nextgen"]["type"] == "object"


def test_requires_values_are_normalized():
    js = parse_jobspec(
        "version: 1\nresources:\n  g:\n    type: node\n    requires:\n"
        "    - {name: io, field: byte_addressable, match: true}\n"
        "    - {name: io, field: parallelism, value: 32.0}\n"
        "    - {name: spack, field: version, min: 0.5, max: 1}\n"
    )
    a, b, c = js.resources[0].requires
    assert a.value == "true" and b.value == "32" and (c.min, c.max) == ("0.5", "1")
    assert c.describe() == "spack version>=0.5,<=1"
