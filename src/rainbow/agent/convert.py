"""Rainbow jobs -> Flux canonical V1 jobspecs, as a pure function (dict in, dict out).

A rainbow job carries the user's jobspec (nextgen or Flux V1, YAML or JSON).
The agent turns it into the V1 dict that ``flux.job.JobspecV1(**spec)``
accepts, gives it an explicit environment and working directory (never the
agent's own environment: the agent may hold secrets) and tags it with its
rainbow id under ``attributes.user.rainbow``, which is how a restarted agent
recognises jobs it already submitted, and with the rainbow user and group it
runs for (``attributes.user.rainbow_user`` / ``rainbow_group``: ``flux jobs``
and job hooks see who a job is for, whatever account runs it).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rainbow.errors import InvalidArgument

# Variables a job inherits from the agent unless told otherwise (everything else is left out).
DEFAULT_ENV_KEYS = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SHELL")

USER_KEY = "rainbow"
OWNER_KEY = "rainbow_user"
GROUP_KEY = "rainbow_group"


def default_environment(source: Mapping[str, str] | None = None,
                        keys: tuple[str, ...] = DEFAULT_ENV_KEYS) -> dict[str, str]:
    """The few variables of ``source`` (default ``os.environ``) a job needs to find its programs."""
    source = os.environ if source is None else source
    return {key: source[key] for key in keys if key in source}


def to_flux_jobspec(
    jobspec: Any,
    *,
    jobid: int,
    cluster: str,
    name: str | None = None,
    environment: Mapping[str, str] | None = None,
    cwd: str | None = None,
    duration: float | None = None,
    lease: int = 0,
    user: str = "",
    group: str = "",
    depends: str | None = None,
) -> dict[str, Any]:
    """The Flux V1 jobspec dict for a rainbow job.

    :param jobspec: the job's jobspec: text (YAML/JSON), a dict, or a parsed
        :class:`rainbow.jobspec.Jobspec`, in either dialect.
    :param jobid: the rainbow job id (tagged as ``attributes.user.rainbow.jobid``).
    :param cluster: the cluster name (tagged as ``attributes.user.rainbow.cluster``).
    :param name: the job name (a V1 jobspec's own ``system.job.name`` is kept).
    :param environment: the base environment; the jobspec's own
        ``environment`` is laid over it, and ``RAINBOW_JOBID``/``RAINBOW_CLUSTER`` are added.
    :param cwd: the working directory when the jobspec sets none.
    :param duration: a time limit in seconds when the jobspec sets none (0: unlimited).
    :param lease: the lease token the job was received with (tagged as
        ``attributes.user.rainbow.lease``), so that an agent restarted on this
        cluster can still prove the lease (:func:`lease_tag`).
    :param user: the rainbow user the job is for (``attributes.user.rainbow_user``; none when '').
    :param group: the group it is accounted to (``attributes.user.rainbow_group``; none when '').
    :param depends: what the job depended on (JSON, as the server hands it out with the job), set as
        ``RAINBOW_DEPENDS``. The jobspec's own ``attributes.system.dependencies`` name rainbow job ids,
        which the cluster's scheduler does not know: rainbow already waited for them, so they are dropped.
    :raises InvalidArgument: the jobspec is invalid or has no V1 form.
    """
    from rainbow.jobspec import Jobspec, parse_jobspec, to_flux_v1

    parsed = jobspec if isinstance(jobspec, Jobspec) else parse_jobspec(jobspec)
    spec = copy.deepcopy(to_flux_v1(parsed))
    if not spec.get("tasks") or not spec["tasks"][0].get("command"):
        raise InvalidArgument("tasks[0].command: the job has no command to run", field="tasks")
    attributes = spec.setdefault("attributes", {})
    system = attributes.setdefault("system", {})
    system.pop("dependencies", None)
    if not system.get("duration"):
        system["duration"] = float(duration or 0.0)
    own_env = system.get("environment") or {}
    if not isinstance(own_env, Mapping):
        raise InvalidArgument("attributes.system.environment must be a mapping", field="environment")
    system["environment"] = {
        **dict(environment or {}),
        **{str(k): str(v) for k, v in own_env.items()},
        "RAINBOW_JOBID": str(jobid),
        "RAINBOW_CLUSTER": cluster,
        **({"RAINBOW_DEPENDS": depends} if depends else {}),
    }
    if not system.get("cwd") and cwd:
        system["cwd"] = cwd
    own_name = parsed.dialect == "v1" and ((system.get("job") or {}).get("name"))
    if name and not own_name:
        system.setdefault("job", {})["name"] = name
    tag: dict[str, Any] = {"jobid": int(jobid), "cluster": cluster}
    if lease:
        tag["lease"] = int(lease)
    own = attributes.setdefault("user", {})
    own[USER_KEY] = tag
    if user:
        own[OWNER_KEY] = user
    if group:
        own[GROUP_KEY] = group
    spec["version"] = 1
    return spec


def rainbow_tag(spec: Mapping[str, Any] | None) -> tuple[int, str] | None:
    """``(jobid, cluster)`` of a jobspec tagged by :func:`to_flux_jobspec`, else None."""
    try:
        tag = spec["attributes"]["user"][USER_KEY]  # type: ignore[index]
        return int(tag["jobid"]), str(tag.get("cluster", ""))
    except (KeyError, TypeError, ValueError):
        return None


def lease_tag(spec: Mapping[str, Any] | None) -> int:
    """The lease token a jobspec was tagged with by :func:`to_flux_jobspec` (0: none)."""
    try:
        return int(spec["attributes"]["user"][USER_KEY].get("lease") or 0)  # type: ignore[index]
    except (KeyError, TypeError, ValueError, AttributeError):
        return 0


@dataclass(frozen=True)
class JobShape:
    """What a V1 jobspec asks for, in numbers."""

    nodes: int
    slots: int
    cores_per_slot: int
    gpus_per_slot: int
    tasks: int

    @property
    def cores(self) -> int:
        return self.slots * self.cores_per_slot

    @property
    def gpus(self) -> int:
        return self.slots * self.gpus_per_slot


def _count(resource: Mapping[str, Any]) -> int:
    count = resource.get("count", 1)
    if isinstance(count, Mapping):
        count = count.get("min", 1)
    return int(count)


def job_shape(spec: Mapping[str, Any]) -> JobShape:
    """Nodes, slots, cores and GPUs per slot, and tasks of a V1 jobspec (``node > slot > core[,gpu]``)."""
    resources = spec.get("resources") or []
    if not resources:
        raise InvalidArgument("resources: the jobspec asks for nothing", field="resources")
    top = resources[0]
    nodes = 0
    if top.get("type") == "node":
        nodes = _count(top)
        inner = top.get("with") or []
        slot = next((r for r in inner if r.get("type") == "slot"), None)
        if slot is None:
            raise InvalidArgument("resources[0].with: a node needs a slot", field="resources")
        slots = nodes * _count(slot)
    elif top.get("type") == "slot":
        slot = top
        slots = _count(slot)
    else:
        raise InvalidArgument(f"resources[0].type: {top.get('type')!r} is not node or slot", field="resources")
    cores = gpus = 0
    for child in slot.get("with") or []:
        if child.get("type") == "core":
            cores += _count(child)
        elif child.get("type") == "gpu":
            gpus += _count(child)
    task = (spec.get("tasks") or [{}])[0]
    count = task.get("count") or {"per_slot": 1}
    tasks = int(count["total"]) if "total" in count else int(count.get("per_slot", 1)) * slots
    return JobShape(nodes=nodes, slots=slots, cores_per_slot=max(cores, 1), gpus_per_slot=gpus, tasks=tasks)
