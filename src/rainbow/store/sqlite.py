"""SQLite store: one file in WAL mode, the embedded default.

Every statement is parameterized; every change is one transaction. A single
connection serialised by a lock is enough for SQLite (it has one writer anyway).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rainbow.lifecycle import JobState
from rainbow.store.base import ClusterRecord, JobRecord, Store
from rainbow.store.schema import SQLITE_MIGRATIONS

_JOB_COLUMNS = (
    "id, cluster, name, jobspec, command, state, created, updated, lease_owner, lease_expires, "
    "accepted, local_id, exit_code, message"
)


def _job(row: sqlite3.Row | tuple) -> JobRecord:
    return JobRecord(
        id=row[0],
        cluster=row[1],
        name=row[2],
        jobspec=row[3],
        command=row[4],
        state=JobState(row[5]),
        created=row[6],
        updated=row[7],
        lease_owner=row[8],
        lease_expires=row[9],
        accepted=row[10],
        local_id=row[11],
        exit_code=row[12],
        message=row[13],
    )


def _cluster(row: tuple) -> ClusterRecord:
    return ClusterRecord(
        name=row[0],
        secret_hash=row[1],
        token_hash=row[2],
        nodes=row[3],
        state=json.loads(row[4]),
        created=row[5],
        updated=row[6],
        version=row[7],
    )


class SQLiteStore(Store):
    def __init__(self, path: str | Path, synchronous: str = "FULL") -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"unknown synchronous mode {synchronous!r}")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._migrate()

    # -- plumbing ---------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _migrate(self) -> None:
        with self._write() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for number, statements in enumerate(SQLITE_MIGRATIONS[version:], start=version + 1):
                for statement in statements:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={int(number)}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- metadata ---------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- clusters ---------------------------------------------------------
    def add_cluster(self, name: str, nodes: str, secret_hash: str, token_hash: str, now: float) -> bool:
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO clusters (name, secret_hash, token_hash, nodes, state, created, updated, version) "
                "VALUES (?, ?, ?, ?, '{}', ?, ?, 1) ON CONFLICT(name) DO NOTHING",
                (name, secret_hash, token_hash, nodes, now, now),
            )
            return cursor.rowcount == 1

    def get_cluster(self, name: str) -> ClusterRecord | None:
        rows = self._read(
            "SELECT name, secret_hash, token_hash, nodes, state, created, updated, version "
            "FROM clusters WHERE name = ?",
            (name,),
        )
        return _cluster(rows[0]) if rows else None

    def list_clusters(self) -> list[ClusterRecord]:
        rows = self._read(
            "SELECT name, secret_hash, token_hash, nodes, state, created, updated, version "
            "FROM clusters ORDER BY name"
        )
        return [_cluster(row) for row in rows]

    def delete_cluster(self, name: str) -> bool:
        with self._write() as db:
            db.execute("DELETE FROM jobs WHERE cluster = ?", (name,))
            db.execute("DELETE FROM subsystems WHERE cluster = ?", (name,))
            return db.execute("DELETE FROM clusters WHERE name = ?", (name,)).rowcount == 1

    def replace_nodes(self, name: str, nodes: str, now: float) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE clusters SET nodes = ?, version = version + 1, updated = ? WHERE name = ?",
                (nodes, now, name),
            )

    def put_subsystem(self, cluster: str, name: str, nodes: str, now: float) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO subsystems (cluster, name, nodes) VALUES (?, ?, ?) "
                "ON CONFLICT(cluster, name) DO UPDATE SET nodes = excluded.nodes",
                (cluster, name, nodes),
            )
            db.execute(
                "UPDATE clusters SET version = version + 1, updated = ? WHERE name = ?", (now, cluster)
            )

    def delete_subsystem(self, cluster: str, name: str, now: float) -> bool:
        with self._write() as db:
            gone = db.execute(
                "DELETE FROM subsystems WHERE cluster = ? AND name = ?", (cluster, name)
            ).rowcount
            if gone:
                db.execute(
                    "UPDATE clusters SET version = version + 1, updated = ? WHERE name = ?", (now, cluster)
                )
            return gone == 1

    def list_subsystems(self, cluster: str) -> dict[str, str]:
        rows = self._read("SELECT name, nodes FROM subsystems WHERE cluster = ? ORDER BY name", (cluster,))
        return dict(rows)

    def merge_state(self, cluster: str, updates: Mapping[str, Any], now: float) -> dict[str, Any]:
        with self._write() as db:
            row = db.execute("SELECT state FROM clusters WHERE name = ?", (cluster,)).fetchone()
            if row is None:
                raise KeyError(cluster)
            state = json.loads(row[0])
            state.update(updates)
            db.execute(
                "UPDATE clusters SET state = ?, updated = ? WHERE name = ?", (json.dumps(state), now, cluster)
            )
            return state

    # -- jobs -------------------------------------------------------------
    def add_job(self, cluster: str, name: str, jobspec: str, command: str, now: float) -> JobRecord:
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO jobs (cluster, name, jobspec, command, state, created, updated) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (cluster, name, jobspec, command, JobState.ASSIGNED.value, now, now),
            )
            job_id = cursor.lastrowid
        return JobRecord(job_id, cluster, name, jobspec, command, JobState.ASSIGNED, now, now)

    def lease_jobs(
        self, cluster: str, owner: str, max_jobs: int, lease_seconds: float, now: float
    ) -> list[JobRecord]:
        limit = max_jobs if max_jobs >= 1 else -1
        with self._write() as db:
            rows = db.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE cluster = ? AND "  # noqa: S608 - constant column list
                "(state = 'assigned' OR (state = 'leased' AND lease_expires <= ?)) ORDER BY id LIMIT ?",
                (cluster, now, limit),
            ).fetchall()
            if not rows:
                return []
            expires = now + lease_seconds
            db.executemany(
                "UPDATE jobs SET state = 'leased', lease_owner = ?, lease_expires = ?, updated = ? WHERE id = ?",
                [(owner, expires, now, row[0]) for row in rows],
            )
        leased = []
        for row in rows:
            job = _job(row)
            leased.append(
                JobRecord(
                    **{**job.__dict__, "state": JobState.LEASED, "lease_owner": owner,
                       "lease_expires": expires, "updated": now}
                )
            )
        return leased

    def accept_jobs(self, cluster: str, ids: Sequence[int], now: float) -> list[int]:
        if not ids:
            return []
        accepted = []
        with self._write() as db:
            for job_id in dict.fromkeys(ids):
                cursor = db.execute(
                    "UPDATE jobs SET state = 'accepted', accepted = ?, updated = ?, lease_expires = NULL "
                    "WHERE id = ? AND cluster = ? AND state IN ('assigned', 'leased')",
                    (now, now, job_id, cluster),
                )
                if cursor.rowcount:
                    accepted.append(job_id)
        return accepted

    def get_job(self, job_id: int) -> JobRecord | None:
        rows = self._read(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,))  # noqa: S608
        return _job(rows[0]) if rows else None

    def count_jobs(self, cluster: str | None = None, state: JobState | None = None) -> int:
        rows = self._read(
            "SELECT COUNT(*) FROM jobs WHERE (? IS NULL OR cluster = ?) AND (? IS NULL OR state = ?)",
            (cluster, cluster, state and state.value, state and state.value),
        )
        return rows[0][0]
