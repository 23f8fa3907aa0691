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
    __slots__ = ("name", "clusters", "jobspec", "select_algorithm", "select_options", "satisfy_only", "sent", "idempotency_key")
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
    name: str
    clusters: _containers.RepeatedCompositeFieldContainer[SubmitJobRequest.Cluster]
    jobspec: str
    select_algorithm: str
    select_options: _containers.ScalarMap[str, str]
    satisfy_only: bool
    sent: _timestamp_pb2.Timestamp
    idempotency_key: str
    def __init__(self, name: _Optional[str] = ..., clusters: _Optional[_Iterable[_Union[SubmitJobRequest.Cluster, _Mapping]]] = ..., jobspec: _Optional[str] = ..., select_algorithm: _Optional[str] = ..., select_options: _Optional[_Mapping[str, str]] = ..., satisfy_only: _Optional[bool] = ..., sent: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

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
    __slots__ = ("request_id", "jobs", "status", "leases", "lease_seconds")
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
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    JOBS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LEASES_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    jobs: _containers.ScalarMap[int, str]
    status: ReceiveJobsResponse.ResultType
    leases: _containers.ScalarMap[int, int]
    lease_seconds: float
    def __init__(self, request_id: _Optional[str] = ..., jobs: _Optional[_Mapping[int, str]] = ..., status: _Optional[_Union[ReceiveJobsResponse.ResultType, str]] = ..., leases: _Optional[_Mapping[int, int]] = ..., lease_seconds: _Optional[float] = ...) -> None: ...

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
    __slots__ = ("id", "cluster", "name", "state", "jobspec", "command", "local_id", "exit_code", "has_exit_code", "message", "created", "updated", "cancel_requested", "history", "output", "rejections")
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
    def __init__(self, id: _Optional[int] = ..., cluster: _Optional[str] = ..., name: _Optional[str] = ..., state: _Optional[str] = ..., jobspec: _Optional[str] = ..., command: _Optional[str] = ..., local_id: _Optional[str] = ..., exit_code: _Optional[int] = ..., has_exit_code: _Optional[bool] = ..., message: _Optional[str] = ..., created: _Optional[float] = ..., updated: _Optional[float] = ..., cancel_requested: _Optional[bool] = ..., history: _Optional[_Iterable[_Union[JobStateChange, _Mapping]]] = ..., output: _Optional[_Union[JobOutput, _Mapping]] = ..., rejections: _Optional[_Iterable[_Union[JobRejection, _Mapping]]] = ...) -> None: ...

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
    __slots__ = ("seq", "jobid", "cluster", "state", "time", "message", "name")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    JOBID_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    seq: int
    jobid: int
    cluster: str
    state: str
    time: float
    message: str
    name: str
    def __init__(self, seq: _Optional[int] = ..., jobid: _Optional[int] = ..., cluster: _Optional[str] = ..., state: _Optional[str] = ..., time: _Optional[float] = ..., message: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class SubmitJobsRequest(_message.Message):
    __slots__ = ("clusters", "jobs", "cc", "select_algorithm", "select_options", "idempotency_key", "batch_id")
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
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    clusters: _containers.RepeatedCompositeFieldContainer[SubmitJobRequest.Cluster]
    jobs: _containers.RepeatedCompositeFieldContainer[SubmitJobsRequest.Job]
    cc: str
    select_algorithm: str
    select_options: _containers.ScalarMap[str, str]
    idempotency_key: str
    batch_id: str
    def __init__(self, clusters: _Optional[_Iterable[_Union[SubmitJobRequest.Cluster, _Mapping]]] = ..., jobs: _Optional[_Iterable[_Union[SubmitJobsRequest.Job, _Mapping]]] = ..., cc: _Optional[str] = ..., select_algorithm: _Optional[str] = ..., select_options: _Optional[_Mapping[str, str]] = ..., idempotency_key: _Optional[str] = ..., batch_id: _Optional[str] = ...) -> None: ...

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
