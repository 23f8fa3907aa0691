"""Jobspecs: parse and validate both dialects, normalize, convert.

Two dialects are accepted, as YAML or JSON text or as a dict:

* rainbow "nextgen": ``resources`` is a map of named groups
  ``{type, count | replicas, with, requires, label}``; tasks name a group.
* Flux canonical V1 (RFC 14/25): ``resources`` is a list (``node > slot > core[,gpu]``
  or ``slot > core`` at the top); tasks name a slot label.

Both become the same normalized request tree (:class:`ResourceRequest`), which
is what the matcher reads.  Slot levels are pure multipliers for matching: a
``slot`` of count S repeats its subtree S times inside the same parent, which is
the same request as multiplying its children's counts by S; a nextgen group's
``replicas`` multiplies its ``count``.
"""

from __future__ import annotations

import copy
import json
import marshal
import math
import shlex
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

import jsonschema
import semver
import yaml

from rainbow.constraints import combine, validate_constraint
from rainbow.dependencies import Dependency, from_jobspec, to_jobspec
from rainbow.errors import InvalidArgument

MAX_NODES = 100_000
MAX_DEPTH = 32

# -- schemas ------------------------------------------------------------------

_SCALAR = {"type": ["string", "number", "boolean"]}
_COUNT = {"type": "integer", "minimum": 1}

_REQUIRE = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "field": {"type": "string", "minLength": 1},
        "match": _SCALAR,
        "value": _SCALAR,
        "min": {"type": ["string", "number"]},
        "max": {"type": ["string", "number"]},
    },
    "additionalProperties": False,
}

_TASK_COUNT = {
    "type": "object",
    "properties": {"per_slot": _COUNT, "total": _COUNT},
    "minProperties": 1,
    "maxProperties": 1,
    "additionalProperties": False,
}

_COMMAND = {
    "anyOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "minItems": 1, "items": {"type": "string"}},
    ]
}

NEXTGEN_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "rainbow nextgen jobspec",
    "type": "object",
    "required": ["version", "resources"],
    "properties": {
        "version": {"const": 1},
        "name": {"type": "string"},
        "resources": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {"$ref": "#/definitions/resource"},
        },
        "tasks": {"type": "array", "items": {"$ref": "#/definitions/task"}},
        "task": {"$ref": "#/definitions/task"},
        "attributes": {
            "type": "object",
            "properties": {
                "parameter": {"type": "object"},
                "duration": {"type": "number", "minimum": 0},
                "cwd": {"type": "string"},
                "environment": {"type": "object"},
                "queue": {"type": "string", "minLength": 1},
                "constraints": {"type": "object"},
            },
        },
        "requires": {"type": "object"},
        "groups": {"type": "array"},
    },
    "definitions": {
        "resource": {
            "type": "object",
            "required": ["type"],
            "properties": {
                "type": {"type": "string", "minLength": 1},
                "count": _COUNT,
                "replicas": _COUNT,
                "with": {
                    "anyOf": [
                        {"type": "array", "minItems": 1, "items": {"$ref": "#/definitions/resource"}},
                        {"$ref": "#/definitions/resource"},
                    ]
                },
                "requires": {"type": "array", "items": _REQUIRE},
                "label": {"type": "string"},
                "unit": {"type": "string"},
                "exclusive": {"type": "boolean"},
                "schedule": {"type": "boolean"},
            },
            "additionalProperties": False,
        },
        "task": {
            "type": "object",
            "properties": {
                "command": _COMMAND,
                "resources": {"type": "string", "minLength": 1},
                "count": _TASK_COUNT,
                "replicas": _COUNT,
                "name": {"type": "string"},
                "slot": {"type": "string"},
            },
        },
    },
}

V1_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Flux canonical jobspec V1",
    "type": "object",
    "required": ["version", "resources", "tasks"],
    "properties": {
        "version": {"const": 1},
        "resources": {"type": "array", "minItems": 1, "items": {"$ref": "#/definitions/resource"}},
        "tasks": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["command", "slot", "count"],
                "properties": {
                    "command": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                    "slot": {"type": "string", "minLength": 1},
                    "count": _TASK_COUNT,
                    "attributes": {"type": "object"},
                },
            },
        },
        "attributes": {
            "type": "object",
            "properties": {
                "system": {
                    "type": "object",
                    "properties": {
                        "duration": {"type": "number", "minimum": 0},
                        "cwd": {"type": "string"},
                        "environment": {"type": "object"},
                        "queue": {"type": "string", "minLength": 1},
                        "constraints": {"type": "object"},
                        "dependencies": {"type": "array"},
                    },
                },
                "user": {"type": "object"},
            },
        },
    },
    "definitions": {
        "resource": {
            "type": "object",
            "required": ["type", "count"],
            "properties": {
                "type": {"type": "string", "minLength": 1},
                "count": _COUNT,
                "with": {"type": "array", "minItems": 1, "items": {"$ref": "#/definitions/resource"}},
                "label": {"type": "string", "minLength": 1},
                "exclusive": {"type": "boolean"},
                "unit": {"type": "string"},
            },
            "if": {"properties": {"type": {"const": "slot"}}},
            "then": {"required": ["label", "with"]},
            "additionalProperties": False,
        },
    },
}

JOBSPEC_SCHEMAS: dict[str, dict[str, Any]] = {"nextgen": NEXTGEN_SCHEMA, "v1": V1_SCHEMA}

_VALIDATORS = {name: jsonschema.Draft7Validator(schema) for name, schema in JOBSPEC_SCHEMAS.items()}


# -- normalized request tree ----------------------------------------------------


def normalize_value(value: Any) -> str:
    """The string form used to compare a jobspec value with a graph value.

    YAML and JSON disagree on scalars (``true`` vs ``"true"``, ``4`` vs ``4.0``),
    so both sides compare as strings: booleans lower-case, integral numbers
    without a fraction, everything else ``str()``.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error in one line: "line 4, column 1: expected ',' or ']', but got '<stream end>' (while parsing
    a flow sequence that starts at line 3, column 11)".

    PyYAML's own text spans several lines and names the document ``"<unicode string>"``.
    """
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    context_mark = getattr(exc, "context_mark", None)
    if context and context_mark is not None:
        context += f" that starts at line {context_mark.line + 1}, column {context_mark.column + 1}"
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{problem}" + (f" ({context})" if context else "")


def parse_version(text: Any) -> semver.Version | None:
    """A semantic version from ``text``, allowing partial ones (``1``, ``0.5``); None if unparsable."""
    if isinstance(text, bool) or text is None:
        return None
    try:
        return semver.Version.parse(normalize_value(text).strip(), optional_minor_and_patch=True)
    except (ValueError, TypeError):
        return None


@dataclass(frozen=True)
class Requirement:
    """One ``requires`` entry: the vertex needs a subsystem edge to a vertex satisfying it.

    ``kind`` is ``"match"`` (``field`` equals ``value``) or ``"range"``
    (``field`` parses as a semantic version within ``min``/``max``, inclusive).
    """

    subsystem: str
    field: str = "type"
    kind: str = "match"
    value: str | None = None
    min: str | None = None
    max: str | None = None
    min_version: semver.Version | None = dc_field(default=None, compare=False, repr=False)
    max_version: semver.Version | None = dc_field(default=None, compare=False, repr=False)

    def describe(self) -> str:
        """Short human form, e.g. ``io type=shm`` or ``spack version>=0.5,<=1``."""
        if self.kind == "match":
            return f"{self.subsystem} {self.field}={self.value}"
        bounds = []
        if self.min is not None:
            bounds.append(f">={self.min}")
        if self.max is not None:
            bounds.append(f"<={self.max}")
        return f"{self.subsystem} {self.field}{','.join(bounds)}"

    def key(self) -> tuple:
        return (self.subsystem, self.field, self.kind, self.value, self.min, self.max)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.subsystem, "field": self.field}
        if self.kind == "match":
            out["match"] = self.value
        else:
            if self.min is not None:
                out["min"] = self.min
            if self.max is not None:
                out["max"] = self.max
        return out


@dataclass(frozen=True)
class ResourceRequest:
    """One level of the normalized request tree.

    ``count`` is the number of units of ``type`` wanted for each unit of the
    enclosing level (nextgen ``replicas`` and any slot counts already
    multiplied in); ``replicas`` keeps the nextgen slot count for conversions.
    ``path`` is where the level came from, for messages.
    """

    type: str
    count: int = 1
    with_: tuple[ResourceRequest, ...] = ()
    requires: tuple[Requirement, ...] = ()
    label: str | None = None
    replicas: int = 1
    path: str = ""

    def describe(self) -> str:
        """e.g. ``node with 2 core`` (one unit of this level and what it needs)."""
        if not self.with_:
            return self.type
        parts = [f"{c.count} {c.describe()}" if c.with_ else f"{c.count} {c.type}" for c in self.with_]
        return f"{self.type} with {', '.join(parts)}"

    def walk(self) -> Iterator[ResourceRequest]:
        yield self
        for child in self.with_:
            yield from child.walk()


@dataclass(frozen=True)
class Jobspec:
    """A parsed, validated jobspec (either dialect); treat as immutable."""

    dialect: str
    resources: tuple[ResourceRequest, ...]
    tasks: list[dict[str, Any]]
    attributes: dict[str, Any]
    parameters: dict[str, Any]
    command: list[str]
    name: str | None = None
    raw: dict[str, Any] = dc_field(default_factory=dict, repr=False, compare=False)
    queue: str | None = None
    constraints: dict[str, Any] | None = None
    duration: float = 0.0
    # RFC 26 dependencies (``attributes.system.dependencies``): the job waits until they are satisfied.
    dependencies: tuple[Dependency, ...] = ()
    _cache: dict[str, Any] = dc_field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self.raw)

    def to_json(self) -> str:
        return json.dumps(self.raw, sort_keys=False)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.raw, sort_keys=False)


# -- parsing --------------------------------------------------------------------


def _path_text(parts: Any) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "jobspec"


def _schema_message(error: jsonschema.ValidationError) -> str:
    kind = error.validator
    if kind == "minimum":
        return f"must be >= {error.validator_value}"
    if kind == "type":
        wanted = error.validator_value
        wanted = " or ".join(wanted) if isinstance(wanted, list) else wanted
        return f"must be of type {wanted}"
    if kind == "const":
        return f"must be {error.validator_value!r}"
    if kind == "minItems":
        return "must not be empty"
    if kind == "minProperties" and error.validator_value == 1:
        return "must not be empty"
    if kind == "required":
        missing = error.message.split(" is a required property")[0]
        return f"missing required field {missing}"
    return error.message


def _raise_schema_error(validator: jsonschema.Draft7Validator, doc: dict[str, Any]) -> None:
    errors = list(validator.iter_errors(doc))
    if not errors:
        return
    order = {"version": 0, "resources": 1, "tasks": 2, "task": 2, "attributes": 3}

    def section(error: jsonschema.ValidationError) -> int:
        return order.get(error.absolute_path[0], 4) if error.absolute_path else -1

    first = min(section(e) for e in errors)
    error = jsonschema.exceptions.best_match(e for e in errors if section(e) == first)
    path = _path_text(error.absolute_path)
    raise InvalidArgument(f"{path}: {_schema_message(error)}", field=path)


def _check_shape(doc: Any) -> None:
    """Bound size and depth before anything recursive walks the document.

    YAML aliases can make a tiny text describe an enormous tree; count nodes as
    they would be visited and stop early instead of walking it all.
    """
    seen = 0
    stack: list[tuple[Any, int]] = [(doc, 0)]
    while stack:
        node, depth = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            raise InvalidArgument(f"jobspec: more than {MAX_NODES} values", field="jobspec")
        if depth > MAX_DEPTH * 3:
            raise InvalidArgument(f"jobspec: nested deeper than {MAX_DEPTH} levels", field="jobspec")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)


def _load(source: str | bytes | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(source, Mapping):
        doc: Any = source
    else:
        if isinstance(source, bytes):
            try:
                source = source.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidArgument(f"jobspec: not UTF-8 text ({exc})", field="jobspec") from None
        if not isinstance(source, str):
            raise InvalidArgument("jobspec: must be YAML or JSON text or a mapping", field="jobspec")
        if not source.strip():
            raise InvalidArgument("jobspec: empty", field="jobspec")
        try:
            doc = json.loads(source) if source.lstrip().startswith("{") else yaml.safe_load(source)
        except yaml.YAMLError as exc:
            raise InvalidArgument(f"jobspec: not valid YAML: {yaml_problem(exc)}", field="jobspec") from None
        except (ValueError, RecursionError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InvalidArgument(f"jobspec: not valid YAML or JSON: {first}", field="jobspec") from None
    if not isinstance(doc, Mapping):
        raise InvalidArgument("jobspec: must be a mapping", field="jobspec")
    _check_shape(doc)
    try:
        return copy.deepcopy(dict(doc))
    except RecursionError:
        raise InvalidArgument("jobspec: nested too deeply", field="jobspec") from None


def _requirement(entry: dict[str, Any], path: str) -> Requirement:
    subsystem = entry["name"]
    fieldname = entry.get("field", "type")
    has_match = "match" in entry or "value" in entry
    has_range = "min" in entry or "max" in entry
    if has_match and has_range:
        raise InvalidArgument(f"{path}: give either match or min/max, not both", field=path)
    if "match" in entry and "value" in entry:
        raise InvalidArgument(f"{path}: give match or value, not both", field=path)
    if has_match:
        value = entry["match"] if "match" in entry else entry["value"]
        return Requirement(subsystem, fieldname, "match", value=normalize_value(value))
    if not has_range:
        raise InvalidArgument(f"{path}: needs match (or value) or min/max", field=path)
    bounds: dict[str, Any] = {}
    for side in ("min", "max"):
        if side in entry:
            text = normalize_value(entry[side])
            version = parse_version(text)
            if version is None:
                raise InvalidArgument(
                    f"{path}.{side}: {text!r} is not a semantic version", field=f"{path}.{side}"
                )
            bounds[side] = text
            bounds[f"{side}_version"] = version
    if "min_version" in bounds and "max_version" in bounds and bounds["min_version"] > bounds["max_version"]:
        raise InvalidArgument(f"{path}: min {bounds['min']} is above max {bounds['max']}", field=path)
    return Requirement(subsystem, fieldname, "range", **bounds)


def _nextgen_request(group: dict[str, Any], path: str, label: str | None = None) -> ResourceRequest:
    children_raw = group.get("with", [])
    if isinstance(children_raw, dict):
        children_raw = [children_raw]
        child_paths = [f"{path}.with"]
    else:
        child_paths = [f"{path}.with[{i}]" for i in range(len(children_raw))]
    children = tuple(_nextgen_request(c, p) for c, p in zip(children_raw, child_paths, strict=True))
    requires = tuple(
        _requirement(entry, f"{path}.requires[{i}]") for i, entry in enumerate(group.get("requires", []))
    )
    replicas = int(group.get("replicas", 1))
    count = int(group.get("count", 1))
    return ResourceRequest(
        type=group["type"],
        count=count * replicas,
        with_=children,
        requires=requires,
        label=group.get("label", label),
        replicas=replicas,
        path=path,
    )


def _v1_requests(
    items: list[dict[str, Any]], path: str, factor: int, slots: list[str]
) -> list[ResourceRequest]:
    """Normalize a V1 ``with`` list; slot levels fold into their children's counts."""
    out: list[ResourceRequest] = []
    for i, item in enumerate(items):
        here = f"{path}[{i}]"
        count = int(item["count"])
        if item["type"] == "slot":
            slots.append(item["label"])
            out.extend(_v1_requests(item["with"], f"{here}.with", factor * count, slots))
            continue
        children = tuple(_v1_requests(item.get("with", []), f"{here}.with", 1, slots))
        out.append(
            ResourceRequest(
                type=item["type"], count=count * factor, with_=children, label=item.get("label"), path=here
            )
        )
    return out


def _command(task: Mapping[str, Any]) -> list[str]:
    command = task.get("command")
    if isinstance(command, str):
        try:
            return shlex.split(command)
        except ValueError:
            return command.split()
    return list(command or [])


def _parse_nextgen(doc: dict[str, Any]) -> Jobspec:
    _raise_schema_error(_VALIDATORS["nextgen"], doc)
    groups = doc["resources"]
    resources = tuple(
        _nextgen_request(group, f"resources.{name}", label=name) for name, group in groups.items()
    )
    if "tasks" in doc:
        tasks = list(doc["tasks"])
        task_path = "tasks"
    elif "task" in doc:
        tasks = [doc["task"]]
        task_path = "task"
    else:
        tasks, task_path = [], "tasks"
    for i, task in enumerate(tasks):
        ref = task.get("resources")
        if ref is not None and ref not in groups:
            where = f"{task_path}[{i}].resources" if task_path == "tasks" else f"{task_path}.resources"
            raise InvalidArgument(f"{where}: unknown resource group {ref!r}", field=where)
    attributes = dict(doc.get("attributes") or {})
    parameters = dict(attributes.get("parameter") or {})
    placement = _placement(attributes, "attributes")
    name = doc.get("name")
    system = attributes.get("system") or {}
    if not isinstance(system, Mapping):
        raise InvalidArgument("attributes.system: must be a mapping", field="attributes.system")
    dependencies = from_jobspec(system.get("dependencies"))
    if name is None:
        labels = [top.label for top in resources if top.label]
        name = labels[0] if len(resources) == 1 and labels else None
    return Jobspec(
        dialect="nextgen",
        resources=resources,
        tasks=tasks,
        attributes=attributes,
        parameters=parameters,
        command=_command(tasks[0]) if tasks else [],
        name=name,
        raw=doc,
        dependencies=dependencies,
        **placement,
    )


def _parse_v1(doc: dict[str, Any]) -> Jobspec:
    _raise_schema_error(_VALIDATORS["v1"], doc)
    slots: list[str] = []
    resources = tuple(_v1_requests(doc["resources"], "resources", 1, slots))
    if len(slots) != 1:
        raise InvalidArgument(f"resources: needs exactly one slot, found {len(slots)}", field="resources")
    for i, task in enumerate(doc["tasks"]):
        if task["slot"] not in slots:
            where = f"tasks[{i}].slot"
            raise InvalidArgument(f"{where}: unknown slot {task['slot']!r}", field=where)
    attributes = dict(doc.get("attributes") or {})
    system = attributes.get("system") or {}
    user = attributes.get("user") or {}
    parameters = dict(user.get("parameter") or system.get("parameter") or {})
    name = (system.get("job") or {}).get("name") if isinstance(system.get("job"), dict) else None
    tasks = list(doc["tasks"])
    placement = _placement(system, "attributes.system")
    return Jobspec(
        dialect="v1",
        resources=resources,
        tasks=tasks,
        attributes=attributes,
        parameters=parameters,
        command=_command(tasks[0]),
        name=name,
        raw=doc,
        dependencies=from_jobspec(system.get("dependencies")),
        **placement,
    )


def _placement(section: Mapping[str, Any], path: str) -> dict[str, Any]:
    """Queue, node constraint (RFC 31) and duration of a jobspec (V1 ``attributes.system``, nextgen ``attributes``)."""
    out: dict[str, Any] = {"queue": section.get("queue"), "duration": float(section.get("duration") or 0)}
    constraints = section.get("constraints")
    if constraints is not None:
        out["constraints"] = validate_constraint(constraints, f"{path}.constraints") or None
    return out


def parse_jobspec(source: str | bytes | Mapping[str, Any]) -> Jobspec:
    """Parse a jobspec of either dialect (YAML or JSON text, or a mapping).

    The dialect is told by ``resources``: a list is Flux V1, a map is nextgen.
    Raises :class:`InvalidArgument` whose message starts with the offending path.
    """
    doc = _load(source)
    resources = doc.get("resources")
    if isinstance(resources, list):
        return _parse_v1(doc)
    if resources is None:
        raise InvalidArgument("resources: missing", field="resources")
    if not isinstance(resources, Mapping):
        raise InvalidArgument(
            "resources: must be a map of groups (nextgen) or a list (Flux V1)", field="resources"
        )
    return _parse_nextgen(doc)


def load_json(text: str) -> dict[str, Any] | None:
    """A JSON jobspec text as a fresh dict, within the size and depth bounds; None for anything else
    (YAML, invalid, too large: ``parse_jobspec`` then parses it, or says what is wrong)."""
    if not text.lstrip().startswith("{"):
        return None
    try:
        doc = json.loads(text)
        # Each value takes at least one character, each level of nesting a bracket: a text short and flat
        # enough cannot break the bounds, and is not walked.
        if len(text) > MAX_NODES or text.count("{") + text.count("[") > MAX_DEPTH * 3:
            _check_shape(doc)
    except (ValueError, RecursionError, InvalidArgument):
        return None
    return doc if isinstance(doc, dict) else None


def _task_list(doc: Mapping[str, Any]) -> list[Any] | None:
    if "tasks" in doc:
        tasks = doc["tasks"]
        return tasks if isinstance(tasks, list) else None
    task = doc.get("task")
    return [task] if task is not None else []


def command_shape(doc: Mapping[str, Any]) -> bytes | None:
    """A jobspec dict with its tasks' commands and its (nextgen) name left out (a present command becomes null),
    written out; two jobspecs of equal shapes differ at most in their commands and names (keys in another
    order make another shape), as a sweep's jobs or a workflow's steps do. None when the tasks are not a list
    of mappings (then there is no shape to share)."""
    tasks = _task_list(doc)
    if tasks is None or not all(isinstance(task, dict) for task in tasks):
        return None
    blank = [{**task, "command": None} if "command" in task else task for task in tasks]
    key = "tasks" if "tasks" in doc else "task"
    shaped = {**doc, key: blank if key == "tasks" else blank[0]} if tasks else dict(doc)
    shaped.pop("name", None)
    try:
        # marshal, version 2 (no back-references: the bytes do not depend on which objects are shared): JSON's
        # values (str, int, float, bool, None, list, dict) written apart, keys in their order; faster than repr.
        return marshal.dumps(shaped, 2)
    except (ValueError, RecursionError):
        return None


def _surely_valid_command(command: Any, dialect: str) -> bool:
    """A command both dialects' schemas accept (a non-empty list of strings; nextgen also a non-empty string)."""
    if isinstance(command, list):
        return bool(command) and all(isinstance(arg, str) for arg in command)
    return dialect == "nextgen" and isinstance(command, str) and bool(command)


def with_commands(template: Jobspec, doc: dict[str, Any]) -> Jobspec | None:
    """The jobspec ``parse_jobspec`` makes of ``doc``, whose ``command_shape`` is ``template``'s.

    Everything but the commands and the name is the template's (the same text
    parses the same); those are ``doc``'s. None when one of them is not surely
    valid: then parse ``doc`` itself, which names what is wrong.
    """
    tasks = _task_list(doc)
    if tasks is None or any(
        "command" in task and not _surely_valid_command(task["command"], template.dialect) for task in tasks
    ):
        return None
    name = template.name
    if template.dialect == "nextgen":
        if "name" in doc and not isinstance(doc["name"], str):
            return None
        labels = [top.label for top in template.resources if top.label]
        name = doc.get("name", labels[0] if len(template.resources) == 1 and labels else None)
    tasks = list(tasks)
    command = _command(tasks[0]) if tasks else []
    return copy_with(template, tasks=tasks, command=command, name=name, raw=doc, _cache={})


def copy_with(jobspec: Jobspec, **changes: Any) -> Jobspec:
    """What ``dataclasses.replace(jobspec, **changes)`` makes, without running ``__init__`` again: for the
    copies of a checked jobspec a sweep or an array makes, one per job."""
    copied = object.__new__(Jobspec)
    copied.__dict__.update(jobspec.__dict__, **changes)
    return copied


# -- building and converting ----------------------------------------------------


def with_placement(
    doc: Mapping[str, Any],
    queue: str | None = None,
    constraints: Mapping[str, Any] | None = None,
    duration: float | None = None,
) -> dict[str, Any]:
    """A copy of a jobspec dict with its queue, node constraint (RFC 31) and duration (seconds) set.

    Flux V1 keeps them in ``attributes.system``, nextgen in ``attributes``; a
    constraint given here is and-ed with one the jobspec already has, as
    ``flux submit --requires`` does with the jobspec's own.
    """
    out = copy.deepcopy(dict(doc))
    section = out.setdefault("attributes", {})
    if isinstance(out.get("resources"), list):
        section = section.setdefault("system", {})
    if queue is not None:
        section["queue"] = queue
    if constraints:
        section["constraints"] = combine(section.get("constraints"), constraints)
    if duration is not None:
        section["duration"] = 0.0 if math.isinf(duration) else float(duration)
    return out


def with_dependencies(doc: Mapping[str, Any], dependencies: Sequence[Dependency]) -> dict[str, Any]:
    """A copy of a jobspec dict with ``dependencies`` added to ``attributes.system.dependencies``
    (as ``flux submit --dependency`` adds them), each once."""
    out = copy.deepcopy(dict(doc))
    system = out.setdefault("attributes", {}).setdefault("system", {})
    known = list(from_jobspec(system.get("dependencies")))
    system["dependencies"] = to_jobspec(dict.fromkeys([*known, *dependencies]))
    return out


def simple(
    command: str | list[str], nodes: int = 1, tasks: int = 1, name: str | None = None
) -> dict[str, Any]:
    """A nextgen jobspec dict: ``nodes`` nodes with one core per task, spread evenly.

    Node-level (no rack), so it matches Flux clusters (``cluster > node > core``).
    """
    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1:
        raise InvalidArgument("nodes: must be >= 1", field="nodes")
    if isinstance(tasks, bool) or not isinstance(tasks, int) or tasks < 1:
        raise InvalidArgument("tasks: must be >= 1", field="tasks")
    if tasks < nodes:
        raise InvalidArgument(f"tasks: {tasks} tasks cannot fill {nodes} nodes", field="tasks")
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if not argv:
        raise InvalidArgument("command: must not be empty", field="command")
    group = name or "task-resources"
    per_node = math.ceil(tasks / nodes)
    count = {"per_slot": tasks // nodes} if tasks % nodes == 0 else {"total": tasks}
    spec: dict[str, Any] = {
        "version": 1,
        "resources": {
            group: {
                "type": "node",
                "replicas": nodes,
                "label": group,
                "with": [{"type": "core", "count": per_node}],
            }
        },
        "tasks": [{"command": argv, "resources": group, "count": count}],
    }
    if name:
        spec["name"] = name
    return spec


def _units(request: ResourceRequest, kind: str) -> int:
    """Units of ``kind`` below one unit of ``request``, stopping at nested nodes."""
    total = 0
    for child in request.with_:
        if child.type == kind:
            total += child.count
        elif child.type != "node":
            total += child.count * _units(child, kind)
    return total


def _find_nodes(request: ResourceRequest, factor: int) -> tuple[int, ResourceRequest | None]:
    """(total node units, the node level) along the first path that reaches a node."""
    if request.type == "node":
        return factor * request.count, request
    for child in request.with_:
        nodes, level = _find_nodes(child, factor * request.count)
        if level is not None:
            return nodes, level
    return 0, None


def node_count(jobspec: Jobspec) -> int:
    """Nodes the job asks for, over all its resource groups (at least 1: a job of cores uses part of a node)."""
    cached = jobspec._cache.get("nodes")
    if cached is None:
        cached = jobspec._cache["nodes"] = max(sum(_find_nodes(top, 1)[0] for top in jobspec.resources), 1)
    return cached


def job_name(name: str, jobspec: Jobspec) -> str:
    """The name a job is stored under: the one given, else the jobspec's, else its command's program."""
    return name or jobspec.name or (jobspec.command[0] if jobspec.command else "job")


def to_flux_v1(jobspec: Jobspec) -> dict[str, Any]:
    """A Flux canonical V1 dict (``node > slot > core[,gpu]``) that ``flux.job.JobspecV1`` accepts.

    Types Flux V1 cannot express (rack, socket, memory, subsystem ``requires``)
    are flattened or dropped: the cluster already matched them.  A jobspec with
    several resource groups has no V1 form and raises :class:`InvalidArgument`.
    """
    if jobspec.dialect == "v1":
        return jobspec.to_dict()
    if len(jobspec.resources) != 1:
        raise InvalidArgument(
            f"resources: {len(jobspec.resources)} resource groups cannot be expressed as one Flux V1 jobspec",
            field="resources",
        )
    top = jobspec.resources[0]
    label = "task"
    nodes, node_level = _find_nodes(top, 1)
    if node_level is not None:
        cores = _units(node_level, "core")
        gpus = _units(node_level, "gpu")
        slot_with: list[dict[str, Any]] = [{"type": "core", "count": max(cores, 1)}]
        if gpus:
            slot_with.append({"type": "gpu", "count": gpus})
        resources = [
            {
                "type": "node",
                "count": nodes,
                "with": [{"type": "slot", "count": 1, "label": label, "with": slot_with}],
            }
        ]
    else:
        wrapper = ResourceRequest(type="slot", with_=(top,))
        slots = top.replicas if top.type in ("core", "gpu") else 1
        cores = _units(wrapper, "core")
        gpus = _units(wrapper, "gpu")
        per_slot_cores = max(cores // slots, 1)
        slot_with = [{"type": "core", "count": per_slot_cores}]
        if gpus:
            slot_with.append({"type": "gpu", "count": max(gpus // slots, 1)})
        resources = [{"type": "slot", "count": slots, "label": label, "with": slot_with}]
    task = jobspec.tasks[0] if jobspec.tasks else {}
    count = dict(task.get("count") or {"per_slot": 1})
    command = jobspec.command or ["true"]
    attrs = jobspec.attributes
    system: dict[str, Any] = {"duration": float(attrs.get("duration", 0) or 0)}
    for key in ("cwd", "environment"):
        if key in attrs:
            system[key] = copy.deepcopy(attrs[key])
    if jobspec.name:
        system["job"] = {"name": jobspec.name}
    if jobspec.queue:
        system["queue"] = jobspec.queue
    if jobspec.constraints:
        system["constraints"] = copy.deepcopy(jobspec.constraints)
    return {
        "version": 1,
        "resources": resources,
        "tasks": [{"command": list(command), "slot": label, "count": count}],
        "attributes": {"system": system},
    }
