"""Rainbow: a multi-cluster job scheduler for HPC."""

from rainbow.version import __version__

__all__ = ["__version__"]
