"""The pull agent: a cluster takes its jobs from rainbow, runs them and reports back.

``flux python -m rainbow.agent`` (or ``rainbow agent --executor local``) runs
:class:`Agent` with an :class:`Executor`: :class:`rainbow.flux.adapter.FluxExecutor`
on a Flux instance, :class:`LocalExecutor` anywhere else.

Names are imported on first use, so ``rainbow.agent.command`` (the CLI) stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Agent": "rainbow.agent.core",
    "AgentStats": "rainbow.agent.core",
    "AgentStopped": "rainbow.agent.core",
    "HeldJob": "rainbow.agent.core",
    "default_agent_id": "rainbow.agent.core",
    "Executor": "rainbow.agent.executor",
    "ExecutorUnavailable": "rainbow.agent.executor",
    "JobRejected": "rainbow.agent.executor",
    "JobUpdate": "rainbow.agent.executor",
    "OutputLocation": "rainbow.agent.executor",
    "Resources": "rainbow.agent.executor",
    "Submission": "rainbow.agent.executor",
    "LocalExecutor": "rainbow.agent.local",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rainbow.agent' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
