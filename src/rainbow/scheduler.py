"""The scheduler core: what each request means, independent of gRPC and SQL.

Request -> (credentials, validation) -> graph match -> selection -> store -> reply.
The servicers in ``rainbow.server`` translate protobuf messages to these calls
and RainbowError subclasses to gRPC status codes. Every change of a job's state
is written with an event; ``on_events`` (set by the server) hears about them so
streams can wake up.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import random
import shlex
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rainbow import credentials
from rainbow.errors import (
    Aborted,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
)
from rainbow.graph import ClusterGraph, MatchResult, get_match_algorithm, match
from rainbow.graph.match import units
from rainbow.jobspec import Jobspec, parse_jobspec
from rainbow.lifecycle import FINAL_STATES, JobState, parse_state
from rainbow.limits import Limits
from rainbow.selection import Selection, Selector, get_selector, selector_for_request
from rainbow.store import HeldJob, JobEvent, JobRecord, NewJob, Store

log = logging.getLogger("rainbow.scheduler")

REGISTRATION_SECRET_KEY = "registration_secret_sha256"  # noqa: S105 - a key name
# How many clusters' state keys a job's placement record keeps (the chosen one first).
PLACEMENT_STATES = 8


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
class PendingSubmit:
    """A placed job not yet stored: ``Scheduler.prepare_submit`` makes it, the store writes ``job``."""

    job: NewJob
    selection: Selection
    reasons: dict[str, str]
    authorized: tuple[str, ...] = ()


@dataclass(frozen=True)
class AcceptOutcome:
    accepted: list[int]
    refused: list[int]


@dataclass
class _Cluster:
    """What the scheduler keeps in memory per cluster; the store stays the source of truth."""

    name: str
    secret_hash: str
    token_hash: str
    state: dict[str, Any]
    graph: ClusterGraph | None
    reachable: bool = True
    # The stored (created, version) the graph was built from: a change elsewhere changes one of them.
    origin: tuple[float, int] = (0.0, 1)
    # The stored ``updated`` time the credentials and state were read at (a state change moves it).
    updated: float = 0.0

    @property
    def stored_version(self) -> tuple[float, int, float]:
        """What ``Store.cluster_versions`` says of this copy's cluster while the copy is current."""
        return (*self.origin, self.updated)


class _LRU:
    """A small thread-safe least-recently-used cache."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()
        with self._lock:
            self._items[key] = value
            if len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def peek(self, key: Hashable) -> Any:
        """The cached value (now the most recently used) or None, without making one."""
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value


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
        raise ResourceExhausted(f"payload is larger than {limits.max_state_bytes} bytes", field="payload")
    try:
        data = json.loads(payload)
    except ValueError as exc:
        raise InvalidArgument(f"payload is not valid JSON: {exc}", field="payload") from None
    except RecursionError:
        raise InvalidArgument("payload is nested too deeply (state must be flat)", field="payload") from None
    if isinstance(data, str):
        # The published Python client sends json.dumps(file text): a JSON string holding the object.
        try:
            data = json.loads(data)
        except (ValueError, RecursionError):
            data = None
        if not isinstance(data, dict):
            raise InvalidArgument("payload is a JSON string that does not hold a JSON object", field="payload")
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


def _job_state(value: str, what: str = "state") -> JobState:
    try:
        return parse_state(value)
    except ValueError as exc:
        raise InvalidArgument(f"{what}: {exc}", field=what) from None



# What an agent may say about where a job's output is (JobOutput on the wire), and how long each may be.
JOB_OUTPUT_FIELDS = ("host", "stdout", "stderr", "command")
MAX_OUTPUT_FIELD = 4096


def _output_json(output: Mapping[str, str] | None) -> str | None:
    """The stored form of a reported output location (None when nothing was said)."""
    if not output:
        return None
    kept = {}
    for key, value in output.items():
        if key not in JOB_OUTPUT_FIELDS:
            raise InvalidArgument(f"output.{key}: unknown field", field=f"output.{key}")
        if len(value) > MAX_OUTPUT_FIELD:
            raise InvalidArgument(f"output.{key}: longer than {MAX_OUTPUT_FIELD} characters", field=f"output.{key}")
        if value:
            kept[key] = value
    return json.dumps(kept, sort_keys=True) if kept else None


class Scheduler:
    """Clusters, their graphs and jobs; thread-safe.

    Credentials, state and graphs are kept in memory (rebuilt from the store
    at start), so a request never re-reads or re-parses JGF.
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
        cluster_timeout: float = 600.0,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.limits = limits or Limits()
        self.clock = clock
        self.lease_seconds = lease_seconds
        self.cluster_timeout = cluster_timeout
        self.global_token = global_token or None
        get_match_algorithm(match_algorithm)
        self.match_algorithm = match_algorithm or "match"
        self.selector: Selector = get_selector(selection_algorithm, selection_options or {})
        self.on_events: Callable[[list[JobEvent]], None] = lambda events: None
        # (what, seconds) for "match" and "selection"; the server feeds its metrics with it.
        self.on_timing: Callable[[str, float], None] = lambda what, seconds: None
        self.generated_secret: str | None = None
        self._init_registration_secret(registration_secret)
        self._clusters: dict[str, _Cluster] = {}
        self._lock = threading.RLock()
        self._jobspecs = _LRU(1024)
        self._selectors = _LRU(256)
        # (id of a Jobspec, algorithm) -> (that Jobspec, {cluster: (graph state, result)}); the entry holds
        # the Jobspec, so its id cannot be reused by another one while the entry lives.
        self._matches = _LRU(1024)
        self._rng = random.Random()
        self._load_clusters()
        self.store.watch_clusters(self._cluster_changed)

    # -- start-up ---------------------------------------------------------
    def _init_registration_secret(self, secret: str | None) -> None:
        if secret:
            self.store.set_meta(REGISTRATION_SECRET_KEY, credentials.hash_secret(secret))
        elif self.store.get_meta(REGISTRATION_SECRET_KEY) is None:
            generated = credentials.new_secret()
            # Replicas starting together on a new database: only the first one's secret is kept (and shown).
            if self.store.add_meta(REGISTRATION_SECRET_KEY, credentials.hash_secret(generated)):
                self.generated_secret = generated
        self._registration_hash = self.store.get_meta(REGISTRATION_SECRET_KEY)

    def forget_generated_secret(self) -> None:
        """Remove a secret this start generated and stored (it was never shown: the start failed)."""
        if self.generated_secret is not None:
            self.store.remove_meta(REGISTRATION_SECRET_KEY, credentials.hash_secret(self.generated_secret))
            self.generated_secret = None

    def _build_graph(self, name: str) -> ClusterGraph | None:
        try:
            graph = ClusterGraph.from_jgf(self.store.get_nodes(name) or "", name=name)
            for subsystem, nodes in self.store.list_subsystems(name).items():
                graph.add_subsystem(subsystem, nodes)
        except InvalidArgument as exc:
            log.error("cluster %s: stored graph cannot be rebuilt (%s); it will not match jobs", name, exc)
            return None
        return graph

    def _load_clusters(self) -> None:
        for record in self.store.list_clusters():
            self._clusters[record.name] = _Cluster(
                record.name, record.secret_hash, record.token_hash, record.state,
                self._build_graph(record.name), record.reachable, (record.created, record.version),
                record.updated,
            )
        log.info("loaded %s from the store", plural(len(self._clusters), "cluster"))

    # -- replicas: changes made through another server --------------------
    def _cluster_changed(self, name: str | None) -> None:
        if name is None:
            self.refresh_all()
        else:
            self.refresh_cluster(name)

    def refresh_all(self) -> None:
        """Bring every cached cluster in line with the store (after missed notifications)."""
        names = {record.name for record in self.store.list_clusters()}
        with self._lock:
            names |= set(self._clusters)
        for name in sorted(names):
            self.refresh_cluster(name)

    def refresh_cluster(self, name: str) -> None:
        """Reload one cluster's credentials, state and reachability from the store.

        The graph is rebuilt only when the stored ``version`` (or ``created``:
        the name was deleted and registered again) differs from the cached one.
        Called for changes another replica made (the store's ``watch_clusters``);
        harmless for this replica's own changes.
        """
        record = self.store.get_cluster(name)
        if record is None:
            with self._lock:
                if self._clusters.pop(name, None) is not None:
                    log.info("cluster %s was deleted through another server", name)
            return
        origin = (record.created, record.version)
        with self._lock:
            entry = self._clusters.get(name)
            stale = entry is None or entry.origin != origin
        # Built outside the lock (graphs can be large); read after the record, so never older than it.
        graph = self._build_graph(name) if stale else None
        with self._lock:
            entry = self._clusters.get(name)
            if entry is None:
                self._clusters[name] = _Cluster(name, record.secret_hash, record.token_hash, record.state, graph,
                                                record.reachable, origin, record.updated)
                log.info("cluster %s was registered through another server", name)
                return
            entry.secret_hash, entry.token_hash = record.secret_hash, record.token_hash
            entry.state, entry.reachable, entry.updated = record.state, record.reachable, record.updated
            if stale:
                entry.graph, entry.origin = graph, origin

    def sync_clusters(self, names: Sequence[str] | None = None) -> None:
        """Read-your-writes across replicas: make the cached copies of the named clusters (all: None) current.

        On a store other servers write to, a change made through another replica
        reaches this one by notification, a little later; a request that arrives
        first (behind a load balancer, the normal case) must not be answered from
        an older copy. One small read of the clusters' stored versions says which
        copies are missing, stale or of deleted clusters; only those are reloaded.
        A store no other process writes to has nothing to check.
        """
        if not self.store.shared:
            return
        stored = self.store.cluster_versions(None if names is None else list(dict.fromkeys(names)))
        with self._lock:
            held = set(self._clusters) if names is None else {n for n in names if n in self._clusters}
            changed = [name for name, version in stored.items()
                       if name not in self._clusters or self._clusters[name].stored_version != version]
        for name in sorted({*changed, *(held - set(stored))}):
            self.refresh_cluster(name)

    @property
    def cluster_names(self) -> list[str]:
        with self._lock:
            return sorted(self._clusters)

    def cluster_state(self, name: str) -> dict[str, Any]:
        with self._lock:
            return dict(self._clusters[name].state)

    def cluster_graph(self, name: str) -> ClusterGraph | None:
        """The cluster's resource graph as matched (None when unknown or unusable); read-only."""
        with self._lock:
            entry = self._clusters.get(name)
            return entry.graph if entry else None

    def _publish(self, events: list[JobEvent]) -> None:
        if events:
            self.on_events(events)

    # -- credentials ------------------------------------------------------
    def _cluster_by_secret(self, name: str, secret: str) -> _Cluster:
        check_name(name, "cluster", self.limits)
        if not secret:
            raise PermissionDenied("a cluster secret is required", field="secret")
        self.sync_clusters([name])
        with self._lock:
            cluster = self._clusters.get(name)
        if cluster is None:
            raise NotFound(f"cluster {name!r} is not registered", field="cluster")
        if not credentials.check_secret(secret, cluster.secret_hash):
            raise PermissionDenied(f"wrong secret for cluster {name!r}", field="secret")
        return cluster

    def authorize_clusters(self, clusters: Sequence[tuple[str, str]]) -> list[str]:
        """Names of the listed clusters (each once, in order), each checked against its submit token."""
        if not clusters:
            raise InvalidArgument("clusters: at least one cluster (name and token) is required", field="clusters")
        names: dict[str, None] = {}
        hashes: dict[str, str] = {}  # a request usually lists one token (the global one) many times
        limit = self.limits.max_name_length
        self.sync_clusters([name for name, _ in clusters if name])
        with self._lock:
            for index, (name, token) in enumerate(clusters):
                if not name or len(name) > limit or not name.strip():
                    check_name(name, f"clusters[{index}]", self.limits)
                if not token:
                    raise PermissionDenied(f"clusters[{index}]: a token is required for {name!r}", field="token")
                token_hash = hashes.get(token)
                if token_hash is None:
                    token_hash = hashes[token] = credentials.hash_secret(token)
                cluster = self._clusters.get(name)
                if cluster is None:
                    raise NotFound(f"cluster {name!r} is not registered", field=f"clusters[{index}]")
                if not hmac.compare_digest(token_hash, cluster.token_hash):
                    raise PermissionDenied(f"wrong token for cluster {name!r}", field="token")
                names[name] = None
        return list(names)

    def _job_for_submitter(self, job_id: int, token: str) -> JobRecord:
        job = self.store.get_job(job_id) if job_id > 0 else None
        if job is None:
            raise NotFound(f"job {job_id} does not exist", field="jobid")
        # The token of the job's cluster, or of any cluster it could have been placed on
        # (a re-placed job stays visible to whoever submitted it).
        self.sync_clusters([job.cluster, *job.candidates])
        with self._lock:
            hashes = [self._clusters[c].token_hash for c in (job.cluster, *job.candidates) if c in self._clusters]
        if not any(credentials.check_secret(token, h) for h in hashes):
            raise PermissionDenied(f"the token does not open job {job_id}", field="token")
        return job

    # -- registration -----------------------------------------------------
    @property
    def _graph_limits(self) -> dict[str, int]:
        return {"max_vertices": self.limits.max_jgf_vertices, "max_edges": self.limits.max_jgf_edges}

    def _load_graph(self, nodes: str, name: str) -> ClusterGraph:
        return ClusterGraph.from_jgf(nodes, name=name, **self._graph_limits)

    def _registration_secret_ok(self, secret: str) -> bool:
        """Check the registration secret; on a shared store a replica started with a new ``--secret``
        may have replaced it since this one read it, so a mismatch is checked again against the store."""
        if credentials.check_secret(secret, self._registration_hash):
            return True
        if not self.store.shared or not secret:
            return False
        self._registration_hash = self.store.get_meta(REGISTRATION_SECRET_KEY)
        return credentials.check_secret(secret, self._registration_hash)

    def register(self, name: str, secret: str, nodes: str) -> Registration:
        check_name(name, "name", self.limits)
        if not self._registration_secret_ok(secret):
            raise PermissionDenied("wrong or missing registration secret", field="secret")
        if not nodes:
            raise InvalidArgument("nodes (the cluster JGF) are required", field="nodes")
        self.sync_clusters([name])
        with self._lock:
            if name in self._clusters:
                return Registration(created=False)
        graph = self._load_graph(nodes, name)
        token = self.global_token or credentials.new_secret()
        cluster_secret = credentials.new_secret()
        now = self.clock()
        entry = _Cluster(name, credentials.hash_secret(cluster_secret), credentials.hash_secret(token), {}, graph,
                         origin=(now, 1), updated=now)
        with self._lock:
            if not self.store.add_cluster(name, nodes, entry.secret_hash, entry.token_hash, now):
                return Registration(created=False)
            self._clusters[name] = entry
        log.info("registered cluster %s (%s)", name, _summary(graph))
        return Registration(created=True, token=token, secret=cluster_secret)

    def register_subsystem(self, cluster: str, secret: str, subsystem: str, nodes: str) -> None:
        check_name(subsystem, "subsystem", self.limits)
        entry = self._cluster_by_secret(cluster, secret)
        if not nodes:
            raise InvalidArgument("nodes (the subsystem JGF) are required", field="nodes")
        with self._lock:
            graph = entry.graph
            if graph is None:
                raise FailedPrecondition(f"cluster {cluster!r} has no usable graph", field="cluster")
            previous = self.store.list_subsystems(cluster).get(subsystem)
            graph.add_subsystem(subsystem, nodes, **self._graph_limits)
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
        entry = self._cluster_by_secret(cluster, secret)
        if not nodes:
            raise InvalidArgument("payload (the cluster JGF) is required", field="payload")
        graph = self._load_graph(nodes, cluster)
        with self._lock:
            for subsystem, text in self.store.list_subsystems(cluster).items():
                try:
                    graph.add_subsystem(subsystem, text)
                except InvalidArgument as exc:
                    raise InvalidArgument(
                        f"subsystem {subsystem!r} does not fit the new graph: {exc}", field="payload"
                    ) from None
            self.store.replace_nodes(cluster, nodes, self.clock())
            entry.graph = graph
        log.info("cluster %s replaced its graph (%s)", cluster, _summary(graph))

    def delete_cluster(self, name: str, secret: str) -> None:
        self._cluster_by_secret(name, secret)
        with self._lock:
            self.store.delete_cluster(name)
            self._clusters.pop(name, None)
        log.info("deleted cluster %s with its subsystems and jobs", name)

    def delete_subsystem(self, cluster: str, secret: str, subsystem: str) -> None:
        check_name(subsystem, "subsystem", self.limits)
        entry = self._cluster_by_secret(cluster, secret)
        with self._lock:
            if not self.store.delete_subsystem(cluster, subsystem, self.clock()):
                raise NotFound(f"cluster {cluster!r} has no subsystem {subsystem!r}", field="subsystem")
            if entry.graph is not None:
                entry.graph.remove_subsystem(subsystem)
        log.info("cluster %s deleted subsystem %s", cluster, subsystem)

    # -- state ------------------------------------------------------------
    def update_state(self, cluster: str, secret: str, payload: str) -> dict[str, Any]:
        entry = self._cluster_by_secret(cluster, secret)
        updates = parse_state_payload(payload, self.limits)
        now = self.clock()
        with self._lock:
            state = self.store.merge_state(cluster, updates, now)
            entry.state, entry.updated = state, now
        log.debug("cluster %s state: %s", cluster, ", ".join(f"{k}={v}" for k, v in updates.items()))
        return state

    # -- matching ---------------------------------------------------------
    def parse_jobspec(self, text: str) -> Jobspec:
        if not text:
            raise InvalidArgument("jobspec is required", field="jobspec")
        if len(text) > self.limits.max_jobspec_bytes:
            raise ResourceExhausted(f"jobspec is larger than {self.limits.max_jobspec_bytes} bytes", field="jobspec")
        return self._jobspecs.get(text, lambda: parse_jobspec(text))

    def _match(
        self, names: Sequence[str], jobspec: Jobspec, algorithm: str, cached_only: bool = False
    ) -> dict[str, MatchResult] | None:
        """Match results per cluster, remembered per (graph state, jobspec, algorithm).

        A graph's state is replaced whenever its cluster or a subsystem changes,
        so a remembered result is used only while its state is still the graph's.
        With ``cached_only``, None instead of running the matcher.
        """
        algorithm = algorithm or self.match_algorithm
        get_match_algorithm(algorithm)
        known = self._matches.get((id(jobspec), algorithm), lambda: (jobspec, {}))[1]
        results = {}
        with self._lock:
            for name in names:
                entry = self._clusters.get(name)
                graph = entry.graph if entry else None
                if graph is None:
                    results[name] = MatchResult(False, "no usable resource graph")
                    continue
                state = graph.state
                hit = known.get(name)
                if hit is not None and hit[0] is state:
                    results[name] = hit[1]
                elif cached_only:
                    return None
                else:
                    result = match(graph, jobspec, algorithm)
                    known[name] = (state, result)
                    results[name] = result
        return results

    def satisfy(self, jobspec_text: str, algorithm: str = "") -> SatisfyOutcome:
        jobspec = self.parse_jobspec(jobspec_text)
        self.sync_clusters()
        results = self._match(self.cluster_names, jobspec, algorithm)
        assert results is not None
        matches = [name for name, result in results.items() if result.ok]
        reasons = {name: result.reason or "does not match" for name, result in results.items() if not result.ok}
        for name, reason in reasons.items():
            log.info("satisfy: %s: %s", name, reason)
        return SatisfyOutcome(matches, reasons, len(results))

    def _selector(self, name: str, options: Mapping[str, str] | None) -> Selector:
        if not name and not options:
            return self.selector
        key = (name, tuple(sorted((options or {}).items())))
        return self._selectors.get(key, lambda: selector_for_request(self.selector, name, dict(options or {})))

    def _place(
        self, candidates: Sequence[str], jobspec: Jobspec, selector: Selector, cached_only: bool = False
    ) -> tuple[Selection | None, dict[str, str]] | None:
        """Match then select among reachable candidates: (selection or None if nothing matched, reasons).

        None when ``cached_only`` and a match would have to run.
        """
        started = time.perf_counter()
        results = self._match(candidates, jobspec, "", cached_only)
        if results is None:
            return None
        matched = time.perf_counter()
        self.on_timing("match", matched - started)
        reasons = {c: results[c].reason or "does not match" for c in candidates if not results[c].ok}
        with self._lock:
            matching = [c for c in candidates if results[c].ok and c in self._clusters]
            states = {c: self._clusters[c].state for c in matching}
        if not matching:
            return None, reasons
        selection = selector.select(matching, states, jobspec.parameters, rng=self._rng)
        self.on_timing("selection", time.perf_counter() - matched)
        return selection, reasons

    def _placement_states(self, selection: Selection) -> dict[str, dict[str, Any]]:
        """The state keys selection decided from, for the placement record: the chosen cluster's and a
        few others' (a record is kept with every job, so it stays small however many clusters matched)."""
        shown = list(dict.fromkeys(c for c in (selection.cluster, *selection.candidates) if c))[:PLACEMENT_STATES]
        with self._lock:
            return {c: dict(self._clusters[c].state) for c in shown if c in self._clusters}

    # -- jobs -------------------------------------------------------------
    def submit(
        self,
        name: str,
        clusters: Sequence[tuple[str, str]],
        jobspec_text: str,
        select_algorithm: str = "",
        select_options: Mapping[str, str] | None = None,
        satisfy_only: bool = False,
        key: str = "",
    ) -> SubmitOutcome:
        prepared = self.prepare_submit(
            name, clusters, jobspec_text, select_algorithm, select_options, satisfy_only, key=key
        )
        if not isinstance(prepared, PendingSubmit):
            assert prepared is not None
            return prepared
        outcome = self.complete_submits([prepared], self.store.add_jobs([prepared.job]))[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def prepare_submit(
        self,
        name: str,
        clusters: Sequence[tuple[str, str]],
        jobspec_text: str,
        select_algorithm: str = "",
        select_options: Mapping[str, str] | None = None,
        satisfy_only: bool = False,
        cached_only: bool = False,
        key: str = "",
    ) -> SubmitOutcome | PendingSubmit | None:
        """Everything of ``submit`` before the store: the outcome of ``satisfy_only``, else the job to write.

        Write ``PendingSubmit.job`` with ``store.add_job``/``add_jobs``, then call ``complete_submits``.
        With ``cached_only``, None when the jobspec would have to be parsed, a
        selector made or a match run: a server may run the cheap rest inline.
        On a shared store the clusters' versions are read first, so never inline.
        """
        if cached_only and self.store.shared:
            return None
        candidates = self.authorize_clusters(clusters)
        if key and len(key) > self.limits.max_name_length:
            raise InvalidArgument(f"idempotency_key is longer than {self.limits.max_name_length} characters",
                                  field="idempotency_key")
        if cached_only:
            jobspec = self._jobspecs.peek(jobspec_text)
            if jobspec is None or ((select_algorithm or select_options) and self._selectors.peek(
                    (select_algorithm, tuple(sorted((select_options or {}).items())))) is None):
                return None
        else:
            jobspec = self.parse_jobspec(jobspec_text)
        selector = self._selector(select_algorithm, select_options)
        placed = self._place(candidates, jobspec, selector, cached_only)
        if placed is None:
            return None
        selection, reasons = placed
        states = self._placement_states(selection) if selection is not None and not satisfy_only else {}
        if selection is None:
            if satisfy_only:
                return SubmitOutcome(None, [], None, reasons)
            detail = "; ".join(f"{c}: {r}" for c, r in reasons.items())
            raise FailedPrecondition(f"no listed cluster can run this job ({detail})", field="jobspec")
        if satisfy_only:
            log.info("selection for job %r among %s: %s", name or jobspec.name, list(selection.candidates),
                     selection.reason)
            for line in selection.trace:
                log.debug("  %s", line)
            return SubmitOutcome(None, list(selection.clusters), selection, reasons)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("selection for job %r among %s: %s", name or jobspec.name, list(selection.candidates),
                      selection.reason)
            for line in selection.trace:
                log.debug("  %s", line)
        if not selection.clusters:
            raise FailedPrecondition(selection.reason, field="select_algorithm")
        chosen = selection.clusters[0]
        job_name = name or jobspec.name or (jobspec.command[0] if jobspec.command else "job")
        matching = tuple(c for c in candidates if c not in reasons)
        new = NewJob(chosen, job_name, jobspec_text, shlex.join(jobspec.command), self.clock(), matching, key or None,
                     _placement_json(selection, reasons, candidates, states))
        return PendingSubmit(new, selection, reasons, tuple(candidates))

    def complete_submits(
        self, prepared: Sequence[PendingSubmit], stored: Sequence[tuple[JobRecord, JobEvent | None] | Exception]
    ) -> list[SubmitOutcome | Exception]:
        """Announce jobs the store has written (``stored`` lines up with ``prepared``).

        A job stored earlier under the same idempotency key comes back without an
        event: it is answered again, not announced again. The server's one log
        line per request is a debug line; the placement is logged here.
        """
        outcomes: list[SubmitOutcome | Exception] = []
        events: list[JobEvent] = []
        for pending, result in zip(prepared, stored, strict=True):
            if isinstance(result, Exception):
                outcomes.append(result)
                continue
            job, event = result
            if event is None:
                if job.cluster not in pending.authorized:
                    outcomes.append(PermissionDenied("idempotency_key belongs to a job of another cluster",
                                                     field="idempotency_key"))
                    continue
                log.info("job %d resent with its idempotency key: not stored again", job.id)
            else:
                events.append(event)
            log.info("job %d (%s) assigned to cluster %s (%s)", job.id, job.name, job.cluster,
                      pending.selection.reason)
            outcomes.append(SubmitOutcome(job, [job.cluster], pending.selection, pending.reasons))
        self._publish(events)
        return outcomes

    def receive(self, cluster: str, secret: str, max_jobs: int, owner: str, window: int = 0) -> list[JobRecord]:
        """Lease waiting jobs to ``owner``: at most ``max_jobs``, and with a ``window`` at most that many
        leases not yet accepted at once (a stream's flow control)."""
        self._mark_seen(self._cluster_by_secret(cluster, secret))
        limit = self.limits.max_receive_jobs
        count = limit if max_jobs < 1 else min(max_jobs, limit)
        jobs, events = self.store.lease_jobs(cluster, owner, count, self.lease_seconds, self.clock(), window)
        self._publish(events)
        if jobs:
            log.info("cluster %s received %s (leased to %s for %.0fs)",
                     cluster, plural(len(jobs), "job"), owner, self.lease_seconds)
        return jobs

    def renew(self, cluster: str, secret: str, owner: str) -> None:
        """Extend every lease ``owner`` holds on ``cluster`` (its job stream is open: it is alive)."""
        self._cluster_by_secret(cluster, secret)
        now = self.clock()
        self.store.renew_leases(cluster, owner, None, now + self.lease_seconds, now)

    def accept(
        self, cluster: str, secret: str, ids: Sequence[int], owner: str = "", tokens: Mapping[int, int] | None = None
    ) -> AcceptOutcome:
        """Accept jobs for ``owner``; Aborted (nothing accepted) when another holder took any of them over."""
        self._cluster_by_secret(cluster, secret)
        if not ids:
            raise InvalidArgument("jobids: at least one job id is required", field="jobids")
        moved, events, fenced = self.store.accept_jobs(cluster, ids, self.clock(), owner, tokens)
        if fenced:
            reasons = "; ".join(fenced[job_id] for job_id in sorted(fenced)[:10])
            more = f" (and {len(fenced) - 10} more)" if len(fenced) > 10 else ""
            log.warning("cluster %s: accept by %s refused: %s%s", cluster, owner or "a caller", reasons, more)
            raise Aborted(f"lease lost, nothing accepted: {reasons}{more}", field="jobids")
        self._publish(events)
        accepted, refused = [], []
        moved_ids = set(moved)
        for job_id in dict.fromkeys(ids):
            if job_id in moved_ids:
                accepted.append(job_id)
                continue
            job = self.store.get_job(job_id)
            already_ours = job is not None and job.cluster == cluster and job.state not in (
                JobState.ASSIGNED, JobState.LEASED, JobState.CANCELLED)
            (accepted if already_ours else refused).append(job_id)
        log.info("cluster %s accepted %s%s", cluster, _ids(moved) if moved else "no new jobs",
                 f", refused {_ids(refused)}" if refused else "")
        return AcceptOutcome(accepted, refused)

    # -- lifecycle: clusters report ----------------------------------------
    def report_state(
        self,
        cluster: str,
        secret: str,
        job_id: int,
        state: str,
        local_id: str = "",
        exit_code: int | None = None,
        message: str = "",
        output: Mapping[str, str] | None = None,
        owner: str = "",
        token: int = 0,
    ) -> JobRecord:
        """Apply a cluster's report; ``output`` says where the job's output is (``JOB_OUTPUT_FIELDS``);
        ``owner``/``token`` fence it (Aborted when the reporter's lease was taken over)."""
        self._mark_seen(self._cluster_by_secret(cluster, secret))
        new_state = _job_state(state)
        if new_state in (JobState.ASSIGNED, JobState.LEASED, JobState.UNKNOWN):
            raise InvalidArgument(f"state: a cluster cannot report {new_state.value!r}", field="state")
        job, events = self.store.report_state(
            cluster, job_id, new_state, self.clock(), local_id or None, exit_code, message or None,
            _output_json(output), owner, token,
        )
        if job is None:
            raise NotFound(f"cluster {cluster!r} has no job {job_id}", field="jobid")
        self._publish(events)
        if events:
            log.info("job %d on %s is %s%s", job_id, cluster, new_state.value,
                     f" (local id {job.local_id})" if job.local_id else "")
        elif job.state != new_state:
            log.warning("job %d on %s: refused move %s -> %s", job_id, cluster, job.state.value, new_state.value)
        return job

    def heartbeat(
        self, cluster: str, secret: str, held: Sequence[HeldJob], owner: str = ""
    ) -> tuple[list[int], list[int]]:
        """Contact with an inventory: reconcile, renew ``owner``'s leases; (ids to cancel, ids revoked)."""
        entry = self._cluster_by_secret(cluster, secret)
        now = self.clock()
        cancel, events = self.store.heartbeat(cluster, held, now)
        if not entry.reachable:
            log.info("cluster %s is reachable again (%d jobs reconciled)", cluster, len(events))
        entry.reachable = True
        self._publish(events)
        revoked: list[int] = []
        tokens = {job.job_id: job.lease for job in held if job.lease}
        if owner and tokens:
            revoked = self.store.renew_leases(cluster, owner, tokens, now + self.lease_seconds, now)
            if revoked:
                log.info("cluster %s: %s no longer holds %s", cluster, owner, _ids(revoked))
        return cancel, revoked

    def _mark_seen(self, entry: _Cluster) -> None:
        if not entry.reachable:
            self.store.heartbeat(entry.name, [], self.clock())
            entry.reachable = True

    def check_clusters(self) -> list[str]:
        """Mark silent clusters unreachable and re-place their waiting jobs; returns newly silent ones."""
        if self.cluster_timeout <= 0:
            return []
        now = self.clock()
        silent, events = self.store.mark_unreachable(now - self.cluster_timeout, now)
        self._publish(events)
        with self._lock:
            for name in silent:
                if name in self._clusters:
                    self._clusters[name].reachable = False
            unreachable = [c.name for c in self._clusters.values() if not c.reachable]
        for name in silent:
            log.warning("cluster %s is unreachable (silent for %.0fs); %s now unknown",
                        name, self.cluster_timeout, plural(sum(1 for e in events if e.cluster == name), "job"))
        for name in unreachable:
            self._replace_waiting(name, now)
        return silent

    def _replace_waiting(self, cluster: str, now: float) -> None:
        for job in self.store.waiting_jobs(cluster, now):
            with self._lock:
                candidates = [c for c in job.candidates
                              if c != cluster and c in self._clusters and self._clusters[c].reachable]
            if not candidates:
                continue
            try:
                jobspec = self.parse_jobspec(job.jobspec)
                selection, _ = self._place(candidates, jobspec, self.selector)
            except InvalidArgument as exc:
                log.error("job %d cannot be re-placed: %s", job.id, exc)
                continue
            if selection is None or not selection.clusters:
                log.info("job %d waits for %s: no other reachable cluster can run it", job.id, cluster)
                continue
            target = selection.clusters[0]
            message = f"re-placed from {cluster} (unreachable)"
            event = self.store.reassign_job(job.id, cluster, target, now, message)
            if event is not None:
                self._publish([event])
                log.info("job %d %s to %s", job.id, message, target)

    # -- lifecycle: submitters ask --------------------------------------------
    def get_job(self, job_id: int, token: str) -> tuple[JobRecord, list[JobEvent]]:
        job = self._job_for_submitter(job_id, token)
        return job, self.store.job_history(job.id)

    def list_jobs(
        self, clusters: Sequence[tuple[str, str]], state: str = "", name: str = "", limit: int = 1000
    ) -> list[JobRecord]:
        names = self.authorize_clusters(clusters)
        wanted = _job_state(state) if state else None
        return self.store.list_jobs(names, wanted, name or None, min(limit, 10_000) if limit > 0 else 1000)

    def watch_scope(self, clusters: Sequence[tuple[str, str]], job_id: int | None) -> list[str] | None:
        """Clusters whose events a watcher may see; None for one job (it follows the job anywhere)."""
        if not job_id:
            return self.authorize_clusters(clusters)
        for _, token in clusters:
            try:
                self._job_for_submitter(job_id, token)
                return None
            except PermissionDenied:
                continue
        self._job_for_submitter(job_id, "")
        return None

    def cancel(self, job_id: int, token: str, reason: str = "") -> JobRecord:
        self._job_for_submitter(job_id, token)
        job, events = self.store.request_cancel(job_id, reason or "cancelled by the submitter", self.clock())
        self._publish(events)
        if job.state in FINAL_STATES and not events:
            if job.state != JobState.CANCELLED:
                raise FailedPrecondition(f"job {job_id} is already {job.state.value}", field="jobid")
            return job
        log.info("job %d: cancel %s", job_id, "done" if events else f"requested from {job.cluster}")
        return job


def plural(count: int, noun: str) -> str:
    """``count noun`` with the noun's plural when count is not 1: "1 job", "3 jobs"."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _placement_json(
    selection: Selection, reasons: Mapping[str, str], candidates: Sequence[str], states: Mapping[str, Any]
) -> str:
    """Why a job went where it did: the clusters listed, which matched, why the others did not,
    what selection decided (its steps) and the cluster state it decided from."""
    return json.dumps({
        "listed": list(candidates),
        "matched": [c for c in candidates if c not in reasons],
        "unmatched": dict(reasons),
        "algorithm": selection.algorithm,
        "chosen": selection.cluster,
        "reason": selection.reason,
        "trace": list(selection.trace),
        "states": dict(states),
        "states_omitted": max(0, len(selection.candidates) - len(states)),
    }, default=str)


def _ids(ids: Sequence[int], shown: int = 10) -> str:
    """Job ids for a log line: all of a few, the count and the first ones of many."""
    if len(ids) <= shown:
        return f"jobs {list(ids)}"
    return f"{len(ids)} jobs ({', '.join(map(str, ids[:shown]))}, ...)"


def _summary(graph: ClusterGraph) -> str:
    counts = graph.summary()
    return ", ".join(units(count, kind) for kind, count in sorted(counts.items())) or "empty"
