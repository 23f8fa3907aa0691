"""Shared fixtures: real servers on free local ports, example files, raw stubs."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import pytest

import rainbow as rainbow_package
from rainbow.protos import memory_pb2_grpc, rainbow_pb2_grpc
from rainbow.server import ServerConfig
from rainbow.server.background import BackgroundServer as ServerThread

EXAMPLES = Path(__file__).parent / "data" / "examples"
REGISTRATION_SECRET = "chocolate-cookies"
POSTGRES_ENV = "RAINBOW_TEST_POSTGRES"
# Server-level test modules run on both stores with: pytestmark = BOTH_STORES
BOTH_STORES = pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


def example(name: str) -> str:
    return (EXAMPLES / name).read_text()


@dataclass
class Stubs:
    channel: grpc.Channel
    scheduler: rainbow_pb2_grpc.RainbowSchedulerStub
    graph: memory_pb2_grpc.MemoryGraphStub
    address: str
    server: ServerThread | None = field(default=None, repr=False)


def stubs_for(address: str, server: ServerThread | None = None) -> Stubs:
    channel = grpc.insecure_channel(
        address,
        options=[("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)],
    )
    return Stubs(
        channel,
        rainbow_pb2_grpc.RainbowSchedulerStub(channel),
        memory_pb2_grpc.MemoryGraphStub(channel),
        address,
        server,
    )


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL server for tests (a libpq URL with rights to create databases).

    Unset: PostgreSQL tests skip locally, and fail in CI (CI=true), where .ci/run starts one.
    """
    url = os.environ.get(POSTGRES_ENV, "")
    if not url:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {POSTGRES_ENV} is not set: .ci/run must start PostgreSQL")
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV}=postgresql://USER@127.0.0.1:PORT/postgres")
    return url


@pytest.fixture
def postgres_database(postgres_url) -> Iterator[Callable[[], str]]:
    """Make fresh databases on the test server (URL of each); all are dropped after the test."""
    import psycopg
    from psycopg import sql

    made: list[str] = []

    def make() -> str:
        name = f"rainbow_test_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        made.append(name)
        return urlsplit(postgres_url)._replace(path="/" + name).geturl()

    yield make
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for name in made:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def new_store_target(request, tmp_path) -> str:
    """Where a new store of a store-level test lives, once per store: a SQLite file, or a fresh PostgreSQL
    database."""
    if request.param == "sqlite":
        return str(tmp_path / "store.db")
    return request.getfixturevalue("postgres_database")()


@pytest.fixture
def backend(request) -> str:
    """The store servers of a test use: "sqlite" unless a module parametrizes it (BOTH_STORES)."""
    return getattr(request, "param", "sqlite")


@pytest.fixture
def store_target(backend, tmp_path, request) -> Callable[[Path | None], str]:
    """Map a test's database file to a store target: the file itself, or one PostgreSQL database per file."""
    databases: dict[str, str] = {}
    # Set up now, so that the databases are dropped only after the servers using them stopped.
    make = request.getfixturevalue("postgres_database") if backend == "postgres" else None

    def target(db: Path | None = None) -> str:
        path = str(db or tmp_path / "rainbow.db")
        if make is None:
            return path
        if path not in databases:
            databases[path] = make()
        return databases[path]

    return target


@pytest.fixture
def server_factory(store_target):
    """Start servers on demand (same database across restarts when asked)."""
    started: list[ServerThread] = []

    def start(db: Path | None = None, **overrides) -> ServerThread:
        overrides.setdefault("secret", REGISTRATION_SECRET)
        overrides.setdefault("workers", 4)
        config = ServerConfig(host="127.0.0.1:0", db=store_target(db), **overrides)
        server = ServerThread(config).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def rainbow(server_factory):
    """A fresh server and raw contract stubs talking to it."""
    server = server_factory()
    stubs = stubs_for(server.address, server)
    yield stubs
    stubs.channel.close()


def subprocess_env(extra: dict | None = None) -> dict[str, str]:
    """Environment for `python -m rainbow` subprocesses: the rainbow under test comes first on PYTHONPATH."""
    src = str(Path(rainbow_package.__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (src, path) if p), **(extra or {})}


def live_processes(groups: set[int] = frozenset(), parent: int | None = None) -> set[int]:
    """Pids of live (not zombie) processes in process groups ``groups`` or with parent ``parent`` (reads /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X") and (int(pgrp) in groups or int(ppid) == parent):
            found.add(int(stat.parent.name))
    return found


def start_server_process(
    db: Path, *extra: str, env: dict | None = None
) -> tuple[subprocess.Popen, str, list[str]]:
    """`rainbow server` as a real subprocess; returns (process, address, lines printed before ready)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "rainbow", "server", "--host", "127.0.0.1:0", "--db", str(db), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=subprocess_env(env),
    )
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        found = re.search(r"listening on (\S+:\d+)", line)
        if found:
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            return proc, found.group(1), lines
    proc.kill()
    raise RuntimeError("server did not start:\n" + "\n".join(lines))


class TcpProxy:
    """Forward 127.0.0.1:<port> to ``target`` (host, port); ``cut()`` drops every connection and
    refuses new ones until ``restore()``: an outage of the service behind it, under test control."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open = True
        self._closed = False
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, url: str) -> str:
        """``url`` (a libpq URL) pointed at this proxy instead of its own host and port."""
        parts = urlsplit(url)
        user = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        return parts._replace(netloc=f"{user}127.0.0.1:{self.port}").geturl()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._open:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._drop(src)
            self._drop(dst)

    def _drop(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    def cut(self) -> None:
        self._open = False
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            self._drop(sock)

    def restore(self) -> None:
        self._open = True

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._listener.close()


@pytest.fixture
def postgres_proxy(postgres_url) -> Iterator[TcpProxy]:
    """A TcpProxy in front of the test PostgreSQL server."""
    parts = urlsplit(postgres_url)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    yield proxy
    proxy.close()


class ManualClock:
    """A clock tests move by hand (``server.scheduler.clock = ManualClock()``): leases expire when told to."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
