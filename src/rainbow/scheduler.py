"""The scheduler core: what each request means, independent of gRPC and SQL.

Request -> (credentials, validation) -> graph match -> selection -> store -> reply.
The servicers in ``rainbow.server`` translate protobuf messages to these calls
and RainbowError subclasses to gRPC status codes.
"""

from __future__ import annotations

import json
import logging
import math
import shlex
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rainbow import credentials
from rainbow.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
)
from rainbow.graph import ClusterGraph, MatchResult, get_match_algorithm, match
from rainbow.jobspec import Jobspec, parse_jobspec
from rainbow.limits import Limits
from rainbow.lifecycle import JobState
from rainbow.selection import Selection, Selector, get_selector
from rainbow.store import JobRecord, Store

log = logging.getLogger("rainbow.scheduler")

REGISTRATION_SECRET_KEY = "registration_secret_sha256"


@dataclass(frozen=True)
class Registration:
    created: bool
    token: str = ""
    secret: str = ""


@dataclass(frozen=True)
class SatisfyOutcome:
    clusters: list[str]
    reasons: dict[str, str]
    total: int


@dataclass(frozen=True)
class SubmitOutcome:
    job: JobRecord | None
    clusters: list[str]
    selection: Selection | None = None
    reasons: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AcceptOutcome:
    accepted: list[int]
    refused: list[int]


def check_name(value: str, what: str, limits: Limits) -> str:
    """Names are any non-blank text up to the configured length (quotes, unicode... are fine)."""
    if not value or not value.strip():
        raise InvalidArgument(f"{what} is required", field=what)
    if len(value) > limits.max_name_length:
        raise InvalidArgument(f"{what} is longer than {limits.max_name_length} characters", field=what)
    return value


def parse_state_payload(payload: str, limits: Limits) -> dict[str, Any]:
    """A flat JSON object of scalar values, within the size and key limits."""
    if not payload:
        raise InvalidArgument("payload is required (a flat JSON object)", field="payload")
    if len(payload.encode("utf-8", "surrogatepass")) > limits.max_state_bytes:
        raise ResourceExhausted(
            f"payload is larger than {limits.max_state_bytes} bytes", field="payload"
        )
    try:
        data = json.loads(payload)
    except ValueError as exc:
        raise InvalidArgument(f"payload is not valid JSON: {exc}", field="payload") from None
    if not isinstance(data, dict):
        raise InvalidArgument("payload must be a JSON object of key/value pairs", field="payload")
    if len(data) > limits.max_state_keys:
        raise ResourceExhausted(f"payload has more than {limits.max_state_keys} keys", field="payload")
    for key, value in data.items():
        if not key:
            raise InvalidArgument("payload: keys must be non-empty", field="payload")
        if isinstance(value, (dict, list)):
            raise InvalidArgument(
                f"payload.{key}: state must be flat (strings, numbers, booleans or null)", field=f"payload.{key}"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidArgument(f"payload.{key}: numbers must be finite", field=f"payload.{key}")
    return data


class Scheduler:
    """Clusters, their graphs and jobs; thread-safe.

    Graphs are kept in memory (rebuilt from the store at start) so a match
    never re-parses JGF.
    """

    def __init__(
        self,
        store: Store,
        *,
        registration_secret: str | None = None,
        global_token: str | None = None,
        match_algorithm: str = "match",
        selection_algorithm: str = "random",
        selection_options: Mapping[str, Any] | None = None,
        lease_seconds: float = 300.0,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.limits = limits or Limits()
        self.clock = clock
        self.lease_seconds = lease_seconds
        self.global_token = global_token or None
        get_match_algorithm(match_algorithm)
        self.match_algorithm = match_algorithm or "match"
        self.selector: Selector = get_selector(selection_algorithm, selection_options or {})
        self.generated_secret: str | None = None
        self._init_registration_secret(registration_secret)
        self._graphs: dict[str, ClusterGraph] = {}
        self._graph_lock = threading.RLock()
        self._load_graphs()

    # -- start-up ---------------------------------------------------------
    def _init_registration_secret(self, secret: str | None) -> None:
        if secret:
            self.store.set_meta(REGISTRATION_SECRET_KEY, credentials.hash_secret(secret))
        elif self.store.get_meta(REGISTRATION_SECRET_KEY) is None:
            self.generated_secret = credentials.new_secret()
            self.store.set_meta(REGISTRATION_SECRET_KEY, credentials.hash_secret(self.generated_secret))
        self._registration_hash = self.store.get_meta(REGISTRATION_SECRET_KEY)

    def _load_graphs(self) -> None:
        for record in self.store.list_clusters():
            try:
                graph = ClusterGraph.from_jgf(record.nodes, name=record.name)
                for name, nodes in self.store.list_subsystems(record.name).items():
                    graph.add_subsystem(name, nodes)
            except InvalidArgument as exc:
                log.error("cluster %s: stored graph cannot be rebuilt (%s); it will not match jobs",
                          record.name, exc)
                continue
            self._graphs[record.name] = graph
        log.info("loaded %d cluster graphs from the store", len(self._graphs))

    @property
    def cluster_names(self) -> list[str]:
        with self._graph_lock:
            return sorted(self._graphs)

    # -- credentials ------------------------------------------------------
    def _cluster_by_secret(self, name: str, secret: str):
        check_name(name, "cluster", self.limits)
        if not secret:
            raise PermissionDenied("a cluster secret is required", field="secret")
        record = self.store.get_cluster(name)
        if record is None:
            raise NotFound(f"cluster {name!r} is not registered", field="cluster")
        if not credentials.check_secret(secret, record.secret_hash):
            raise PermissionDenied(f"wrong secret for cluster {name!r}", field="secret")
        return record

    # -- registration -----------------------------------------------------
    def register(self, name: str, secret: str, nodes: str) -> Registration:
        check_name(name, "name", self.limits)
        if not credentials.check_secret(secret, self._registration_hash):
            raise PermissionDenied("wrong or missing registration secret", field="secret")
        if not nodes:
            raise InvalidArgument("nodes (the cluster JGF) are required", field="nodes")
        if self.store.get_cluster(name) is not None:
            return Registration(created=False)
        graph = ClusterGraph.from_jgf(nodes, name=name)
        token = self.global_token or credentials.new_secret()
        cluster_secret = credentials.new_secret()
        with self._graph_lock:
            created = self.store.add_cluster(
                name, nodes, credentials.hash_secret(cluster_secret), credentials.hash_secret(token), self.clock()
            )
            if not created:
                return Registration(created=False)
            self._graphs[name] = graph
        log.info("registered cluster %s (%s)", name, _summary(graph))
        return Registration(created=True, token=token, secret=cluster_secret)

    def register_subsystem(self, cluster: str, secret: str, subsystem: str, nodes: str) -> None:
        check_name(subsystem, "subsystem", self.limits)
        self._cluster_by_secret(cluster, secret)
        if not nodes:
            raise InvalidArgument("nodes (the subsystem JGF) are required", field="nodes")
        with self._graph_lock:
            graph = self._graphs.get(cluster)
            if graph is None:
                raise FailedPrecondition(f"cluster {cluster!r} has no usable graph", field="cluster")
            previous = self.store.list_subsystems(cluster).get(subsystem)
            graph.add_subsystem(subsystem, nodes)
            try:
                self.store.put_subsystem(cluster, subsystem, nodes, self.clock())
            except BaseException:
                if previous is None:
                    graph.remove_subsystem(subsystem)
                else:
                    graph.add_subsystem(subsystem, previous)
                raise
        log.info("cluster %s registered subsystem %s", cluster, subsystem)

    def replace_graph(self, cluster: str, secret: str, nodes: str) -> None:
        """Swap a registered cluster's graph (it grew, shrank or changed), keeping its subsystems."""
        self._cluster_by_secret(cluster, secret)
        if not nodes:
            raise InvalidArgument("payload (the cluster JGF) is required", field="payload")
        graph = ClusterGraph.from_jgf(nodes, name=cluster)
        with self._graph_lock:
            for subsystem, text in self.store.list_subsystems(cluster).items():
                try:
                    graph.add_subsystem(subsystem, text)
                except InvalidArgument as exc:
                    raise InvalidArgument(
                        f"subsystem {subsystem!r} does not fit the new graph: {exc}", field="payload"
                    ) from None
            self.store.replace_nodes(cluster, nodes, self.clock())
            self._graphs[cluster] = graph
        log.info("cluster %s replaced its graph (%s)", cluster, _summary(graph))

    def delete_cluster(self, name: str, secret: str) -> None:
        self._cluster_by_secret(name, secret)
        with self._graph_lock:
            self.store.delete_cluster(name)
            self._graphs.pop(name, None)
        log.info("deleted cluster %s with its subsystems and jobs", name)

    def delete_subsystem(self, cluster: str, secret: str, subsystem: str) -> None:
        check_name(subsystem, "subsystem", self.limits)
        self._cluster_by_secret(cluster, secret)
        with self._graph_lock:
            if not self.store.delete_subsystem(cluster, subsystem, self.clock()):
                raise NotFound(f"cluster {cluster!r} has no subsystem {subsystem!r}", field="subsystem")
            graph = self._graphs.get(cluster)
            if graph is not None:
                graph.remove_subsystem(subsystem)
        log.info("cluster %s deleted subsystem %s", cluster, subsystem)

    # -- state ------------------------------------------------------------
    def update_state(self, cluster: str, secret: str, payload: str) -> dict[str, Any]:
        self._cluster_by_secret(cluster, secret)
        updates = parse_state_payload(payload, self.limits)
        state = self.store.merge_state(cluster, updates, self.clock())
        log.info("cluster %s state: %s", cluster, ", ".join(f"{k}={v}" for k, v in updates.items()))
        return state

    # -- matching ---------------------------------------------------------
    def parse_jobspec(self, text: str) -> Jobspec:
        if not text:
            raise InvalidArgument("jobspec is required", field="jobspec")
        if len(text.encode("utf-8", "surrogatepass")) > self.limits.max_jobspec_bytes:
            raise ResourceExhausted(f"jobspec is larger than {self.limits.max_jobspec_bytes} bytes",
                                    field="jobspec")
        return parse_jobspec(text)

    def _match(self, names: Sequence[str], jobspec: Jobspec, algorithm: str) -> dict[str, MatchResult]:
        algorithm = algorithm or self.match_algorithm
        get_match_algorithm(algorithm)
        results = {}
        with self._graph_lock:
            for name in names:
                graph = self._graphs.get(name)
                if graph is None:
                    results[name] = MatchResult(False, "no usable resource graph")
                else:
                    results[name] = match(graph, jobspec, algorithm)
        return results

    def satisfy(self, jobspec_text: str, algorithm: str = "") -> SatisfyOutcome:
        jobspec = self.parse_jobspec(jobspec_text)
        results = self._match(self.cluster_names, jobspec, algorithm)
        matches = [name for name, result in results.items() if result.ok]
        reasons = {name: result.reason or "does not match" for name, result in results.items() if not result.ok}
        for name, reason in reasons.items():
            log.info("satisfy: %s: %s", name, reason)
        return SatisfyOutcome(matches, reasons, len(results))

    # -- jobs -------------------------------------------------------------
    def submit(
        self,
        name: str,
        clusters: Sequence[tuple[str, str]],
        jobspec_text: str,
        select_algorithm: str = "",
        select_options: Mapping[str, str] | None = None,
        satisfy_only: bool = False,
    ) -> SubmitOutcome:
        if not clusters:
            raise InvalidArgument("clusters: at least one cluster (name and token) is required", field="clusters")
        candidates: list[str] = []
        for index, (cluster, token) in enumerate(clusters):
            check_name(cluster, f"clusters[{index}].name", self.limits)
            if not token:
                raise PermissionDenied(f"clusters[{index}]: a token is required for {cluster!r}", field="token")
            record = self.store.get_cluster(cluster)
            if record is None:
                raise NotFound(f"cluster {cluster!r} is not registered", field=f"clusters[{index}].name")
            if not credentials.check_secret(token, record.token_hash):
                raise PermissionDenied(f"wrong token for cluster {cluster!r}", field=f"clusters[{index}].token")
            if cluster not in candidates:
                candidates.append(cluster)
        jobspec = self.parse_jobspec(jobspec_text)
        selector = self.selector
        if select_algorithm:
            selector = get_selector(select_algorithm, dict(select_options or {}))
        elif select_options:
            selector = get_selector(self.selector.name, dict(select_options))

        results = self._match(candidates, jobspec, "")
        matching = [c for c in candidates if results[c].ok]
        reasons = {c: results[c].reason or "does not match" for c in candidates if not results[c].ok}
        if not matching:
            if satisfy_only:
                return SubmitOutcome(None, [], None, reasons)
            detail = "; ".join(f"{c}: {r}" for c, r in reasons.items())
            raise FailedPrecondition(f"no listed cluster can run this job ({detail})", field="jobspec")

        states = {c: self.store.get_cluster(c).state for c in matching}
        selection = selector.select(matching, states, jobspec.parameters)
        log.info("selection for job %r among %s: %s", name or jobspec.name, matching, selection.reason)
        if satisfy_only:
            return SubmitOutcome(None, list(selection.clusters), selection, reasons)
        if not selection.clusters:
            raise FailedPrecondition(selection.reason, field="select_algorithm")
        chosen = selection.clusters[0]
        job_name = name or jobspec.name or (jobspec.command[0] if jobspec.command else "job")
        command = shlex.join(jobspec.command)
        job = self.store.add_job(chosen, job_name, jobspec_text, command, self.clock())
        log.info("job %d (%s) assigned to cluster %s", job.id, job_name, chosen)
        return SubmitOutcome(job, [chosen], selection, reasons)

    def receive(self, cluster: str, secret: str, max_jobs: int, owner: str) -> list[JobRecord]:
        self._cluster_by_secret(cluster, secret)
        limit = self.limits.max_receive_jobs
        count = limit if max_jobs < 1 else min(max_jobs, limit)
        jobs = self.store.lease_jobs(cluster, owner, count, self.lease_seconds, self.clock())
        if jobs:
            log.info("cluster %s received %d jobs (leased to %s for %.0fs)",
                     cluster, len(jobs), owner, self.lease_seconds)
        return jobs

    def accept(self, cluster: str, secret: str, ids: Sequence[int]) -> AcceptOutcome:
        self._cluster_by_secret(cluster, secret)
        if not ids:
            raise InvalidArgument("jobids: at least one job id is required", field="jobids")
        moved = set(self.store.accept_jobs(cluster, ids, self.clock()))
        accepted, refused = [], []
        for job_id in dict.fromkeys(ids):
            if job_id in moved:
                accepted.append(job_id)
                continue
            job = self.store.get_job(job_id)
            already_ours = job is not None and job.cluster == cluster and job.state not in (
                JobState.ASSIGNED, JobState.LEASED)
            (accepted if already_ours else refused).append(job_id)
        log.info("cluster %s accepted jobs %s%s", cluster, sorted(moved) or "none new",
                 f", refused {refused}" if refused else "")
        return AcceptOutcome(accepted, refused)


def _summary(graph: ClusterGraph) -> str:
    counts = graph.summary()
    return ", ".join(f"{count} {kind}" for kind, count in sorted(counts.items())) or "empty"
