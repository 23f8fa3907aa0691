"""Fake ``flux`` package (tests only): ``flux.Flux`` plus the ``job`` and ``resource`` submodules."""

from flux import _fake, job, queue, resource
from flux.core.handle import Flux

__all__ = ["Flux", "_fake", "job", "queue", "resource"]
