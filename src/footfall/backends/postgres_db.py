"""PostgreSQL connections and the schema migrations of the distributed event store.

`footfall db migrate` applies the migrations, and `serve` and `worker` apply them at
start-up too. Each migration runs once, under an advisory lock, so processes starting
together do not race.

The events table is not partitioned yet: a partitioned table's unique constraints must
include the partition key, so `ON CONFLICT (id)` could no longer reject a duplicate id
that lands in another time partition. Partitioning needs a separate id index first.
"""

from __future__ import annotations

import logging

import psycopg
from psycopg_pool import AsyncConnectionPool

from footfall.errors import BackendUnavailable

logger = logging.getLogger(__name__)

MIGRATION_LOCK_ID = 0x666F6F74  # "foot": the advisory lock held while migrating.

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE events (
        id text PRIMARY KEY,
        log_entry_id text NOT NULL,
        site text NOT NULL,
        received_at_ms bigint NOT NULL,
        ip text NOT NULL,
        timezone text,
        email text,
        latitude double precision,
        longitude double precision,
        url text,
        referrer text,
        title text
    );
    CREATE INDEX events_by_site_time ON events (site, received_at_ms DESC, id DESC);
    """,
    # Retention deletes by time, and erasure by every stored form of an IP or e-mail address.
    """
    CREATE INDEX events_by_time ON events (received_at_ms);
    CREATE INDEX events_by_ip ON events (ip);
    CREATE INDEX events_by_email ON events (email) WHERE email IS NOT NULL;
    """,
)
"""Schema versions in order; version N is MIGRATIONS[N-1]. Never edit one that shipped."""


async def open_pool(url: str) -> AsyncConnectionPool:
    """Open a connection pool, failing fast with BackendUnavailable when the server is down."""
    try:
        # One direct connection first: the pool would only report a timeout, hiding the cause
        # (a database that does not exist, a refused connection, a bad password).
        probe = await psycopg.AsyncConnection.connect(url, connect_timeout=10)
        await probe.close()
    except psycopg.Error as error:
        raise BackendUnavailable(
            f"cannot connect to PostgreSQL: {error}; check --database-url, and create the "
            "database first (createdb) if it does not exist"
        ) from error
    pool = AsyncConnectionPool(url, min_size=1, max_size=8, open=False, timeout=10)
    try:
        await pool.open(wait=True, timeout=10)
    except (psycopg.Error, TimeoutError) as error:
        await pool.close()
        raise BackendUnavailable(f"cannot connect to PostgreSQL: {error}") from error
    return pool


async def migrate(pool: AsyncConnectionPool) -> int:
    """Apply the migrations not yet applied and return the schema version."""
    async with pool.connection() as connection, connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_ID,))
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS footfall_schema (version integer NOT NULL)"
        )
        row = await (
            await connection.execute("SELECT max(version) FROM footfall_schema")
        ).fetchone()
        current = int(row[0]) if row and row[0] is not None else 0
        for version in range(current + 1, len(MIGRATIONS) + 1):
            await connection.execute(MIGRATIONS[version - 1])
            await connection.execute(
                "INSERT INTO footfall_schema (version) VALUES (%s)", (version,)
            )
            logger.info("applied PostgreSQL schema migration %d", version)
    return len(MIGRATIONS)


async def server_version(pool: AsyncConnectionPool) -> str:
    async with pool.connection() as connection:
        row = await (await connection.execute("SHOW server_version")).fetchone()
    return str(row[0]) if row else "unknown"
