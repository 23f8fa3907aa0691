"""``rainbow receive``: take (and accept) the jobs waiting for this cluster."""

from __future__ import annotations

import argparse

from rainbow.commands.common import add_config_path, emit, load_config, make_client, table, usage_error


def add_parsers(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    receive = commands.add_parser(
        "receive", parents=[common], help="receive and accept the jobs assigned to this cluster",
        description="Receive the jobs assigned to the config file's cluster and accept them.",
    )
    receive.add_argument("-j", "--max-jobs", type=int, default=0, metavar="N",
                         help="receive at most N jobs (default: all)")
    receive.add_argument("--cluster-name", help="cluster name (default: the config's cluster.name)")
    receive.add_argument("--request-secret", metavar="SECRET",
                         help="the cluster's secret (default: the config's cluster.secret)")
    add_config_path(receive)
    receive.set_defaults(func=run, parser=receive)


def run(args: argparse.Namespace) -> int:
    if args.max_jobs < 0:
        usage_error(args, "--max-jobs must be 0 (all) or more")
    config = load_config(args)
    if config is None and not (args.cluster_name and args.request_secret):
        usage_error(args, "--config-path is required (or both --cluster-name and --request-secret)")
    with make_client(args, config) as client:
        jobs = client.receive_jobs(args.max_jobs, cluster=args.cluster_name, secret=args.request_secret)
    if not jobs:
        text = "No jobs to receive."
    else:
        cluster = jobs[0].cluster
        rows = [(job.id, job.name, job.command) for job in jobs]
        count = f"{len(jobs)} job" + ("s" if len(jobs) != 1 else "")
        text = f"Received and accepted {count} for cluster {cluster}:\n"
        text += table(("ID", "NAME", "COMMAND"), rows)
    emit(args, jobs, text)
    return 0
