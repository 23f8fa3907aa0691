"""Workflows: named steps, each a job, with the steps it needs (pure: parse, validate, order).

A workflow file is YAML::

    name: diamond
    steps:
      simulate:
        command: ./simulate --out run1
        nodes: 2
        gpus: 1               # GPUs per node
      post:
        jobspec: post.yaml    # a jobspec file (relative to the workflow file) or an inline mapping
        needs: simulate       # afterok by default
      report:
        command: ./report
        needs:                # a list of steps, or step: scheme
          simulate: afterany
          post: afterok

The same rules hold for a workflow that comes over the wire: the server checks
the steps again (``check_steps``) before anything is stored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from rainbow.dependencies import check_scheme, find_cycle, topological
from rainbow.errors import InvalidArgument
from rainbow.jobspec import simple, yaml_problem

DEFAULT_SCHEME = "afterok"
MAX_STEP_NAME = 128
_STEP_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")

_NEEDS = {
    "anyOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "items": {"type": "string", "minLength": 1}},
        {"type": "object", "additionalProperties": {"type": "string"}},
    ]
}

WORKFLOW_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "rainbow workflow",
    "type": "object",
    "required": ["steps"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "steps": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {
                "type": "object",
                "properties": {
                    "command": {"anyOf": [{"type": "string", "minLength": 1},
                                          {"type": "array", "minItems": 1, "items": {"type": "string"}}]},
                    "nodes": {"type": "integer", "minimum": 1},
                    "tasks": {"type": "integer", "minimum": 1},
                    "gpus": {"type": "integer", "minimum": 0},
                    "jobspec": {"anyOf": [{"type": "string", "minLength": 1}, {"type": "object"}]},
                    "needs": _NEEDS,
                },
                "oneOf": [{"required": ["command"], "not": {"required": ["jobspec"]}},
                          {"required": ["jobspec"], "not": {"required": ["command"]}}],
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}

_VALIDATOR = jsonschema.Draft7Validator(WORKFLOW_SCHEMA)


@dataclass(frozen=True)
class Need:
    """A step's need: ``step`` reaching ``scheme`` (RFC 26)."""

    step: str
    scheme: str = DEFAULT_SCHEME


@dataclass(frozen=True)
class Step:
    name: str
    jobspec: str  # YAML or JSON text
    needs: tuple[Need, ...] = ()


def check_step_name(name: Any, field: str) -> str:
    if not isinstance(name, str) or not _STEP_NAME.match(name) or len(name) > MAX_STEP_NAME:
        raise InvalidArgument(f"{field}: a step name is letters, digits, '_', '.' and '-' (at most "
                              f"{MAX_STEP_NAME}), not {name!r}", field=field)
    return name


def check_steps(steps: Sequence[Step]) -> list[int]:
    """Check a workflow's steps whole; the indices of the steps in an order where each follows its needs.

    Refused (InvalidArgument, naming them): no steps, a bad or repeated name, a need of an unknown step or
    of the step itself, an unknown scheme, a cycle.
    """
    if not steps:
        raise InvalidArgument("steps: a workflow needs at least one step", field="steps")
    index: dict[str, int] = {}
    for i, step in enumerate(steps):
        check_step_name(step.name, f"steps[{i}].name")
        if step.name in index:
            raise InvalidArgument(f"steps[{i}].name: step {step.name!r} is named twice", field=f"steps[{i}].name")
        index[step.name] = i
    unknown: list[str] = []
    for i, step in enumerate(steps):
        for j, need in enumerate(step.needs):
            where = f"steps[{i}].needs[{j}]"
            check_scheme(need.scheme, f"{where}.scheme")
            if need.step not in index:
                unknown.append(f"{step.name} needs {need.step!r}")
            elif need.step == step.name:
                raise InvalidArgument(f"{where}: step {step.name!r} needs itself", field=where)
    if unknown:
        raise InvalidArgument(f"steps: unknown step in needs: {'; '.join(unknown)}", field="steps")
    edges = {step.name: [need.step for need in step.needs] for step in steps}
    cycle = find_cycle(edges)
    if cycle:
        raise InvalidArgument(f"steps: the needs form a cycle: {' needs '.join(cycle)}", field="steps")
    return [index[name] for name in topological(edges)]


def _needs(value: Any) -> tuple[Need, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (Need(value),)
    if isinstance(value, list):
        return tuple(Need(name) for name in value)
    return tuple(Need(name, str(scheme).strip().lower()) for name, scheme in value.items())


def step_jobspec(name: str, entry: Mapping[str, Any], base: Path | None) -> str:
    """The jobspec text of one step: its file, its inline mapping, or one built from command/nodes/tasks/gpus."""
    source = entry.get("jobspec")
    if isinstance(source, str):
        path = Path(source) if base is None else base / source
        try:
            return path.read_text()
        except OSError as exc:
            raise InvalidArgument(f"steps.{name}.jobspec: cannot read {source}: {exc.strerror or exc}",
                                  field=f"steps.{name}.jobspec") from None
    if isinstance(source, Mapping):
        return json.dumps(source)
    nodes = entry.get("nodes", 1)
    try:
        # The resource group is not named after the step: steps that differ only in their commands then have
        # the same resources, which the server parses and matches once for all of them.
        doc = simple(entry["command"], nodes=nodes, tasks=entry.get("tasks", nodes))
    except InvalidArgument as exc:
        raise InvalidArgument(f"steps.{name}.{exc.field or 'command'}: {exc}", field=f"steps.{name}") from None
    gpus = entry.get("gpus", 0)
    if gpus:
        for group in doc["resources"].values():
            group["with"].append({"type": "gpu", "count": gpus})
    return json.dumps({"name": name, **doc})


def load_workflow(source: str | Path | Mapping[str, Any], base: Path | None = None) -> tuple[str, list[Step]]:
    """(name, steps) of a workflow file (a path, YAML text or a mapping), checked whole (``check_steps``).

    Jobspec files are read relative to ``base`` (a path's own directory by default).
    """
    default_name = "workflow"
    if isinstance(source, Path):
        base = source.parent if base is None else base
        default_name = source.stem
        try:
            source = source.read_text()
        except OSError as exc:
            raise InvalidArgument(f"workflow: cannot read {source}: {exc.strerror or exc}",
                                  field="workflow") from None
    if isinstance(source, Mapping):
        doc: Any = dict(source)
    else:
        try:
            doc = yaml.safe_load(source)
        except yaml.YAMLError as exc:
            raise InvalidArgument(f"workflow: not valid YAML: {yaml_problem(exc)}", field="workflow") from None
    if not isinstance(doc, Mapping):
        raise InvalidArgument("workflow: must be a mapping with steps", field="workflow")
    errors = sorted(_VALIDATOR.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        error = jsonschema.exceptions.best_match(errors)
        path = ".".join(str(p) for p in error.absolute_path) or "workflow"
        message = error.message
        if error.validator == "oneOf":
            message = "give either command (with nodes, tasks, gpus) or jobspec"
        raise InvalidArgument(f"{path}: {message}", field=path)
    steps = [Step(check_step_name(name, f"steps.{name}"), step_jobspec(name, entry, base), _needs(entry.get("needs")))
             for name, entry in doc["steps"].items()]
    check_steps(steps)
    return str(doc.get("name") or default_name), steps
