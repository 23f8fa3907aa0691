"""Job dependencies with Flux's RFC 26 names, and the rules that decide them (pure).

A dependency is ``scheme:JOBID``. Its condition is read from what the parent
job (the antecedent) did:

============  ===================================================  =====================================
scheme        satisfied when the parent                            never satisfied when the parent
============  ===================================================  =====================================
after         started running (``afterstart`` is the same): it     ended without having run
              was reported running, or ended with its own exit code
afterany      ended, whatever the result                           (always satisfied once it ends)
afterok       completed (exit code 0)                              failed or was cancelled
afternotok    failed or was cancelled                              completed
afterexcept   ended by an exception: cancelled, or failed          completed, or failed with an exit
              without an exit code (rejected, lost, never ran)     code of its own
============  ===================================================  =====================================

A parent that does not exist (any more) satisfies nothing. A job waits while
any of its conditions waits; it is released when all are satisfied, and
cancelled as soon as one can never be. Each condition is decided once, when
its parent starts or ends (the store counts those still unsatisfied), so a job
that waits for 10,000 parents costs one step per parent, not 10,000.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from rainbow.errors import InvalidArgument
from rainbow.lifecycle import FINAL_STATES, JobState

SCHEMES = ("after", "afterstart", "afterany", "afterok", "afternotok", "afterexcept")

# Parent states that can release or doom a dependent: it started, or it ended.
TRIGGER_STATES = frozenset({JobState.RUNNING, *FINAL_STATES})


class Verdict(str, Enum):
    WAIT = "wait"
    SATISFIED = "satisfied"
    NEVER = "never"


@dataclass(frozen=True)
class Dependency:
    """``scheme`` on the job ``job_id``."""

    scheme: str
    job_id: int

    def __str__(self) -> str:
        return f"{self.scheme}:{self.job_id}"


@dataclass(frozen=True)
class ParentFacts:
    """What the rules read of a parent job: its state, exit code, and whether it ever ran."""

    state: JobState
    exit_code: int | None = None
    started: bool = False


def check_scheme(scheme: Any, field: str) -> str:
    if not isinstance(scheme, str) or scheme.strip().lower() not in SCHEMES:
        raise InvalidArgument(f"{field}: unknown dependency scheme {scheme!r} (known: {', '.join(SCHEMES)})",
                              field=field)
    return scheme.strip().lower()


def _job_id(value: Any, field: str) -> int:
    if isinstance(value, bool):
        raise InvalidArgument(f"{field}: a job id must be a positive integer, not {value!r}", field=field)
    if isinstance(value, int):
        job_id = value
    elif isinstance(value, str) and value.strip().isdigit():
        job_id = int(value.strip())
    else:
        raise InvalidArgument(f"{field}: a job id must be a positive integer, not {value!r}", field=field)
    if not 0 < job_id < 2**31:
        raise InvalidArgument(f"{field}: job id {job_id} is out of range", field=field)
    return job_id


def parse_dependency(text: str, field: str = "dependency") -> Dependency:
    """``afterok:12`` (as ``flux submit --dependency`` takes it) as a Dependency."""
    scheme, sep, value = text.partition(":")
    if not sep:
        raise InvalidArgument(f"{field}: {text!r} is not scheme:JOBID (e.g. afterok:12)", field=field)
    return Dependency(check_scheme(scheme, field), _job_id(value, field))


def from_jobspec(entries: Any, field: str = "attributes.system.dependencies") -> tuple[Dependency, ...]:
    """The dependencies of a jobspec's ``attributes.system.dependencies`` (RFC 26: ``{scheme, value}`` each)."""
    if entries is None:
        return ()
    if not isinstance(entries, list):
        raise InvalidArgument(f"{field}: must be a list of {{scheme, value}}", field=field)
    out: dict[Dependency, None] = {}
    for index, entry in enumerate(entries):
        where = f"{field}[{index}]"
        if not isinstance(entry, Mapping) or "scheme" not in entry or "value" not in entry:
            raise InvalidArgument(f"{where}: must be a mapping with scheme and value", field=where)
        scheme = check_scheme(entry["scheme"], f"{where}.scheme")
        out[Dependency(scheme, _job_id(entry["value"], f"{where}.value"))] = None
    return tuple(out)


def to_jobspec(dependencies: Iterable[Dependency]) -> list[dict[str, Any]]:
    """RFC 26 entries for ``attributes.system.dependencies``."""
    return [{"scheme": d.scheme, "value": d.job_id} for d in dependencies]


def verdict(scheme: str, parent: ParentFacts | None) -> Verdict:
    """Whether one condition is satisfied, waits, or can never be satisfied (the table above)."""
    if parent is None:
        return Verdict.NEVER
    state = parent.state
    ended = state in FINAL_STATES
    if scheme in ("after", "afterstart"):
        # It ran: it was reported running, or it ended with an exit code of its own (too quick to be seen running).
        ran = parent.started or state in (JobState.RUNNING, JobState.COMPLETED) or (
            state == JobState.FAILED and parent.exit_code is not None)
        if ran:
            return Verdict.SATISFIED
        return Verdict.NEVER if ended else Verdict.WAIT
    if not ended:
        return Verdict.WAIT
    if scheme == "afterany":
        return Verdict.SATISFIED
    ok = state == JobState.COMPLETED
    if scheme == "afterok":
        return Verdict.SATISFIED if ok else Verdict.NEVER
    if scheme == "afternotok":
        return Verdict.NEVER if ok else Verdict.SATISFIED
    if scheme == "afterexcept":
        exception = state == JobState.CANCELLED or (state == JobState.FAILED and parent.exit_code is None)
        return Verdict.SATISFIED if exception else Verdict.NEVER
    raise ValueError(f"unknown dependency scheme {scheme!r}")


def _describe(parent: ParentFacts | None) -> str:
    if parent is None:
        return "does not exist"
    if parent.state == JobState.FAILED and parent.exit_code is not None:
        return f"failed (exit code {parent.exit_code})"
    return parent.state.value


def never_reason(dependency: Dependency, parent: ParentFacts | None) -> str:
    """Why a job is cancelled when ``dependency`` can never be satisfied (its verdict is NEVER)."""
    return f"dependency {dependency} can never be satisfied: job {dependency.job_id} {_describe(parent)}"


def waits_for(dependencies: Sequence[Dependency]) -> str:
    """The message a waiting job shows."""
    return "waits for " + ", ".join(str(d) for d in dependencies)


def find_cycle(edges: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A cycle of the graph (node -> the nodes it needs) as a path that returns to its start, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in edges:
        if state.get(start):
            continue
        path: list[str] = []
        stack: list[tuple[str, Iterable[str]]] = [(start, iter(edges.get(start, ())))]
        state[start] = 1
        path.append(start)
        while stack:
            node, children = stack[-1]
            for child in children:
                mark = state.get(child)
                if mark == 1:
                    return [*path[path.index(child):], child]
                if mark is None:
                    state[child] = 1
                    path.append(child)
                    stack.append((child, iter(edges.get(child, ()))))
                    break
            else:
                state[node] = 2
                path.pop()
                stack.pop()
    return None


def topological(edges: Mapping[str, Sequence[str]]) -> list[str]:
    """The nodes in an order where every node comes after those it needs (the graph has no cycle)."""
    order: list[str] = []
    done: set[str] = set()
    for start in edges:
        if start in done:
            continue
        stack: list[tuple[str, Iterable[str]]] = [(start, iter(edges.get(start, ())))]
        done.add(start)
        while stack:
            node, children = stack[-1]
            for child in children:
                if child not in done:
                    done.add(child)
                    stack.append((child, iter(edges.get(child, ()))))
                    break
            else:
                order.append(node)
                stack.pop()
    return order
