"""``RainbowClient``: one method per RPC of the wire contract, in the words of the ``rainbow-scheduler``
Python client.

Each method checks its arguments, builds the request, makes the call
(``transport``) and returns a result of ``results``; documents may be paths,
text or dicts (``inputs``).
"""

from __future__ import annotations

import os
import shlex
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import grpc

from rainbow.client.accounting import Usage, quota_from_wire, quota_to_wire, standing_from_wire
from rainbow.client.chunks import ChunkLimits, check_array_size, chunk_end, job_bytes, refused_for_size
from rainbow.client.inputs import PathOrText, graph_text, jobspec_input, option_text, read_input, state_payload
from rainbow.client.results import (
    BatchCancel,
    BatchJob,
    BatchResult,
    BatchSummary,
    BatchUrgency,
    ClusterAccess,
    Deletion,
    Job,
    JobEvent,
    JobLogs,
    JobStatus,
    Registration,
    SatisfyResult,
    StateUpdate,
    SubmitResult,
    User,
    WorkflowStatus,
)
from rainbow.client.transport import (
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    Connection,
    bearer_metadata,
    call,
    channel_credentials,
    channel_options,
    check_status,
    rpc_error,
    status_name,
)
from rainbow.config import DEFAULT_HOST, RainbowConfig, with_port
from rainbow.constraints import parse_requires
from rainbow.dependencies import Dependency, parse_dependency
from rainbow.durations import parse_duration
from rainbow.errors import (
    Aborted,
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
    RainbowError,
    ResourceExhausted,
)
from rainbow.fairshare import Limit, Standing
from rainbow.hostlists import encode_idset, expand_idset, idset_size
from rainbow.jobspec import Jobspec, simple, with_dependencies, with_placement
from rainbow.protos import memory_pb2, memory_pb2_grpc, rainbow_pb2, rainbow_pb2_grpc
from rainbow.workflow import Step, load_workflow

T = TypeVar("T")


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
    :param user_token: act as a user (sent as ``authorization: Bearer ...`` metadata on every call);
        default the config's ``user.token``. Submitting then needs no cluster tokens, and the jobs
        listed, watched and cancelled are the user's own (an admin's: everyone's).
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
        user_token: str | None = None,
    ) -> None:
        if isinstance(config_file, RainbowConfig):
            self.config: RainbowConfig | None = config_file
        elif config_file:
            self.config = RainbowConfig.load(config_file)
        else:
            self.config = None
        self.host = with_port(host or (self.config.host if self.config else None) or DEFAULT_HOST)
        self.use_ssl = bool(use_ssl or cert or key or ca_cert)
        self.transport = "mutual TLS" if cert else "TLS" if self.use_ssl else "plaintext"
        credentials = channel_credentials(cert, key, ca_cert) if self.use_ssl else None
        self.timeout = timeout
        self.retries = retries
        self.wait_for_ready = wait_for_ready
        self.user_token = user_token or (self.config.user_token if self.config else None) or None
        self._connection = Connection(
            self.host, credentials, channel_options(retries, initial_backoff, max_backoff, options),
            bearer_metadata(self.user_token),
        )

    # -- channel ----------------------------------------------------------
    @property
    def channel(self) -> grpc.Channel:
        """The client's one channel, opened on first use and reused by every call."""
        return self._connection.open()[0]

    @property
    def scheduler_stub(self) -> rainbow_pb2_grpc.RainbowSchedulerStub:
        return self._connection.open()[1]

    @property
    def graph_stub(self) -> memory_pb2_grpc.MemoryGraphStub:
        return self._connection.open()[2]

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> RainbowClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RainbowClient(host={self.host!r}, use_ssl={self.use_ssl})"

    def _call(self, method: Callable[..., T], request: Any, **kwargs: Any) -> T:
        return call(method, request, host=self.host, transport=self.transport, timeout=self.timeout,
                    wait_for_ready=self.wait_for_ready, **kwargs)

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
        self._check_savable(save)
        nodes = graph_text(cluster_nodes, "nodes")
        request = rainbow_pb2.RegisterRequest(name=cluster, secret=secret, nodes=nodes)
        request.sent.GetCurrentTime()
        return self._credentials(cluster, self._call(self.scheduler_stub.Register, request), save, "register")

    def _check_savable(self, save: bool) -> None:
        if save and (self.config is None or self.config.path is None):
            raise InvalidArgument("saving credentials needs a config file", field="config")

    def _credentials(
        self, cluster: str, reply: rainbow_pb2.RegisterResponse, save: bool, what: str
    ) -> Registration:
        """The credentials a register or renew reply hands out, saved to the config when ``save``."""
        status = status_name(rainbow_pb2.RegisterResponse.ResultType, reply.status)
        check_status(status, f"{what} {cluster}")
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
        text = graph_text(nodes, "nodes")
        reply = self._call(
            self.scheduler_stub.RegisterSubsystem,
            rainbow_pb2.RegisterRequest(name=cluster, secret=secret, nodes=text, subsystem=subsystem),
        )
        status = status_name(rainbow_pb2.RegisterResponse.ResultType, reply.status)
        check_status(status, f"register subsystem {subsystem} of {cluster}")
        return Registration(cluster, "", "", status, reply.request_id, subsystem)

    def update_state(
        self, cluster: str | None, state_data: PathOrText | Mapping[str, Any], secret: str | None = None
    ) -> StateUpdate:
        """Report a cluster's flat key/value state (a dict or a JSON file)."""
        cluster, secret = self._cluster_credentials(cluster, secret)
        payload, data = state_payload(state_data)
        reply = self._call(
            self.scheduler_stub.UpdateState,
            rainbow_pb2.UpdateStateRequest(cluster=cluster, secret=secret, payload=payload),
        )
        status = status_name(rainbow_pb2.UpdateStateResponse.ResultType, reply.status)
        check_status(status, f"update state of {cluster}")
        return StateUpdate(cluster, status, data)

    def delete_cluster(self, cluster: str | None, secret: str | None = None) -> Deletion:
        """Remove a cluster with its subsystems and jobs."""
        cluster, secret = self._cluster_credentials(cluster, secret)
        reply = self._call(self.scheduler_stub.Delete, rainbow_pb2.DeleteRequest(name=cluster, secret=secret))
        status = status_name(rainbow_pb2.DeleteResponse.ResultType, reply.status)
        check_status(status, f"delete {cluster}")
        return Deletion(cluster, status)

    def delete_subsystem(self, cluster: str | None, subsystem: str, secret: str | None = None) -> Deletion:
        if not subsystem:
            raise InvalidArgument("a subsystem name is required", field="subsystem")
        cluster, secret = self._cluster_credentials(cluster, secret)
        reply = self._call(
            self.scheduler_stub.DeleteSubsystem,
            rainbow_pb2.DeleteRequest(name=cluster, secret=secret, subsytem=subsystem),
        )
        status = status_name(rainbow_pb2.DeleteResponse.ResultType, reply.status)
        check_status(status, f"delete subsystem {subsystem} of {cluster}")
        return Deletion(cluster, status, subsystem)

    # -- jobs -------------------------------------------------------------
    def satisfy(
        self, jobspec: Jobspec | Mapping[str, Any] | PathOrText, matcher: str | None = None
    ) -> SatisfyResult:
        """Ask which registered clusters can run a jobspec (and why the others cannot)."""
        parsed, _text = jobspec_input(jobspec)
        return self._satisfy(parsed, matcher)

    def _satisfy(self, jobspec: Jobspec, matcher: str | None) -> SatisfyResult:
        matcher = matcher or (self.config.configured_algorithm("match") if self.config else None) or ""
        reply = self._call(
            self.graph_stub.Satisfy, memory_pb2.SatisfyRequest(payload=jobspec.to_json(), matcher=matcher)
        )
        status = status_name(memory_pb2.SatisfyResponse.ResultType, reply.status)
        check_status(status, "satisfy")
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
        priority: int = 0,
        dependencies: Iterable[str | Dependency] = (),
        hold: bool = False,
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
            priority=priority,
            dependencies=dependencies,
            hold=hold,
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
        priority: int = 0,
        dependencies: Iterable[str | Dependency] = (),
        hold: bool = False,
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
        and ``time_limit`` replace (the constraint: add to) the jobspec's own. ``priority`` orders the
        user's own waiting jobs (higher first, Flux's urgency); fair share between users comes first.
        ``hold`` stores the job held (``flux submit --urgency=hold``): placed, but not handed to its cluster
        until ``set_urgency`` lets it go.

        ``dependencies`` (``afterok:12``..., as ``flux submit --dependency``; added to the jobspec's
        ``attributes.system.dependencies``) make the job wait until they are satisfied; it is placed then,
        among every cluster the config's tokens open at that moment, so no cluster has to match now.
        """
        parsed, text = jobspec_input(jobspec)
        parsed, text = _placed(parsed, text, queue, requires, time_limit)
        wanted = [d if isinstance(d, Dependency) else parse_dependency(d) for d in dependencies]
        if wanted:
            parsed, text = jobspec_input(with_dependencies(parsed.to_dict(), wanted))
        name = name or parsed.name or (parsed.command[0] if parsed.command else "")
        if self.user_token:
            # The server matches among every cluster the user may use: no satisfy round trip, no tokens.
            matched = SatisfyResult((), {}, 0, 0, 0, "")
            clusters = []
        else:
            matched = self._satisfy(parsed, match_algo)
            if parsed.dependencies and not satisfy_only:
                clusters = self._cluster_messages()  # placed when released: every cluster it may go to then
            else:
                clusters = self._matched_clusters(matched)
        algorithm, options = self._selection(select_algo, select_options)
        return self._submit_one(name, text, clusters, algorithm, options, satisfy_only, idempotency_key, matched,
                                priority, hold)

    def _matched_clusters(self, matched: SatisfyResult) -> list[rainbow_pb2.SubmitJobRequest.Cluster]:
        """The matching clusters with the submit tokens the config holds for them."""
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
                "'clusters', or issue new ones (rainbow cluster renew NAME --save; the old ones stop working)",
                field="clusters",
            )
        return clusters

    def _submit_one(
        self, name: str, text: str, clusters: list[rainbow_pb2.SubmitJobRequest.Cluster], algorithm: str,
        options: dict[str, str], satisfy_only: bool, idempotency_key: str | None, matched: SatisfyResult,
        priority: int = 0, hold: bool = False,
    ) -> SubmitResult:
        request = rainbow_pb2.SubmitJobRequest(
            name=name,
            clusters=clusters,
            jobspec=text,
            select_algorithm=algorithm,
            select_options=options,
            satisfy_only=satisfy_only,
            # a retry after a lost reply is recognised by the server instead of stored twice
            idempotency_key=idempotency_key or uuid.uuid4().hex,
            priority=priority,
            hold=hold,
        )
        request.sent.GetCurrentTime()
        reply = self._call(self.scheduler_stub.SubmitJob, request)
        status = status_name(rainbow_pb2.SubmitJobResponse.ResultType, reply.status)
        if not matched.clusters and reply.cluster:
            matched = SatisfyResult((reply.cluster,), {}, 0, 1, 0, "")
        check_status(status, "submit")
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

    def submit_workflow(
        self,
        workflow: Path | str | Mapping[str, Any] | tuple[str, list[Step]],
        name: str | None = None,
        select_algo: str | None = None,
        select_options: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        priority: int = 0,
    ) -> WorkflowStatus:
        """Submit a workflow (a file path, YAML text, a mapping, or (name, steps)), checked whole and stored
        in one transaction. Steps that need nothing are placed now, the others when their needs allow,
        among every cluster the config's tokens open then. ``idempotency_key`` and ``priority`` (every
        step's) as in ``submit_jobspec``.
        """
        if isinstance(workflow, tuple):
            default, steps = workflow
        else:
            default, steps = load_workflow(Path(workflow) if isinstance(workflow, Path) else workflow)
        algorithm, options = self._selection(select_algo, select_options)
        request = rainbow_pb2.SubmitWorkflowRequest(
            clusters=self._cluster_messages(), name=name or default, select_algorithm=algorithm,
            select_options=options, idempotency_key=idempotency_key or uuid.uuid4().hex, priority=priority,
            steps=[rainbow_pb2.WorkflowStep(name=step.name, jobspec=step.jobspec, needs=[
                rainbow_pb2.WorkflowNeed(step=need.step, scheme=need.scheme) for need in step.needs])
                for step in steps],
        )
        return WorkflowStatus.from_wire(self._call(self.scheduler_stub.SubmitWorkflow, request))

    def get_workflow(self, workflow_id: str) -> WorkflowStatus:
        """A workflow's steps with their jobs (state, cluster) and needs."""
        request = rainbow_pb2.GetWorkflowRequest(clusters=self._cluster_messages(), workflow_id=workflow_id)
        return WorkflowStatus.from_wire(self._call(self.scheduler_stub.GetWorkflow, request))

    def cancel_workflow(self, workflow_id: str, reason: str = "") -> BatchCancel:
        """Cancel every step of a workflow that has not ended (one transaction on the server)."""
        request = rainbow_pb2.CancelWorkflowRequest(clusters=self._cluster_messages(), workflow_id=workflow_id,
                                                    reason=reason)
        reply = self._call(self.scheduler_stub.CancelWorkflow, request)
        return BatchCancel(workflow_id, reply.cancelled, reply.cancel_requested)

    def submit_jobs(
        self,
        jobs: Iterable[Jobspec | Mapping[str, Any] | PathOrText | tuple[str, Jobspec | Mapping[str, Any] | PathOrText]],
        select_algo: str | None = None,
        select_options: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        priority: int = 0,
        progress: Callable[[int, int], None] | None = None,
        hold: bool = False,
    ) -> BatchResult:
        """Submit many jobspecs (or (name, jobspec) pairs) as one batch.

        Each job is placed as ``submit_jobspec`` places it, among the clusters
        whose tokens the config holds. A job no cluster can run comes back with
        its ``error``; an invalid one refuses the whole batch (nothing stored).
        ``idempotency_key`` names the batch, as in ``submit_jobspec``.

        A submission larger than the server takes in one call goes in chunks
        (``rainbow.client.chunks``), each stored in one transaction with a key
        of its own (derived from ``idempotency_key``: a resend stores nothing
        twice), all in one batch; ``progress(done, total)`` follows each chunk. ``hold`` stores every job
        held, as ``submit_jobspec``.
        """
        entries = []
        for job in jobs:
            name, spec = job if isinstance(job, tuple) else ("", job)
            parsed, text = jobspec_input(spec)
            if isinstance(spec, (Mapping, Jobspec)):
                text = parsed.to_json()  # JSON: a sweep's jobspecs then share one parse on the server
            entries.append(rainbow_pb2.SubmitJobsRequest.Job(name=name, jobspec=text))
        sizes = [job_bytes(entry.name, entry.jobspec) for entry in entries]
        return self._submit_batch(len(entries), sizes, lambda start, end: (entries[start:end], ""), select_algo,
                                  select_options, idempotency_key, priority, progress, hold)

    def submit_array(
        self,
        jobspec: Jobspec | Mapping[str, Any] | PathOrText,
        count: int | str,
        name: str | None = None,
        select_algo: str | None = None,
        select_options: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        queue: str | None = None,
        requires: str | None = None,
        time_limit: str | float | None = None,
        priority: int = 0,
        progress: Callable[[int, int], None] | None = None,
        hold: bool = False,
    ) -> BatchResult:
        """Submit copies of one jobspec: ``count`` copies (ids 1..count) or one per id of an idset ("1-10,20").

        Every ``{cc}`` in the jobspec (its command and arguments) and in ``name`` becomes the copy's id.
        ``queue``, ``requires`` and ``time_limit`` are applied as ``submit_jobspec`` applies them.
        Large arrays go in chunks of ids, as ``submit_jobs`` sends large batches.
        """
        cc = f"1-{count}" if isinstance(count, int) else count
        if isinstance(count, int) and count < 1:
            raise InvalidArgument("count must be at least 1", field="count")
        parsed, text = jobspec_input(jobspec)
        parsed, text = _placed(parsed, text, queue, requires, time_limit)
        entry = rainbow_pb2.SubmitJobsRequest.Job(name=name or "", jobspec=text)
        check_array_size(idset_size(cc))
        try:
            ids = expand_idset(cc)
        except InvalidArgument as exc:
            raise InvalidArgument(f"cc: {exc}", field="cc") from None

        def chunk(start: int, end: int) -> tuple[list, str]:
            return [entry], cc if (start, end) == (0, len(ids)) else encode_idset(ids[start:end])

        sizes = [job_bytes(entry.name, entry.jobspec)] * len(ids)
        return self._submit_batch(max(len(ids), 1), sizes or [0], chunk, select_algo, select_options,
                                  idempotency_key, priority, progress, hold)

    def _submit_batch(
        self,
        total: int,
        sizes: list[int],
        chunk: Callable[[int, int], tuple[list[rainbow_pb2.SubmitJobsRequest.Job], str]],
        select_algo: str | None,
        select_options: Mapping[str, Any] | None,
        idempotency_key: str | None,
        priority: int,
        progress: Callable[[int, int], None] | None,
        hold: bool = False,
    ) -> BatchResult:
        """SubmitJobs calls for jobs ``[0, total)``: ``chunk(start, end)`` gives a call's jobs and idset."""
        config = self.config
        tokens = [(c.get("name", ""), c.get("token", "")) for c in config.clusters] if config else []
        clusters = [rainbow_pb2.SubmitJobRequest.Cluster(name=n, token=t) for n, t in tokens if n and t]
        if self.user_token:
            clusters = []  # the server places among every cluster the user may use
        elif not clusters:
            where = f" in {config.path}" if config and config.path else " (no config file given)"
            raise PermissionDenied(f"no submit tokens{where}: register a cluster with --save, or add its token "
                                   "under 'clusters'", field="clusters")
        algorithm, options = self._selection(select_algo, select_options)
        key = idempotency_key or uuid.uuid4().hex
        limits = ChunkLimits()
        batch_id = ""
        results: list[BatchJob] = []
        start = 0
        while start < total:
            end = chunk_end(sizes, start, limits)
            entries, cc = chunk(start, end)
            request = rainbow_pb2.SubmitJobsRequest(
                clusters=clusters,
                jobs=entries,
                cc=cc,
                select_algorithm=algorithm,
                select_options=options,
                idempotency_key=key if (start, end) == (0, total) else f"{key}.{start}",
                batch_id=batch_id,
                priority=priority,
                hold=hold,
            )
            try:
                try:
                    reply = self._call(self.scheduler_stub.SubmitJobs, request)
                except ResourceExhausted as exc:
                    if end - start <= 1 or not refused_for_size(exc):
                        raise
                    limits = limits.halved(end - start)  # refused whole: nothing of it was stored
                    continue
            except RainbowError as exc:
                if not batch_id:
                    raise  # the first call: nothing was stored
                stored = sum(1 for job in results if not job.error)
                raise type(exc)(f"{exc} ({stored} of {total} jobs stored in batch {batch_id})",
                                field=exc.field) from exc
            batch_id = batch_id or reply.batch_id
            results.extend(BatchJob(j.jobid, j.cluster, j.error) for j in reply.jobs)
            limits = ChunkLimits.learned(reply.max_batch_jobs, reply.max_batch_bytes)
            start = end
            if progress is not None:
                progress(start, total)
        return BatchResult(batch_id, tuple(results))

    def _selection(
        self, algorithm: str | None, options: Mapping[str, Any] | None
    ) -> tuple[str, dict[str, str]]:
        """The selection algorithm and options of a submit: the caller's, else the config file's, else the server's."""
        config = self.config
        if algorithm is None and config is not None:
            algorithm = config.configured_algorithm("selection")
            if options is None:
                options = config.selection_options
        return algorithm or "", {str(k): option_text(v) for k, v in (options or {}).items()}

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
        status = status_name(rainbow_pb2.ReceiveJobsResponse.ResultType, reply.status)
        check_status(status, f"receive jobs for {cluster}")
        jobs = Job.from_reply(reply)
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

    def _cluster_messages(self, cluster: str | None = None) -> list[rainbow_pb2.SubmitJobRequest.Cluster]:
        """``_submit_credentials`` as the wire's (name, token) messages; with a user token the cluster's name
        only, or none (the server knows what the user may see)."""
        if self.user_token:
            return [rainbow_pb2.SubmitJobRequest.Cluster(name=cluster)] if cluster else []
        return [rainbow_pb2.SubmitJobRequest.Cluster(name=c, token=t) for c, t in self._submit_credentials(cluster)]

    def _with_any_token(self, call: Callable[[str], T], token: str | None) -> T:
        """Try the given token, else each token of the config, until one opens the job (a user token alone
        decides when the client has one)."""
        if self.user_token and not token:
            return call("")
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
        self,
        state: str | None = None,
        cluster: str | None = None,
        name: str | None = None,
        limit: int = 100,
        batch: str | None = None,
    ) -> list[JobStatus]:
        """Jobs of the config's clusters (or one of them; or of one batch), newest first."""
        clusters = self._cluster_messages(cluster)
        request = rainbow_pb2.ListJobsRequest(clusters=clusters, state=state or "", name=name or "", limit=limit,
                                              batch=batch or "")
        return [JobStatus.from_wire(info) for info in self._call(self.scheduler_stub.ListJobs, request).jobs]

    def batch_summary(self, batch_id: str) -> BatchSummary:
        """How many jobs of a batch (on the config's clusters) are in each state."""
        clusters = self._cluster_messages()
        reply = self._call(self.scheduler_stub.GetBatch, rainbow_pb2.GetBatchRequest(clusters=clusters,
                                                                                      batch_id=batch_id))
        return BatchSummary(reply.batch_id, dict(sorted(reply.states.items())), reply.total)

    def cancel_batch(self, batch_id: str, reason: str = "") -> BatchCancel:
        """Cancel every job of a batch that has not ended (one transaction on the server)."""
        clusters = self._cluster_messages()
        request = rainbow_pb2.CancelBatchRequest(clusters=clusters, batch_id=batch_id, reason=reason)
        reply = self._call(self.scheduler_stub.CancelBatch, request)
        return BatchCancel(batch_id, reply.cancelled, reply.cancel_requested)

    def cancel_job(self, jobid: int, reason: str = "", *, token: str | None = None) -> JobStatus:
        """Cancel a job: at once if no cluster holds it yet, else its cluster is told to cancel it."""
        def cancel(candidate: str) -> rainbow_pb2.CancelJobResponse:
            request = rainbow_pb2.CancelJobRequest(jobid=jobid, token=candidate, reason=reason)
            return self._call(self.scheduler_stub.CancelJob, request)

        self._with_any_token(cancel, token)
        return self.get_job(jobid, token=token)

    def set_urgency(self, jobid: int, urgency: int | str, *, token: str | None = None) -> JobStatus:
        """Hold a waiting job (``"hold"``), or give it a priority (an int, ``"default"`` for 0 or ``"expedite"``
        for the highest), which lets a held job go: as `flux job urgency`. The job afterwards.

        Only a job that still waits can change: one its cluster took or that ended is refused
        (FailedPrecondition); a job waiting for its dependencies can have its priority set but not be held.
        """
        def set_it(candidate: str) -> rainbow_pb2.SetUrgencyResponse:
            request = rainbow_pb2.SetUrgencyRequest(jobid=jobid, token=candidate, urgency=str(urgency))
            return self._call(self.scheduler_stub.SetUrgency, request)

        self._with_any_token(set_it, token)
        return self.get_job(jobid, token=token)

    def set_batch_urgency(self, batch_id: str, urgency: int | str) -> BatchUrgency:
        """As ``set_urgency`` for every job of a batch that still waits (one transaction on the server)."""
        request = rainbow_pb2.SetUrgencyRequest(clusters=self._cluster_messages(), batch_id=batch_id,
                                                urgency=str(urgency))
        reply = self._call(self.scheduler_stub.SetUrgency, request)
        return BatchUrgency(batch_id, reply.changed, reply.skipped)

    def watch_jobs(
        self, jobid: int | None = None, *, cluster: str | None = None, since: int = 0
    ) -> Iterator[JobEvent]:
        """Stream job events as they happen (``since``: replay after that sequence; -1: from the first).

        The stream has no deadline; stop iterating (or close the client) to end it.
        """
        clusters = self._cluster_messages(cluster)
        request = rainbow_pb2.WatchJobsRequest(clusters=clusters, jobid=jobid or 0, since=since)
        stream = self.scheduler_stub.WatchJobs(request, wait_for_ready=self.wait_for_ready)
        try:
            for event in stream:
                yield JobEvent(event.seq, event.jobid, event.cluster, event.name, event.state, event.time,
                               event.message, event.user, event.group)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                raise rpc_error(exc, self.host, self.transport) from exc
        finally:
            stream.cancel()

    # -- users and cluster access (the registration secret or an admin's user token) ----------
    def _operator_secret(self, secret: str | None) -> str:
        """The registration secret to send: the given one, else the config's unless a user token stands in."""
        if secret:
            return secret
        if self.user_token:
            return ""
        return self._require(self.config.scheduler_secret if self.config else None, "secret",
                             "pass the registration secret (or use an admin's user token) or set scheduler.secret")

    def add_user(
        self, name: str, groups: Iterable[str] = (), admin: bool = False, *, secret: str | None = None
    ) -> User:
        """Add a user; the result holds their token (shown this once)."""
        request = rainbow_pb2.AddUserRequest(name=name, groups=list(groups), admin=admin,
                                             secret=self._operator_secret(secret))
        return User.from_reply(self._call(self.scheduler_stub.AddUser, request))

    def remove_user(self, name: str, *, secret: str | None = None) -> None:
        """Remove a user: their token stops working (their jobs keep their name)."""
        request = rainbow_pb2.UserRequest(name=name, secret=self._operator_secret(secret))
        self._call(self.scheduler_stub.RemoveUser, request)

    def new_user_token(self, name: str, *, secret: str | None = None) -> User:
        """Issue a user a new token (in the result); the old one stops working."""
        request = rainbow_pb2.UserRequest(name=name, secret=self._operator_secret(secret))
        return User.from_reply(self._call(self.scheduler_stub.NewUserToken, request))

    def list_users(self, *, secret: str | None = None) -> list[User]:
        request = rainbow_pb2.ListUsersRequest(secret=self._operator_secret(secret))
        return [User.from_wire(info) for info in self._call(self.scheduler_stub.ListUsers, request).users]

    def whoami(self) -> User:
        """The user this client's user token names."""
        return User.from_wire(self._call(self.scheduler_stub.WhoAmI, rainbow_pb2.WhoAmIRequest()))

    def _access_secret(self, cluster: str, secret: str | None) -> str:
        """The cluster's own secret (from the config) or the registration secret, unless a user token stands in."""
        if secret or self.user_token:
            return secret or ""
        config = self.config
        if config is not None and config.cluster_name == cluster and config.cluster_secret:
            return config.cluster_secret
        return self._operator_secret(None)

    def set_cluster_access(
        self,
        cluster: str,
        *,
        user: str | None = None,
        group: str | None = None,
        allow: bool = True,
        remove: bool = False,
        secret: str | None = None,
    ) -> ClusterAccess:
        """Allow or deny a user or a group on a cluster (``remove``: forget that rule); the rules after."""
        if bool(user) == bool(group):
            raise InvalidArgument("name a user or a group (one of them)", field="user")
        rule = rainbow_pb2.ClusterAccessRule(kind="user" if user else "group", name=user or group or "", allow=allow)
        request = rainbow_pb2.ClusterAccessRequest(cluster=cluster, secret=self._access_secret(cluster, secret),
                                                   rule=rule, remove=remove)
        return ClusterAccess.from_wire(self._call(self.scheduler_stub.SetClusterAccess, request))

    def renew_cluster_credentials(self, cluster: str, *, secret: str | None = None, save: bool = False
                                  ) -> Registration:
        """A new secret and submit token for a registered cluster, for a lost config or a leaked credential: the
        old ones stop working at once (an agent using them must be restarted with the new config).

        Authenticated as ``set_cluster_access`` is. With ``save=True`` both are written to the config file.
        """
        self._check_savable(save)
        request = rainbow_pb2.RenewCredentialsRequest(cluster=cluster, secret=self._access_secret(cluster, secret))
        return self._credentials(cluster, self._call(self.scheduler_stub.RenewClusterCredentials, request), save,
                                 "renew the credentials of")

    def cluster_access(self, cluster: str, *, secret: str | None = None) -> ClusterAccess:
        """A cluster's access rules (none: open to every authenticated user)."""
        request = rainbow_pb2.ClusterAccessRequest(cluster=cluster, secret=self._access_secret(cluster, secret))
        return ClusterAccess.from_wire(self._call(self.scheduler_stub.GetClusterAccess, request))

    # -- fair share, quotas and accounting (the registration secret or an admin's user token) ------------
    def set_shares(
        self, shares: int, *, user: str | None = None, group: str | None = None, parent: str | None = None,
        secret: str | None = None,
    ) -> list[Standing]:
        """A user's shares within their banks, or a group's within its parent bank (``parent`` sets that too);
        every association's standing after."""
        if bool(user) == bool(group):
            raise InvalidArgument("name a user or a group (one of them)", field="user")
        request = rainbow_pb2.SetSharesRequest(kind="user" if user else "group", name=user or group or "",
                                               shares=shares, parent=parent or "",
                                               secret=self._operator_secret(secret))
        reply = self._call(self.scheduler_stub.SetShares, request)
        return [standing_from_wire(s) for s in reply.standings]

    def load_accounts(self, document: PathOrText, *, secret: str | None = None) -> list[User]:
        """Apply an accounts file (banks, users, shares; YAML or JSON, a path or text) in one transaction;
        the users it created, each with their token (shown this once)."""
        text = read_input(document, "accounts")
        request = rainbow_pb2.LoadAccountsRequest(document=text, secret=self._operator_secret(secret))
        reply = self._call(self.scheduler_stub.LoadAccounts, request)
        return [User.from_reply(created) for created in reply.created]

    def set_quota(
        self, *, user: str | None = None, group: str | None = None, cluster: str | None = None,
        max_waiting: int | None = None, max_running: int | None = None, max_nodes: int | None = None,
        remove: bool = False, secret: str | None = None,
    ) -> list[Limit]:
        """Set (``remove``: forget) the quota of a user or group, on one cluster or all; every quota after."""
        if bool(user) == bool(group):
            raise InvalidArgument("name a user or a group (one of them)", field="user")
        limit = Limit("user" if user else "group", user or group or "", cluster or "", max_waiting, max_running,
                      max_nodes)
        request = rainbow_pb2.SetQuotaRequest(quota=quota_to_wire(limit), remove=remove,
                                              secret=self._operator_secret(secret))
        return [quota_from_wire(q) for q in self._call(self.scheduler_stub.SetQuota, request).quotas]

    def list_quotas(self, *, secret: str | None = None) -> list[Limit]:
        request = rainbow_pb2.ListQuotasRequest(secret=self._operator_secret(secret))
        return [quota_from_wire(q) for q in self._call(self.scheduler_stub.ListQuotas, request).quotas]

    def usage(self, by: str = "user", since: float = 0.0, *, secret: str | None = None) -> Usage:
        """Jobs per user, group or cluster and state with their node-hours (jobs changed since ``since``,
        seconds since the epoch), and every association's fair-share standing."""
        request = rainbow_pb2.GetUsageRequest(by=by, since=since, secret=self._operator_secret(secret))
        return Usage.from_wire(self._call(self.scheduler_stub.GetUsage, request))

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


def _placed(
    jobspec: Jobspec, text: str, queue: str | None, requires: str | None, time_limit: str | float | None
) -> tuple[Jobspec, str]:
    """The jobspec (and its text) with Flux's queue, constraint and time limit applied, when any is given."""
    if queue is None and not requires and time_limit is None:
        return jobspec, text
    if queue is not None and not queue:
        raise InvalidArgument("queue: must not be empty", field="queue")
    constraints = parse_requires(requires, "requires") if requires else None
    duration = parse_duration(time_limit, "time_limit") if time_limit is not None else None
    return jobspec_input(with_placement(jobspec.to_dict(), queue, constraints, duration))


def _no_match_message(result: SatisfyResult) -> str:
    if not result.total_clusters:
        return "no cluster can run this job: no clusters are registered"
    detail = "; ".join(f"{name}: {reason}" for name, reason in sorted(result.reasons.items()))
    message = f"no cluster can run this job (0 of {result.total_clusters} match)"
    return f"{message}: {detail}" if detail else message
