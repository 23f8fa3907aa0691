"""The Flux side of rainbow: resources -> JGF, the Flux executor, submit and register from Flux.

Importing this package never imports ``flux``: the resource conversions work
anywhere, and the hook registry (:mod:`rainbow.agent.hooks`, used by every
executor) is re-exported here, where hooks files import it from. Two modules
need flux-core's Python bindings and import them only when used:
:mod:`rainbow.flux.adapter` (the ``FluxExecutor`` and the resource readers)
and :mod:`rainbow.flux.submit` (``flux rainbow submit``, which reuses
``flux submit``'s option parser)::

    from rainbow.flux import Reject, hook, r_to_jgf
    from rainbow.flux.adapter import FluxExecutor   # inside `flux python`
"""

from rainbow.agent.hooks import TOPICS, HookJob, Hooks, Reject, hook, hooks
from rainbow.flux.resources import encode_idset, expand_hostlist, expand_idset, r_nodes, r_summary, r_to_jgf

__all__ = [
    "TOPICS",
    "HookJob",
    "Hooks",
    "Reject",
    "encode_idset",
    "expand_hostlist",
    "expand_idset",
    "hook",
    "hooks",
    "r_nodes",
    "r_summary",
    "r_to_jgf",
]
