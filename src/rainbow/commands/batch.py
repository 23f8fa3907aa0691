"""``rainbow submit --cc`` (an array of copies), ``rainbow bulksubmit`` (many jobs, one call), ``rainbow batch``."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from rainbow.client import BatchResult, BatchSummary, RainbowClient
from rainbow.commands.common import (
    DEFAULT_URGENCY,
    URGENCY_HELP,
    add_config_path,
    emit,
    load_config,
    make_client,
    positive_int,
    submit_urgency,
)
from rainbow.hostlists import encode_idset
from rainbow.jobspec import simple


def add_parsers(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    bulk = commands.add_parser(
        "bulksubmit", parents=[common], help="submit many jobs in one call (commands one per line, or jobspecs)",
        description="Submit every command read from --file or stdin (one per line; blank lines and lines "
        "starting with # are skipped), or every --jobspec file, as one batch: each job is placed as "
        "rainbow submit places it and all are stored together.",
    )
    what = bulk.add_mutually_exclusive_group()
    what.add_argument("--file", metavar="FILE", help="commands, one per line (default: stdin)")
    what.add_argument("--jobspec", metavar="FILE", nargs="+", help="jobspec files (YAML or JSON), one job each")
    bulk.add_argument("-n", "--nodes", type=positive_int, default=1, help="nodes per command (default 1)")
    bulk.add_argument("--tasks", type=positive_int, help="tasks per command (default: one per node)")
    bulk.add_argument("--select-algorithm", help="selection algorithm (default: the config's, else the server's)")
    bulk.add_argument("--priority", "--urgency", dest="urgency", type=submit_urgency, default=DEFAULT_URGENCY,
                      metavar="N", help=URGENCY_HELP)
    bulk.add_argument("--idempotency-key", metavar="KEY",
                      help="name of this batch: sending it again returns the jobs stored the first time")
    add_config_path(bulk, required=True)
    bulk.set_defaults(func=run_bulksubmit, parser=bulk)

    batch = commands.add_parser("batch", parents=[common], help="one line per batch: how many of its jobs "
                                "wait, run, completed, failed")
    batch.add_argument("batch_id", nargs="+", metavar="ID", help="batch ids (as submit --cc and bulksubmit print)")
    add_config_path(batch, required=True)
    batch.set_defaults(func=run_batch, parser=batch)


WAITING = ("depend", "assigned", "held", "leased", "accepted", "submitted")


def summary_line(summary: BatchSummary) -> str:
    """``<id>: <n> jobs: <w> waiting[ (<h> held)], <r> running, <c> completed, <f> failed, <x> cancelled[,
    <u> unknown]``."""
    held = f" ({summary.count('held')} held)" if summary.count("held") else ""
    counts = [(summary.count(*WAITING), f"waiting{held}"), (summary.count("running"), "running"),
              (summary.count("completed"), "completed"), (summary.count("failed"), "failed"),
              (summary.count("cancelled"), "cancelled")]
    if summary.count("unknown"):
        counts.append((summary.count("unknown"), "unknown"))
    return f"{summary.batch_id}: {summary.total} jobs: " + ", ".join(f"{n} {word}" for n, word in counts)


def run_batch(args: argparse.Namespace) -> int:
    with make_client(args, load_config(args)) as client:
        summaries = [client.batch_summary(batch_id) for batch_id in args.batch_id]
    emit(args, summaries, "\n".join(summary_line(s) for s in summaries))
    return 0


def summary(result: BatchResult, held: bool = False) -> str:
    """One line for the batch (saying its jobs are held when ``held``), then one per job that was not placed."""
    placed = result.placed
    clusters: dict[str, int] = {}
    for job in placed:
        clusters[job.cluster] = clusters.get(job.cluster, 0) + 1
    where = ", ".join(f"{name} ({count})" for name, count in sorted(clusters.items()))
    ids = encode_idset(job.jobid for job in placed)
    lines = [f"Submitted {len(placed)} of {len(result.jobs)} jobs as batch {result.batch_id}"
             + (f": ids {ids} on {where}" if placed else "") + (", held" if held and placed else "")]
    lines += [f"  job {index}: not placed: {job.error}" for index, job in result.failed]
    return "\n".join(lines)


def progress_line(args: argparse.Namespace) -> Callable[[int, int], None] | None:
    """A progress line on stderr, rewritten after each chunk, when stderr is a terminal (never with --json)."""
    if args.json or not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        sys.stderr.write(f"\rsubmitted {done:,} of {total:,} jobs ({100 * done // total}%)")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def run_array(args: argparse.Namespace, client: RainbowClient, options: dict[str, str] | None) -> int:
    """``rainbow submit --cc``: copies of the command or jobspec, ``{cc}`` replaced by each id."""
    if args.satisfy_only:
        args.parser.error("--satisfy-only submits nothing; it does not take --cc")
    name = args.job_name
    if args.jobspec:
        spec: object = Path(args.jobspec)
    else:
        argv = shlex.split(args.command)
        spec = simple(argv, nodes=args.nodes, tasks=args.nodes if args.tasks is None else args.tasks,
                      name=args.job_name)
        name = name or argv[0]
    result = client.submit_array(
        spec, args.cc, name=name, select_algo=args.select_algorithm, select_options=options,
        queue=args.queue, requires=args.requires, time_limit=args.time_limit, priority=args.urgency.priority,
        hold=args.urgency.hold, progress=progress_line(args),
    )
    emit(args, result, summary(result, args.urgency.hold))
    return 0


def _commands(args: argparse.Namespace) -> list[str]:
    text = Path(args.file).read_text() if args.file else sys.stdin.read()
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def run_bulksubmit(args: argparse.Namespace) -> int:
    config = load_config(args)
    if args.jobspec:
        jobs: list = [Path(path) for path in args.jobspec]
    else:
        commands = _commands(args)
        if not commands:
            args.parser.error("no commands given (one per line on stdin or in --file)")
        tasks = args.nodes if args.tasks is None else args.tasks
        jobs = [(shlex.split(c)[0], simple(shlex.split(c), nodes=args.nodes, tasks=tasks)) for c in commands]
    with make_client(args, config) as client:
        result = client.submit_jobs(jobs, select_algo=args.select_algorithm,
                                    idempotency_key=args.idempotency_key, priority=args.urgency.priority,
                                    hold=args.urgency.hold, progress=progress_line(args))
    emit(args, result, summary(result, args.urgency.hold))
    return 0
