"""The embedded deployment's one SQLite file: schema, connection settings and error translation.

The `events` table is both the event log (read by `seq`, its offset) and the event store.
The stats tables are the stats store. The `auth_*` tables contain the API tokens (hashed),
dashboard sessions and login codes. The stats consumer updates the stats tables in the same
transaction that moves its offset in `consumer_offsets`, so each event counts once.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from footfall.errors import BackendUnavailable
from footfall.model import VISIT_COLUMNS

BUSY_TIMEOUT_MS = 30_000
"""How long a connection waits for another writer (a rebuild, another process) to finish."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    site TEXT NOT NULL,
    received_at_ms INTEGER NOT NULL,
    ip TEXT NOT NULL,
    timezone TEXT,
    email TEXT,
    latitude REAL,
    longitude REAL,
    url TEXT,
    referrer TEXT,
    title TEXT
);
CREATE INDEX IF NOT EXISTS events_by_site_time
    ON events (site, received_at_ms DESC, id DESC);
-- Retention deletes by time, and erasure by every stored form of an IP or e-mail address.
CREATE INDEX IF NOT EXISTS events_by_time ON events (received_at_ms);
CREATE INDEX IF NOT EXISTS events_by_ip ON events (ip);
CREATE INDEX IF NOT EXISTS events_by_email ON events (email);

CREATE TABLE IF NOT EXISTS consumer_offsets (
    grp TEXT PRIMARY KEY,
    offset_seq INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS visitor_stats (
    site TEXT NOT NULL,
    ip TEXT NOT NULL,
    visits INTEGER NOT NULL,
    last_visit_at_ms INTEGER NOT NULL,
    PRIMARY KEY (site, ip)
);
CREATE INDEX IF NOT EXISTS visitor_stats_by_visits
    ON visitor_stats (site, visits DESC, ip ASC);

CREATE TABLE IF NOT EXISTS latest_visits (
    site TEXT NOT NULL,
    seq INTEGER NOT NULL,
    id TEXT NOT NULL,
    received_at_ms INTEGER NOT NULL,
    ip TEXT NOT NULL,
    timezone TEXT,
    email TEXT,
    latitude REAL,
    longitude REAL,
    url TEXT,
    referrer TEXT,
    title TEXT,
    PRIMARY KEY (site, seq)
);
CREATE INDEX IF NOT EXISTS latest_visits_by_time
    ON latest_visits (site, received_at_ms DESC, id DESC);

-- The daily keys of --ip-mode hashed and --email-mode hash (see footfall.privacy).
CREATE TABLE IF NOT EXISTS hash_keys (
    period INTEGER PRIMARY KEY,
    key BLOB NOT NULL
);

CREATE TABLE IF NOT EXISTS site_totals (
    site TEXT PRIMARY KEY,
    visits INTEGER NOT NULL,
    visitors INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS auth_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    revoked_at_ms INTEGER
);

CREATE TABLE IF NOT EXISTS auth_sessions (
    session_hash TEXT PRIMARY KEY,
    token_id TEXT NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS auth_sessions_by_token ON auth_sessions (token_id);

CREATE TABLE IF NOT EXISTS auth_login_codes (
    code_hash TEXT PRIMARY KEY,
    token_id TEXT NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
"""

INSERT_VISIT = (
    f"INSERT INTO events ({VISIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (id) DO NOTHING"
)
"""Insert one visit unless its id is already stored, which makes a client retry harmless."""


def connect(path: Path) -> sqlite3.Connection:
    """Open the database in WAL mode with durable commits, creating the schema if needed.

    `synchronous=FULL` makes each commit reach the disk before it returns, which is what a
    202 promises. Group commit keeps that to one fsync per batch, not one per visit.
    """
    try:
        connection = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        connection.executescript(SCHEMA)
    except sqlite3.Error as error:
        raise BackendUnavailable(f"cannot open SQLite database {path}: {error}") from error
    return connection


class SqliteDatabase:
    """One SQLite file shared by the embedded log, event store and stats store.

    Each thread gets its own connection, because a sqlite3 connection must not be used by
    two threads at once.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        connect(path).close()

    def connection(self) -> sqlite3.Connection:
        """Return this thread's connection, opening it on first use."""
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = connect(self.path)
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def close(self) -> None:
        """Close every connection this object opened."""
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()
