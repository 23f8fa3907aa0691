"""``rainbow status | jobs | cancel | urgency | watch``: follow jobs after hand-off (submit tokens from the
config)."""

from __future__ import annotations

import argparse
import json
import sys
import time

from rainbow.client import JobEvent, JobStatus
from rainbow.commands.common import add_config_path, emit, load_config, make_client, plain, positive_int, table
from rainbow.lifecycle import JobState


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp)) if timestamp else "-"


def _exit(job: JobStatus) -> str:
    return "-" if job.exit_code is None else str(job.exit_code)


def add_parsers(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    states = ", ".join(s.value for s in JobState)

    status = commands.add_parser("status", parents=[common], help="show one job and its history")
    status.add_argument("jobid", type=positive_int, help="the rainbow job id")
    add_config_path(status, required=True)
    status.set_defaults(func=run_status, parser=status)

    jobs = commands.add_parser("jobs", parents=[common], help="list jobs of your clusters, newest first")
    jobs.add_argument("--state", help=f"only jobs in this state ({states})")
    jobs.add_argument("--cluster", help="only jobs of this cluster")
    jobs.add_argument("--name", help="only jobs with this name")
    jobs.add_argument("--batch", metavar="ID", help="only jobs of this batch (rainbow submit --cc, bulksubmit)")
    jobs.add_argument("--limit", type=positive_int, default=100, help="at most this many (default 100)")
    add_config_path(jobs, required=True)
    jobs.set_defaults(func=run_jobs, parser=jobs)

    cancel = commands.add_parser("cancel", parents=[common], help="cancel a job, or every job of a batch")
    cancel.add_argument("jobid", type=positive_int, nargs="?", help="the rainbow job id")
    cancel.add_argument("--batch", metavar="ID", help="cancel every job of this batch that has not ended")
    cancel.add_argument("--reason", default="", help="recorded with the job")
    add_config_path(cancel, required=True)
    cancel.set_defaults(func=run_cancel, parser=cancel)

    urgency = commands.add_parser(
        "urgency", parents=[common], help="hold a waiting job, let it go, or change its priority",
        description="As flux job urgency: URGENCY is hold (the job is not handed to its cluster until its "
        "urgency is set again), default (priority 0), expedite (the highest priority) or a priority (an "
        "integer, higher first among your own jobs). Anything but hold lets a held job go. Only jobs that "
        "still wait can change.")
    urgency.add_argument("targets", nargs="+", metavar="[JOBID] URGENCY",
                         help="the rainbow job id (none with --batch), then the urgency")
    urgency.add_argument("--batch", metavar="ID", help="every job of this batch that still waits")
    add_config_path(urgency, required=True)
    urgency.set_defaults(func=run_urgency, parser=urgency)

    watch = commands.add_parser("watch", parents=[common], help="follow job state changes live",
                                description="A live view of your jobs' states; with --json, one event per line.")
    watch.add_argument("--job", type=positive_int, help="only this job")
    watch.add_argument("--cluster", help="only jobs of this cluster")
    watch.add_argument("--since", type=int, default=0,
                       help="replay events after this sequence number (-1: from the first; default: new only)")
    watch.add_argument("--count", type=positive_int, help="stop after this many events")
    add_config_path(watch, required=True)
    watch.set_defaults(func=run_watch, parser=watch)


def run_status(args: argparse.Namespace) -> int:
    with make_client(args, load_config(args)) as client:
        job = client.get_job(args.jobid)
    where = f" on {job.cluster}" if job.cluster else " (not placed yet)"
    lines = [
        f"Job {job.id} ({job.name}){where}: {job.state}"
        + (" (cancel requested)" if job.cancel_requested and job.state != "cancelled" else ""),
        f"  command:  {job.command or '-'}",
        *([f"  user:     {job.user}" + (f" (group {job.group})" if job.group else "")] if job.user else []),
        f"  local id: {job.local_id or '-'}",
        f"  exit:     {_exit(job)}",
        *([f"  priority: {job.priority}"] if job.priority else []),
    ]
    if job.dependencies:
        lines.append(f"  depends:  {', '.join(job.dependencies)}")
    if job.workflow_id:
        lines.append(f"  workflow: {job.workflow_id} (step {job.step})")
    if job.message:
        lines.append(f"  message:  {job.message}")
    if job.output is not None:
        lines.append(f"  output:   {job.output.describe()}")
        if job.output.stdout:
            lines.append(f"            (rainbow logs {job.id} prints it where that file system is visible)")
    for rejection in job.rejections:
        lines.append(f"  rejected: by {rejection.cluster} at {_when(rejection.time)}: {rejection.reason}")
    lines.append("")
    lines.append(table(("TIME", "STATE", "MESSAGE"), [(_when(h.time), h.state, h.message) for h in job.history]))
    emit(args, job, "\n".join(lines))
    return 0


def run_jobs(args: argparse.Namespace) -> int:
    with make_client(args, load_config(args)) as client:
        jobs = client.list_jobs(state=args.state, cluster=args.cluster, name=args.name, limit=args.limit,
                                batch=args.batch)
        as_user = bool(client.user_token)
    rows = [(j.id, j.name, j.cluster or "-", j.state, j.local_id or "-", _exit(j), _when(j.updated)) for j in jobs]
    headers = ("ID", "NAME", "CLUSTER", "STATE", "LOCAL ID", "EXIT", "UPDATED")
    if as_user:  # a user's list (an admin's holds everyone's): whose each job is
        headers = (*headers[:3], "USER", *headers[3:])
        rows = [(*row[:3], job.user or "-", *row[3:]) for row, job in zip(rows, jobs, strict=True)]
    text = table(headers, rows) if jobs else "No jobs."
    emit(args, jobs, text)
    return 0


def run_cancel(args: argparse.Namespace) -> int:
    if (args.jobid is None) == (args.batch is None):
        args.parser.error("give a job id or --batch ID (one of them)")
    if args.batch is not None:
        with make_client(args, load_config(args)) as client:
            done = client.cancel_batch(args.batch, args.reason)
        emit(args, done, f"Batch {done.batch_id}: {done.cancelled} jobs cancelled, {done.cancel_requested} "
             "more will be cancelled by their clusters on their next contact.")
        return 0
    with make_client(args, load_config(args)) as client:
        job = client.cancel_job(args.jobid, args.reason)
    if job.state == "cancelled":
        text = f"Job {job.id} is cancelled."
    else:
        text = f"Job {job.id} is {job.state} on {job.cluster}: its cluster will cancel it on its next contact."
    emit(args, job, text)
    return 0


def run_urgency(args: argparse.Namespace) -> int:
    wanted = 1 if args.batch is not None else 2
    if len(args.targets) != wanted:
        args.parser.error("give JOBID URGENCY, or --batch ID URGENCY")
    urgency = args.targets[-1]
    if args.batch is not None:
        with make_client(args, load_config(args)) as client:
            done = client.set_batch_urgency(args.batch, urgency)
        left = f", {done.skipped} left as they were (no longer waiting)" if done.skipped else ""
        emit(args, done, f"Batch {done.batch_id}: urgency {urgency} set on {done.changed} jobs{left}.")
        return 0
    try:
        jobid = positive_int(args.targets[0])
    except argparse.ArgumentTypeError as exc:
        args.parser.error(f"JOBID: {exc}")
    with make_client(args, load_config(args)) as client:
        job = client.set_urgency(jobid, urgency)
    if job.state == JobState.HELD.value:
        text = f"Job {job.id} is held: it waits until its urgency is set again (rainbow urgency {job.id} default)."
    else:
        text = f"Job {job.id} is {job.state} with priority {job.priority}."
    emit(args, job, text)
    return 0


class _LiveView:
    """The latest state of each watched job, redrawn in place on a terminal."""

    def __init__(self) -> None:
        self.jobs: dict[int, JobEvent] = {}

    def update(self, event: JobEvent) -> None:
        self.jobs[event.jobid] = event
        rows = [(e.jobid, e.name, e.cluster, e.state, _when(e.time), e.message)
                for e in sorted(self.jobs.values(), key=lambda e: e.jobid)]
        sys.stdout.write("\x1b[H\x1b[2J" + table(("ID", "NAME", "CLUSTER", "STATE", "SINCE", "MESSAGE"), rows) + "\n")
        sys.stdout.flush()


def run_watch(args: argparse.Namespace) -> int:
    live = _LiveView() if sys.stdout.isatty() and not args.json else None
    seen = 0
    with make_client(args, load_config(args)) as client:
        for event in client.watch_jobs(args.job, cluster=args.cluster, since=args.since):
            if args.json:
                print(json.dumps(plain(event)), flush=True)
            elif live is not None:
                live.update(event)
            else:
                detail = f" ({event.message})" if event.message else ""
                where = f" on {event.cluster}" if event.cluster else ""
                print(f"{_when(event.time)}  job {event.jobid} ({event.name}){where}: {event.state}{detail}",
                      flush=True)
            seen += 1
            if args.count and seen >= args.count:
                break
    return 0
