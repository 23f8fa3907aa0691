"""Build and run the gRPC server: one port, both services of the contract."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from rainbow.config import RainbowConfig, with_port
from rainbow.errors import InvalidArgument, Unavailable
from rainbow.fairshare import DEFAULT_HALF_LIFE
from rainbow.limits import Limits
from rainbow.oidc import OIDCKeys, OIDCSettings
from rainbow.protos import memory_pb2, memory_pb2_grpc, rainbow_pb2, rainbow_pb2_grpc
from rainbow.scheduler import Scheduler
from rainbow.server.events import EventHub
from rainbow.server.metrics import Metrics
from rainbow.server.servicers import MemoryGraphServicer, RainbowSchedulerServicer
from rainbow.server.writer import JobWriter
from rainbow.store import Store, is_postgres, open_store, redact

log = logging.getLogger("rainbow.server")

DEFAULT_ADDRESS = "[::]:50051"
# Names the health service answers for ("" is the whole server).
SERVICE_NAMES = (
    "",
    rainbow_pb2.DESCRIPTOR.services_by_name["RainbowScheduler"].full_name,
    memory_pb2.DESCRIPTOR.services_by_name["MemoryGraph"].full_name,
)
HEALTH_INTERVAL = 1.0


@dataclass
class ServerConfig:
    """Everything `rainbow server` can be told; flags override the config file."""

    host: str = DEFAULT_ADDRESS
    db: str = "rainbow.db"
    store: str | None = None
    secret: str | None = None
    global_token: str | None = None
    name: str = "rainbow"
    config_file: str | None = None
    select_algorithm: str | None = None
    select_options: dict[str, Any] = field(default_factory=dict)
    match_algorithm: str | None = None
    cleanup: bool = False
    lease_seconds: float = 300.0
    cluster_timeout: float = 600.0
    store_wait: float = 0.0  # seconds to keep retrying an unreachable store at start (a database starting too)
    workers: int = 16
    limits: Limits = field(default_factory=Limits)
    cert: str | None = None
    key: str | None = None
    ca_cert: str | None = None
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    web: str | None = None  # HOST:PORT of the dashboard (off when None)
    # Who requests without a user token act as (None: such requests are refused).
    legacy_user: str | None = "legacy"
    oidc: OIDCSettings | None = None  # accept the provider's signed JWTs as user tokens
    fairshare_half_life: float = DEFAULT_HALF_LIFE  # seconds; 0: usage never decays
    fairshare_refresh: float = 10.0  # seconds usage, shares and quotas read from the store are reused

    @property
    def store_target(self) -> str:
        """Where the store is: ``--store`` (a PostgreSQL URL, or a SQLite path) or else the ``--db`` file."""
        return self.store or self.db

    def server_credentials(self) -> grpc.ServerCredentials | None:
        """TLS when --cert/--key are given; client certificates required when --ca-cert is too."""
        if not self.cert and not self.key and not self.ca_cert:
            return None
        if not (self.cert and self.key):
            raise InvalidArgument("TLS needs both --cert and --key", field="cert")
        try:
            cert = Path(self.cert).read_bytes()
            key = Path(self.key).read_bytes()
            ca = Path(self.ca_cert).read_bytes() if self.ca_cert else None
        except OSError as exc:
            raise InvalidArgument(f"cannot read TLS file {exc.filename}: {exc.strerror}", field="cert") from None
        return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=ca is not None)

    def apply_config_file(self) -> None:
        """Fill unset settings from ``scheduler`` in a rainbow-config.yaml."""
        if not self.config_file:
            return
        cfg = RainbowConfig.load(self.config_file)
        self.secret = self.secret or cfg.scheduler_secret
        if self.name == "rainbow" and cfg.scheduler_name:
            self.name = cfg.scheduler_name
        if self.select_algorithm is None:
            self.select_algorithm = cfg.selection_algorithm
            self.select_options = cfg.selection_options
        if self.match_algorithm is None:
            self.match_algorithm = cfg.match_algorithm


def open_store_waiting(target: str, options: dict[str, Any], wait: float) -> Store:
    """Open the store, retrying for up to ``wait`` seconds while it is unreachable.

    A server started together with its database (a compose stack, a pod) then waits for it instead of
    exiting and relying on a restart policy; after ``wait`` the last Unavailable is raised.
    """
    deadline = time.monotonic() + wait
    delay = 0.5
    while True:
        try:
            return open_store(target, **options)
        except Unavailable as exc:
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            log.warning("%s; retrying for up to %.0f more seconds (--store-wait)", exc, left)
            time.sleep(min(delay, left))
            delay = min(delay * 2, 5.0)


def open_scheduler(config: ServerConfig) -> Scheduler:
    """Open the store and build the scheduler; refuses bad settings with InvalidArgument."""
    config.apply_config_file()
    oidc = OIDCKeys(config.oidc) if config.oidc is not None else None  # checked before the store is touched
    if config.fairshare_half_life < 0 or config.fairshare_refresh < 0:
        raise InvalidArgument("--fairshare-half-life and --fairshare-refresh: 0 or more", field="fairshare")
    if config.store_wait < 0:
        raise InvalidArgument("--store-wait: 0 or more seconds", field="store_wait")
    target = config.store_target
    path = sqlite_path(target)
    if config.cleanup and path is not None:
        remove_sqlite(path)
    options = {"pool_size": config.workers + 2} if is_postgres(target) else {}
    store = open_store_waiting(target, options, config.store_wait)
    try:
        scheduler = Scheduler(
            store,
            registration_secret=config.secret,
            global_token=config.global_token,
            match_algorithm=config.match_algorithm or "match",
            selection_algorithm=config.select_algorithm or "random",
            selection_options=config.select_options,
            lease_seconds=config.lease_seconds,
            cluster_timeout=config.cluster_timeout,
            limits=config.limits,
            legacy_user=config.legacy_user,
            oidc=oidc,
        )
        scheduler.accounts.half_life = config.fairshare_half_life
        scheduler.accounts.refresh = config.fairshare_refresh
        return scheduler
    except BaseException:
        store.close()
        raise


class RainbowServer:
    """A running server: ``start()`` binds and serves, ``stop()`` drains and closes the store."""

    def __init__(
        self,
        scheduler: Scheduler,
        address: str = DEFAULT_ADDRESS,
        workers: int = 16,
        credentials: grpc.ServerCredentials | None = None,
        metrics_port: int | None = None,
        metrics_host: str = "127.0.0.1",
        web: str | None = None,
        web_tls: tuple[str | None, str | None, str | None] = (None, None, None),
    ) -> None:
        self.scheduler = scheduler
        self.address = address
        self.credentials = credentials
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rainbow-work")
        # Health pings get a thread of their own: a pool busy with slow requests must not delay them.
        self._health_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rainbow-health")
        self.hub = EventHub()
        self.writer = JobWriter(scheduler)
        scheduler.on_events = self.hub.publish
        self.metrics = Metrics(scheduler.store)
        scheduler.on_timing = self.metrics.observe_timing
        scheduler.on_rejection = self.metrics.observe_rejection
        self.metrics_port = metrics_port
        self.metrics_host = metrics_host
        self.health = HealthServicer()
        self.serving: bool | None = None
        self._checker: asyncio.Task | None = None
        self._health_task: asyncio.Task | None = None
        limit = scheduler.limits.max_message_bytes
        self.server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                ("grpc.so_reuseport", 0),
            ]
        )
        rainbow_pb2_grpc.add_RainbowSchedulerServicer_to_server(
            RainbowSchedulerServicer(scheduler, self.executor, self.hub, self.metrics, self.writer), self.server
        )
        memory_pb2_grpc.add_MemoryGraphServicer_to_server(
            MemoryGraphServicer(scheduler, self.executor, self.hub, self.metrics, self.writer), self.server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.port: int | None = None
        self.web_address = web
        self.web_tls = web_tls
        self.web = None
        self.web_port: int | None = None

    async def start(self) -> int:
        try:
            if self.credentials is not None:
                port = self.server.add_secure_port(self.address, self.credentials)
            else:
                port = self.server.add_insecure_port(self.address)
        except RuntimeError:  # grpcio >= 1.60 raises where older versions returned 0
            port = 0
        if port == 0:
            raise InvalidArgument(f"cannot listen on {self.address} (--host): {bind_problem(self.address)}",
                                  field="host")
        self.hub.bind(asyncio.get_running_loop())
        await self._check_health()
        await self.server.start()
        self.port = port
        if self.web_address is not None:
            await self._start_web()
        if self.metrics_port is not None:
            try:
                self.metrics_port = self.metrics.serve(self.metrics_port, self.metrics_host)
            except OSError as exc:
                raise InvalidArgument(
                    f"cannot serve metrics on {self.metrics_host}:{self.metrics_port} (--metrics-port): "
                    f"{exc.strerror or exc}", field="metrics_port",
                ) from None
        self._health_task = asyncio.create_task(self._watch_health())
        # Parents may have ended while the server was down: their waiting dependents are decided now.
        waiting = await asyncio.get_running_loop().run_in_executor(self.executor, self.scheduler.recover_dependents)
        if waiting:
            log.info("%d jobs were waiting for dependencies at start; decided again", waiting)
        if self.scheduler.cluster_timeout > 0:
            self._checker = asyncio.create_task(self._check_clusters())
        return port

    async def _start_web(self) -> None:
        """The dashboard, in this event loop; imported only here so the server runs without the web extra."""
        try:
            from rainbow.server.web.app import Dashboard, WebServer, ssl_context
        except ImportError as exc:
            raise InvalidArgument(f"--web needs the web extra (pip install 'rainbow-scheduler[web]'): {exc}",
                                  field="web") from None
        context = ssl_context(*self.web_tls)
        dashboard = await asyncio.get_running_loop().run_in_executor(
            self.executor, lambda: Dashboard(self.scheduler, self.executor, self.hub, secure=context is not None)
        )
        try:
            self.web = WebServer(dashboard, self.web_address, context)
        except ValueError as exc:
            raise InvalidArgument(str(exc), field="web") from None
        try:
            self.web_port = await self.web.start()
        except OSError as exc:
            raise InvalidArgument(f"--web: cannot listen on {self.web_address}: {exc.strerror}", field="web") from None

    async def _check_health(self) -> None:
        """Ping the store; SERVING or NOT_SERVING for the server and both services."""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._health_executor, self.scheduler.store.ping)
            serving = True
        except Exception as exc:
            serving = False
            if self.serving is not False:
                log.error("the store is unreachable, health is NOT_SERVING: %s", exc)
        if serving and self.serving is False:
            log.info("the store is reachable again, health is SERVING")
        if serving != self.serving:
            self.serving = serving
            status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
            for name in SERVICE_NAMES:
                await self.health.set(name, status)
        self.metrics.set_store_up(serving)

    async def _watch_health(self) -> None:
        while True:
            await asyncio.sleep(HEALTH_INTERVAL)
            await self._check_health()

    async def _check_clusters(self) -> None:
        """Mark silent clusters unreachable and re-place their waiting jobs, periodically."""
        interval = min(max(self.scheduler.cluster_timeout / 4, 0.2), 30.0)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            try:
                await loop.run_in_executor(self.executor, self.scheduler.check_clusters)
            except Exception:
                log.exception("checking cluster reachability failed")

    async def stop(self, grace: float | None = 1.0) -> None:
        tasks = [task for task in (self._checker, self._health_task) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.health.enter_graceful_shutdown()
        if self.web is not None:
            await self.web.stop()
        await self.server.stop(grace)
        self.writer.close()
        self.metrics.stop()
        self.executor.shutdown(wait=True)
        self._health_executor.shutdown(wait=True)
        self.scheduler.store.close()

    async def wait(self) -> None:
        await self.server.wait_for_termination()


def bind_problem(address: str) -> str:
    """Why ``address`` cannot be listened on, as the operating system says it (gRPC does not)."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "::"
    try:
        for family, kind, proto, _, sockaddr in socket.getaddrinfo(
            host, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        ):
            with socket.socket(family, kind, proto) as probe:
                probe.bind(sockaddr)
    except OSError as exc:
        return exc.strerror or str(exc)
    except ValueError:
        return "the address must be HOST:PORT"
    return "gRPC could not bind it"


def sqlite_path(target: str) -> Path | None:
    """The SQLite file a store target names (None for PostgreSQL)."""
    return None if is_postgres(target) else Path(target.removeprefix("sqlite://"))


def remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def bound_address(address: str, port: int) -> str:
    host = address.rsplit(":", 1)[0]
    return f"{host}:{port}"


async def start(config: ServerConfig) -> RainbowServer:
    """Open the store and start serving, or leave no trace of trying.

    A start that fails (a busy port, a bad setting) removes a SQLite file it
    created and a registration secret it generated: that secret was never
    shown, so keeping it would lock registration for good.
    """
    credentials = config.server_credentials()
    config.host = with_port(config.host)
    path = sqlite_path(config.store_target)
    new_file = path is not None and (config.cleanup or not path.exists())
    scheduler: Scheduler | None = None
    server: RainbowServer | None = None
    try:
        scheduler = open_scheduler(config)
        server = RainbowServer(
            scheduler, config.host, config.workers, credentials, config.metrics_port, config.metrics_host,
            config.web, (config.cert, config.key, config.ca_cert),
        )
        await server.start()
    except BaseException:
        if scheduler is not None:
            with contextlib.suppress(Exception):
                scheduler.forget_generated_secret()
            if server is not None:
                await server.stop(grace=None)
            else:
                scheduler.store.close()
        if new_file and path is not None:
            remove_sqlite(path)
        raise
    return server


async def serve(config: ServerConfig, ready: threading.Event | None = None) -> None:
    """Run until SIGINT/SIGTERM."""
    server = await start(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    scheduler, port, credentials = server.scheduler, server.port, server.credentials
    if scheduler.generated_secret:
        print(
            "No --secret given: generated a registration secret (shown once, stored hashed):\n"
            f"  {scheduler.generated_secret}",
            flush=True,
        )
    tls = "mutual TLS" if config.ca_cert else "TLS" if credentials else "plaintext"
    if server.metrics_port is not None:
        print(f"metrics on http://{config.metrics_host}:{server.metrics_port}/metrics", flush=True)
    if server.web is not None:
        scheme = "https" if credentials else "http"
        print(f"dashboard on {scheme}://{bound_address(config.web or '', server.web_port or 0)}/", flush=True)
    print(f"rainbow server {config.name!r} listening on {bound_address(config.host, port)} ({tls}, "
          f"store {redact(config.store_target)}, match algorithm {scheduler.match_algorithm}, "
          f"selection algorithm {scheduler.selector.name})", flush=True)
    if ready is not None:
        ready.set()
    await stop.wait()
    log.info("shutting down")
    await server.stop(grace=2.0)
