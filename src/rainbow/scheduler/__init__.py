"""The scheduler: what each request means, independent of gRPC and SQL.

``Scheduler`` (``core``) is the one entry; its rooms, each readable alone:

- ``authorization``: credentials in -> who is asking -> allowed, or PermissionDenied / NotFound;
- ``registry``: the clusters in memory (credentials, state, graphs), kept current with the store;
- ``placement``: parse -> match -> select, the decision a pure function;
- ``submission``: a placed job to the store and announced;
- ``accounts``: fair share (the order of a hand-out), quotas and accounting;
- ``lifecycle``: leases, accepts, reports, heartbeats, cancels, lost clusters and re-placement;
- ``validation``, ``text``, ``context``: field checks, log wording, what the rooms share.
"""

from rainbow.scheduler.accounts import UsageReport, parse_accounts
from rainbow.scheduler.batches import BatchOutcome
from rainbow.scheduler.core import Scheduler
from rainbow.scheduler.lifecycle import AcceptOutcome
from rainbow.scheduler.placement import Placement
from rainbow.scheduler.registry import REGISTRATION_SECRET_KEY, Registration
from rainbow.scheduler.submission import PendingSubmit, SatisfyOutcome, SubmitOutcome
from rainbow.scheduler.text import plural
from rainbow.scheduler.validation import JOB_OUTPUT_FIELDS, check_name, parse_state_payload

__all__ = [
    "JOB_OUTPUT_FIELDS",
    "REGISTRATION_SECRET_KEY",
    "AcceptOutcome",
    "BatchOutcome",
    "PendingSubmit",
    "Placement",
    "Registration",
    "SatisfyOutcome",
    "Scheduler",
    "SubmitOutcome",
    "UsageReport",
    "check_name",
    "parse_accounts",
    "parse_state_payload",
    "plural",
]
