"""What the dashboard pages show, as plain data: pure functions over records and graphs."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rainbow.graph import ClusterGraph
from rainbow.lifecycle import FINAL_STATES, JobState
from rainbow.store import ClusterRecord, JobEvent, JobRecord

STATES = [state.value for state in JobState]
# Jobs that wait for a cluster or run on it: what "load" means on the overview.
WAITING = (JobState.ASSIGNED, JobState.HELD, JobState.LEASED, JobState.UNKNOWN)
ON_CLUSTER = (JobState.ACCEPTED, JobState.SUBMITTED, JobState.RUNNING)


@dataclass(frozen=True)
class ClusterRow:
    name: str
    reachable: bool
    last_seen: float | None
    nodes: int
    cores: int
    gpus: int
    queues: str
    state: dict[str, Any]
    jobs: dict[str, int]
    units: dict[str, int] = field(default_factory=dict)
    subsystems: list[str] = field(default_factory=list)
    node_classes: list[tuple[int, str]] = field(default_factory=list)


def node_classes(graph: ClusterGraph) -> list[tuple[int, str]]:
    """Kinds of nodes, most common first: (how many, what one holds), e.g. (4, "2 socket, 64 core, 4 gpu")."""
    state = graph.state
    classes = state.classes
    node_type = state.type_index.get("node")
    if node_type is None:
        return []
    kinds: dict[str, int] = {}
    for c in range(classes.n):
        if classes.type_of[c] != node_type:
            continue
        below = ", ".join(f"{units} {state.types[t]}" for t, units in sorted(classes.below[c].items(),
                                                                             key=lambda item: state.types[item[0]]))
        kinds[below or "nothing below"] = kinds.get(below or "nothing below", 0) + classes.count[c]
    return sorted(((count, text) for text, count in kinds.items()), key=lambda item: (-item[0], item[1]))


def cluster_row(
    record: ClusterRecord, graph: ClusterGraph | None, counts: Mapping[tuple[str, JobState], int], detail: bool = False
) -> ClusterRow:
    units = graph.summary() if graph is not None else {}
    queues = record.state.get("queues", "")
    return ClusterRow(
        name=record.name,
        reachable=record.reachable,
        last_seen=record.last_seen,
        nodes=units.get("node", 0),
        cores=units.get("core", 0),
        gpus=units.get("gpu", 0),
        queues=", ".join(map(str, queues)) if isinstance(queues, list) else str(queues),
        state=dict(record.state),
        jobs={s.value: counts.get((record.name, s), 0) for s in JobState if counts.get((record.name, s))},
        units=units if detail else {},
        subsystems=(graph.subsystems if graph is not None else []) if detail else [],
        node_classes=node_classes(graph) if detail and graph is not None else [],
    )


def totals(counts: Mapping[tuple[str, JobState], int], clusters: Sequence[str]) -> dict[str, int]:
    """Jobs by state over the given clusters."""
    wanted = set(clusters)
    out = dict.fromkeys(STATES, 0)
    for (cluster, state), count in counts.items():
        if cluster in wanted:
            out[state.value] += count
    return out


def by_cluster(counts: Mapping[tuple[str, JobState], int], clusters: Sequence[str]) -> dict[str, dict[str, int]]:
    """Per cluster: its jobs by state (states with none left out)."""
    out: dict[str, dict[str, int]] = {name: {} for name in clusters}
    for (cluster, state), count in counts.items():
        if cluster in out and count:
            out[cluster][state.value] = count
    return out


def load(counts: Mapping[tuple[str, JobState], int], clusters: Sequence[str]) -> dict[str, dict[str, int]]:
    """Per cluster: jobs waiting for it and jobs on it."""
    out = {name: {"waiting": 0, "running": 0} for name in clusters}
    for (cluster, state), count in counts.items():
        if cluster in out:
            if state in WAITING:
                out[cluster]["waiting"] += count
            elif state in ON_CLUSTER:
                out[cluster]["running"] += count
    return out


def placement(text: str | None) -> dict[str, Any] | None:
    """The stored placement record, or None for jobs placed before it was recorded."""
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def output(job: JobRecord) -> dict[str, str]:
    if not job.output:
        return {}
    try:
        data = json.loads(job.output)
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items() if v} if isinstance(data, dict) else {}


def is_final(job: JobRecord) -> bool:
    return job.state in FINAL_STATES


def newest_states(events: Sequence[JobEvent]) -> dict[int, str]:
    """The last state of each job in a batch of events (in seq order)."""
    return {event.job_id: event.state.value for event in events}


def event_json(event: JobEvent) -> str:
    return json.dumps({"seq": event.seq, "job": event.job_id, "cluster": event.cluster, "name": event.name,
                       "state": event.state.value, "time": event.time, "message": event.message})


# The workflow page's DAG: boxes of NODE_W x NODE_H, layers GAP_X apart left to right, rows GAP_Y apart.
NODE_W, NODE_H, GAP_X, GAP_Y, MARGIN = 180, 54, 70, 18, 10


def workflow_layout(steps: Sequence[tuple[str, JobRecord, Sequence[tuple[str, str]]]]) -> dict[str, Any]:
    """Where the workflow page draws each step and each need (pure): a step's layer (column) is one more than
    the deepest step it needs; edges run from a needed step's right side to the needing step's left side.
    ``steps`` come in an order where each follows its needs (as a workflow is stored)."""
    layer: dict[str, int] = {}
    rows: dict[int, int] = {}
    nodes = []
    for name, job, needs in steps:
        depth = 1 + max((layer.get(need, -1) for need, _ in needs), default=-1)
        layer[name] = depth
        row = rows.get(depth, 0)
        rows[depth] = row + 1
        nodes.append({"name": name, "job": job.id, "state": job.state.value,
                      "cluster": "" if job.state == JobState.DEPEND else job.cluster,
                      "x": MARGIN + depth * (NODE_W + GAP_X), "y": MARGIN + row * (NODE_H + GAP_Y)})
    where = {node["name"]: node for node in nodes}
    edges = []
    for name, _, needs in steps:
        child = where[name]
        for need, scheme in needs:
            parent = where.get(need)
            if parent is not None:
                edges.append({"x1": parent["x"] + NODE_W, "y1": parent["y"] + NODE_H // 2, "x2": child["x"],
                              "y2": child["y"] + NODE_H // 2, "scheme": scheme})
    width = MARGIN * 2 + (max(layer.values(), default=0) + 1) * (NODE_W + GAP_X) - GAP_X
    height = MARGIN * 2 + max(rows.values(), default=1) * (NODE_H + GAP_Y) - GAP_Y
    return {"nodes": nodes, "edges": edges, "width": width, "height": height, "node_w": NODE_W, "node_h": NODE_H}
