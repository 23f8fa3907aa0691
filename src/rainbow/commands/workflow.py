"""``rainbow workflow submit | status | cancel``: workflows of named steps, each placed when it becomes ready."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from rainbow.client import WorkflowStatus, WorkflowStep
from rainbow.commands.common import add_config_path, emit, load_config, make_client

# Mark of a step by state: waiting (not placed yet or not started), running, ended well, ended badly.
_MARKS = {"depend": "○", "running": "◐", "completed": "●", "failed": "✗", "cancelled": "✗"}


def add_parsers(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    workflow = commands.add_parser("workflow", help="submit a workflow, draw its steps, cancel it",
                                   description="A workflow is a YAML file of named steps, each a command "
                                   "(nodes, tasks, gpus) or a jobspec, with the steps it needs (afterok by "
                                   "default). Each step is placed when its needs are satisfied, on the best "
                                   "cluster at that moment. See docs/workflows.md.")
    actions = workflow.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    submit = actions.add_parser("submit", parents=[common], help="check a workflow file whole and submit it")
    submit.add_argument("file", type=Path, help="the workflow (YAML)")
    submit.add_argument("--name", help="the workflow's name (default: its name:, else the file's)")
    submit.add_argument("--select-algorithm", help="selection algorithm (default: the config's, else the server's)")
    submit.add_argument("--idempotency-key", metavar="KEY",
                        help="name of this submission: sending it again returns the workflow stored the first time")
    submit.add_argument("--priority", "--urgency", type=int, default=0, metavar="N",
                        help="every step's order among your own waiting jobs, higher first (Flux's --urgency); "
                        "fair share between users comes first (default 0)")
    add_config_path(submit, required=True)
    submit.set_defaults(func=run_submit, parser=submit)
    status = actions.add_parser("status", parents=[common], help="draw a workflow's steps: state, cluster, needs")
    status.add_argument("workflow_id", metavar="ID")
    add_config_path(status, required=True)
    status.set_defaults(func=run_status, parser=status)
    cancel = actions.add_parser("cancel", parents=[common], help="cancel every step that has not ended")
    cancel.add_argument("workflow_id", metavar="ID")
    cancel.add_argument("--reason", default="", help="recorded with each step")
    add_config_path(cancel, required=True)
    cancel.set_defaults(func=run_cancel, parser=cancel)


def layers(steps: tuple[WorkflowStep, ...]) -> list[list[WorkflowStep]]:
    """Steps by depth: a step's layer is one more than the deepest step it needs (steps come in an order where
    each follows its needs)."""
    depth: dict[str, int] = {}
    for step in steps:
        depth[step.name] = 1 + max((depth.get(need, 0) for need, _ in step.needs), default=0)
    out: list[list[WorkflowStep]] = [[] for _ in range(max(depth.values(), default=0))]
    for step in steps:
        out[depth[step.name] - 1].append(step)
    return out


def draw(workflow: WorkflowStatus) -> str:
    """The DAG, layer by layer: each step with its state, cluster and job, and an arrow to each step needing it."""
    counts = Counter(step.job.state for step in workflow.steps)
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    lines = [f"Workflow {workflow.workflow_id} ({workflow.name}): {len(workflow.steps)} steps: {summary}"]
    children: dict[str, list[tuple[str, str]]] = {}
    for step in workflow.steps:
        for need, scheme in step.needs:
            children.setdefault(need, []).append((step.name, scheme))
    width = max(len(step.name) for step in workflow.steps)
    for number, layer in enumerate(layers(workflow.steps), start=1):
        for first, step in enumerate(layer):
            job = step.job
            label = f"layer {number}" if first == 0 else ""
            mark = _MARKS.get(job.state, "◌")
            lines.append(f"{label:<9}{mark} {step.name:<{width}}  {job.state:<9}  {job.cluster or '-':<10}  "
                         f"job {job.id}")
            below = children.get(step.name, [])
            for index, (child, scheme) in enumerate(below):
                branch = "└─▶" if index == len(below) - 1 else "├─▶"
                lines.append(f"{'':<11}{branch} {child} ({scheme})")
    return "\n".join(lines)


def run_submit(args: argparse.Namespace) -> int:
    with make_client(args, load_config(args)) as client:
        workflow = client.submit_workflow(args.file, name=args.name, select_algo=args.select_algorithm,
                                          idempotency_key=args.idempotency_key, priority=args.priority)
    lines = [f"Submitted workflow {workflow.workflow_id} ({workflow.name}): {len(workflow.steps)} steps"]
    width = max(len(step.name) for step in workflow.steps)
    for step in workflow.steps:
        job = step.job
        where = f"assigned to {job.cluster}" if job.cluster else f"{job.state}: {job.message}"
        lines.append(f"  {step.name:<{width}}  job {job.id}  {where}")
    emit(args, workflow, "\n".join(lines))
    return 0


def run_status(args: argparse.Namespace) -> int:
    with make_client(args, load_config(args)) as client:
        workflow = client.get_workflow(args.workflow_id)
    emit(args, workflow, draw(workflow))
    return 0


def run_cancel(args: argparse.Namespace) -> int:
    with make_client(args, load_config(args)) as client:
        done = client.cancel_workflow(args.workflow_id, args.reason)
    emit(args, done, f"Workflow {done.batch_id}: {done.cancelled} steps cancelled, {done.cancel_requested} more "
         "will be cancelled by their clusters on their next contact.")
    return 0
