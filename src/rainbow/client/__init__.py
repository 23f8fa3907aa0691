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

The package: ``core`` (``RainbowClient``, one method per RPC), ``results``
(what the methods return), ``transport`` (channel, calls, errors and retries)
``inputs`` (paths, text or dicts as documents) and ``accounting`` (fair share, quotas, usage).
"""

from rainbow.client.accounting import Usage, UsageTotal
from rainbow.client.core import RainbowClient, accept_each
from rainbow.client.inputs import PathOrText, read_input
from rainbow.client.results import (
    AccessRule,
    BatchCancel,
    BatchJob,
    BatchResult,
    BatchSummary,
    BatchUrgency,
    ClusterAccess,
    Deletion,
    Job,
    JobChange,
    JobEvent,
    JobLogs,
    JobOutput,
    JobRejection,
    JobStatus,
    Registration,
    SatisfyResult,
    StateUpdate,
    SubmitResult,
    User,
    WorkflowStatus,
    WorkflowStep,
)
from rainbow.client.transport import (
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    GRAPH_SERVICE,
    SCHEDULER_SERVICE,
    connection_hint,
    rpc_error,
    service_config,
)

__all__ = [
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT",
    "GRAPH_SERVICE",
    "SCHEDULER_SERVICE",
    "AccessRule",
    "BatchCancel",
    "BatchJob",
    "BatchResult",
    "BatchSummary",
    "BatchUrgency",
    "ClusterAccess",
    "Deletion",
    "Job",
    "JobChange",
    "JobEvent",
    "JobLogs",
    "JobOutput",
    "JobRejection",
    "JobStatus",
    "PathOrText",
    "RainbowClient",
    "Registration",
    "SatisfyResult",
    "StateUpdate",
    "SubmitResult",
    "Usage",
    "UsageTotal",
    "User",
    "WorkflowStatus",
    "WorkflowStep",
    "accept_each",
    "connection_hint",
    "read_input",
    "rpc_error",
    "service_config",
]
