"""The thin gRPC client: ``RainbowClient``.

One client holds one channel (opened on first use, closed by ``close()`` or the
``with`` block) with its timeout, retries on UNAVAILABLE and TLS settings set
once. Methods return small frozen dataclasses and raise a
:class:`rainbow.errors.RainbowError` subclass for every failure (the gRPC
status name is its ``code``); nothing is printed.

The method names and arguments are those of the ``rainbow-scheduler`` Python
client, so existing scripts keep working::

    with RainbowClient(config_file="rainbow-config.yaml") as client:
        client.update_state("keebler", {"nodes_free": 3}, secret)
        result = client.submit_job("ior", nodes=1, tasks=1)
        print(result.cluster, result.jobid)
"""

from __future__ import annotations

import json
import os
import shlex
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc

from rainbow.config import DEFAULT_HOST, RainbowConfig, with_port
from rainbow.constraints import parse_requires
from rainbow.durations import parse_duration
from rainbow.errors import (
    Aborted,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RainbowError,
    error_for_code,
)
from rainbow.jobspec import Jobspec, parse_jobspec, simple, with_placement
from rainbow.protos import memory_pb2, memory_pb2_grpc, rainbow_pb2, rainbow_pb2_grpc

__all__ = [
    "DEFAULT_TIMEOUT",
    "Deletion",
    "Job",
    "JobChange",
    "JobEvent",
    "JobLogs",
    "JobOutput",
    "JobRejection",
    "JobStatus",
    "RainbowClient",
    "Registration",
    "SatisfyResult",
    "StateUpdate",
    "SubmitResult",
]

DEFAULT_TIMEOUT = 60.0
DEFAULT_RETRIES = 4

SCHEDULER_SERVICE = "convergedcomputing.org.grpc.v1.RainbowScheduler"
GRAPH_SERVICE = "service.MemoryGraph"

T = TypeVar("T")

PathOrText = str | os.PathLike


# -- typed results ---------------------------------------------------------
@dataclass(frozen=True)
class Registration:
    """The answer to ``register`` / ``register_subsystem``.

    ``token`` (given to submitters) and ``secret`` (the cluster's own) are set
    only when the cluster was created; registering an existing name answers
    ``REGISTER_EXISTS`` with both empty.
    """

    cluster: str
    token: str
    secret: str
    status: str
    request_id: str = ""
    subsystem: str = ""

    @property
    def created(self) -> bool:
        return self.status == "REGISTER_SUCCESS"

    @property
    def exists(self) -> bool:
        return self.status == "REGISTER_EXISTS"


@dataclass(frozen=True)
class Deletion:
    cluster: str
    status: str
    subsystem: str = ""


@dataclass(frozen=True)
class StateUpdate:
    cluster: str
    status: str
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SatisfyResult:
    """Which registered clusters can run a jobspec, and why the others cannot."""

    clusters: tuple[str, ...]
    reasons: dict[str, str]
    total_clusters: int
    total_matches: int
    total_mismatches: int
    status: str = "RESULT_TYPE_SUCCESS"


@dataclass(frozen=True)
class SubmitResult:
    """Where a job went.

    ``jobid``/``cluster`` name the stored job (0/"" with ``satisfy_only``);
    ``clusters`` lists the clusters that passed selection; ``matches`` those
    that could run it, and ``reasons`` why the others could not.
    """

    jobid: int
    cluster: str
    clusters: tuple[str, ...]
    status: str
    name: str = ""
    request_id: str = ""
    matches: tuple[str, ...] = ()
    reasons: dict[str, str] = field(default_factory=dict)
    total_clusters: int = 0
    total_matches: int = 0
    total_mismatches: int = 0

    @property
    def submitted(self) -> bool:
        return self.jobid > 0


@dataclass(frozen=True)
class Job:
    """A job handed to a cluster (the JSON of ``ReceiveJobsResponse.jobs``)."""

    id: int
    cluster: str
    name: str
    jobspec: str
    command: str
    # The lease token of this hand-out (0 from servers without fencing); not part of the job's identity.
    lease: int = field(default=0, compare=False)

    @classmethod
    def from_wire(cls, jobid: int, text: str, lease: int = 0) -> Job:
        try:
            data = json.loads(text)
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        return cls(
            id=int(data.get("id") or jobid),
            cluster=str(data.get("cluster") or ""),
            name=str(data.get("name") or ""),
            jobspec=str(data.get("jobspec") or ""),
            command=str(data.get("command") or ""),
            lease=int(lease),
        )


@dataclass(frozen=True)
class JobChange:
    state: str
    time: float
    message: str = ""


@dataclass(frozen=True)
class JobOutput:
    """Where a job's output is, as its cluster's agent reported it.

    The local executor names two files on ``host``; Flux keeps the output
    itself and ``command`` shows it on the cluster (``host`` is the instance's URI).
    """

    host: str
    stdout: str = ""
    stderr: str = ""
    command: str = ""

    def describe(self) -> str:
        """One line for people: the files and their host, or how to read the output on the cluster."""
        if self.stdout or self.stderr:
            files = self.stdout + (f" (stderr: {self.stderr})" if self.stderr else "")
            return f"{self.host}:{files}" if self.host else files
        where = f" on {self.host}" if self.host else ""
        return f"kept by the cluster's scheduler{where}; read it there with: {self.command}" if self.command else "-"


@dataclass(frozen=True)
class JobLogs:
    """A job's standard output and error as far as they were written."""

    jobid: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class JobRejection:
    """A cluster's scheduler refused the job before it ran there; rainbow placed it again."""

    cluster: str
    reason: str
    time: float


@dataclass(frozen=True)
class JobStatus:
    """A job as the server keeps it after hand-off (``GetJob``/``ListJobs``)."""

    id: int
    cluster: str
    name: str
    state: str
    command: str
    local_id: str
    exit_code: int | None
    message: str
    created: float
    updated: float
    cancel_requested: bool
    history: tuple[JobChange, ...] = ()
    jobspec: str = ""
    output: JobOutput | None = None
    rejections: tuple[JobRejection, ...] = ()

    @classmethod
    def from_wire(cls, info: rainbow_pb2.JobInfo) -> JobStatus:
        return cls(
            id=info.id,
            cluster=info.cluster,
            name=info.name,
            state=info.state,
            command=info.command,
            local_id=info.local_id,
            exit_code=info.exit_code if info.has_exit_code else None,
            message=info.message,
            created=info.created,
            updated=info.updated,
            cancel_requested=info.cancel_requested,
            history=tuple(JobChange(h.state, h.time, h.message) for h in info.history),
            jobspec=info.jobspec,
            output=JobOutput(info.output.host, info.output.stdout, info.output.stderr, info.output.command)
            if info.HasField("output") else None,
            rejections=tuple(JobRejection(r.cluster, r.reason, r.time) for r in info.rejections),
        )


@dataclass(frozen=True)
class JobEvent:
    """One change of one job's state, in the server's order (``seq``)."""

    seq: int
    jobid: int
    cluster: str
    name: str
    state: str
    time: float
    message: str = ""


# -- input helpers ---------------------------------------------------------
_FILE_SUFFIXES = (".json", ".yaml", ".yml")


def read_input(value: PathOrText, what: str) -> str:
    """The text of ``value``: a path to a file, or the text itself.

    A one-line string naming an existing file is read; one that only looks like
    a file name (``*.json``/``*.yaml``) but does not exist is an error, so a
    typo is not sent as a document.
    """
    if isinstance(value, os.PathLike):
        return _read_file(Path(value), what)
    if not isinstance(value, str):
        raise InvalidArgument(f"{what}: expected a path or text, not {type(value).__name__}", field=what)
    if "\n" not in value and value.strip() and not value.lstrip().startswith(("{", "[")):
        path = Path(value).expanduser()
        if path.is_file() or value.endswith(_FILE_SUFFIXES):
            return _read_file(path, what)
    return value


def _read_file(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise InvalidArgument(f"{what} file {path} does not exist", field=what) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise InvalidArgument(f"{what} file {path} cannot be read: {reason}", field=what) from None


def _graph_text(nodes: PathOrText | Mapping[str, Any], what: str) -> str:
    if isinstance(nodes, Mapping):
        return json.dumps(nodes)
    return read_input(nodes, what)


def _state_payload(state_data: PathOrText | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    if isinstance(state_data, Mapping):
        data = dict(state_data)
    else:
        text = read_input(state_data, "state")
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InvalidArgument(f"state is not valid JSON: {exc}", field="state") from None
    if not isinstance(data, dict):
        raise InvalidArgument("state must be a JSON object of key/value pairs", field="state")
    return json.dumps(data), data


def _jobspec_input(jobspec: Jobspec | Mapping[str, Any] | PathOrText) -> tuple[Jobspec, str]:
    """The parsed jobspec and the text to send (the user's own text when there is one)."""
    if isinstance(jobspec, Jobspec):
        return jobspec, jobspec.to_yaml()
    if isinstance(jobspec, Mapping):
        parsed = parse_jobspec(dict(jobspec))
        return parsed, parsed.to_yaml()
    text = read_input(jobspec, "jobspec")
    try:
        return parse_jobspec(text), text
    except InvalidArgument as exc:
        if isinstance(jobspec, os.PathLike) or text is not jobspec:  # read from a file: name it
            raise InvalidArgument(f"{os.fspath(jobspec)}: {exc.message}", field=exc.field) from None
        raise


def _option_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _status_name(enum: Any, value: int) -> str:
    try:
        return enum.Name(value)
    except ValueError:
        return str(value)


def _check_status(status: str, what: str) -> None:
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



def accept_each(send: Callable[[list[int]], int], ids: list[int]) -> list[int]:
    """The ids an AcceptJobs ``send`` confirms: all at once, else one by one after a partial or fenced answer.

    A job refused because another holder took its lease over (ABORTED) is left out.
    """
    if not ids:
        return []
    Result = rainbow_pb2.AcceptJobsResponse

    def one(chunk: list[int]) -> int:
        try:
            return send(chunk)
        except Aborted:
            if len(chunk) == 1:
                return Result.RESULT_TYPE_ERROR
            return Result.RESULT_TYPE_PARTIAL

    status = one(ids)
    if status == Result.RESULT_TYPE_SUCCESS:
        return ids
    if status == Result.RESULT_TYPE_PARTIAL and len(ids) > 1:
        return [jobid for jobid in ids if one([jobid]) == Result.RESULT_TYPE_SUCCESS]
    return []

class RainbowClient:
    """A connection to one rainbow server.

    :param host: ``host:port`` of the server; default the config's
        ``graphdatabase.host`` (or ``graphdatabase.options.host``), then ``localhost:50051``.
    :param config_file: a ``rainbow-config.yaml`` path (or a loaded ``RainbowConfig``)
        holding the cluster credentials and the submit tokens.
    :param use_ssl: connect with TLS; implied by ``cert``/``key``/``ca_cert``.
    :param cert: client certificate chain (PEM) for mutual TLS, with ``key``.
    :param key: client private key (PEM).
    :param ca_cert: CA bundle (PEM) that signed the server certificate; default the system roots.
    :param timeout: seconds each call may take (None: no deadline).
    :param retries: how often a call that failed with UNAVAILABLE is retried (0-4), after
        ``initial_backoff`` seconds doubling up to ``max_backoff`` (with jitter); the same
        backoff paces reconnecting to a server that went away.
    :param wait_for_ready: calls wait (up to ``timeout``) for the server to come up instead of failing.
    """

    def __init__(
        self,
        host: str | None = None,
        config_file: str | os.PathLike | RainbowConfig | None = None,
        use_ssl: bool = False,
        *,
        cert: str | os.PathLike | None = None,
        key: str | os.PathLike | None = None,
        ca_cert: str | os.PathLike | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        initial_backoff: float = 0.2,
        max_backoff: float = 5.0,
        wait_for_ready: bool = False,
        options: Iterable[tuple[str, Any]] = (),
    ) -> None:
        if isinstance(config_file, RainbowConfig):
            self.config: RainbowConfig | None = config_file
        elif config_file:
            self.config = RainbowConfig.load(config_file)
        else:
            self.config = None
        self.host = with_port(host or (self.config.host if self.config else None) or DEFAULT_HOST)
        if (cert is None) != (key is None):
            raise InvalidArgument("mutual TLS needs both a client certificate and its key", field="cert")
        self.use_ssl = bool(use_ssl or cert or key or ca_cert)
        self.transport = "mutual TLS" if cert else "TLS" if self.use_ssl else "plaintext"
        if self.use_ssl:
            self._credentials: grpc.ChannelCredentials | None = grpc.ssl_channel_credentials(
                root_certificates=_pem(ca_cert, "ca-cert"),
                private_key=_pem(key, "key"),
                certificate_chain=_pem(cert, "cert"),
            )
        else:
            self._credentials = None
        if not 0 <= retries <= 4:
            raise InvalidArgument("retries must be between 0 and 4 (gRPC allows at most 5 attempts)",
                                  field="retries")
        self.timeout = timeout
        self.retries = retries
        self.wait_for_ready = wait_for_ready
        self._options = [
            ("grpc.max_send_message_length", -1),
            ("grpc.max_receive_message_length", -1),
            ("grpc.enable_retries", 1 if retries else 0),
            ("grpc.service_config", json.dumps(service_config(retries, initial_backoff, max_backoff))),
            ("grpc.initial_reconnect_backoff_ms", int(initial_backoff * 1000)),
            ("grpc.max_reconnect_backoff_ms", int(max_backoff * 1000)),
            *options,
        ]
        self._channel: grpc.Channel | None = None
        self._scheduler: rainbow_pb2_grpc.RainbowSchedulerStub | None = None
        self._graph: memory_pb2_grpc.MemoryGraphStub | None = None
        self._lock = threading.Lock()

    # -- channel ----------------------------------------------------------
    def _open(
        self,
    ) -> tuple[grpc.Channel, rainbow_pb2_grpc.RainbowSchedulerStub, memory_pb2_grpc.MemoryGraphStub]:
        with self._lock:
            if self._channel is None or self._scheduler is None or self._graph is None:
                if self._credentials is not None:
                    channel = grpc.secure_channel(self.host, self._credentials, options=self._options)
                else:
                    channel = grpc.insecure_channel(self.host, options=self._options)
                self._scheduler = rainbow_pb2_grpc.RainbowSchedulerStub(channel)
                self._graph = memory_pb2_grpc.MemoryGraphStub(channel)
                self._channel = channel
            return self._channel, self._scheduler, self._graph

    @property
    def channel(self) -> grpc.Channel:
        """The client's one channel, opened on first use and reused by every call."""
        return self._open()[0]

    @property
    def scheduler_stub(self) -> rainbow_pb2_grpc.RainbowSchedulerStub:
        return self._open()[1]

    @property
    def graph_stub(self) -> memory_pb2_grpc.MemoryGraphStub:
        return self._open()[2]

    def close(self) -> None:
        with self._lock:
            if self._channel is not None:
                self._channel.close()
            self._channel = self._scheduler = self._graph = None

    def __enter__(self) -> RainbowClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RainbowClient(host={self.host!r}, use_ssl={self.use_ssl})"

    def _call(self, method: Callable[..., T], request: Any, **kwargs: Any) -> T:
        try:
            return method(request, timeout=self.timeout, wait_for_ready=self.wait_for_ready, **kwargs)
        except grpc.RpcError as exc:
            raise rpc_error(exc, self.host, self.transport) from exc

    # -- config helpers ---------------------------------------------------
    def _require(self, value: str | None, what: str, hint: str) -> str:
        if value:
            return value
        source = f" in {self.config.path}" if self.config and self.config.path else ""
        raise InvalidArgument(f"{what} is required: {hint}{source}", field=what)

    def _cluster_credentials(self, cluster: str | None, secret: str | None) -> tuple[str, str]:
        config = self.config
        name = self._require(cluster or (config.cluster_name if config else None), "cluster",
                             "pass it or set cluster.name")
        if not secret and config is not None and name == config.cluster_name:
            secret = config.cluster_secret
        secret = self._require(secret, "secret", "pass the cluster secret or set cluster.secret")
        return name, secret

    # -- clusters ---------------------------------------------------------
    def register(
        self,
        cluster: str,
        secret: str | None,
        cluster_nodes: PathOrText | Mapping[str, Any],
        *,
        save: bool = False,
    ) -> Registration:
        """Register a cluster with its JGF (a path, JSON text or a dict).

        ``secret`` is the server's registration secret (default: the config's
        ``scheduler.secret``). With ``save=True`` the returned cluster secret
        and token are written to the config file (mode 0600).
        """
        if not cluster:
            raise InvalidArgument("a cluster name is required to register", field="cluster")
        secret = secret or (self.config.scheduler_secret if self.config else None)
        secret = self._require(secret, "secret", "pass the registration secret or set scheduler.secret")
        if save and (self.config is None or self.config.path is None):
            raise InvalidArgument("saving credentials needs a config file", field="config")
        nodes = _graph_text(cluster_nodes, "nodes")
        request = rainbow_pb2.RegisterRequest(name=cluster, secret=secret, nodes=nodes)
        request.sent.GetCurrentTime()
        reply = self._call(self.scheduler_stub.Register, request)
        status = _status_name(rainbow_pb2.RegisterResponse.ResultType, reply.status)
        _check_status(status, f"register {cluster}")
        result = Registration(cluster, reply.token, reply.secret, status, reply.request_id)
        if save and result.created:
            self.save_registration(result)
        return result

    def save_registration(self, registration: Registration) -> Path:
        """Write a new cluster's secret (``cluster``) and token (``clusters``) to the config file."""
        if self.config is None or self.config.path is None:
            raise InvalidArgument("saving credentials needs a config file", field="config")
        self.config.set_cluster(registration.cluster, registration.secret)
        self.config.add_cluster_token(registration.cluster, registration.token)
        return self.config.save()

    def register_subsystem(
        self,
        cluster: str | None,
        subsystem: str,
        secret: str | None,
        nodes: PathOrText | Mapping[str, Any],
    ) -> Registration:
        """Add a subsystem graph (io, spack, ...) to a registered cluster."""
        if not subsystem:
            raise InvalidArgument("a subsystem name is required", field="subsystem")
        cluster, secret = self._cluster_credentials(cluster, secret)
        text = _graph_text(nodes, "nodes")
        reply = self._call(
            self.scheduler_stub.RegisterSubsystem,
            rainbow_pb2.RegisterRequest(name=cluster, secret=secret, nodes=text, subsystem=subsystem),
        )
        status = _status_name(rainbow_pb2.RegisterResponse.ResultType, reply.status)
        _check_status(status, f"register subsystem {subsystem} of {cluster}")
        return Registration(cluster, "", "", status, reply.request_id, subsystem)

    def update_state(
        self, cluster: str | None, state_data: PathOrText | Mapping[str, Any], secret: str | None = None
    ) -> StateUpdate:
        """Report a cluster's flat key/value state (a dict or a JSON file)."""
        cluster, secret = self._cluster_credentials(cluster, secret)
        payload, data = _state_payload(state_data)
        reply = self._call(
            self.scheduler_stub.UpdateState,
            rainbow_pb2.UpdateStateRequest(cluster=cluster, secret=secret, payload=payload),
        )
        status = _status_name(rainbow_pb2.UpdateStateResponse.ResultType, reply.status)
        _check_status(status, f"update state of {cluster}")
        return StateUpdate(cluster, status, data)

    def delete_cluster(self, cluster: str | None, secret: str | None = None) -> Deletion:
        """Remove a cluster with its subsystems and jobs."""
        cluster, secret = self._cluster_credentials(cluster, secret)
        reply = self._call(self.scheduler_stub.Delete, rainbow_pb2.DeleteRequest(name=cluster, secret=secret))
        status = _status_name(rainbow_pb2.DeleteResponse.ResultType, reply.status)
        _check_status(status, f"delete {cluster}")
        return Deletion(cluster, status)

    def delete_subsystem(self, cluster: str | None, subsystem: str, secret: str | None = None) -> Deletion:
        if not subsystem:
            raise InvalidArgument("a subsystem name is required", field="subsystem")
        cluster, secret = self._cluster_credentials(cluster, secret)
        reply = self._call(
            self.scheduler_stub.DeleteSubsystem,
            rainbow_pb2.DeleteRequest(name=cluster, secret=secret, subsytem=subsystem),
        )
        status = _status_name(rainbow_pb2.DeleteResponse.ResultType, reply.status)
        _check_status(status, f"delete subsystem {subsystem} of {cluster}")
        return Deletion(cluster, status, subsystem)

    # -- jobs -------------------------------------------------------------
    def satisfy(
        self, jobspec: Jobspec | Mapping[str, Any] | PathOrText, matcher: str | None = None
    ) -> SatisfyResult:
        """Ask which registered clusters can run a jobspec (and why the others cannot)."""
        parsed, _text = _jobspec_input(jobspec)
        return self._satisfy(parsed, matcher)

    def _satisfy(self, jobspec: Jobspec, matcher: str | None) -> SatisfyResult:
        matcher = matcher or (self.config.configured_algorithm("match") if self.config else None) or ""
        reply = self._call(
            self.graph_stub.Satisfy, memory_pb2.SatisfyRequest(payload=jobspec.to_json(), matcher=matcher)
        )
        status = _status_name(memory_pb2.SatisfyResponse.ResultType, reply.status)
        _check_status(status, "satisfy")
        return SatisfyResult(
            clusters=tuple(reply.clusters),
            reasons=dict(reply.reasons),
            total_clusters=reply.total_clusters,
            total_matches=reply.total_matches,
            total_mismatches=reply.total_mismatches,
            status=status,
        )

    def submit_job(
        self,
        command: str | list[str],
        nodes: int = 1,
        tasks: int | None = None,
        match_algo: str | None = None,
        select_algo: str | None = None,
        satisfy_only: bool = False,
        name: str | None = None,
        select_options: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        queue: str | None = None,
        requires: str | None = None,
        time_limit: str | float | None = None,
    ) -> SubmitResult:
        """Submit a command as a simple jobspec: ``nodes`` nodes, ``tasks`` tasks (default one per node).

        The job is named ``name``, else after the command (``argv[0]``). See
        :meth:`submit_jobspec` for ``idempotency_key``. ``queue``, ``requires``
        (RFC 35 text, as ``flux submit --requires``) and ``time_limit`` (Flux
        duration, ``30m``) go into the jobspec as Flux reads them.
        """
        if not command:
            raise InvalidArgument("a command is required", field="command")
        argv = shlex.split(command) if isinstance(command, str) else list(command)
        spec = simple(argv, nodes=nodes, tasks=nodes if tasks is None else tasks, name=name)
        return self.submit_jobspec(
            spec,
            name=name or argv[0],
            match_algo=match_algo,
            select_algo=select_algo,
            select_options=select_options,
            satisfy_only=satisfy_only,
            idempotency_key=idempotency_key,
            queue=queue,
            requires=requires,
            time_limit=time_limit,
        )

    def submit_jobspec(
        self,
        jobspec: Jobspec | Mapping[str, Any] | PathOrText,
        name: str | None = None,
        match_algo: str | None = None,
        select_algo: str | None = None,
        select_options: Mapping[str, Any] | None = None,
        satisfy_only: bool = False,
        idempotency_key: str | None = None,
        queue: str | None = None,
        requires: str | None = None,
        time_limit: str | float | None = None,
    ) -> SubmitResult:
        """Submit a jobspec (a path, YAML/JSON text, a dict or a Jobspec).

        ``idempotency_key`` names this submission: sending it again (a retry
        after an error whose outcome is unknown, such as a lost reply or the
        database failing mid-commit) returns the job stored the first time
        instead of a second job. Without one a fresh key is drawn per call,
        which covers the client's own transparent retries but not a retry by
        the caller: choose and keep a key to retry safely.

        Asks the server which clusters match, then submits with the tokens the
        config holds for them (``clusters``); the server selects one. The match
        and selection algorithms (and selection options) are the arguments, else
        the ones the config file names, else the server's. ``queue``, ``requires``
        and ``time_limit`` replace (the constraint: add to) the jobspec's own.
        """
        parsed, text = _jobspec_input(jobspec)
        if queue is not None or requires or time_limit is not None:
            parsed, text = _jobspec_input(_placed(parsed, queue, requires, time_limit))
        name = name or parsed.name or (parsed.command[0] if parsed.command else "")
        matched = self._satisfy(parsed, match_algo)
        if not matched.clusters:
            raise FailedPrecondition(_no_match_message(matched), field="jobspec")
        config = self.config
        tokens = [(c, config.token_for(c)) for c in matched.clusters] if config else []
        clusters = [rainbow_pb2.SubmitJobRequest.Cluster(name=c, token=t) for c, t in tokens if t]
        if not clusters:
            where = f" in {config.path}" if config and config.path else " (no config file given)"
            raise PermissionDenied(
                f"no submit token for the matching clusters ({', '.join(matched.clusters)}){where}: "
                "a token is issued once, when its cluster registers (rainbow register cluster --save writes it "
                "to the config file); use the config file that registered them, or add their tokens under "
                "'clusters', or delete a cluster (rainbow delete) and register it again",
                field="clusters",
            )
        if select_algo is None and config is not None:
            select_algo = config.configured_algorithm("selection")
            if select_options is None:
                select_options = config.selection_options
        request = rainbow_pb2.SubmitJobRequest(
            name=name,
            clusters=clusters,
            jobspec=text,
            select_algorithm=select_algo or "",
            select_options={str(k): _option_text(v) for k, v in (select_options or {}).items()},
            satisfy_only=satisfy_only,
            # a retry after a lost reply is recognised by the server instead of stored twice
            idempotency_key=idempotency_key or uuid.uuid4().hex,
        )
        request.sent.GetCurrentTime()
        reply = self._call(self.scheduler_stub.SubmitJob, request)
        status = _status_name(rainbow_pb2.SubmitJobResponse.ResultType, reply.status)
        _check_status(status, "submit")
        return SubmitResult(
            jobid=reply.jobid,
            cluster=reply.cluster,
            clusters=tuple(reply.clusters),
            status=status,
            name=name,
            request_id=reply.request_id,
            matches=matched.clusters,
            reasons=matched.reasons,
            total_clusters=matched.total_clusters,
            total_matches=matched.total_matches,
            total_mismatches=matched.total_mismatches,
        )

    def receive_jobs(
        self,
        max_jobs: int | None = None,
        *,
        cluster: str | None = None,
        secret: str | None = None,
        accept: bool = True,
        agent: str | None = None,
    ) -> list[Job]:
        """Take the jobs waiting for this cluster (config ``cluster.name``/``secret``).

        With ``accept`` (the default) the jobs are accepted too and only the
        ones the server confirmed are returned; with ``accept=False`` they stay
        leased until ``accept_jobs`` (or the lease runs out). ``agent`` names the
        lease holder (default: the connection).
        """
        cluster, secret = self._cluster_credentials(cluster, secret)
        if max_jobs is not None and max_jobs < 0:
            raise InvalidArgument("max_jobs must be 0 (all) or more", field="max_jobs")
        request = rainbow_pb2.ReceiveJobsRequest(
            cluster=cluster, secret=secret, maxJobs=max_jobs or 0, agent=agent or ""
        )
        request.sent.GetCurrentTime()
        reply = self._call(self.scheduler_stub.ReceiveJobs, request)
        status = _status_name(rainbow_pb2.ReceiveJobsResponse.ResultType, reply.status)
        _check_status(status, f"receive jobs for {cluster}")
        jobs = [Job.from_wire(jobid, reply.jobs[jobid], reply.leases.get(jobid, 0)) for jobid in sorted(reply.jobs)]
        if not jobs or not accept:
            return jobs
        accepted = set(self.accept_jobs([job.id for job in jobs], cluster=cluster, secret=secret,
                                        leases={job.id: job.lease for job in jobs}, agent=agent))
        return [job for job in jobs if job.id in accepted]

    def accept_jobs(
        self,
        jobids: Iterable[int],
        *,
        cluster: str | None = None,
        secret: str | None = None,
        leases: Mapping[int, int] | None = None,
        agent: str | None = None,
    ) -> list[int]:
        """Confirm received jobs; returns the ids the server accepted.

        ``leases`` are the tokens received with the jobs (``Job.lease``) and
        ``agent`` the holder named when receiving; with them the server refuses
        a job whose lease another holder took over. On a partial or refused
        answer each job is confirmed on its own (accepting twice is harmless) to
        learn which ones were refused (e.g. their lease was taken over).
        """
        cluster, secret = self._cluster_credentials(cluster, secret)
        ids = list(dict.fromkeys(int(jobid) for jobid in jobids))
        return accept_each(lambda chunk: self._accept(cluster, secret, chunk, leases or {}, agent or ""), ids)

    def _accept(self, cluster: str, secret: str, ids: list[int], leases: Mapping[int, int], agent: str) -> int:
        request = rainbow_pb2.AcceptJobsRequest(
            cluster=cluster, secret=secret, jobids=ids, agent=agent,
            leases={jobid: leases[jobid] for jobid in ids if leases.get(jobid)},
        )
        request.sent.GetCurrentTime()
        return self._call(self.scheduler_stub.AcceptJobs, request).status

    # -- jobs after hand-off (submitters) ------------------------------------
    def _submit_credentials(self, cluster: str | None = None) -> list[tuple[str, str]]:
        """(cluster, token) pairs from the config's ``clusters`` list (one cluster when named)."""
        pairs = [(c["name"], c["token"]) for c in (self.config.clusters if self.config else [])
                 if c.get("name") and c.get("token") and (cluster is None or c["name"] == cluster)]
        if not pairs:
            wanted = f" for cluster {cluster!r}" if cluster else ""
            raise InvalidArgument(f"no submit token{wanted}: add it under 'clusters' in the config file",
                                  field="clusters")
        return pairs

    def _with_any_token(self, call: Callable[[str], T], token: str | None) -> T:
        """Try the given token, else each token of the config, until one opens the job."""
        tokens = [token] if token else [t for _, t in self._submit_credentials()]
        denied: PermissionDenied | None = None
        for candidate in tokens:
            try:
                return call(candidate)
            except PermissionDenied as exc:
                denied = exc
        assert denied is not None
        raise denied

    def get_job(self, jobid: int, *, token: str | None = None) -> JobStatus:
        """One job with its history (any submit token of the config that opens it)."""
        def get(candidate: str) -> JobStatus:
            reply = self._call(self.scheduler_stub.GetJob, rainbow_pb2.GetJobRequest(jobid=jobid, token=candidate))
            return JobStatus.from_wire(reply)

        return self._with_any_token(get, token)

    def job_logs(self, jobid: int, *, token: str | None = None) -> JobLogs:
        """The job's output, read from the files its cluster's agent reported.

        That works where those files are visible: the machine the local
        executor ran the job on, or one sharing its file system. Otherwise
        (another machine, or Flux, which keeps the output itself) this raises
        FailedPrecondition saying where the output is and how to read it there.
        """
        job = self.get_job(jobid, token=token)
        where = job.output
        if where is None:
            raise FailedPrecondition(
                f"job {jobid} is {job.state}: its cluster has not said where its output is "
                "(it does once the job is submitted there)", field="jobid")
        if not (where.stdout or where.stderr):
            raise FailedPrecondition(f"the output of job {jobid} (local id {job.local_id or '-'} on {job.cluster}) "
                                     f"is {where.describe()}", field="jobid")
        texts = []
        for path in (where.stdout, where.stderr):
            try:
                texts.append(Path(path).read_text(errors="replace") if path else "")
            except FileNotFoundError:
                raise FailedPrecondition(
                    f"the output of job {jobid} is on {where.host or 'its cluster'} at {path}, which this machine "
                    "cannot see (no shared file system): read it there", field="jobid") from None
            except OSError as exc:
                raise FailedPrecondition(f"cannot read the output of job {jobid} ({path}): {exc.strerror or exc}",
                                         field="jobid") from None
        return JobLogs(jobid, texts[0], texts[1])

    def list_jobs(
        self, state: str | None = None, cluster: str | None = None, name: str | None = None, limit: int = 100
    ) -> list[JobStatus]:
        """Jobs of the config's clusters (or one of them), newest first."""
        clusters = [rainbow_pb2.SubmitJobRequest.Cluster(name=c, token=t) for c, t in self._submit_credentials(cluster)]
        request = rainbow_pb2.ListJobsRequest(clusters=clusters, state=state or "", name=name or "", limit=limit)
        return [JobStatus.from_wire(info) for info in self._call(self.scheduler_stub.ListJobs, request).jobs]

    def cancel_job(self, jobid: int, reason: str = "", *, token: str | None = None) -> JobStatus:
        """Cancel a job: at once if no cluster holds it yet, else its cluster is told to cancel it."""
        def cancel(candidate: str) -> rainbow_pb2.CancelJobResponse:
            request = rainbow_pb2.CancelJobRequest(jobid=jobid, token=candidate, reason=reason)
            return self._call(self.scheduler_stub.CancelJob, request)

        self._with_any_token(cancel, token)
        return self.get_job(jobid, token=token)

    def watch_jobs(
        self, jobid: int | None = None, *, cluster: str | None = None, since: int = 0
    ) -> Iterator[JobEvent]:
        """Stream job events as they happen (``since``: replay after that sequence; -1: from the first).

        The stream has no deadline; stop iterating (or close the client) to end it.
        """
        clusters = [rainbow_pb2.SubmitJobRequest.Cluster(name=c, token=t) for c, t in self._submit_credentials(cluster)]
        request = rainbow_pb2.WatchJobsRequest(clusters=clusters, jobid=jobid or 0, since=since)
        stream = self.scheduler_stub.WatchJobs(request, wait_for_ready=self.wait_for_ready)
        try:
            for event in stream:
                yield JobEvent(event.seq, event.jobid, event.cluster, event.name, event.state, event.time,
                               event.message)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                raise rpc_error(exc, self.host, self.transport) from exc
        finally:
            stream.cancel()

    def health(self, service: str = "") -> str:
        """The server's grpc.health.v1 status for ``service`` ("" is the whole server): SERVING, NOT_SERVING..."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        stub = health_pb2_grpc.HealthStub(self.channel)
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=self.timeout,
                                  wait_for_ready=self.wait_for_ready)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:  # what the health service answers for a name it lacks
                return "SERVICE_UNKNOWN"
            raise rpc_error(exc, self.host) from exc
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


def _pem(path: str | os.PathLike | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InvalidArgument(f"{what} file {path} cannot be read: {exc.strerror}", field=what) from None


def _placed(jobspec: Jobspec, queue: str | None, requires: str | None, time_limit: str | float | None) -> dict:
    if queue is not None and not queue:
        raise InvalidArgument("queue: must not be empty", field="queue")
    constraints = parse_requires(requires, "requires") if requires else None
    duration = parse_duration(time_limit, "time_limit") if time_limit is not None else None
    return with_placement(jobspec.to_dict(), queue, constraints, duration)


def _no_match_message(result: SatisfyResult) -> str:
    if not result.total_clusters:
        return "no cluster can run this job: no clusters are registered"
    detail = "; ".join(f"{name}: {reason}" for name, reason in sorted(result.reasons.items()))
    message = f"no cluster can run this job (0 of {result.total_clusters} match)"
    return f"{message}: {detail}" if detail else message
