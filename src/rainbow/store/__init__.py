"""Persistence behind one interface: SQLite (embedded default) or PostgreSQL."""

from __future__ import annotations

import re

from rainbow.errors import FailedPrecondition
from rainbow.store.accounts import AccountUser, JobTotal
from rainbow.store.base import (
    PAGE_SORTS,
    AccessRule,
    ClusterRecord,
    DependsOn,
    HeldJob,
    JobEvent,
    JobPage,
    JobRecord,
    LeaseOrder,
    NewJob,
    ParentJob,
    Release,
    Store,
    StoredGraph,
    UserRecord,
    WorkflowRecord,
)

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres(target: str) -> bool:
    return target.startswith(POSTGRES_SCHEMES)


def redact(target: str) -> str:
    """A store target fit for logs and banners: a URL's password is replaced by ``***``."""
    return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", target)


def open_store(target: str, **options) -> Store:
    """Open the store named by ``target``.

    ``postgresql://...`` or ``postgres://...`` (a libpq URL) opens the PostgreSQL
    store (the ``postgres`` extra); anything else is a SQLite file path,
    optionally written ``sqlite://path``. ``options`` go to the backend.
    """
    if is_postgres(target):
        try:
            from rainbow.store.postgres import PostgresStore
        except ImportError as exc:
            if exc.name not in ("psycopg", "psycopg_pool"):
                raise
            raise FailedPrecondition(
                f"a PostgreSQL store needs the postgres extra ({exc.name} is not installed): "
                "pip install 'rainbow-scheduler[postgres]'", field="store",
            ) from None
        return PostgresStore(target, **options)
    from rainbow.store.sqlite import SQLiteStore

    return SQLiteStore(target.removeprefix("sqlite://"), **options)


__all__ = [
    "PAGE_SORTS",
    "AccessRule",
    "AccountUser",
    "ClusterRecord",
    "DependsOn",
    "HeldJob",
    "JobEvent",
    "JobPage",
    "JobRecord",
    "JobTotal",
    "LeaseOrder",
    "NewJob",
    "ParentJob",
    "Release",
    "Store",
    "StoredGraph",
    "UserRecord",
    "WorkflowRecord",
    "is_postgres",
    "open_store",
    "redact",
]
