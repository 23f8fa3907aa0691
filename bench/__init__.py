"""Rainbow benchmarks: ``python -m bench [--quick]`` runs them all (see docs/benchmarks.md)."""
