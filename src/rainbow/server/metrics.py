"""Prometheus metrics of one server (``rainbow server --metrics-port``).

Each server has its own CollectorRegistry, so several servers in one process
(tests) never share or collide. Request counters and latencies are recorded by
the servicers' wrappers; match and selection times by the scheduler; jobs by
state and clusters by reachability are read from the store when scraped (cached
for a few seconds: every replica reports the same shared totals).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from rainbow.lifecycle import JobState
from rainbow.store import Store

log = logging.getLogger("rainbow.server")

# Seconds: from sub-millisecond store calls to graph matches of very large clusters.
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _StoreCollector(Collector):
    """``rainbow_jobs{state}`` and ``rainbow_clusters{reachable}``, counted in the store on scrape."""

    def __init__(self, store: Store, healthy: Callable[[], bool], max_age: float = 5.0) -> None:
        self.store = store
        self.healthy = healthy
        self.max_age = max_age
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[JobState, int], dict[bool, int]] | None = None

    def describe(self) -> list[GaugeMetricFamily]:
        return self._families({}, {})

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if not self.healthy():
            return iter(())  # a scrape must not wait for a store known to be down
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] > self.max_age:
                try:
                    jobs = self.store.job_counts()
                    clusters = {True: 0, False: 0}
                    for record in self.store.list_clusters():
                        clusters[record.reachable] += 1
                except Exception as exc:
                    log.warning("metrics: cannot count jobs and clusters: %s", exc)
                    return iter(())
                self._cached = (now, jobs, clusters)
            _, jobs, clusters = self._cached
        return iter(self._families(jobs, clusters))

    @staticmethod
    def _families(jobs: dict[JobState, int], clusters: dict[bool, int]) -> list[GaugeMetricFamily]:
        by_state = GaugeMetricFamily("rainbow_jobs", "Jobs in the store by state", labels=["state"])
        for state, count in jobs.items():
            by_state.add_metric([state.value], count)
        reachable = GaugeMetricFamily(
            "rainbow_clusters", "Registered clusters by reachability", labels=["reachable"]
        )
        for flag, count in clusters.items():
            reachable.add_metric(["true" if flag else "false"], count)
        return [by_state, reachable]


class Metrics:
    """The metrics of one server and, once ``serve`` is called, their HTTP endpoint."""

    def __init__(self, store: Store) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "rainbow_requests", "gRPC requests by method and status code", ["method", "code"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "rainbow_request_seconds", "Time to answer a unary gRPC request", ["method"],
            buckets=_BUCKETS, registry=self.registry,
        )
        self.match_seconds = Histogram(
            "rainbow_match_seconds", "Time to match a jobspec against the candidate clusters",
            buckets=_BUCKETS, registry=self.registry,
        )
        self.selection_seconds = Histogram(
            "rainbow_selection_seconds", "Time to select a cluster among the matching ones",
            buckets=_BUCKETS, registry=self.registry,
        )
        self.rejections = Counter(
            "rainbow_job_rejections", "Jobs a cluster's scheduler refused before they ran, by cluster and "
            "outcome (replaced: placed on another cluster; failed: no cluster remained)", ["cluster", "outcome"],
            registry=self.registry,
        )
        self.store_up = Gauge(
            "rainbow_store_up", "1 when the last health check reached the store, else 0", registry=self.registry
        )
        self.store_reachable = True
        self.registry.register(_StoreCollector(store, lambda: self.store_reachable))
        self._http: Any = None
        self._thread: threading.Thread | None = None

    def observe_request(self, method: str, code: str, seconds: float | None) -> None:
        """Count one finished request; ``seconds`` is None for streams (their length says nothing)."""
        self.requests.labels(method, code).inc()
        if seconds is not None:
            self.request_seconds.labels(method).observe(seconds)

    def set_store_up(self, up: bool) -> None:
        """What the last health check found (store gauges are not collected while it is down)."""
        self.store_reachable = up
        self.store_up.set(1 if up else 0)

    def observe_timing(self, what: str, seconds: float) -> None:
        """The scheduler's ``on_timing`` hook: "match" or "selection"."""
        if what == "match":
            self.match_seconds.observe(seconds)
        elif what == "selection":
            self.selection_seconds.observe(seconds)

    def observe_rejection(self, cluster: str, replaced: bool) -> None:
        """The scheduler's ``on_rejection`` hook."""
        self.rejections.labels(cluster, "replaced" if replaced else "failed").inc()

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Serve ``/metrics`` over HTTP on host:port (0: any free port); returns the port."""
        self._http, self._thread = start_http_server(port, addr=host, registry=self.registry)
        return self._http.server_address[1]

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
