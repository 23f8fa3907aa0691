"""Job states and the transitions between them (pure; the store enforces them).

::

    assigned -> leased -> accepted -> submitted -> running -> completed | failed | cancelled
        ^         |  (lease runs out)
        +---------+
    any non-final state -> cancelled
    leased/accepted/submitted/unknown -> assigned (elsewhere) | failed
                                         (the cluster's scheduler rejected it before it ran)
    accepted/submitted/running -> unknown   (cluster stopped reporting; reconciled when it returns)
    depend -> assigned   (its dependencies are satisfied: matched and placed at that moment)
    depend -> cancelled  (a dependency can never be satisfied) | failed (no cluster can run it at release)
    assigned <-> held    (its submitter's hold, as `flux job urgency ID hold`: not handed out until a priority
                          is set again; a job whose lease ran out can be held too)
    held -> cancelled
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class JobState(str, Enum):
    DEPEND = "depend"
    ASSIGNED = "assigned"
    HELD = "held"
    LEASED = "leased"
    ACCEPTED = "accepted"
    SUBMITTED = "submitted"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value


FINAL_STATES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED})

# States in which a cluster may report that its scheduler refused the job (it never ran there).
REJECTABLE = frozenset({JobState.LEASED, JobState.ACCEPTED, JobState.SUBMITTED, JobState.UNKNOWN})

# Allowed moves reported by a cluster for a job it holds.
_CLUSTER_MOVES: dict[JobState, frozenset[JobState]] = {
    JobState.LEASED: frozenset({JobState.ACCEPTED, JobState.SUBMITTED, JobState.RUNNING, *FINAL_STATES}),
    JobState.ACCEPTED: frozenset({JobState.SUBMITTED, JobState.RUNNING, *FINAL_STATES}),
    JobState.SUBMITTED: frozenset({JobState.RUNNING, *FINAL_STATES}),
    JobState.RUNNING: frozenset(FINAL_STATES),
    JobState.UNKNOWN: frozenset({JobState.ACCEPTED, JobState.SUBMITTED, JobState.RUNNING, *FINAL_STATES}),
}


def can_report(current: JobState, new: JobState) -> bool:
    """Whether a cluster may move a job from ``current`` to ``new``.

    Reports never move a job backwards, and a repeated report of the current
    state is accepted (idempotent) so that agents can resend after a failure.
    """
    if current == new:
        return True
    return new in _CLUSTER_MOVES.get(current, frozenset())


def parse_state(value: str) -> JobState:
    """The JobState for a name, case-insensitive; ValueError when unknown."""
    try:
        return JobState(value.strip().lower())
    except ValueError:
        known = ", ".join(s.value for s in JobState)
        raise ValueError(f"unknown job state {value!r} (known: {known})") from None


def fence(
    state: JobState,
    holder: str | None,
    token: int,
    caller: str,
    caller_token: int,
) -> str | None:
    """Why ``caller`` may not act as the holder of a job (accept it, report it), or None when it may.

    ``holder``/``token`` are the job's lease (owner and generation);
    ``caller_token`` is the token the caller received with the job (0:
    none). A token names one hand-out: it must be the job's current one (or a
    newer hand-out to the same holder). A caller without a token (a client
    older than fencing) keeps the original protocol's rules: it is not fenced,
    so it cannot be told that its copy is stale.
    """
    if state == JobState.ASSIGNED:
        return None
    if caller_token:
        if caller_token == token or (caller and holder == caller):
            return None  # its own hand-out, or a newer one to the same holder
        taken = f" (now held by {holder})" if holder and state != JobState.CANCELLED else ""
        return f"its lease {caller_token} was taken over by lease {token}{taken}"
    return None


# The highest priority a job may have (and the lowest, negated); ``expedite`` gives it.
MAX_PRIORITY = 1_000_000


@dataclass(frozen=True)
class Urgency:
    """A change of a waiting job's urgency: hold it, or give it a priority (which lets a held job go)."""

    hold: bool
    priority: int | None = None


def parse_urgency(text: str, highest: int = MAX_PRIORITY) -> Urgency:
    """``hold``, ``default`` (priority 0), ``expedite`` (``highest``) or an integer in ``-highest..highest``,
    as `flux job urgency` takes its urgency; ValueError naming what is allowed."""
    word = text.strip().lower()
    if word == "hold":
        return Urgency(hold=True)
    named = {"default": 0, "expedite": highest}
    try:
        priority = named[word] if word in named else int(word)
    except ValueError:
        raise ValueError(f"{text!r} is not hold, default, expedite or an integer") from None
    if not -highest <= priority <= highest:
        raise ValueError(f"{priority} is out of range: a priority is between {-highest} and {highest}")
    return Urgency(hold=False, priority=priority)
