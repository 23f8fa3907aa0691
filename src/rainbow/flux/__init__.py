"""The Flux side of rainbow: resources -> JGF, jobspec conversion, hooks, the Flux executor.

Importing this package never imports ``flux``: hooks and the pure
conversions work anywhere. Two modules need flux-core's Python bindings and
import them only when used: :mod:`rainbow.flux.adapter` (the ``FluxExecutor``
and the resource readers) and :mod:`rainbow.flux.submit` (``flux rainbow
submit``, which reuses ``flux submit``'s option parser)::

    from rainbow.flux import Reject, hook, r_to_jgf
    from rainbow.flux.adapter import FluxExecutor   # inside `flux python`
"""

from rainbow.flux.hooks import TOPICS, HookJob, Hooks, Reject, hook, hooks
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
