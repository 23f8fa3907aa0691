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
    max_jobspec_depth: int = 32
    max_state_bytes: int = 64 * 1024
    max_state_keys: int = 512
    max_receive_jobs: int = 100_000
    max_name_length: int = 256
