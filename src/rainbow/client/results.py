"""What ``RainbowClient`` methods return: small frozen dataclasses, built from the server's replies."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from rainbow.protos import rainbow_pb2


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
class BatchJob:
    """One job of a batch: stored (``jobid``, ``cluster``) or not placed (``error`` says why)."""

    jobid: int
    cluster: str
    error: str = ""


@dataclass(frozen=True)
class BatchResult:
    """What ``SubmitJobs`` stored: the batch id and, in request order, every job."""

    batch_id: str
    jobs: tuple[BatchJob, ...]

    @property
    def placed(self) -> list[BatchJob]:
        return [job for job in self.jobs if not job.error]

    @property
    def failed(self) -> list[tuple[int, BatchJob]]:
        """(index, job) of every job that was not placed."""
        return [(index, job) for index, job in enumerate(self.jobs) if job.error]


@dataclass(frozen=True)
class BatchSummary:
    """How many jobs of a batch are in each state (``GetBatch``)."""

    batch_id: str
    states: dict[str, int]
    total: int

    def count(self, *states: str) -> int:
        return sum(self.states.get(state, 0) for state in states)


@dataclass(frozen=True)
class BatchCancel:
    """What ``CancelBatch`` did: jobs cancelled at once, and jobs whose clusters are told to cancel them."""

    batch_id: str
    cancelled: int
    cancel_requested: int


@dataclass(frozen=True)
class BatchUrgency:
    """What ``SetUrgency`` did to a batch: jobs held, let go or given the priority, and jobs left as they were
    because they no longer wait (taken by their cluster, or ended)."""

    batch_id: str
    changed: int
    skipped: int


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
    # Who submitted it and the group it is accounted to ('' from servers without users).
    user: str = field(default="", compare=False)
    group: str = field(default="", compare=False)
    # What the job depended on (JSON list: id, name, step, cluster, local_id, state, scheme per parent; "" for none).
    depends: str = field(default="", compare=False)

    @classmethod
    def from_reply(cls, reply: Any) -> list[Job]:
        """The jobs of a ``ReceiveJobsResponse`` (each with its lease token, owner and dependencies), by id."""
        return [cls.from_wire(jobid, reply.jobs[jobid], reply.leases.get(jobid, 0), reply.owners.get(jobid),
                              reply.depends.get(jobid, ""))
                for jobid in sorted(reply.jobs)]

    @classmethod
    def from_wire(cls, jobid: int, text: str, lease: int = 0, owner: rainbow_pb2.JobOwner | None = None,
                  depends: str = "") -> Job:
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
            user=owner.user if owner is not None else "",
            group=owner.group if owner is not None else "",
            depends=depends,
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
    user: str = ""
    group: str = ""
    priority: int = 0  # orders its user's own waiting jobs
    nodes: int = 0  # what it asks for (0 from servers that do not say)
    # scheme:JOBID (RFC 26), as GetJob answers them; the workflow and step of a workflow's job
    dependencies: tuple[str, ...] = ()
    workflow_id: str = ""
    step: str = ""

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
            user=info.user,
            group=info.group,
            priority=info.priority,
            nodes=info.nodes,
            dependencies=tuple(info.dependencies),
            workflow_id=info.workflow_id,
            step=info.step,
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
    user: str = ""
    group: str = ""


@dataclass(frozen=True)
class User:
    """A rainbow user; ``token`` only in the answer that issued it (``add_user``, ``new_user_token``)."""

    name: str
    groups: tuple[str, ...] = ()
    admin: bool = False
    created: float = 0.0
    token: str = ""

    @classmethod
    def from_wire(cls, info: rainbow_pb2.UserInfo, token: str = "") -> User:
        return cls(info.name, tuple(info.groups), info.admin, info.created, token)

    @classmethod
    def from_reply(cls, reply: rainbow_pb2.UserReply) -> User:
        return cls.from_wire(reply.user, reply.token)


@dataclass(frozen=True)
class AccessRule:
    kind: str  # "user" or "group"
    name: str
    allow: bool


@dataclass(frozen=True)
class ClusterAccess:
    """Who may use a cluster: no rules, every authenticated user."""

    cluster: str
    rules: tuple[AccessRule, ...] = ()

    @classmethod
    def from_wire(cls, reply: rainbow_pb2.ClusterAccessResponse) -> ClusterAccess:
        return cls(reply.cluster, tuple(AccessRule(r.kind, r.name, r.allow) for r in reply.rules))


@dataclass(frozen=True)
class WorkflowStep:
    """One step of a workflow: its job (state ``depend`` and no cluster until released) and what it needs."""

    name: str
    job: JobStatus
    needs: tuple[tuple[str, str], ...]  # (step, scheme)


@dataclass(frozen=True)
class WorkflowStatus:
    workflow_id: str
    name: str
    created: float
    steps: tuple[WorkflowStep, ...]

    @classmethod
    def from_wire(cls, info: rainbow_pb2.WorkflowInfo) -> WorkflowStatus:
        return cls(info.workflow_id, info.name, info.created, tuple(
            WorkflowStep(step.name, JobStatus.from_wire(step.job), tuple((n.step, n.scheme) for n in step.needs))
            for step in info.steps))

    def step(self, name: str) -> WorkflowStep:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)
