"""How the client talks to a server: the channel (TLS, retries of UNAVAILABLE, reconnect backoff),
the call wrapper, and gRPC failures mapped to RainbowError with a hint of what they most likely mean."""

from __future__ import annotations

import collections
import json
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import grpc

from rainbow.errors import InvalidArgument, NotFound, PermissionDenied, RainbowError, error_for_code
from rainbow.protos import memory_pb2_grpc, rainbow_pb2_grpc

DEFAULT_TIMEOUT = 60.0
DEFAULT_RETRIES = 4

SCHEDULER_SERVICE = "convergedcomputing.org.grpc.v1.RainbowScheduler"
GRAPH_SERVICE = "service.MemoryGraph"

T = TypeVar("T")


class _Metadata(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds fixed metadata (a user token's ``authorization: Bearer ...``) to every call of a channel."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self.metadata = metadata

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        return _CallDetails(details.method, details.timeout, (*(details.metadata or ()), *self.metadata),
                            details.credentials, details.wait_for_ready, details.compression)

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)


class _CallDetails(
    collections.namedtuple("_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready",
                                            "compression")),
    grpc.ClientCallDetails,
):
    pass


def bearer_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """The call metadata that carries a user token (none without one)."""
    return (("authorization", f"Bearer {token}"),) if token else ()


class Connection:
    """One channel with the stubs of both services, opened on first use; thread-safe."""

    def __init__(
        self,
        host: str,
        credentials: grpc.ChannelCredentials | None,
        options: list[tuple[str, Any]],
        metadata: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.host = host
        self._credentials = credentials
        self._options = options
        self._metadata = metadata
        self._channel: grpc.Channel | None = None
        self._scheduler: rainbow_pb2_grpc.RainbowSchedulerStub | None = None
        self._graph: memory_pb2_grpc.MemoryGraphStub | None = None
        self._lock = threading.Lock()

    def open(
        self,
    ) -> tuple[grpc.Channel, rainbow_pb2_grpc.RainbowSchedulerStub, memory_pb2_grpc.MemoryGraphStub]:
        with self._lock:
            if self._channel is None or self._scheduler is None or self._graph is None:
                if self._credentials is not None:
                    channel = grpc.secure_channel(self.host, self._credentials, options=self._options)
                else:
                    channel = grpc.insecure_channel(self.host, options=self._options)
                if self._metadata:
                    channel = grpc.intercept_channel(channel, _Metadata(self._metadata))
                self._scheduler = rainbow_pb2_grpc.RainbowSchedulerStub(channel)
                self._graph = memory_pb2_grpc.MemoryGraphStub(channel)
                self._channel = channel
            return self._channel, self._scheduler, self._graph

    def close(self) -> None:
        with self._lock:
            if self._channel is not None:
                self._channel.close()
            self._channel = self._scheduler = self._graph = None


def channel_credentials(
    cert: str | os.PathLike | None, key: str | os.PathLike | None, ca_cert: str | os.PathLike | None
) -> grpc.ChannelCredentials:
    """TLS credentials: the CA that signed the server's certificate (default the system roots) and,
    for mutual TLS, the client's certificate chain and key (both or neither)."""
    if (cert is None) != (key is None):
        raise InvalidArgument("mutual TLS needs both a client certificate and its key", field="cert")
    return grpc.ssl_channel_credentials(
        root_certificates=_pem(ca_cert, "ca-cert"),
        private_key=_pem(key, "key"),
        certificate_chain=_pem(cert, "cert"),
    )


def channel_options(
    retries: int, initial_backoff: float, max_backoff: float, extra: Iterable[tuple[str, Any]] = ()
) -> list[tuple[str, Any]]:
    """Channel options: no message size limit, retries of UNAVAILABLE, reconnect backoff, then ``extra``."""
    if not 0 <= retries <= 4:
        raise InvalidArgument("retries must be between 0 and 4 (gRPC allows at most 5 attempts)", field="retries")
    return [
        ("grpc.max_send_message_length", -1),
        ("grpc.max_receive_message_length", -1),
        ("grpc.enable_retries", 1 if retries else 0),
        ("grpc.service_config", json.dumps(service_config(retries, initial_backoff, max_backoff))),
        ("grpc.initial_reconnect_backoff_ms", int(initial_backoff * 1000)),
        ("grpc.max_reconnect_backoff_ms", int(max_backoff * 1000)),
        *extra,
    ]


def call(
    method: Callable[..., T], request: Any, *, host: str, transport: str, timeout: float | None,
    wait_for_ready: bool, **kwargs: Any,
) -> T:
    """One unary call; a gRPC failure becomes its RainbowError (``rpc_error``)."""
    try:
        return method(request, timeout=timeout, wait_for_ready=wait_for_ready, **kwargs)
    except grpc.RpcError as exc:
        raise rpc_error(exc, host, transport) from exc


def status_name(enum: Any, value: int) -> str:
    try:
        return enum.Name(value)
    except ValueError:
        return str(value)


def check_status(status: str, what: str) -> None:
    """Servers that answer with a failure status instead of a gRPC error (the Go server) still raise."""
    if status.endswith("_DENIED"):
        raise PermissionDenied(f"{what}: the server denied the request ({status})")
    if status.endswith("_NO_EXISTS"):
        raise NotFound(f"{what}: not found ({status})")
    if status.endswith("_ERROR"):
        raise RainbowError(f"{what}: the server reported an error ({status})")


def connection_hint(details: str, transport: str) -> str:
    """What a failed connection most likely means, from gRPC's details and how this client connects.

    A server that wants TLS (or a client certificate) just closes a connection
    that does not offer it: gRPC then says only "Socket closed".
    """
    if "Socket closed" in details or "Connection reset by peer" in details:
        if transport == "plaintext":
            return "the server closed the connection: it likely wants TLS (connect with --ca-cert FILE, or --ssl)"
        if transport == "TLS":
            return ("the server closed the TLS connection: it likely wants a client certificate "
                    "(mutual TLS: --cert and --key)")
        if transport == "mutual TLS":
            return ("the server closed the TLS connection: it likely does not trust this client certificate "
                    "(signed by a CA other than the server's --ca-cert?)")
    if "WRONG_VERSION_NUMBER" in details:
        return "the TLS handshake failed: the server likely speaks plaintext (connect without --ssl/--ca-cert)"
    if "CERTIFICATE_VERIFY_FAILED" in details:
        return ("the TLS handshake failed: the server's certificate is not signed by a CA this client trusts "
                "(give that CA with --ca-cert)")
    return ""


def rpc_error(exc: grpc.RpcError, host: str = "", transport: str = "") -> RainbowError:
    """The RainbowError for a failed call, with ``code``, ``message``, ``status`` and ``details``.

    ``transport`` ("plaintext", "TLS" or "mutual TLS": how the client connects) lets the
    message say what a refused connection most likely means.
    """
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = (exc.details() if hasattr(exc, "details") else None) or ""
    name = code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
    message = details or f"call failed with status {name}"
    if name == "UNAVAILABLE" and host:
        hint = connection_hint(details, transport)
        message = f"cannot reach the rainbow server at {host}: " + (f"{hint} ({message})" if hint else message)
    elif name == "DEADLINE_EXCEEDED" and host:
        message = f"the rainbow server at {host} did not answer in time: {message}"
    error = error_for_code(name, message)
    error.code = name
    error.status = code
    error.details = details
    return error


def service_config(retries: int, initial_backoff: float, max_backoff: float) -> dict[str, Any]:
    """gRPC service config: retry UNAVAILABLE on both services of the contract."""
    method_config: dict[str, Any] = {"name": [{"service": SCHEDULER_SERVICE}, {"service": GRAPH_SERVICE}]}
    if retries > 0:
        method_config["retryPolicy"] = {
            "maxAttempts": min(retries + 1, 5),
            "initialBackoff": f"{initial_backoff:.3f}s",
            "maxBackoff": f"{max_backoff:.3f}s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        }
    return {"methodConfig": [method_config]}


def _pem(path: str | os.PathLike | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InvalidArgument(f"{what} file {path} cannot be read: {exc.strerror}", field=what) from None
