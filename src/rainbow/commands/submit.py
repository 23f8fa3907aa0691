"""``rainbow submit`` (a command or a jobspec) and ``rainbow satisfy`` (which clusters match, and why not)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rainbow.client import SatisfyResult
from rainbow.commands import batch
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

MATCH_HELP = "match algorithm (default: the config's, else the server's)"


def add_parsers(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    submit = commands.add_parser(
        "submit", parents=[common], help="submit a job (a command or a jobspec)",
        description="Ask which clusters can run the job, then submit it with the tokens the config file "
        "holds for them (clusters); the server selects one.",
    )
    what = submit.add_mutually_exclusive_group(required=True)
    what.add_argument("-c", "--command", help='command to run, quoted as one argument (e.g. "ior -b 4m")')
    what.add_argument("--jobspec", metavar="FILE", help="jobspec to submit (YAML or JSON)")
    submit.add_argument("-n", "--nodes", type=positive_int, default=1, help="nodes for --command (default 1)")
    submit.add_argument("--tasks", type=positive_int, help="tasks for --command (default: one per node)")
    submit.add_argument("-q", "--queue", help="the Flux queue to run in (default: each cluster's default queue)")
    submit.add_argument("--requires", metavar="EXPR",
                        help="node constraint, as flux submit --requires takes it (e.g. 'pbatch and -gpu')")
    submit.add_argument("-t", "--time-limit", metavar="DURATION",
                        help="time limit in Flux duration syntax (90s, 30m, 2h, 1.5d)")
    submit.add_argument("--priority", "--urgency", dest="urgency", type=submit_urgency, default=DEFAULT_URGENCY,
                        metavar="N", help=URGENCY_HELP)
    submit.add_argument("--job-name", help="job name (default: the jobspec's name or the command)")
    submit.add_argument("--dependency", action="append", default=[], metavar="SCHEME:JOBID",
                        help="wait for another job, as flux submit --dependency (after, afterany, afterok, "
                        "afternotok, afterexcept); repeatable. The job is placed when they are satisfied")
    submit.add_argument("--select-algorithm", help="selection algorithm (default: the config's, else the "
                        "server's)")
    submit.add_argument("--select-option", action="append", default=[], metavar="KEY=VALUE",
                        help="option for the selection algorithm (repeatable)")
    submit.add_argument("--match-algorithm", help=MATCH_HELP)
    submit.add_argument("--cc", metavar="IDS",
                        help="submit one copy per id of an idset (e.g. 1-1000), each {cc} in the command or "
                        "jobspec replaced by the copy's id, as flux submit --cc; all in one call")
    submit.add_argument("--satisfy-only", action="store_true",
                        help="only report the clusters that match and pass selection; submit nothing")
    add_config_path(submit, required=True)
    submit.set_defaults(func=run_submit, parser=submit)

    satisfy = commands.add_parser(
        "satisfy", parents=[common], help="show which clusters can run a jobspec, and why the others cannot",
    )
    satisfy.add_argument("--jobspec", required=True, metavar="FILE", help="jobspec (YAML or JSON)")
    satisfy.add_argument("--match-algorithm", help=MATCH_HELP)
    add_config_path(satisfy)
    satisfy.set_defaults(func=run_satisfy, parser=satisfy)


def _options(args: argparse.Namespace) -> dict[str, str] | None:
    if not args.select_option:
        return None
    options = {}
    for item in args.select_option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            args.parser.error(f"--select-option expects KEY=VALUE, not {item!r}")
        options[key] = value
    return options


def run_submit(args: argparse.Namespace) -> int:
    config = load_config(args)
    options = _options(args)
    with make_client(args, config) as client:
        if args.cc:
            if args.dependency:
                args.parser.error("--dependency: an array's copies cannot wait; submit them as a workflow")
            return batch.run_array(args, client, options)
        if args.jobspec:
            result = client.submit_jobspec(
                Path(args.jobspec), name=args.job_name, match_algo=args.match_algorithm,
                select_algo=args.select_algorithm, select_options=options, satisfy_only=args.satisfy_only,
                queue=args.queue, requires=args.requires, time_limit=args.time_limit,
                priority=args.urgency.priority, hold=args.urgency.hold, dependencies=args.dependency,
            )
        else:
            result = client.submit_job(
                args.command, nodes=args.nodes, tasks=args.tasks, match_algo=args.match_algorithm,
                select_algo=args.select_algorithm, satisfy_only=args.satisfy_only, name=args.job_name,
                select_options=options, queue=args.queue, requires=args.requires, time_limit=args.time_limit,
                priority=args.urgency.priority, hold=args.urgency.hold, dependencies=args.dependency,
            )
        as_user = bool(client.user_token)
    matched = f"{result.total_matches} of {result.total_clusters} clusters matched"
    if as_user:  # the server matched among the clusters the user may use
        matched = "placed among the clusters you may use"
    if args.satisfy_only:
        selected = ", ".join(result.clusters) or "none"
        text = f"Satisfy only, nothing submitted ({matched}); selected: {selected}"
    elif not result.cluster:
        text = (f"Submitted job {result.jobid} ({result.name}): waits for {', '.join(args.dependency)} "
                f"and is placed when they are satisfied ({matched} now)")
    else:
        held = ", held" if args.urgency.hold else ""
        text = f"Submitted job {result.jobid} ({result.name}) to cluster {result.cluster} ({matched}){held}"
    emit(args, result, text)
    return 0


def satisfy_text(result: SatisfyResult) -> str:
    lines = [f"{result.total_matches} of {result.total_clusters} clusters can run this job"
             + (f": {', '.join(result.clusters)}" if result.clusters else "")]
    for name, reason in sorted(result.reasons.items()):
        lines.append(f"  {name}: {reason}")
    return "\n".join(lines)


def run_satisfy(args: argparse.Namespace) -> int:
    config = load_config(args)
    with make_client(args, config) as client:
        result = client.satisfy(Path(args.jobspec), matcher=args.match_algorithm)
    emit(args, result, satisfy_text(result))
    return 0
