"""Configurable limits on what the network may send (defaults fit the benchmarks)."""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    # gRPC messages; a 16,384-node JGF is a few hundred MiB of JSON.
    max_message_bytes: int = 1024 * MiB
    max_jgf_vertices: int = 4_000_000
    max_jgf_edges: int = 8_000_000
    max_jobspec_bytes: int = 1 * MiB
    max_state_bytes: int = 64 * 1024
    max_state_keys: int = 512
    max_receive_jobs: int = 100_000
    max_name_length: int = 256
    # SubmitJobs: jobs in one call (an array counts its copies) and bytes of names and jobspecs.
    max_batch_jobs: int = 100_000
    max_batch_bytes: int = 256 * MiB

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"limit {name} must be a positive integer, not {value!r}")
