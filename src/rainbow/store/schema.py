"""Schema migrations, applied in order; a store records how many it has run."""

from __future__ import annotations

SQLITE_MIGRATIONS: list[list[str]] = [
    [
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE clusters (
            name TEXT PRIMARY KEY,
            secret_hash TEXT NOT NULL,
            token_hash TEXT NOT NULL,
            nodes TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT '{}',
            created REAL NOT NULL,
            updated REAL NOT NULL,
            version INTEGER NOT NULL DEFAULT 1,
            last_seen REAL,
            reachable INTEGER NOT NULL DEFAULT 1
        )""",
        """CREATE TABLE subsystems (
            cluster TEXT NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,
            name TEXT NOT NULL,
            nodes TEXT NOT NULL,
            PRIMARY KEY (cluster, name)
        )""",
        """CREATE TABLE jobs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            cluster TEXT NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,
            name TEXT NOT NULL,
            jobspec TEXT NOT NULL,
            command TEXT NOT NULL,
            state TEXT NOT NULL,
            created REAL NOT NULL,
            updated REAL NOT NULL,
            lease_owner TEXT,
            lease_expires REAL,
            accepted REAL,
            local_id TEXT,
            exit_code INTEGER,
            message TEXT,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            candidates TEXT NOT NULL DEFAULT '[]'
        )""",
        "CREATE INDEX jobs_by_cluster_state ON jobs (cluster, state, id)",
        "CREATE INDEX jobs_by_state ON jobs (state, id)",
        """CREATE TABLE job_events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            job_id INTEGER NOT NULL,
            cluster TEXT NOT NULL,
            name TEXT NOT NULL,
            state TEXT NOT NULL,
            time REAL NOT NULL,
            message TEXT NOT NULL DEFAULT ''
        )""",
        "CREATE INDEX job_events_by_job ON job_events (job_id, seq)",
    ],
    [
        "ALTER TABLE jobs ADD COLUMN submit_key TEXT",
        "CREATE UNIQUE INDEX jobs_by_submit_key ON jobs (submit_key) WHERE submit_key IS NOT NULL",
    ],
    # where the job's output is, as its cluster's agent reported it (JSON)
    ["ALTER TABLE jobs ADD COLUMN output TEXT"],
    # The lease generation: each hand-out of a job counts one up (fencing tokens).
    ["ALTER TABLE jobs ADD COLUMN lease_token INTEGER NOT NULL DEFAULT 0"],
    # why the job was placed where it is (JSON, written at submit), and the dashboard's job table orders
    [
        "ALTER TABLE jobs ADD COLUMN placement TEXT",
        "CREATE INDEX jobs_by_cluster_id ON jobs (cluster, id)",
        "CREATE INDEX jobs_by_name ON jobs (name, id)",
    ],
    # Clusters whose schedulers refused the job before it ran (JSON list of {cluster, reason, time}).
    ["ALTER TABLE jobs ADD COLUMN rejections TEXT NOT NULL DEFAULT '[]'"],
    # The batch (SubmitJobs call) a job was submitted in.
    ["ALTER TABLE jobs ADD COLUMN batch_id TEXT", "CREATE INDEX jobs_by_batch ON jobs (batch_id, id)"],
    # Users, groups and who may use a cluster; each job's owner ("user" is quoted: PostgreSQL reserves the word).
    [
        """CREATE TABLE users (
            name TEXT PRIMARY KEY,
            token_hash TEXT UNIQUE,
            admin INTEGER NOT NULL DEFAULT 0,
            created REAL NOT NULL
        )""",
        "CREATE TABLE groups (name TEXT PRIMARY KEY)",
        """CREATE TABLE user_groups (
            "user" TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
            grp TEXT NOT NULL REFERENCES groups(name),
            position INTEGER NOT NULL,
            PRIMARY KEY ("user", grp)
        )""",
        """CREATE TABLE cluster_access (
            cluster TEXT NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            allow INTEGER NOT NULL,
            PRIMARY KEY (cluster, kind, name)
        )""",
        """ALTER TABLE jobs ADD COLUMN "user" TEXT NOT NULL DEFAULT ''""",
        "ALTER TABLE jobs ADD COLUMN grp TEXT NOT NULL DEFAULT ''",
        """CREATE INDEX jobs_by_user ON jobs ("user", id)""",
    ],
    # Fair share and quotas: groups are banks in a tree with shares (flux-accounting, Slurm accounts), users hold
    # shares within their banks; each job's node count, priority and run times (its usage); per-owner quotas.
    [
        "ALTER TABLE groups ADD COLUMN parent TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE groups ADD COLUMN shares INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE users ADD COLUMN shares INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE jobs ADD COLUMN nodes INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE jobs ADD COLUMN started REAL",
        "ALTER TABLE jobs ADD COLUMN ended REAL",
        # A lease takes each owner's best assigned jobs from here, not every waiting job of the cluster; fair
        # share reads the runs that ended lately and those still open. Partial: a job is in each only while
        # it is in that state (the submit, lease and accept paths touch them once at most).
        """CREATE INDEX jobs_assigned_by_owner ON jobs (cluster, state, "user", grp, priority DESC, id)
            WHERE state = 'assigned'""",
        "CREATE INDEX jobs_by_ended ON jobs (ended) WHERE ended IS NOT NULL",
        "CREATE INDEX jobs_open_runs ON jobs (started) WHERE ended IS NULL AND started IS NOT NULL",
        """CREATE TABLE quotas (
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            cluster TEXT NOT NULL DEFAULT '',
            max_waiting INTEGER,
            max_running INTEGER,
            max_nodes INTEGER,
            PRIMARY KEY (kind, name, cluster)
        )""",
    ],
    # Dependencies (RFC 26) and workflows: a dependent job waits in state 'depend' with what it needs here (each
    # dependency marked once satisfied; ``unsatisfied`` counts the others) and how to place it when released
    # (``release``, JSON); a workflow's jobs carry its id as their batch_id.
    [
        """CREATE TABLE job_dependencies (
            job_id INTEGER NOT NULL,
            parent_id INTEGER NOT NULL,
            scheme TEXT NOT NULL,
            satisfied INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (job_id, parent_id, scheme)
        )""",
        "CREATE INDEX job_dependencies_by_parent ON job_dependencies (parent_id, job_id)",
        "CREATE TABLE workflows (id TEXT PRIMARY KEY, name TEXT NOT NULL, created REAL NOT NULL)",
        "ALTER TABLE jobs ADD COLUMN step TEXT",
        "ALTER TABLE jobs ADD COLUMN release TEXT",
        "ALTER TABLE jobs ADD COLUMN unsatisfied INTEGER NOT NULL DEFAULT 0",
    ],
    # Per cluster: the SHA-256 of its JGF and its graph in compact form (rainbow.graph.compact) with the
    # digest of the JGF it was built from, so a restart loads it instead of parsing the JGF again. The
    # index covers every column but the JGF: listing clusters then never reads through the JGFs' pages.
    [
        """CREATE TABLE cluster_graphs (
            cluster TEXT PRIMARY KEY REFERENCES clusters(name) ON DELETE CASCADE,
            nodes_sha256 TEXT NOT NULL,
            built_from TEXT,
            data BLOB
        )""",
        "CREATE INDEX clusters_without_nodes ON clusters "
        "(name, secret_hash, token_hash, state, created, updated, version, last_seen, reachable)",
    ],
]

# PostgreSQL: the same tables, plus what several replicas sharing one database need.
# Job ids come from an int4 identity (the wire carries int32); event sequence numbers are
# handed out by the single-row ``event_counter`` (see PostgresStore for why); ``version``
# in ``schema_version`` counts the migrations applied, under an advisory lock.
POSTGRES_MIGRATIONS: list[list[str]] = [
    [
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE clusters (
            name TEXT PRIMARY KEY,
            secret_hash TEXT NOT NULL,
            token_hash TEXT NOT NULL,
            nodes TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT '{}',
            created DOUBLE PRECISION NOT NULL,
            updated DOUBLE PRECISION NOT NULL,
            version INTEGER NOT NULL DEFAULT 1,
            last_seen DOUBLE PRECISION,
            reachable BOOLEAN NOT NULL DEFAULT TRUE
        )""",
        """CREATE TABLE subsystems (
            cluster TEXT NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,
            name TEXT NOT NULL,
            nodes TEXT NOT NULL,
            PRIMARY KEY (cluster, name)
        )""",
        """CREATE TABLE jobs (
            id INTEGER GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            cluster TEXT NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,
            name TEXT NOT NULL,
            jobspec TEXT NOT NULL,
            command TEXT NOT NULL,
            state TEXT NOT NULL,
            created DOUBLE PRECISION NOT NULL,
            updated DOUBLE PRECISION NOT NULL,
            lease_owner TEXT,
            lease_expires DOUBLE PRECISION,
            accepted DOUBLE PRECISION,
            local_id TEXT,
            exit_code INTEGER,
            message TEXT,
            cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
            candidates TEXT NOT NULL DEFAULT '[]',
            submit_key TEXT
        )""",
        "CREATE INDEX jobs_by_cluster_state ON jobs (cluster, state, id)",
        "CREATE INDEX jobs_by_state ON jobs (state, id)",
        "CREATE UNIQUE INDEX jobs_by_submit_key ON jobs (submit_key) WHERE submit_key IS NOT NULL",
        """CREATE TABLE job_events (
            seq BIGINT PRIMARY KEY,
            job_id INTEGER NOT NULL,
            cluster TEXT NOT NULL,
            name TEXT NOT NULL,
            state TEXT NOT NULL,
            time DOUBLE PRECISION NOT NULL,
            message TEXT NOT NULL DEFAULT ''
        )""",
        "CREATE INDEX job_events_by_job ON job_events (job_id, seq)",
        "CREATE INDEX job_events_by_cluster ON job_events (cluster, seq)",
        """CREATE TABLE event_counter (
            only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
            seq BIGINT NOT NULL
        )""",
        "INSERT INTO event_counter (seq) VALUES (0)",
    ],
    # where the job's output is, as its cluster's agent reported it (JSON)
    ["ALTER TABLE jobs ADD COLUMN output TEXT"],
    ["ALTER TABLE jobs ADD COLUMN lease_token BIGINT NOT NULL DEFAULT 0"],
    # why the job was placed where it is (JSON, written at submit), and the dashboard's job table orders
    [
        "ALTER TABLE jobs ADD COLUMN placement TEXT",
        "CREATE INDEX jobs_by_cluster_id ON jobs (cluster, id)",
        "CREATE INDEX jobs_by_name ON jobs (name, id)",
    ],
    ["ALTER TABLE jobs ADD COLUMN rejections TEXT NOT NULL DEFAULT '[]'"],
    ["ALTER TABLE jobs ADD COLUMN batch_id TEXT", "CREATE INDEX jobs_by_batch ON jobs (batch_id, id)"],
    # Users, groups and who may use a cluster; each job's owner ("user" is quoted: PostgreSQL reserves the word).
    [
        """CREATE TABLE users (
            name TEXT PRIMARY KEY,
            token_hash TEXT UNIQUE,
            admin BOOLEAN NOT NULL DEFAULT FALSE,
            created DOUBLE PRECISION NOT NULL
        )""",
        "CREATE TABLE groups (name TEXT PRIMARY KEY)",
        """CREATE TABLE user_groups (
            "user" TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
            grp TEXT NOT NULL REFERENCES groups(name),
            position INTEGER NOT NULL,
            PRIMARY KEY ("user", grp)
        )""",
        """CREATE TABLE cluster_access (
            cluster TEXT NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            allow BOOLEAN NOT NULL,
            PRIMARY KEY (cluster, kind, name)
        )""",
        """ALTER TABLE jobs ADD COLUMN "user" TEXT NOT NULL DEFAULT ''""",
        "ALTER TABLE jobs ADD COLUMN grp TEXT NOT NULL DEFAULT ''",
        """CREATE INDEX jobs_by_user ON jobs ("user", id)""",
    ],
    # Fair share and quotas: groups are banks in a tree with shares (flux-accounting, Slurm accounts), users hold
    # shares within their banks; each job's node count, priority and run times (its usage); per-owner quotas.
    [
        "ALTER TABLE groups ADD COLUMN parent TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE groups ADD COLUMN shares INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE users ADD COLUMN shares INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE jobs ADD COLUMN nodes INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE jobs ADD COLUMN started DOUBLE PRECISION",
        "ALTER TABLE jobs ADD COLUMN ended DOUBLE PRECISION",
        # A lease takes each owner's best assigned jobs from here, not every waiting job of the cluster; fair
        # share reads the runs that ended lately and those still open. Partial: a job is in each only while
        # it is in that state (the submit, lease and accept paths touch them once at most).
        """CREATE INDEX jobs_assigned_by_owner ON jobs (cluster, state, "user", grp, priority DESC, id)
            WHERE state = 'assigned'""",
        "CREATE INDEX jobs_by_ended ON jobs (ended) WHERE ended IS NOT NULL",
        "CREATE INDEX jobs_open_runs ON jobs (started) WHERE ended IS NULL AND started IS NOT NULL",
        """CREATE TABLE quotas (
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            cluster TEXT NOT NULL DEFAULT '',
            max_waiting INTEGER,
            max_running INTEGER,
            max_nodes INTEGER,
            PRIMARY KEY (kind, name, cluster)
        )""",
    ],
    [
        """CREATE TABLE job_dependencies (
            job_id INTEGER NOT NULL,
            parent_id INTEGER NOT NULL,
            scheme TEXT NOT NULL,
            satisfied BOOLEAN NOT NULL DEFAULT FALSE,
            PRIMARY KEY (job_id, parent_id, scheme)
        )""",
        "CREATE INDEX job_dependencies_by_parent ON job_dependencies (parent_id, job_id)",
        "CREATE TABLE workflows (id TEXT PRIMARY KEY, name TEXT NOT NULL, created DOUBLE PRECISION NOT NULL)",
        "ALTER TABLE jobs ADD COLUMN step TEXT",
        "ALTER TABLE jobs ADD COLUMN release TEXT",
        "ALTER TABLE jobs ADD COLUMN unsatisfied INTEGER NOT NULL DEFAULT 0",
    ],
    # (PostgreSQL keeps large values out of line: listing clusters needs no index to skip the JGFs.)
    [
        """CREATE TABLE cluster_graphs (
            cluster TEXT PRIMARY KEY REFERENCES clusters(name) ON DELETE CASCADE,
            nodes_sha256 TEXT NOT NULL,
            built_from TEXT,
            data BYTEA
        )""",
    ],
]
