"""Hooks: Python callbacks named after Flux jobtap topics.

Flux's jobtap plugins are C only, so rainbow offers the same idea in Python
at the point where a job passes from rainbow to the local scheduler. A hook is
a function registered for a topic::

    from rainbow.flux import Reject, hook

    @hook("job.validate")
    def small_jobs_only(job):
        if job.nodes > 4:
            raise Reject("this cluster takes jobs of at most 4 nodes")
        job.jobspec["attributes"]["system"]["queue"] = "pbatch"   # rewrite in place

    @hook("job.inactive")
    def tell_me(job):
        print(job.jobid, job.local_id, job.state, job.exit_code)

Topics (in the order a job sees them):

``job.validate``
    Before the job is submitted locally. ``job.jobspec`` is the Flux V1
    jobspec that will run; a hook may change it in place or return a new
    dict. ``raise Reject(message)`` (or return ``False``) refuses the job: it
    is reported ``failed`` with the message and not retried.
``job.new``
    The local scheduler took the job; ``job.local_id`` is set (a Flux job id).
``job.state.sched``, ``job.state.run``, ``job.state.cleanup``, ``job.state.inactive``
    The job waits for resources, runs, has finished (``exit_code`` known),
    is over (``state`` is ``completed``, ``failed`` or ``cancelled``).
``job.inactive``
    Once per job, when it is over.

Patterns such as ``job.state.*`` or ``*`` subscribe to several topics. Hooks
run in registration order; an exception in an observing hook is logged and
ignored, an exception in a ``job.validate`` hook rejects the job.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("rainbow.agent.hooks")

TOPICS = (
    "job.validate",
    "job.new",
    "job.state.sched",
    "job.state.run",
    "job.state.cleanup",
    "job.state.inactive",
    "job.inactive",
)

# A rainbow job state -> the jobtap-style state topic it is announced under.
STATE_TOPICS = {
    "submitted": "job.state.sched",
    "running": "job.state.run",
    "completed": "job.state.inactive",
    "failed": "job.state.inactive",
    "cancelled": "job.state.inactive",
}

Hook = Callable[["HookJob"], Any]


class Reject(Exception):
    """Raised by a ``job.validate`` hook to refuse a job, with the reason."""


@dataclass
class HookJob:
    """What a hook sees of a job (the same object through the job's life)."""

    jobid: int
    cluster: str
    name: str
    jobspec: dict[str, Any]
    local_id: str | None = None
    state: str = "leased"
    exit_code: int | None = None
    message: str = ""
    topic: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def command(self) -> list[str]:
        tasks = self.jobspec.get("tasks") or [{}]
        return list(tasks[0].get("command") or [])

    @property
    def nodes(self) -> int:
        """Nodes the jobspec asks for (0 when it asks for slots only)."""
        total = 0
        for resource in self.jobspec.get("resources") or []:
            if resource.get("type") == "node":
                total += int(resource.get("count", 1))
        return total


class Hooks:
    """A registry of hooks by topic pattern."""

    def __init__(self) -> None:
        self._hooks: list[tuple[str, Hook]] = []

    def __len__(self) -> int:
        return len(self._hooks)

    def add(self, topic: str, func: Hook) -> Hook:
        if not topic or not callable(func):
            raise ValueError("a hook needs a topic and a callable")
        known = any(fnmatch.fnmatchcase(t, topic) for t in TOPICS)
        if not known:
            raise ValueError(f"unknown hook topic {topic!r} (known: {', '.join(TOPICS)})")
        self._hooks.append((topic, func))
        return func

    def on(self, topic: str, func: Hook | None = None) -> Any:
        """Register ``func`` for ``topic``; without ``func``, a decorator."""
        if func is not None:
            return self.add(topic, func)
        return lambda f: self.add(topic, f)

    def remove(self, func: Hook) -> None:
        self._hooks = [(t, f) for t, f in self._hooks if f is not func]

    def clear(self) -> None:
        self._hooks.clear()

    def for_topic(self, topic: str) -> list[Hook]:
        return [f for pattern, f in self._hooks if fnmatch.fnmatchcase(topic, pattern)]

    def validate(self, job: HookJob) -> HookJob:
        """Run the ``job.validate`` hooks; raises :class:`Reject` when one refuses."""
        job.topic = "job.validate"
        for func in self.for_topic("job.validate"):
            try:
                result = func(job)
            except Reject:
                raise
            except Exception as exc:
                log.exception("hook %s failed on job %s", _name(func), job.jobid)
                raise Reject(f"hook {_name(func)} failed: {exc}") from exc
            if result is False:
                raise Reject(f"rejected by hook {_name(func)}")
            if isinstance(result, Mapping):
                job.jobspec = dict(result)
        return job

    def emit(self, topic: str, job: HookJob) -> None:
        """Run the observing hooks of ``topic``; their errors are logged, never raised."""
        job.topic = topic
        for func in self.for_topic(topic):
            try:
                func(job)
            except Exception:
                log.exception("hook %s failed on %s for job %s", _name(func), topic, job.jobid)

    def emit_state(self, job: HookJob) -> None:
        """Announce ``job.state`` under its jobtap-style topics (and ``job.inactive`` when over)."""
        topic = STATE_TOPICS.get(job.state)
        if topic is None:
            return
        if topic == "job.state.inactive":
            if job.exit_code is not None:
                self.emit("job.state.cleanup", job)
            self.emit("job.state.inactive", job)
            self.emit("job.inactive", job)
        else:
            self.emit(topic, job)

    def load(self, path: str | os.PathLike) -> None:
        """Run a Python file that registers hooks.

        The file either decorates functions with :func:`rainbow.flux.hook` and
        this is the default registry, or defines ``register(hooks)``, which is
        called with this registry.
        """
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"hooks file {file} does not exist")
        module_name = f"rainbow_hooks_{abs(hash(str(file.resolve())))}"
        spec = importlib.util.spec_from_file_location(module_name, file)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load hooks from {file}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
        register = getattr(module, "register", None)
        if callable(register):
            register(self)


def _name(func: Hook) -> str:
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)


hooks = Hooks()
"""The default registry: the agent, the broker module and ``hook`` use it."""


def hook(topic: str, func: Hook | None = None) -> Any:
    """Register a hook on the default registry (a decorator without ``func``)."""
    return hooks.on(topic, func)
