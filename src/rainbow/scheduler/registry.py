"""The cluster registry: each registered cluster's credentials, state, reachability and graph, in memory.

The store stays the source of truth; this is its cache, built at start, kept
current by this server's own changes and, on a store several servers share, by
the store's notifications (``refresh_cluster``) and the read-your-writes check
of ``sync_clusters``. A request never re-reads or re-parses JGF. Callers check
credentials first (``authorization``); the registry only keeps and changes.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rainbow import credentials, jgf
from rainbow.errors import FailedPrecondition, InvalidArgument, NotFound
from rainbow.graph import ClusterGraph, compact
from rainbow.scheduler.context import SchedulerContext, log
from rainbow.scheduler.text import graph_summary, plural
from rainbow.store import AccessRule

REGISTRATION_SECRET_KEY = "registration_secret_sha256"  # noqa: S105 - a key name


@dataclass(frozen=True)
class Registration:
    created: bool
    token: str = ""
    secret: str = ""


@dataclass
class ClusterEntry:
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
    # Who may use the cluster (``authorization.may_use`` reads them); none: every authenticated user.
    access: tuple[AccessRule, ...] = ()

    @property
    def stored_version(self) -> tuple[float, int, float]:
        """What ``Store.cluster_versions`` says of this copy's cluster while the copy is current."""
        return (*self.origin, self.updated)


class ClusterRegistry:
    """Registered clusters by name; thread-safe (hold ``lock`` to read several entries consistently)."""

    def __init__(self, context: SchedulerContext, *, registration_secret: str | None, global_token: str | None) -> None:
        self.context = context
        self.store = context.store
        self.global_token = global_token or None
        self.lock = threading.RLock()
        self.generated_secret: str | None = None
        self._init_registration_secret(registration_secret)
        self._clusters: dict[str, ClusterEntry] = {}
        self._load_clusters()
        self.store.watch_clusters(self._cluster_changed)

    # -- the registration secret -------------------------------------------
    def _init_registration_secret(self, secret: str | None) -> None:
        if secret:
            self.store.set_meta(REGISTRATION_SECRET_KEY, credentials.hash_secret(secret))
        elif self.store.get_meta(REGISTRATION_SECRET_KEY) is None:
            generated = credentials.new_secret()
            # Replicas starting together on a new database: only the first one's secret is kept (and shown).
            if self.store.add_meta(REGISTRATION_SECRET_KEY, credentials.hash_secret(generated)):
                self.generated_secret = generated
        self.registration_hash = self.store.get_meta(REGISTRATION_SECRET_KEY)

    def reload_registration_hash(self) -> str | None:
        """Read the registration secret's hash again (a replica may have replaced it)."""
        self.registration_hash = self.store.get_meta(REGISTRATION_SECRET_KEY)
        return self.registration_hash

    def forget_generated_secret(self) -> None:
        """Remove a secret this start generated and stored (it was never shown: the start failed)."""
        if self.generated_secret is not None:
            self.store.remove_meta(REGISTRATION_SECRET_KEY, credentials.hash_secret(self.generated_secret))
            self.generated_secret = None

    # -- loading -----------------------------------------------------------
    def _build_graph(self, name: str) -> ClusterGraph | None:
        try:
            graph = self._stored_graph(name)
            if graph is None:
                nodes = self.store.get_nodes(name) or ""
                graph = ClusterGraph.from_jgf(nodes, name=name)
                self._keep_compact(name, self._compact(graph, nodes))
            for subsystem, nodes in self.store.list_subsystems(name).items():
                graph.add_subsystem(subsystem, nodes)
        except InvalidArgument as exc:
            log.error("cluster %s: stored graph cannot be rebuilt (%s); it will not match jobs", name, exc)
            return None
        return graph

    def _stored_graph(self, name: str) -> ClusterGraph | None:
        """The cluster graph from its stored compact form, if that is intact and of the stored JGF."""
        stored = self.store.get_graph(name)
        if stored is None or stored.data is None or stored.nodes_sha256 is None:
            return None
        if stored.built_from != stored.nodes_sha256:
            log.info("cluster %s: the stored compact graph is of an older JGF; rebuilding it", name)
            return None
        try:
            return compact.load(stored.data, stored.nodes_sha256, name=name)
        except compact.CompactGraphError as exc:
            log.warning("cluster %s: the stored compact graph is not usable (%s); rebuilding it", name, exc)
            return None

    @staticmethod
    def _compact(graph: ClusterGraph, nodes: str) -> tuple[str, bytes]:
        """A freshly built graph's compact form (taken before subsystems are added) and its JGF's digest."""
        source = jgf.digest(nodes)
        return source, compact.dump(graph.state, source)

    def _keep_compact(self, name: str, form: tuple[str, bytes]) -> None:
        """Store a compact graph for the next start; without it a start only takes longer, so a failure is logged."""
        try:
            self.store.put_graph(name, *form)
        except Exception as exc:
            log.warning("cluster %s: the compact graph was not stored (%s); the next start rebuilds it", name, exc)

    def _load_clusters(self) -> None:
        rules: dict[str, list[AccessRule]] = {}
        for rule in self.store.list_access():
            rules.setdefault(rule.cluster, []).append(rule)
        # The graphs are millions of objects that live as long as the server: the cyclic collector would
        # walk those already loaded again and again while the next are made (most of a large start's time).
        collecting = gc.isenabled()
        gc.disable()
        try:
            for record in self.store.list_clusters():
                self._clusters[record.name] = ClusterEntry(
                    record.name, record.secret_hash, record.token_hash, record.state,
                    self._build_graph(record.name), record.reachable, (record.created, record.version),
                    record.updated, tuple(rules.get(record.name, ())),
                )
        finally:
            if collecting:
                gc.enable()
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
        with self.lock:
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
            with self.lock:
                if self._clusters.pop(name, None) is not None:
                    log.info("cluster %s was deleted through another server", name)
            return
        origin = (record.created, record.version)
        with self.lock:
            entry = self._clusters.get(name)
            stale = entry is None or entry.origin != origin
        # Built outside the lock (graphs can be large); read after the record, so never older than it.
        graph = self._build_graph(name) if stale else None
        access = tuple(self.store.list_access(name))
        with self.lock:
            entry = self._clusters.get(name)
            if entry is None:
                self._clusters[name] = ClusterEntry(name, record.secret_hash, record.token_hash, record.state, graph,
                                                    record.reachable, origin, record.updated, access)
                log.info("cluster %s was registered through another server", name)
                return
            entry.access = access
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
        with self.lock:
            held = set(self._clusters) if names is None else {n for n in names if n in self._clusters}
            changed = [name for name, version in stored.items()
                       if name not in self._clusters or self._clusters[name].stored_version != version]
        for name in sorted({*changed, *(held - set(stored))}):
            self.refresh_cluster(name)

    # -- reading -----------------------------------------------------------
    @property
    def names(self) -> list[str]:
        with self.lock:
            return sorted(self._clusters)

    def get(self, name: str) -> ClusterEntry | None:
        """The entry of a registered cluster (hold ``lock`` while reading several)."""
        return self._clusters.get(name)

    def state(self, name: str) -> dict[str, Any]:
        with self.lock:
            return dict(self._clusters[name].state)

    def states(self, names: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The state keys of those of ``names`` that are registered."""
        with self.lock:
            return {c: dict(self._clusters[c].state) for c in names if c in self._clusters}

    def graph(self, name: str) -> ClusterGraph | None:
        """The cluster's resource graph as matched (None when unknown or unusable); read-only."""
        with self.lock:
            entry = self._clusters.get(name)
            return entry.graph if entry else None

    def reachable_among(self, names: Iterable[str], excluding: str) -> list[str]:
        """The registered, reachable clusters of ``names`` other than ``excluding``."""
        with self.lock:
            return [c for c in names if c != excluding and c in self._clusters and self._clusters[c].reachable]

    def mark_unreachable(self, names: Iterable[str]) -> list[str]:
        """Mark clusters the store found silent; returns every cluster now unreachable."""
        with self.lock:
            for name in names:
                if name in self._clusters:
                    self._clusters[name].reachable = False
            return [c.name for c in self._clusters.values() if not c.reachable]

    # -- changing (credentials already checked) ------------------------------
    @property
    def _graph_limits(self) -> dict[str, int]:
        limits = self.context.limits
        return {"max_vertices": limits.max_jgf_vertices, "max_edges": limits.max_jgf_edges}

    def _load_graph(self, nodes: str, name: str) -> ClusterGraph:
        return ClusterGraph.from_jgf(nodes, name=name, **self._graph_limits)

    def register(self, name: str, nodes: str) -> Registration:
        """Add a cluster with new credentials; ``created`` is False when the name is taken."""
        if not nodes:
            raise InvalidArgument("nodes (the cluster JGF) are required", field="nodes")
        self.sync_clusters([name])
        with self.lock:
            if name in self._clusters:
                return Registration(created=False)
        graph = self._load_graph(nodes, name)
        form = self._compact(graph, nodes)
        token = self.global_token or credentials.new_secret()
        cluster_secret = credentials.new_secret()
        now = self.context.clock()
        entry = ClusterEntry(name, credentials.hash_secret(cluster_secret), credentials.hash_secret(token), {}, graph,
                             origin=(now, 1), updated=now)
        with self.lock:
            if not self.store.add_cluster(name, nodes, entry.secret_hash, entry.token_hash, now):
                return Registration(created=False)
            self._clusters[name] = entry
        self._keep_compact(name, form)
        log.info("registered cluster %s (%s)", name, graph_summary(graph))
        return Registration(created=True, token=token, secret=cluster_secret)

    def renew_credentials(self, entry: ClusterEntry) -> Registration:
        """New credentials for a registered cluster (the submit token stays the global one when there is one)."""
        token = self.global_token or credentials.new_secret()
        cluster_secret = credentials.new_secret()
        secret_hash, token_hash = credentials.hash_secret(cluster_secret), credentials.hash_secret(token)
        now = self.context.clock()
        with self.lock:
            if not self.store.set_cluster_credentials(entry.name, secret_hash, token_hash, now):
                raise NotFound(f"cluster {entry.name!r} is not registered", field="cluster")
            entry.secret_hash, entry.token_hash, entry.updated = secret_hash, token_hash, now
        log.warning("cluster %s has new credentials: its old secret and submit token no longer work", entry.name)
        return Registration(created=True, token=token, secret=cluster_secret)

    def register_subsystem(self, entry: ClusterEntry, subsystem: str, nodes: str) -> None:
        cluster = entry.name
        if not nodes:
            raise InvalidArgument("nodes (the subsystem JGF) are required", field="nodes")
        with self.lock:
            graph = entry.graph
            if graph is None:
                raise FailedPrecondition(f"cluster {cluster!r} has no usable graph", field="cluster")
            previous = self.store.list_subsystems(cluster).get(subsystem)
            graph.add_subsystem(subsystem, nodes, **self._graph_limits)
            try:
                self.store.put_subsystem(cluster, subsystem, nodes, self.context.clock())
            except BaseException:
                if previous is None:
                    graph.remove_subsystem(subsystem)
                else:
                    graph.add_subsystem(subsystem, previous)
                raise
        log.info("cluster %s registered subsystem %s", cluster, subsystem)

    def replace_graph(self, entry: ClusterEntry, nodes: str) -> None:
        """Swap a registered cluster's graph (it grew, shrank or changed), keeping its subsystems."""
        cluster = entry.name
        if not nodes:
            raise InvalidArgument("payload (the cluster JGF) is required", field="payload")
        graph = self._load_graph(nodes, cluster)
        form = self._compact(graph, nodes)
        with self.lock:
            for subsystem, text in self.store.list_subsystems(cluster).items():
                try:
                    graph.add_subsystem(subsystem, text)
                except InvalidArgument as exc:
                    raise InvalidArgument(
                        f"subsystem {subsystem!r} does not fit the new graph: {exc}", field="payload"
                    ) from None
            self.store.replace_nodes(cluster, nodes, self.context.clock())
            entry.graph = graph
        self._keep_compact(cluster, form)
        log.info("cluster %s replaced its graph (%s)", cluster, graph_summary(graph))

    def delete_cluster(self, name: str) -> None:
        with self.lock:
            self.store.delete_cluster(name)
            self._clusters.pop(name, None)
        log.info("deleted cluster %s with its subsystems and jobs", name)

    def delete_subsystem(self, entry: ClusterEntry, subsystem: str) -> None:
        cluster = entry.name
        with self.lock:
            if not self.store.delete_subsystem(cluster, subsystem, self.context.clock()):
                raise NotFound(f"cluster {cluster!r} has no subsystem {subsystem!r}", field="subsystem")
            if entry.graph is not None:
                entry.graph.remove_subsystem(subsystem)
        log.info("cluster %s deleted subsystem %s", cluster, subsystem)

    def set_access(self, entry: ClusterEntry, kind: str, name: str, allow: bool | None) -> tuple[AccessRule, ...]:
        """Allow or deny (``allow`` None: forget) a user or group on a cluster; the cluster's rules after."""
        now = self.context.clock()
        with self.lock:
            if self.store.set_access(entry.name, kind, name, allow, now):
                entry.access = tuple(self.store.list_access(entry.name))
                entry.updated = now
            return entry.access

    def update_state(self, entry: ClusterEntry, updates: dict[str, Any]) -> dict[str, Any]:
        """Merge a cluster's new state values into the stored (and cached) state."""
        now = self.context.clock()
        with self.lock:
            state = self.store.merge_state(entry.name, updates, now)
            entry.state, entry.updated = state, now
        log.debug("cluster %s state: %s", entry.name, ", ".join(f"{k}={v}" for k, v in updates.items()))
        return state
