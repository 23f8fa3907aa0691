"""Workflows: named steps submitted together, each step a job released when the steps it needs allow.

``submit`` checks the steps whole (``rainbow.workflow.check_steps``: names,
needs, schemes, cycles; each jobspec parsed), places the steps that need
nothing at once (as ``SubmitJob`` would), and stores every step in one
``Store.add_graph`` transaction: the others wait in ``depend`` and are
released by ``Dependents`` when their needs are satisfied. A workflow's jobs
carry its id as their batch id, so ``GetBatch``/``CancelBatch`` see them too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from rainbow.errors import FailedPrecondition, InvalidArgument, NotFound, RainbowError, ResourceExhausted
from rainbow.jobspec import Jobspec
from rainbow.scheduler.authorization import SubmitterScope
from rainbow.scheduler.batches import BatchCancel, Batches, workflow_identity
from rainbow.scheduler.context import SchedulerContext, log
from rainbow.scheduler.dependents import Dependents, new_dependent, release_plan
from rainbow.scheduler.placement import BatchPlacement
from rainbow.scheduler.submission import Submissions
from rainbow.scheduler.validation import check_idempotency_key, check_name
from rainbow.store import DependsOn, JobRecord, NewJob, WorkflowRecord
from rainbow.workflow import Step, check_steps

# A fan-in needs every other step (2 needs per step on average); a bound keeps a request from asking for
# steps x steps dependency rows.
MAX_NEEDS_PER_STEP = 16


@dataclass(frozen=True)
class WorkflowView:
    """A workflow with its steps: (step, the step's job, its needs as (step, scheme)), in submission order."""

    record: WorkflowRecord
    steps: list[tuple[Step, JobRecord, list[tuple[str, str]]]]


class Workflows:
    def __init__(
        self, context: SchedulerContext, submissions: Submissions, dependents: Dependents, batches: Batches
    ) -> None:
        self.context = context
        self.store = context.store
        self.submissions = submissions
        self.dependents = dependents
        self.batches = batches

    def submit(
        self,
        candidates: Sequence[str],
        scope: SubmitterScope,
        owner: tuple[str, str],
        name: str,
        steps: Sequence[Step],
        select_algorithm: str = "",
        select_options: Mapping[str, str] | None = None,
        key: str = "",
        admit: Callable[[list[NewJob]], list[NewJob]] = list,
        excluded: Mapping[str, str] | None = None,
    ) -> str:
        """Store every step in one transaction; the workflow id. ``owner`` (user, group) owns every step;
        ``admit`` stamps their priority and checks the owner's quotas (``Accounts.admit``); ``excluded``: the
        clusters the owner may not use, with why (named in the placement records of steps placed now)."""
        limits = self.context.limits
        check_idempotency_key(key, limits)
        check_name(name or "workflow", "name", limits)
        if len(steps) > limits.max_batch_jobs:
            raise ResourceExhausted(f"steps: more than {limits.max_batch_jobs} steps (max_batch_jobs)", field="steps")
        size = sum(len(step.jobspec.encode()) for step in steps)
        if size > limits.max_batch_bytes:
            raise ResourceExhausted(f"steps: more than {limits.max_batch_bytes} bytes of jobspecs (max_batch_bytes)",
                                    field="steps")
        needs = sum(len(step.needs) for step in steps)
        if needs > MAX_NEEDS_PER_STEP * max(len(steps), 1):
            raise ResourceExhausted(f"steps: {needs} needs for {len(steps)} steps (at most {MAX_NEEDS_PER_STEP} "
                                    "per step on average)", field="steps")
        order = check_steps(steps)
        placer = self.submissions.placer
        batch = BatchPlacement(placer, candidates, placer.selector_for(select_algorithm, select_options))
        workflow_id = workflow_identity(key)
        plan = release_plan(scope, select_algorithm, select_options)
        position: dict[str, int] = {}
        jobs: list[NewJob] = []
        now = self.context.clock()
        for index in order:
            step = steps[index]
            field = f"steps[{index}].jobspec"
            try:
                jobspec, template = placer.parse_for_placement(step.jobspec, remember=False)
            except RainbowError as exc:
                raise type(exc)(f"{field} ({step.name}): {exc}", field=field) from None
            if jobspec.dependencies:
                self.dependents.check_parents(jobspec.dependencies, scope,
                                              f"{field}.attributes.system.dependencies")
            depends = [DependsOn(need.scheme, step=position[need.step]) for need in step.needs]
            depends += [DependsOn(d.scheme, job=d.job_id) for d in jobspec.dependencies]
            if depends:
                new = new_dependent(candidates[0], step.name, step.jobspec, jobspec, depends, plan, now,
                                    batch=workflow_id, step=step.name, owner=owner)
            else:
                new = self._place_now(batch, step, index, jobspec, template, workflow_id, owner, excluded)
            position[step.name] = len(jobs)
            jobs.append(new)
        stored = self.store.add_graph(admit(jobs), (workflow_id, name or "workflow", now))
        events = [event for _, event in stored if event is not None]
        self.context.publish(events)
        if events:
            log.info("workflow %s (%s): %d steps stored, %d placed now", workflow_id, name, len(stored),
                     sum(1 for job, _ in stored if job.state.value == "assigned"))
            outside = [job.id for (job, _), new in zip(stored, jobs, strict=True)
                       if any(d.step < 0 for d in new.depends)]
            if outside:
                self.dependents.settle(jobs=outside)  # parents outside the workflow may have ended already
        return workflow_id

    def _place_now(
        self,
        batch: BatchPlacement,
        step: Step,
        index: int,
        jobspec: Jobspec,
        template: Jobspec,
        workflow_id: str,
        owner: tuple[str, str],
        excluded: Mapping[str, str] | None = None,
    ) -> NewJob:
        """A step that needs nothing is placed at submit, as SubmitJobs places a batch's job (matched as
        ``template``, the parsed jobspec steps differing only in their commands and names share)."""
        try:
            pending = self.submissions.prepare_in_batch(batch, step.name, step.jobspec, jobspec, template,
                                                        batch_id=workflow_id, owner=owner, excluded=excluded)
        except FailedPrecondition as exc:
            raise FailedPrecondition(f"steps[{index}] ({step.name}): {exc}", field=f"steps[{index}]") from None
        return dataclasses.replace(pending.job, step=step.name)

    def view(self, candidates: Sequence[str] | None, workflow_id: str, user: str | None = None) -> WorkflowView:
        """The workflow and its steps, when the caller's clusters (None: any) hold its jobs and, with ``user``,
        they are that user's; NotFound otherwise."""
        if not workflow_id or len(workflow_id) > self.context.limits.max_name_length:
            raise InvalidArgument("workflow_id is required (as SubmitWorkflow answered it)", field="workflow_id")
        record = self.store.get_workflow(workflow_id)
        jobs = {job.id: job for job in self.store.list_jobs(candidates, limit=0, batch=workflow_id, user=user)} \
            if record else {}
        if record is None or not jobs:
            raise NotFound(f"no workflow {workflow_id} among your clusters' jobs", field="workflow_id")
        needs = self.store.job_dependencies(list(jobs))
        step_of = {job_id: step for step, job_id in record.steps}
        steps = []
        for step_name, job_id in record.steps:
            job = jobs.get(job_id)
            if job is None:
                continue
            own = [(step_of.get(parent, str(parent)), scheme) for scheme, parent in needs.get(job_id, [])]
            steps.append((Step(step_name, job.jobspec), job, own))
        return WorkflowView(record, steps)

    def cancel(
        self, candidates: Sequence[str] | None, workflow_id: str, reason: str = "", user: str | None = None
    ) -> BatchCancel:
        """Cancel every step not ended, in one transaction (as a batch is cancelled)."""
        self.view(candidates, workflow_id, user)
        return self.batches.cancel(candidates, workflow_id, reason or "workflow cancelled by the submitter", user)
