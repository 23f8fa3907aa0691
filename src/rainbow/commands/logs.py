"""``rainbow logs JOBID``: a job's output, where this machine can read it."""

from __future__ import annotations

import argparse
import sys

from rainbow.commands.common import add_config_path, emit, load_config, make_client, positive_int


def add_parsers(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    logs = commands.add_parser(
        "logs", parents=[common], help="print a job's output (stdout here, stderr to stderr)",
        description="Print what a job wrote: its standard output to stdout, its standard error to stderr. "
        "This works where the files the local executor wrote are visible (the machine that ran the job, "
        "or one sharing its file system); otherwise it says where the output is and how to read it there.")
    logs.add_argument("jobid", type=positive_int, help="the rainbow job id")
    add_config_path(logs, required=True)
    logs.set_defaults(func=run_logs, parser=logs)


def run_logs(args: argparse.Namespace) -> int:
    with make_client(args, load_config(args)) as client:
        logs = client.job_logs(args.jobid)
    if args.json:
        emit(args, logs, "")
        return 0
    sys.stdout.write(logs.stdout)
    sys.stdout.flush()
    sys.stderr.write(logs.stderr)
    sys.stderr.flush()
    return 0
