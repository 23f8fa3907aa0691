"""The persistence interface every backend implements, and its records.

The store is the source of truth: clusters with their JGF and subsystems,
their state, and every job. One call is one transaction; a call either
happens entirely or not at all.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rainbow.lifecycle import JobState


@dataclass(frozen=True)
class ClusterRecord:
    name: str
    secret_hash: str
    token_hash: str
    nodes: str
    state: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0
    updated: float = 0.0
    version: int = 1


@dataclass(frozen=True)
class JobRecord:
    id: int
    cluster: str
    name: str
    jobspec: str
    command: str
    state: JobState
    created: float
    updated: float
    lease_owner: str | None = None
    lease_expires: float | None = None
    accepted: float | None = None
    local_id: str | None = None
    exit_code: int | None = None
    message: str | None = None

    def wire_json(self) -> str:
        """The job as existing clients receive it from ``ReceiveJobs``."""
        return json.dumps(
            {
                "id": self.id,
                "cluster": self.cluster,
                "name": self.name,
                "jobspec": self.jobspec,
                "command": self.command,
            }
        )


class Store(ABC):
    """Persistence for the scheduler. Implementations are thread-safe."""

    # -- metadata ---------------------------------------------------------
    @abstractmethod
    def get_meta(self, key: str) -> str | None: ...

    @abstractmethod
    def set_meta(self, key: str, value: str) -> None: ...

    # -- clusters ---------------------------------------------------------
    @abstractmethod
    def add_cluster(self, name: str, nodes: str, secret_hash: str, token_hash: str, now: float) -> bool:
        """Insert a cluster; False (and no change) when the name exists."""

    @abstractmethod
    def get_cluster(self, name: str) -> ClusterRecord | None: ...

    @abstractmethod
    def list_clusters(self) -> list[ClusterRecord]: ...

    @abstractmethod
    def delete_cluster(self, name: str) -> bool:
        """Remove a cluster with its subsystems and jobs; False when unknown."""

    @abstractmethod
    def replace_nodes(self, name: str, nodes: str, now: float) -> None:
        """Replace the JGF of an existing cluster."""

    @abstractmethod
    def put_subsystem(self, cluster: str, name: str, nodes: str, now: float) -> None:
        """Add or replace a subsystem of an existing cluster."""

    @abstractmethod
    def delete_subsystem(self, cluster: str, name: str, now: float) -> bool: ...

    @abstractmethod
    def list_subsystems(self, cluster: str) -> dict[str, str]:
        """Subsystem name -> JGF text."""

    @abstractmethod
    def merge_state(self, cluster: str, updates: Mapping[str, Any], now: float) -> dict[str, Any]:
        """Merge flat key/values into the cluster's state; return the new state."""

    # -- jobs -------------------------------------------------------------
    @abstractmethod
    def add_job(self, cluster: str, name: str, jobspec: str, command: str, now: float) -> JobRecord: ...

    @abstractmethod
    def lease_jobs(
        self, cluster: str, owner: str, max_jobs: int, lease_seconds: float, now: float
    ) -> list[JobRecord]:
        """Lease up to ``max_jobs`` (all when < 1) waiting jobs of a cluster to ``owner``.

        Waiting means assigned, or leased with the lease run out. Oldest first.
        """

    @abstractmethod
    def accept_jobs(self, cluster: str, ids: Sequence[int], now: float) -> list[int]:
        """Mark leased (or still assigned) jobs of ``cluster`` accepted; return the ids that moved."""

    @abstractmethod
    def get_job(self, job_id: int) -> JobRecord | None: ...

    @abstractmethod
    def count_jobs(self, cluster: str | None = None, state: JobState | None = None) -> int: ...

    @abstractmethod
    def close(self) -> None: ...
