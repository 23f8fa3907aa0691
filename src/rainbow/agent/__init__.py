"""The pull agent: a cluster takes its jobs from rainbow, runs them and reports back.

``flux python -m rainbow.agent`` (or ``rainbow agent --executor local``) runs
:class:`Agent` with an :class:`Executor`: :class:`rainbow.flux.adapter.FluxExecutor`
on a Flux instance, :class:`LocalExecutor` anywhere else.
"""

from rainbow.agent.core import Agent, AgentStats, AgentStopped, HeldJob, default_agent_id
from rainbow.agent.executor import (
    Executor,
    ExecutorUnavailable,
    JobRejected,
    JobUpdate,
    Resources,
    Submission,
)
from rainbow.agent.local import LocalExecutor

__all__ = [
    "Agent",
    "AgentStats",
    "AgentStopped",
    "Executor",
    "ExecutorUnavailable",
    "HeldJob",
    "JobRejected",
    "JobUpdate",
    "LocalExecutor",
    "Resources",
    "Submission",
    "default_agent_id",
]
