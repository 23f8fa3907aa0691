"""The client subcommands of ``rainbow``: one module per command group, thin over RainbowClient."""

from __future__ import annotations

import argparse

from rainbow.commands import (
    access,
    batch,
    config,
    delete,
    fairshare,
    health,
    jobs,
    logs,
    receive,
    register,
    submit,
    update,
    users,
    workflow,
)
from rainbow.commands.common import connection_parser

__all__ = ["add_client_commands"]


def add_client_commands(commands: argparse._SubParsersAction) -> None:
    """Add config, register, update, submit, bulksubmit, satisfy, receive, delete, status, jobs, cancel, watch,
    logs, health, user, cluster, share, quota, usage and workflow."""
    common = connection_parser()
    for module in (config, register, update, submit, batch, receive, delete, jobs, logs, health, users, access,
                   fairshare, workflow):
        module.add_parsers(commands, common)
