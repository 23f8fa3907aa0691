"""Build and run the gRPC server: one port, both services of the contract."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from rainbow.config import RainbowConfig
from rainbow.errors import InvalidArgument
from rainbow.limits import Limits
from rainbow.protos import memory_pb2_grpc, rainbow_pb2_grpc
from rainbow.scheduler import Scheduler
from rainbow.server.events import EventHub
from rainbow.server.servicers import MemoryGraphServicer, RainbowSchedulerServicer
from rainbow.server.writer import JobWriter
from rainbow.store import Store, open_store

log = logging.getLogger("rainbow.server")

DEFAULT_ADDRESS = "[::]:50051"


@dataclass
class ServerConfig:
    """Everything `rainbow server` can be told; flags override the config file."""

    host: str = DEFAULT_ADDRESS
    db: str = "rainbow.db"
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
    workers: int = 16
    limits: Limits = field(default_factory=Limits)
    cert: str | None = None
    key: str | None = None
    ca_cert: str | None = None

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


def open_scheduler(config: ServerConfig) -> Scheduler:
    """Open the store and build the scheduler; refuses bad settings with InvalidArgument."""
    config.apply_config_file()
    if config.cleanup and not config.db.startswith(("postgresql://", "postgres://")):
        for suffix in ("", "-wal", "-shm"):
            Path(config.db + suffix).unlink(missing_ok=True)
    store: Store = open_store(config.db)
    try:
        return Scheduler(
            store,
            registration_secret=config.secret,
            global_token=config.global_token,
            match_algorithm=config.match_algorithm or "match",
            selection_algorithm=config.select_algorithm or "random",
            selection_options=config.select_options,
            lease_seconds=config.lease_seconds,
            cluster_timeout=config.cluster_timeout,
            limits=config.limits,
        )
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
    ) -> None:
        self.scheduler = scheduler
        self.address = address
        self.credentials = credentials
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rainbow-work")
        self.hub = EventHub()
        self.writer = JobWriter(scheduler)
        scheduler.on_events = self.hub.publish
        self._checker: asyncio.Task | None = None
        limit = scheduler.limits.max_message_bytes
        self.server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                ("grpc.so_reuseport", 0),
            ]
        )
        rainbow_pb2_grpc.add_RainbowSchedulerServicer_to_server(
            RainbowSchedulerServicer(scheduler, self.executor, self.hub, self.writer), self.server
        )
        memory_pb2_grpc.add_MemoryGraphServicer_to_server(
            MemoryGraphServicer(scheduler, self.executor, self.hub, self.writer), self.server
        )
        self.port: int | None = None

    async def start(self) -> int:
        if self.credentials is not None:
            port = self.server.add_secure_port(self.address, self.credentials)
        else:
            port = self.server.add_insecure_port(self.address)
        if port == 0:
            raise InvalidArgument(f"cannot listen on {self.address}", field="host")
        self.hub.bind(asyncio.get_running_loop())
        await self.server.start()
        self.port = port
        if self.scheduler.cluster_timeout > 0:
            self._checker = asyncio.create_task(self._check_clusters())
        return port

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
        if self._checker is not None:
            self._checker.cancel()
        await self.server.stop(grace)
        self.writer.close()
        self.executor.shutdown(wait=True)
        self.scheduler.store.close()

    async def wait(self) -> None:
        await self.server.wait_for_termination()


def bound_address(address: str, port: int) -> str:
    host = address.rsplit(":", 1)[0]
    return f"{host}:{port}"


async def serve(config: ServerConfig, ready: threading.Event | None = None) -> None:
    """Run until SIGINT/SIGTERM."""
    credentials = config.server_credentials()
    scheduler = open_scheduler(config)
    server = RainbowServer(scheduler, config.host, config.workers, credentials)
    port = await server.start()
    if scheduler.generated_secret:
        print(
            "No --secret given: generated a registration secret (shown once, stored hashed):\n"
            f"  {scheduler.generated_secret}",
            flush=True,
        )
    tls = "mutual TLS" if config.ca_cert else "TLS" if credentials else "plaintext"
    print(f"rainbow server {config.name!r} listening on {bound_address(config.host, port)} ({tls}, "
          f"store {config.db}, match {scheduler.match_algorithm}, selection {scheduler.selector.name})",
          flush=True)
    if ready is not None:
        ready.set()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await server.stop(grace=2.0)
