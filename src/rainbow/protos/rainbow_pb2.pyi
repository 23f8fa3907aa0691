import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RegisterRequest(_message.Message):
    __slots__ = ("name", "secret", "nodes", "subsystem", "sent")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    SUBSYSTEM_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    name: str
    secret: str
    nodes: str
    subsystem: str
    sent: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., secret: _Optional[str] = ..., nodes: _Optional[str] = ..., subsystem: _Optional[str] = ..., sent: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RegisterResponse(_message.Message):
    __slots__ = ("request_id", "token", "secret", "status")
    class ResultType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        REGISTER_UNSPECIFIED: _ClassVar[RegisterResponse.ResultType]
        REGISTER_SUCCESS: _ClassVar[RegisterResponse.ResultType]
        REGISTER_ERROR: _ClassVar[RegisterResponse.ResultType]
        REGISTER_DENIED: _ClassVar[RegisterResponse.ResultType]
        REGISTER_EXISTS: _ClassVar[RegisterResponse.ResultType]
    REGISTER_UNSPECIFIED: RegisterResponse.ResultType
    REGISTER_SUCCESS: RegisterResponse.ResultType
    REGISTER_ERROR: RegisterResponse.ResultType
    REGISTER_DENIED: RegisterResponse.ResultType
    REGISTER_EXISTS: RegisterResponse.ResultType
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    token: str
    secret: str
    status: RegisterResponse.ResultType
    def __init__(self, request_id: _Optional[str] = ..., token: _Optional[str] = ..., secret: _Optional[str] = ..., status: _Optional[_Union[RegisterResponse.ResultType, str]] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("name", "secret", "subsytem")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    SUBSYTEM_FIELD_NUMBER: _ClassVar[int]
    name: str
    secret: str
    subsytem: str
    def __init__(self, name: _Optional[str] = ..., secret: _Optional[str] = ..., subsytem: _Optional[str] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("status",)
    class ResultType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        DELETE_SUCCESS: _ClassVar[DeleteResponse.ResultType]
        DELETE_ERROR: _ClassVar[DeleteResponse.ResultType]
        DELETE_DENIED: _ClassVar[DeleteResponse.ResultType]
        DELETE_NO_EXISTS: _ClassVar[DeleteResponse.ResultType]
    DELETE_SUCCESS: DeleteResponse.ResultType
    DELETE_ERROR: DeleteResponse.ResultType
    DELETE_DENIED: DeleteResponse.ResultType
    DELETE_NO_EXISTS: DeleteResponse.ResultType
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: DeleteResponse.ResultType
    def __init__(self, status: _Optional[_Union[DeleteResponse.ResultType, str]] = ...) -> None: ...

class UpdateStateRequest(_message.Message):
    __slots__ = ("cluster", "secret", "payload")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    cluster: str
    secret: str
    payload: str
    def __init__(self, cluster: _Optional[str] = ..., secret: _Optional[str] = ..., payload: _Optional[str] = ...) -> None: ...

class UpdateStateResponse(_message.Message):
    __slots__ = ("status",)
    class ResultType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        UPDATE_STATE_UNSPECIFIED: _ClassVar[UpdateStateResponse.ResultType]
        UPDATE_STATE_PARTIAL: _ClassVar[UpdateStateResponse.ResultType]
        UPDATE_STATE_SUCCESS: _ClassVar[UpdateStateResponse.ResultType]
        UPDATE_STATE_ERROR: _ClassVar[UpdateStateResponse.ResultType]
    UPDATE_STATE_UNSPECIFIED: UpdateStateResponse.ResultType
    UPDATE_STATE_PARTIAL: UpdateStateResponse.ResultType
    UPDATE_STATE_SUCCESS: UpdateStateResponse.ResultType
    UPDATE_STATE_ERROR: UpdateStateResponse.ResultType
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: UpdateStateResponse.ResultType
    def __init__(self, status: _Optional[_Union[UpdateStateResponse.ResultType, str]] = ...) -> None: ...

class SubmitJobRequest(_message.Message):
    __slots__ = ("name", "clusters", "jobspec", "select_algorithm", "select_options", "satisfy_only", "sent", "idempotency_key", "priority", "hold")
    class Cluster(_message.Message):
        __slots__ = ("name", "token")
        NAME_FIELD_NUMBER: _ClassVar[int]
        TOKEN_FIELD_NUMBER: _ClassVar[int]
        name: str
        token: str
        def __init__(self, name: _Optional[str] = ..., token: _Optional[str] = ...) -> None: ...
    class SelectOptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    JOBSPEC_FIELD_NUMBER: _ClassVar[int]
    SELECT_ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    SELECT_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    SATISFY_ONLY_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    HOLD_FIELD_NUMBER: _ClassVar[int]
    name: str
    clusters: _containers.RepeatedCompositeFieldContainer[SubmitJobRequest.Cluster]
    jobspec: str
    select_algorithm: str
    select_options: _containers.ScalarMap[str, str]
    satisfy_only: bool
    sent: _timestamp_pb2.Timestamp
    idempotency_key: str
    priority: int
    hold: bool
    def __init__(self, name: _Optional[str] = ..., clusters: _Optional[_Iterable[_Union[SubmitJobRequest.Cluster, _Mapping]]] = ..., jobspec: _Optional[str] = ..., select_algorithm: _Optional[str] = ..., select_options: _Optional[_Mapping[str, str]] = ..., satisfy_only: _Optional[bool] = ..., sent: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., idempotency_key: _Optional[str] = ..., priority: _Optional[int] = ..., hold: _Optional[bool] = ...) -> None: ...

class SubmitJobResponse(_message.Message):
    __slots__ = ("request_id", "jobid", "cluster", "status", "clusters")
    class ResultType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        SUBMIT_UNSPECIFIED: _ClassVar[SubmitJobResponse.ResultType]
        SUBMIT_SUCCESS: _ClassVar[SubmitJobResponse.ResultType]
        SUBMIT_ERROR: _ClassVar[SubmitJobResponse.ResultType]
        SUBMIT_DENIED: _ClassVar[SubmitJobResponse.ResultType]
    SUBMIT_UNSPECIFIED: SubmitJobResponse.ResultType
    SUBMIT_SUCCESS: SubmitJobResponse.ResultType
    SUBMIT_ERROR: SubmitJobResponse.ResultType
    SUBMIT_DENIED: SubmitJobResponse.ResultType
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    JOBID_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    jobid: int
    cluster: str
    status: SubmitJobResponse.ResultType
    clusters: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, request_id: _Optional[str] = ..., jobid: _Optional[int] = ..., cluster: _Optional[str] = ..., status: _Optional[_Union[SubmitJobResponse.ResultType, str]] = ..., clusters: _Optional[_Iterable[str]] = ...) -> None: ...

class ReceiveJobsRequest(_message.Message):
    __slots__ = ("cluster", "secret", "maxJobs", "sent", "agent")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    MAXJOBS_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    cluster: str
    secret: str
    maxJobs: int
    sent: _timestamp_pb2.Timestamp
    agent: str
    def __init__(self, cluster: _Optional[str] = ..., secret: _Optional[str] = ..., maxJobs: _Optional[int] = ..., sent: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., agent: _Optional[str] = ...) -> None: ...

class ReceiveJobsResponse(_message.Message):
    __slots__ = ("request_id", "jobs", "status", "leases", "lease_seconds", "owners", "depends")
    class ResultType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        REQUEST_JOBS_NORESULTS: _ClassVar[ReceiveJobsResponse.ResultType]
        REQUEST_JOBS_SUCCESS: _ClassVar[ReceiveJobsResponse.ResultType]
        REQUEST_JOBS_ERROR: _ClassVar[ReceiveJobsResponse.ResultType]
        REQUEST_JOBS_DENIED: _ClassVar[ReceiveJobsResponse.ResultType]
    REQUEST_JOBS_NORESULTS: ReceiveJobsResponse.ResultType
    REQUEST_JOBS_SUCCESS: ReceiveJobsResponse.ResultType
    REQUEST_JOBS_ERROR: ReceiveJobsResponse.ResultType
    REQUEST_JOBS_DENIED: ReceiveJobsResponse.ResultType
    class JobsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: str
        def __init__(self, key: _Optional[int] = ..., value: _Optional[str] = ...) -> None: ...
    class LeasesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: int
        def __init__(self, key: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...
    class OwnersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: JobOwner
        def __init__(self, key: _Optional[int] = ..., value: _Optional[_Union[JobOwner, _Mapping]] = ...) -> None: ...
    class DependsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: str
        def __init__(self, key: _Optional[int] = ..., value: _Optional[str] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    JOBS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LEASES_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    OWNERS_FIELD_NUMBER: _ClassVar[int]
    DEPENDS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    jobs: _containers.ScalarMap[int, str]
    status: ReceiveJobsResponse.ResultType
    leases: _containers.ScalarMap[int, int]
    lease_seconds: float
    owners: _containers.MessageMap[int, JobOwner]
    depends: _containers.ScalarMap[int, str]
    def __init__(self, request_id: _Optional[str] = ..., jobs: _Optional[_Mapping[int, str]] = ..., status: _Optional[_Union[ReceiveJobsResponse.ResultType, str]] = ..., leases: _Optional[_Mapping[int, int]] = ..., lease_seconds: _Optional[float] = ..., owners: _Optional[_Mapping[int, JobOwner]] = ..., depends: _Optional[_Mapping[int, str]] = ...) -> None: ...

class AcceptJobsRequest(_message.Message):
    __slots__ = ("cluster", "secret", "jobids", "sent", "agent", "leases")
    class LeasesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: int
        def __init__(self, key: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    JOBIDS_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    LEASES_FIELD_NUMBER: _ClassVar[int]
    cluster: str
    secret: str
    jobids: _containers.RepeatedScalarFieldContainer[int]
    sent: _timestamp_pb2.Timestamp
    agent: str
    leases: _containers.ScalarMap[int, int]
    def __init__(self, cluster: _Optional[str] = ..., secret: _Optional[str] = ..., jobids: _Optional[_Iterable[int]] = ..., sent: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., agent: _Optional[str] = ..., leases: _Optional[_Mapping[int, int]] = ...) -> None: ...

class AcceptJobsResponse(_message.Message):
    __slots__ = ("status",)
    class ResultType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        RESULT_TYPE_UNSPECIFIED: _ClassVar[AcceptJobsResponse.ResultType]
        RESULT_TYPE_PARTIAL: _ClassVar[AcceptJobsResponse.ResultType]
        RESULT_TYPE_SUCCESS: _ClassVar[AcceptJobsResponse.ResultType]
        RESULT_TYPE_ERROR: _ClassVar[AcceptJobsResponse.ResultType]
    RESULT_TYPE_UNSPECIFIED: AcceptJobsResponse.ResultType
    RESULT_TYPE_PARTIAL: AcceptJobsResponse.ResultType
    RESULT_TYPE_SUCCESS: AcceptJobsResponse.ResultType
    RESULT_TYPE_ERROR: AcceptJobsResponse.ResultType
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: AcceptJobsResponse.ResultType
    def __init__(self, status: _Optional[_Union[AcceptJobsResponse.ResultType, str]] = ...) -> None: ...

class JobStateChange(_message.Message):
    __slots__ = ("state", "time", "message")
    STATE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    state: str
    time: float
    message: str
    def __init__(self, state: _Optional[str] = ..., time: _Optional[float] = ..., message: _Optional[str] = ...) -> None: ...

class JobInfo(_message.Message):
    __slots__ = ("id", "cluster", "name", "state", "jobspec", "command", "local_id", "exit_code", "has_exit_code", "message", "created", "updated", "cancel_requested", "history", "output", "rejections", "user", "group", "priority", "nodes", "dependencies", "workflow_id", "step")
    ID_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    JOBSPEC_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    LOCAL_ID_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    HAS_EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    REJECTIONS_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    id: int
    cluster: str
    name: str
    state: str
    jobspec: str
    command: str
    local_id: str
    exit_code: int
    has_exit_code: bool
    message: str
    created: float
    updated: float
    cancel_requested: bool
    history: _containers.RepeatedCompositeFieldContainer[JobStateChange]
    output: JobOutput
    rejections: _containers.RepeatedCompositeFieldContainer[JobRejection]
    user: str
    group: str
    priority: int
    nodes: int
    dependencies: _containers.RepeatedScalarFieldContainer[str]
    workflow_id: str
    step: str
    def __init__(self, id: _Optional[int] = ..., cluster: _Optional[str] = ..., name: _Optional[str] = ..., state: _Optional[str] = ..., jobspec: _Optional[str] = ..., command: _Optional[str] = ..., local_id: _Optional[str] = ..., exit_code: _Optional[int] = ..., has_exit_code: _Optional[bool] = ..., message: _Optional[str] = ..., created: _Optional[float] = ..., updated: _Optional[float] = ..., cancel_requested: _Optional[bool] = ..., history: _Optional[_Iterable[_Union[JobStateChange, _Mapping]]] = ..., output: _Optional[_Union[JobOutput, _Mapping]] = ..., rejections: _Optional[_Iterable[_Union[JobRejection, _Mapping]]] = ..., user: _Optional[str] = ..., group: _Optional[str] = ..., priority: _Optional[int] = ..., nodes: _Optional[int] = ..., dependencies: _Optional[_Iterable[str]] = ..., workflow_id: _Optional[str] = ..., step: _Optional[str] = ...) -> None: ...

class JobRejection(_message.Message):
    __slots__ = ("cluster", "reason", "time")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    cluster: str
    reason: str
    time: float
    def __init__(self, cluster: _Optional[str] = ..., reason: _Optional[str] = ..., time: _Optional[float] = ...) -> None: ...

class JobOutput(_message.Message):
    __slots__ = ("host", "stdout", "stderr", "command")
    HOST_FIELD_NUMBER: _ClassVar[int]
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    host: str
    stdout: str
    stderr: str
    command: str
    def __init__(self, host: _Optional[str] = ..., stdout: _Optional[str] = ..., stderr: _Optional[str] = ..., command: _Optional[str] = ...) -> None: ...

class ReportJobStateRequest(_message.Message):
    __slots__ = ("cluster", "secret", "jobid", "state", "local_id", "exit_code", "has_exit_code", "message", "output", "agent", "lease", "rejected")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    JOBID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LOCAL_ID_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    HAS_EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    LEASE_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    cluster: str
    secret: str
    jobid: int
    state: str
    local_id: str
    exit_code: int
    has_exit_code: bool
    message: str
    output: JobOutput
    agent: str
    lease: int
    rejected: bool
    def __init__(self, cluster: _Optional[str] = ..., secret: _Optional[str] = ..., jobid: _Optional[int] = ..., state: _Optional[str] = ..., local_id: _Optional[str] = ..., exit_code: _Optional[int] = ..., has_exit_code: _Optional[bool] = ..., message: _Optional[str] = ..., output: _Optional[_Union[JobOutput, _Mapping]] = ..., agent: _Optional[str] = ..., lease: _Optional[int] = ..., rejected: _Optional[bool] = ...) -> None: ...

class ReportJobStateResponse(_message.Message):
    __slots__ = ("state", "cancel")
    STATE_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    state: str
    cancel: bool
    def __init__(self, state: _Optional[str] = ..., cancel: _Optional[bool] = ...) -> None: ...

class HeldJob(_message.Message):
    __slots__ = ("jobid", "state", "local_id", "lease")
    JOBID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LOCAL_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_FIELD_NUMBER: _ClassVar[int]
    jobid: int
    state: str
    local_id: str
    lease: int
    def __init__(self, jobid: _Optional[int] = ..., state: _Optional[str] = ..., local_id: _Optional[str] = ..., lease: _Optional[int] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("cluster", "secret", "agent", "jobs")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    JOBS_FIELD_NUMBER: _ClassVar[int]
    cluster: str
    secret: str
    agent: str
    jobs: _containers.RepeatedCompositeFieldContainer[HeldJob]
    def __init__(self, cluster: _Optional[str] = ..., secret: _Optional[str] = ..., agent: _Optional[str] = ..., jobs: _Optional[_Iterable[_Union[HeldJob, _Mapping]]] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("cancel", "timeout", "revoked", "lease_seconds")
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    cancel: _containers.RepeatedScalarFieldContainer[int]
    timeout: float
    revoked: _containers.RepeatedScalarFieldContainer[int]
    lease_seconds: float
    def __init__(self, cancel: _Optional[_Iterable[int]] = ..., timeout: _Optional[float] = ..., revoked: _Optional[_Iterable[int]] = ..., lease_seconds: _Optional[float] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("jobid", "token")
    JOBID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobid: int
    token: str
    def __init__(self, jobid: _Optional[int] = ..., token: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("clusters", "state", "name", "limit", "batch")
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    clusters: _containers.RepeatedCompositeFieldContainer[SubmitJobRequest.Cluster]
    state: str
    name: str
    limit: int
    batch: str
    def __init__(self, clusters: _Optional[_Iterable[_Union[SubmitJobRequest.Cluster, _Mapping]]] = ..., state: _Optional[str] = ..., name: _Optional[str] = ..., limit: _Optional[int] = ..., batch: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[JobInfo]
    def __init__(self, jobs: _Optional[_Iterable[_Union[JobInfo, _Mapping]]] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("jobid", "token", "reason")
    JOBID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    jobid: int
    token: str
    reason: str
    def __init__(self, jobid: _Optional[int] = ..., token: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelJobResponse(_message.Message):
    __slots__ = ("state", "cancel_requested")
    STATE_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    state: str
    cancel_requested: bool
    def __init__(self, state: _Optional[str] = ..., cancel_requested: _Optional[bool] = ...) -> None: ...

class WatchJobsRequest(_message.Message):
    __slots__ = ("clusters", "jobid", "since")
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    JOBID_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    clusters: _containers.RepeatedCompositeFieldContainer[SubmitJobRequest.Cluster]
    jobid: int
    since: int
    def __init__(self, clusters: _Optional[_Iterable[_Union[SubmitJobRequest.Cluster, _Mapping]]] = ..., jobid: _Optional[int] = ..., since: _Optional[int] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("seq", "jobid", "cluster", "state", "time", "message", "name", "user", "group")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    JOBID_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    seq: int
    jobid: int
    cluster: str
    state: str
    time: float
    message: str
    name: str
    user: str
    group: str
    def __init__(self, seq: _Optional[int] = ..., jobid: _Optional[int] = ..., cluster: _Optional[str] = ..., state: _Optional[str] = ..., time: _Optional[float] = ..., message: _Optional[str] = ..., name: _Optional[str] = ..., user: _Optional[str] = ..., group: _Optional[str] = ...) -> None: ...

class SubmitJobsRequest(_message.Message):
    __slots__ = ("clusters", "jobs", "cc", "select_algorithm", "select_options", "idempotency_key", "priority", "hold", "batch_id")
    class Job(_message.Message):
        __slots__ = ("name", "jobspec")
        NAME_FIELD_NUMBER: _ClassVar[int]
        JOBSPEC_FIELD_NUMBER: _ClassVar[int]
        name: str
        jobspec: str
        def __init__(self, name: _Optional[str] = ..., jobspec: _Optional[str] = ...) -> None: ...
    class SelectOptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    JOBS_FIELD_NUMBER: _ClassVar[int]
    CC_FIELD_NUMBER: _ClassVar[int]
    SELECT_ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    SELECT_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    HOLD_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    clusters: _containers.RepeatedCompositeFieldContainer[SubmitJobRequest.Cluster]
    jobs: _containers.RepeatedCompositeFieldContainer[SubmitJobsRequest.Job]
    cc: str
    select_algorithm: str
    select_options: _containers.ScalarMap[str, str]
    idempotency_key: str
    priority: int
    hold: bool
    batch_id: str
    def __init__(self, clusters: _Optional[_Iterable[_Union[SubmitJobRequest.Cluster, _Mapping]]] = ..., jobs: _Optional[_Iterable[_Union[SubmitJobsRequest.Job, _Mapping]]] = ..., cc: _Optional[str] = ..., select_algorithm: _Optional[str] = ..., select_options: _Optional[_Mapping[str, str]] = ..., idempotency_key: _Optional[str] = ..., priority: _Optional[int] = ..., hold: _Optional[bool] = ..., batch_id: _Optional[str] = ...) -> None: ...

class SubmitJobsResponse(_message.Message):
    __slots__ = ("batch_id", "jobs", "max_batch_jobs", "max_batch_bytes")
    class Result(_message.Message):
        __slots__ = ("jobid", "cluster", "error")
        JOBID_FIELD_NUMBER: _ClassVar[int]
        CLUSTER_FIELD_NUMBER: _ClassVar[int]
        ERROR_FIELD_NUMBER: _ClassVar[int]
        jobid: int
        cluster: str
        error: str
        def __init__(self, jobid: _Optional[int] = ..., cluster: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    JOBS_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_JOBS_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_BYTES_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    jobs: _containers.RepeatedCompositeFieldContainer[SubmitJobsResponse.Result]
    max_batch_jobs: int
    max_batch_bytes: int
    def __init__(self, batch_id: _Optional[str] = ..., jobs: _Optional[_Iterable[_Union[SubmitJobsResponse.Result, _Mapping]]] = ..., max_batch_jobs: _Optional[int] = ..., max_batch_bytes: _Optional[int] = ...) -> None: ...

class GetBatchRequest(_message.Message):
    __slots__ = ("clusters", "batch_id")
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    clusters: _containers.RepeatedCompositeFieldContainer[SubmitJobRequest.Cluster]
    batch_id: str
    def __init__(self, clusters: _Optional[_Iterable[_Union[SubmitJobRequest.Cluster, _Mapping]]] = ..., batch_id: _Optional[str] = ...) -> None: ...

class BatchSummary(_message.Message):
    __slots__ = ("batch_id", "states", "total")
    class StatesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    states: _containers.ScalarMap[str, int]
    total: int
    def __init__(self, batch_id: _Optional[str] = ..., states: _Optional[_Mapping[str, int]] = ..., total: _Optional[int] = ...) -> None: ...

class CancelBatchRequest(_message.Message):
    __slots__ = ("clusters", "batch_id", "reason")
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    clusters: _containers.RepeatedCompositeFieldContainer[SubmitJobRequest.Cluster]
    batch_id: str
    reason: str
    def __init__(self, clusters: _Optional[_Iterable[_Union[SubmitJobRequest.Cluster, _Mapping]]] = ..., batch_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelBatchResponse(_message.Message):
    __slots__ = ("cancelled", "cancel_requested")
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    cancelled: int
    cancel_requested: int
    def __init__(self, cancelled: _Optional[int] = ..., cancel_requested: _Optional[int] = ...) -> None: ...

class UserInfo(_message.Message):
    __slots__ = ("name", "groups", "admin", "created")
    NAME_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    ADMIN_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    name: str
    groups: _containers.RepeatedScalarFieldContainer[str]
    admin: bool
    created: float
    def __init__(self, name: _Optional[str] = ..., groups: _Optional[_Iterable[str]] = ..., admin: _Optional[bool] = ..., created: _Optional[float] = ...) -> None: ...

class AddUserRequest(_message.Message):
    __slots__ = ("name", "groups", "admin", "secret")
    NAME_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    ADMIN_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    name: str
    groups: _containers.RepeatedScalarFieldContainer[str]
    admin: bool
    secret: str
    def __init__(self, name: _Optional[str] = ..., groups: _Optional[_Iterable[str]] = ..., admin: _Optional[bool] = ..., secret: _Optional[str] = ...) -> None: ...

class UserRequest(_message.Message):
    __slots__ = ("name", "secret")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    name: str
    secret: str
    def __init__(self, name: _Optional[str] = ..., secret: _Optional[str] = ...) -> None: ...

class UserReply(_message.Message):
    __slots__ = ("user", "token")
    USER_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    user: UserInfo
    token: str
    def __init__(self, user: _Optional[_Union[UserInfo, _Mapping]] = ..., token: _Optional[str] = ...) -> None: ...

class ListUsersRequest(_message.Message):
    __slots__ = ("secret",)
    SECRET_FIELD_NUMBER: _ClassVar[int]
    secret: str
    def __init__(self, secret: _Optional[str] = ...) -> None: ...

class ListUsersResponse(_message.Message):
    __slots__ = ("users",)
    USERS_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedCompositeFieldContainer[UserInfo]
    def __init__(self, users: _Optional[_Iterable[_Union[UserInfo, _Mapping]]] = ...) -> None: ...

class ClusterAccessRule(_message.Message):
    __slots__ = ("kind", "name", "allow")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ALLOW_FIELD_NUMBER: _ClassVar[int]
    kind: str
    name: str
    allow: bool
    def __init__(self, kind: _Optional[str] = ..., name: _Optional[str] = ..., allow: _Optional[bool] = ...) -> None: ...

class ClusterAccessRequest(_message.Message):
    __slots__ = ("cluster", "secret", "rule", "remove")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    cluster: str
    secret: str
    rule: ClusterAccessRule
    remove: bool
    def __init__(self, cluster: _Optional[str] = ..., secret: _Optional[str] = ..., rule: _Optional[_Union[ClusterAccessRule, _Mapping]] = ..., remove: _Optional[bool] = ...) -> None: ...

class ClusterAccessResponse(_message.Message):
    __slots__ = ("cluster", "rules")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    cluster: str
    rules: _containers.RepeatedCompositeFieldContainer[ClusterAccessRule]
    def __init__(self, cluster: _Optional[str] = ..., rules: _Optional[_Iterable[_Union[ClusterAccessRule, _Mapping]]] = ...) -> None: ...

class WhoAmIRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class JobOwner(_message.Message):
    __slots__ = ("user", "group")
    USER_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    user: str
    group: str
    def __init__(self, user: _Optional[str] = ..., group: _Optional[str] = ...) -> None: ...

class AccountStanding(_message.Message):
    __slots__ = ("user", "bank", "shares", "norm_shares", "usage", "norm_usage", "effective_usage", "factor")
    USER_FIELD_NUMBER: _ClassVar[int]
    BANK_FIELD_NUMBER: _ClassVar[int]
    SHARES_FIELD_NUMBER: _ClassVar[int]
    NORM_SHARES_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    NORM_USAGE_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_USAGE_FIELD_NUMBER: _ClassVar[int]
    FACTOR_FIELD_NUMBER: _ClassVar[int]
    user: str
    bank: str
    shares: int
    norm_shares: float
    usage: float
    norm_usage: float
    effective_usage: float
    factor: float
    def __init__(self, user: _Optional[str] = ..., bank: _Optional[str] = ..., shares: _Optional[int] = ..., norm_shares: _Optional[float] = ..., usage: _Optional[float] = ..., norm_usage: _Optional[float] = ..., effective_usage: _Optional[float] = ..., factor: _Optional[float] = ...) -> None: ...

class SetSharesRequest(_message.Message):
    __slots__ = ("kind", "name", "shares", "parent", "secret")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHARES_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    kind: str
    name: str
    shares: int
    parent: str
    secret: str
    def __init__(self, kind: _Optional[str] = ..., name: _Optional[str] = ..., shares: _Optional[int] = ..., parent: _Optional[str] = ..., secret: _Optional[str] = ...) -> None: ...

class SharesResponse(_message.Message):
    __slots__ = ("standings",)
    STANDINGS_FIELD_NUMBER: _ClassVar[int]
    standings: _containers.RepeatedCompositeFieldContainer[AccountStanding]
    def __init__(self, standings: _Optional[_Iterable[_Union[AccountStanding, _Mapping]]] = ...) -> None: ...

class LoadAccountsRequest(_message.Message):
    __slots__ = ("document", "secret")
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    document: str
    secret: str
    def __init__(self, document: _Optional[str] = ..., secret: _Optional[str] = ...) -> None: ...

class LoadAccountsResponse(_message.Message):
    __slots__ = ("created", "banks", "users")
    CREATED_FIELD_NUMBER: _ClassVar[int]
    BANKS_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    created: _containers.RepeatedCompositeFieldContainer[UserReply]
    banks: int
    users: int
    def __init__(self, created: _Optional[_Iterable[_Union[UserReply, _Mapping]]] = ..., banks: _Optional[int] = ..., users: _Optional[int] = ...) -> None: ...

class Quota(_message.Message):
    __slots__ = ("kind", "name", "cluster", "max_waiting", "max_running", "max_nodes")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    MAX_WAITING_FIELD_NUMBER: _ClassVar[int]
    MAX_RUNNING_FIELD_NUMBER: _ClassVar[int]
    MAX_NODES_FIELD_NUMBER: _ClassVar[int]
    kind: str
    name: str
    cluster: str
    max_waiting: int
    max_running: int
    max_nodes: int
    def __init__(self, kind: _Optional[str] = ..., name: _Optional[str] = ..., cluster: _Optional[str] = ..., max_waiting: _Optional[int] = ..., max_running: _Optional[int] = ..., max_nodes: _Optional[int] = ...) -> None: ...

class SetQuotaRequest(_message.Message):
    __slots__ = ("quota", "remove", "secret")
    QUOTA_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    quota: Quota
    remove: bool
    secret: str
    def __init__(self, quota: _Optional[_Union[Quota, _Mapping]] = ..., remove: _Optional[bool] = ..., secret: _Optional[str] = ...) -> None: ...

class ListQuotasRequest(_message.Message):
    __slots__ = ("secret",)
    SECRET_FIELD_NUMBER: _ClassVar[int]
    secret: str
    def __init__(self, secret: _Optional[str] = ...) -> None: ...

class QuotasResponse(_message.Message):
    __slots__ = ("quotas",)
    QUOTAS_FIELD_NUMBER: _ClassVar[int]
    quotas: _containers.RepeatedCompositeFieldContainer[Quota]
    def __init__(self, quotas: _Optional[_Iterable[_Union[Quota, _Mapping]]] = ...) -> None: ...

class GetUsageRequest(_message.Message):
    __slots__ = ("by", "since", "secret")
    BY_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    by: str
    since: float
    secret: str
    def __init__(self, by: _Optional[str] = ..., since: _Optional[float] = ..., secret: _Optional[str] = ...) -> None: ...

class UsageTotal(_message.Message):
    __slots__ = ("key", "state", "jobs", "node_seconds")
    KEY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NODE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    key: str
    state: str
    jobs: int
    node_seconds: float
    def __init__(self, key: _Optional[str] = ..., state: _Optional[str] = ..., jobs: _Optional[int] = ..., node_seconds: _Optional[float] = ...) -> None: ...

class UsageResponse(_message.Message):
    __slots__ = ("by", "since", "totals", "standings", "half_life")
    BY_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    STANDINGS_FIELD_NUMBER: _ClassVar[int]
    HALF_LIFE_FIELD_NUMBER: _ClassVar[int]
    by: str
    since: float
    totals: _containers.RepeatedCompositeFieldContainer[UsageTotal]
    standings: _containers.RepeatedCompositeFieldContainer[AccountStanding]
    half_life: float
    def __init__(self, by: _Optional[str] = ..., since: _Optional[float] = ..., totals: _Optional[_Iterable[_Union[UsageTotal, _Mapping]]] = ..., standings: _Optional[_Iterable[_Union[AccountStanding, _Mapping]]] = ..., half_life: _Optional[float] = ...) -> None: ...

class WorkflowNeed(_message.Message):
    __slots__ = ("step", "scheme")
    STEP_FIELD_NUMBER: _ClassVar[int]
    SCHEME_FIELD_NUMBER: _ClassVar[int]
    step: str
    scheme: str
    def __init__(self, step: _Optional[str] = ..., scheme: _Optional[str] = ...) -> None: ...

class WorkflowStep(_message.Message):
    __slots__ = ("name", "jobspec", "needs")
    NAME_FIELD_NUMBER: _ClassVar[int]
    JOBSPEC_FIELD_NUMBER: _ClassVar[int]
    NEEDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    jobspec: str
    needs: _containers.RepeatedCompositeFieldContainer[WorkflowNeed]
    def __init__(self, name: _Optional[str] = ..., jobspec: _Optional[str] = ..., needs: _Optional[_Iterable[_Union[WorkflowNeed, _Mapping]]] = ...) -> None: ...

class SubmitWorkflowRequest(_message.Message):
    __slots__ = ("clusters", "name", "steps", "select_algorithm", "select_options", "idempotency_key", "priority")
    class SelectOptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    SELECT_ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    SELECT_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    clusters: _containers.RepeatedCompositeFieldContainer[SubmitJobRequest.Cluster]
    name: str
    steps: _containers.RepeatedCompositeFieldContainer[WorkflowStep]
    select_algorithm: str
    select_options: _containers.ScalarMap[str, str]
    idempotency_key: str
    priority: int
    def __init__(self, clusters: _Optional[_Iterable[_Union[SubmitJobRequest.Cluster, _Mapping]]] = ..., name: _Optional[str] = ..., steps: _Optional[_Iterable[_Union[WorkflowStep, _Mapping]]] = ..., select_algorithm: _Optional[str] = ..., select_options: _Optional[_Mapping[str, str]] = ..., idempotency_key: _Optional[str] = ..., priority: _Optional[int] = ...) -> None: ...

class WorkflowStepInfo(_message.Message):
    __slots__ = ("name", "job", "needs")
    NAME_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    NEEDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    job: JobInfo
    needs: _containers.RepeatedCompositeFieldContainer[WorkflowNeed]
    def __init__(self, name: _Optional[str] = ..., job: _Optional[_Union[JobInfo, _Mapping]] = ..., needs: _Optional[_Iterable[_Union[WorkflowNeed, _Mapping]]] = ...) -> None: ...

class WorkflowInfo(_message.Message):
    __slots__ = ("workflow_id", "name", "created", "steps")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    name: str
    created: float
    steps: _containers.RepeatedCompositeFieldContainer[WorkflowStepInfo]
    def __init__(self, workflow_id: _Optional[str] = ..., name: _Optional[str] = ..., created: _Optional[float] = ..., steps: _Optional[_Iterable[_Union[WorkflowStepInfo, _Mapping]]] = ...) -> None: ...

class GetWorkflowRequest(_message.Message):
    __slots__ = ("clusters", "workflow_id")
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    clusters: _containers.RepeatedCompositeFieldContainer[SubmitJobRequest.Cluster]
    workflow_id: str
    def __init__(self, clusters: _Optional[_Iterable[_Union[SubmitJobRequest.Cluster, _Mapping]]] = ..., workflow_id: _Optional[str] = ...) -> None: ...

class CancelWorkflowRequest(_message.Message):
    __slots__ = ("clusters", "workflow_id", "reason")
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    clusters: _containers.RepeatedCompositeFieldContainer[SubmitJobRequest.Cluster]
    workflow_id: str
    reason: str
    def __init__(self, clusters: _Optional[_Iterable[_Union[SubmitJobRequest.Cluster, _Mapping]]] = ..., workflow_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class SetUrgencyRequest(_message.Message):
    __slots__ = ("jobid", "token", "batch_id", "clusters", "urgency")
    JOBID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    URGENCY_FIELD_NUMBER: _ClassVar[int]
    jobid: int
    token: str
    batch_id: str
    clusters: _containers.RepeatedCompositeFieldContainer[SubmitJobRequest.Cluster]
    urgency: str
    def __init__(self, jobid: _Optional[int] = ..., token: _Optional[str] = ..., batch_id: _Optional[str] = ..., clusters: _Optional[_Iterable[_Union[SubmitJobRequest.Cluster, _Mapping]]] = ..., urgency: _Optional[str] = ...) -> None: ...

class SetUrgencyResponse(_message.Message):
    __slots__ = ("changed", "skipped", "state", "priority")
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    changed: int
    skipped: int
    state: str
    priority: int
    def __init__(self, changed: _Optional[int] = ..., skipped: _Optional[int] = ..., state: _Optional[str] = ..., priority: _Optional[int] = ...) -> None: ...

class RenewCredentialsRequest(_message.Message):
    __slots__ = ("cluster", "secret")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    cluster: str
    secret: str
    def __init__(self, cluster: _Optional[str] = ..., secret: _Optional[str] = ...) -> None: ...
