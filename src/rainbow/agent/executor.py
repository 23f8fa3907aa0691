"""The executor interface: what the agent needs from a local scheduler.

An executor runs jobs on one cluster (Parsl's executor/provider split): the
agent hands it Flux V1 jobspecs tagged with their rainbow ids, and asks it
what happened since the last pass. Two implementations exist:
:class:`rainbow.flux.adapter.FluxExecutor` (``flux.job.submit``) and
:class:`rainbow.agent.local.LocalExecutor` (subprocesses, for laptops, CI and
the demo).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Job states an executor reports (rainbow's names).
SUBMITTED = "submitted"
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
FINAL = frozenset({COMPLETED, FAILED, CANCELLED})


class JobRejected(Exception):
    """The local scheduler refuses this job (too big, a disabled queue, invalid for it...): do not retry here."""


class ExecutorUnavailable(Exception):
    """The local scheduler cannot be reached right now: try again on a later pass."""


@dataclass(frozen=True)
class Submission:
    """A job the agent asks an executor to run."""

    jobid: int
    cluster: str
    name: str
    jobspec: dict[str, Any]


@dataclass(frozen=True)
class JobUpdate:
    """What became of a local job (``state`` is one of the names above)."""

    local_id: str
    state: str
    jobid: int | None = None
    exit_code: int | None = None
    message: str = ""
    # The lease token the job was submitted under (its tag), 0 when unknown.
    lease: int = 0
    #: the local scheduler refused the job before it ever ran (``message`` says why): it may run elsewhere
    rejected: bool = False

    @property
    def final(self) -> bool:
        return self.state in FINAL


@dataclass(frozen=True)
class OutputLocation:
    """Where a job's output is: files on ``host`` (local executor) or a ``command`` run on the cluster (Flux)."""

    host: str
    stdout: str = ""
    stderr: str = ""
    command: str = ""

    def wire(self) -> dict[str, str]:
        """The fields of ``JobOutput`` in ``ReportJobState``."""
        return {"host": self.host, "stdout": self.stdout, "stderr": self.stderr, "command": self.command}


@dataclass(frozen=True)
class Resources:
    """A cluster's capacity and load, as the agent reports it with ``UpdateState``."""

    nodes: int
    cores: int
    nodes_free: int
    cores_free: int
    gpus: int = 0
    gpus_free: int = 0
    pending: int = 0
    running: int = 0
    #: further flat state keys the local scheduler knows (the Flux executor: ``queues``, see rainbow.queues)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def state(self) -> dict[str, Any]:
        """The flat ``UpdateState`` payload, with only the keys the agent owns (:data:`AGENT_KEYS`).

        ``nodes_free`` is what the selection presets read. The capacity the
        executor sees goes under ``executor_*``: the cluster's registered
        picture (``nodes_total``, ``cores_total``... set by the operator with
        ``rainbow update``) is never overwritten by an agent. ``extra`` adds
        what only some local schedulers know (the Flux executor: ``queues``).
        """
        return {
            **self.extra,
            "nodes_free": self.nodes_free,
            "cores_free": self.cores_free,
            "gpus_free": self.gpus_free,
            "jobs_pending": self.pending,
            "jobs_running": self.running,
            "executor_nodes": self.nodes,
            "executor_cores": self.cores,
            "executor_gpus": self.gpus,
        }


#: The state keys an agent reports (and so owns); every other key is the operator's.
AGENT_KEYS = ("nodes_free", "cores_free", "gpus_free", "jobs_pending", "jobs_running",
              "executor_nodes", "executor_cores", "executor_gpus")


class Executor(abc.ABC):
    """A local scheduler the agent submits to. Methods are called from one thread."""

    #: short name used in logs and ``--executor``
    name = "executor"

    @abc.abstractmethod
    def submit(self, job: Submission) -> str:
        """Start (or queue) a job; returns its local id.

        Raises :class:`JobRejected` when the job can never run here and
        :class:`ExecutorUnavailable` when the local scheduler is down.
        """

    @abc.abstractmethod
    def poll(self) -> list[JobUpdate]:
        """State changes of submitted jobs since the last call (never blocks for long)."""

    @abc.abstractmethod
    def cancel(self, local_id: str, reason: str = "") -> None:
        """Ask for a job to stop; its ``cancelled`` update comes through :meth:`poll`."""

    @abc.abstractmethod
    def resources(self) -> Resources:
        """Capacity, free resources and queue depth now."""

    @abc.abstractmethod
    def recover(self) -> list[JobUpdate]:
        """Every job this cluster's rainbow jobs left here, with its latest state.

        Called once when the agent starts, so that a restarted agent adopts
        the jobs it (or a crashed predecessor) submitted instead of running
        them again. Only jobs tagged with a rainbow id appear.
        """

    @abc.abstractmethod
    def find(self, jobid: int) -> JobUpdate | None:
        """The local job tagged with rainbow id ``jobid`` (its id and latest state), if there is one.

        Jobs that were forgotten are still found (with their final state): the
        agent asks before every start, so that no rainbow job runs twice here.
        """

    def output_location(self, local_id: str) -> OutputLocation | None:
        """Where the local job's output is (None when the executor cannot say)."""
        return None

    def forget(self, local_id: str) -> None:  # noqa: B027 - optional hook
        """The agent is done with a finished job (reported); the executor may drop what it keeps.

        :meth:`recover` no longer lists it, but :meth:`find` must still know it ran.
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the executor holds (connections, watchers).

        Jobs a scheduler owns (Flux) keep running; jobs that are this
        process's children (the local executor) are stopped.
        """
