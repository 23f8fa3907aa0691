"""Submitting many jobs in one call: a batch of jobspecs, or an array of copies of one.

Every job is placed as ``SubmitJob`` places it (``Submissions.prepare``); all
placed jobs are then written in one store transaction. Invalid input refuses
the whole batch (the error names the job's index and field); a job that no
listed cluster can run is answered with why, and the others are stored.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from rainbow.errors import FailedPrecondition, InvalidArgument, NotFound, RainbowError, ResourceExhausted
from rainbow.hostlists import expand_idset, idset_size
from rainbow.jobspec import Jobspec, copy_with
from rainbow.scheduler.context import SchedulerContext, log
from rainbow.scheduler.placement import BatchPlacement
from rainbow.scheduler.submission import PendingSubmit, Submissions
from rainbow.scheduler.validation import check_idempotency_key
from rainbow.store import JobRecord, NewJob


@dataclass(frozen=True)
class BatchCancel:
    cancelled: int  # ended at once (nobody held them)
    requested: int  # their clusters are told to cancel them


@dataclass(frozen=True)
class BatchOutcome:
    batch_id: str
    # Per job, in request order: the stored job, or why it was not placed.
    results: list[JobRecord | str]


def expand_array(name: str, jobspec: str, ids: Sequence[int]) -> list[tuple[str, str]]:
    """One (name, jobspec) per id, every ``{cc}`` replaced by the id."""
    return [(name.replace("{cc}", str(cc)), jobspec.replace("{cc}", str(cc))) for cc in ids]


def batch_identity(key: str) -> str:
    """The batch id: drawn fresh, or derived from the idempotency key so a resend answers the same."""
    if not key:
        return secrets.token_hex(8)
    return hashlib.sha256(b"batch\0" + key.encode()).hexdigest()[:16]


def workflow_identity(key: str) -> str:
    """A workflow's id: as ``batch_identity``, derived apart so a batch and a workflow sharing a key differ."""
    if not key:
        return secrets.token_hex(8)
    return hashlib.sha256(b"workflow\0" + key.encode()).hexdigest()[:16]


class _Naming:
    """Re-raise an error of one job (other than "no cluster can run it") naming the job's index and field.

    Entered once around a batch's loop, which sets ``index`` as it goes (not once per job: a batch has
    thousands).
    """

    def __init__(self) -> None:
        self.index = 0

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _tb: object) -> None:
        if isinstance(exc, RainbowError) and not isinstance(exc, FailedPrecondition):
            field = f"jobs[{self.index}].{exc.field or 'jobspec'}"
            raise type(exc)(f"{field}: {exc}", field=field) from None


def _job_key(keyspace: str, index: int) -> str:
    """A job's own idempotency key: its call's key's identity (``batch_identity``) and its index there."""
    return f"batch:{keyspace}:{index}" if keyspace else ""


_BATCH_ID = re.compile(r"[0-9a-f]{16}")


def joined(batch_id: str) -> str:
    """The batch a call adds its jobs to: one this server answered (16 hex digits)."""
    if not _BATCH_ID.fullmatch(batch_id):
        raise InvalidArgument(f"batch_id: {batch_id[:40]!r} is not a batch id (16 hex digits, as SubmitJobs "
                              "answers it)", field="batch_id")
    return batch_id


@dataclasses.dataclass(frozen=True)
class Owner:
    """Whose jobs a batch holds: (user, group) stamped on each, and the clusters the user may not use (why)."""

    user: str = ""
    group: str = ""
    excluded: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def stamp(self) -> tuple[str, str]:
        return self.user, self.group


class Batches:
    def __init__(self, context: SchedulerContext, submissions: Submissions) -> None:
        self.context = context
        self.submissions = submissions

    def jobs_of(self, jobs: Sequence[tuple[str, str]], cc: str) -> list[tuple[str, str]] | list[int]:
        """The jobs a request names, or the ids of its array's copies, within the batch limits."""
        limits = self.context.limits
        if not jobs:
            raise InvalidArgument("jobs: a batch needs at least one job", field="jobs")
        if len(jobs) > limits.max_batch_jobs:
            raise ResourceExhausted(f"jobs: more than {limits.max_batch_jobs} jobs in one call (max_batch_jobs)",
                                    field="jobs")
        size = sum(len(name.encode()) + len(text.encode()) for name, text in jobs)
        if size > limits.max_batch_bytes:
            raise ResourceExhausted(f"jobs: more than {limits.max_batch_bytes} bytes of names and jobspecs in one "
                                    "call (max_batch_bytes)", field="jobs")
        if not cc:
            return list(jobs)
        if len(jobs) != 1:
            raise InvalidArgument("jobs: an array (cc) takes exactly one jobspec", field="jobs")
        if idset_size(cc) > limits.max_batch_jobs:
            raise ResourceExhausted(f"cc: more than {limits.max_batch_jobs} copies in one call (max_batch_jobs)",
                                    field="cc")
        try:
            ids = expand_idset(cc)
        except InvalidArgument as exc:
            raise InvalidArgument(f"cc: {exc}", field="cc") from None
        if not ids:
            raise InvalidArgument("cc: an array needs at least one id", field="cc")
        if size * len(ids) > limits.max_batch_bytes:
            raise ResourceExhausted(f"cc: {len(ids)} copies are more than {limits.max_batch_bytes} bytes "
                                    "(max_batch_bytes)", field="cc")
        return ids

    def prepare(
        self,
        candidates: Sequence[str],
        jobs: Sequence[tuple[str, str]],
        cc: str = "",
        select_algorithm: str = "",
        select_options: Mapping[str, str] | None = None,
        key: str = "",
        join: str = "",
        owner: Owner | None = None,
    ) -> tuple[str, list[PendingSubmit | str]]:
        """Place every job among the authorized ``candidates``: the batch id and, per job, the job to store
        or why no cluster takes it. ``join`` names an earlier batch to add the jobs to; ``owner`` owns them."""
        check_idempotency_key(key, self.context.limits)
        owner = owner or Owner()
        batch_id = joined(join) if join else batch_identity(key)
        keyspace = batch_identity(key) if key else ""
        listed = self.jobs_of(jobs, cc)
        if cc:
            ids = [cc_id for cc_id in listed if isinstance(cc_id, int)]
            copies = self._copies(candidates, jobs[0], ids, select_algorithm, select_options, keyspace, batch_id,
                                  owner)
            if copies is not None:
                return batch_id, copies
            expanded = expand_array(*jobs[0], ids)
        else:
            expanded = [job for job in listed if isinstance(job, tuple)]
        placer = self.submissions.placer
        batch: BatchPlacement | None = None
        placed: list[PendingSubmit | str] = []
        naming = _Naming()
        with naming:
            for naming.index, (name, text) in enumerate(expanded):
                jobspec, placed_by = placer.parse_for_placement(text, remember=False)
                if batch is None:
                    batch = BatchPlacement(placer, candidates, placer.selector_for(select_algorithm, select_options))
                placed.append(self._place(batch, naming.index, name, text, jobspec, placed_by,
                                          _job_key(keyspace, naming.index), batch_id, owner))
        return batch_id, placed

    def _place(self, batch: BatchPlacement, index: int, name: str, text: str, jobspec: Jobspec, placed_by: Jobspec,
               key: str, batch_id: str, owner: Owner) -> PendingSubmit | str:
        """One job of the batch placed (in the batch), or why no cluster takes it."""
        try:
            return self.submissions.prepare_in_batch(batch, name, text, jobspec, placed_by, key, batch_id,
                                                     owner.stamp, owner.excluded)
        except FailedPrecondition as exc:
            return str(exc)

    def _copies(
        self,
        candidates: Sequence[str],
        job: tuple[str, str],
        ids: Sequence[int],
        select_algorithm: str,
        select_options: Mapping[str, str] | None,
        keyspace: str,
        batch_id: str,
        owner: Owner,
    ) -> list[PendingSubmit | str] | None:
        """An array whose ``{cc}`` appear only in the command: parsed and matched once, each copy selected
        on its own. None when ``{cc}`` is elsewhere too (then every copy is parsed as its own jobspec)."""
        name, text = job
        placer = self.submissions.placer
        with _Naming():
            template = placer.parse_jobspec(text)
            selector = placer.selector_for(select_algorithm, select_options)
        if text.count("{cc}") != sum(arg.count("{cc}") for arg in template.command):
            return None
        batch = BatchPlacement(placer, candidates, selector)
        placed: list[PendingSubmit | str] = []
        naming = _Naming()
        with naming:
            for naming.index, cc_id in enumerate(ids):
                value = str(cc_id)
                copy_text = text.replace("{cc}", value)
                placer.check_size(copy_text)
                copy = copy_with(template, command=[arg.replace("{cc}", value) for arg in template.command])
                placed.append(self._place(batch, naming.index, name.replace("{cc}", value), copy_text, copy,
                                          template, _job_key(keyspace, naming.index), batch_id, owner))
        return placed

    def submit(
        self,
        candidates: Sequence[str],
        jobs: Sequence[tuple[str, str]],
        cc: str = "",
        select_algorithm: str = "",
        select_options: Mapping[str, str] | None = None,
        key: str = "",
        join: str = "",
        owner: Owner | None = None,
        admit: Callable[[Sequence[NewJob]], list[NewJob]] | None = None,
    ) -> BatchOutcome:
        """Place the jobs, store the placed ones in one transaction, then announce them (in batch ``join``,
        when given: the chunks of one submission).

        ``admit`` sees every placed job before the write (it may change them, or refuse the whole batch).
        """
        batch_id, placed = self.prepare(candidates, jobs, cc, select_algorithm, select_options, key, join, owner)
        pending = [p for p in placed if isinstance(p, PendingSubmit)]
        if admit is not None and pending:
            admitted = admit([p.job for p in pending])
            pending = [p if job is p.job else dataclasses.replace(p, job=job)
                       for p, job in zip(pending, admitted, strict=True)]
        stored = self.context.store.add_batch([p.job for p in pending]) if pending else []
        outcomes = iter(self.submissions.announce(pending, stored, log_each=False))
        results: list[JobRecord | str] = [
            item if isinstance(item, str) else
            (outcome if isinstance(outcome := next(outcomes), JobRecord) else str(outcome))
            for item in placed
        ]
        log.info("batch %s: %d of %d jobs stored", batch_id, len(pending), len(placed))
        return BatchOutcome(batch_id, results)

    def _check_id(self, batch_id: str) -> None:
        if not batch_id or len(batch_id) > self.context.limits.max_name_length:
            raise InvalidArgument("batch_id is required (as SubmitJobs answered it)", field="batch_id")

    def states(self, candidates: Sequence[str] | None, batch_id: str, user: str | None = None) -> dict[str, int]:
        """Jobs of the batch per state, on the clusters (None: all) and of the user (None: anyone's) the caller
        may see; NotFound when there are none."""
        self._check_id(batch_id)
        states = self.context.store.batch_states(batch_id, candidates, user)
        if not states:
            raise NotFound(f"no batch {batch_id} among your clusters' jobs", field="batch_id")
        return states

    def cancel(
        self, candidates: Sequence[str] | None, batch_id: str, reason: str = "", user: str | None = None
    ) -> BatchCancel:
        """Cancel every job of the batch that has not ended, in one store transaction."""
        self.states(candidates, batch_id, user)
        jobs, events = self.context.store.cancel_batch(batch_id, candidates, reason or "cancelled by the submitter",
                                                       self.context.clock(), user)
        self.context.publish(events)
        cancelled = sum(1 for job in jobs if job.state.value == "cancelled")
        log.info("batch %s: %d jobs cancelled, %d cancels requested", batch_id, cancelled, len(jobs) - cancelled)
        return BatchCancel(cancelled, len(jobs) - cancelled)
