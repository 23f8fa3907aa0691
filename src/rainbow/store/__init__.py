"""Persistence behind one interface: SQLite (embedded default) or PostgreSQL."""

from __future__ import annotations

from rainbow.store.base import ClusterRecord, HeldJob, JobEvent, JobRecord, NewJob, Store


def open_store(target: str, **options) -> Store:
    """Open the store named by ``target``: a SQLite file path (optionally ``sqlite://path``)."""
    from rainbow.store.sqlite import SQLiteStore

    return SQLiteStore(target.removeprefix("sqlite://"), **options)


__all__ = ["ClusterRecord", "HeldJob", "JobEvent", "JobRecord", "NewJob", "Store", "open_store"]
