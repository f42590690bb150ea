"""The distributed deployment's event store, PostgreSQL or MongoDB by the scheme of
`--database-url`: opened, its schema or indexes brought up to date, and described."""

from __future__ import annotations

from dataclasses import dataclass

from footfall.backends import mongo_db, postgres_db
from footfall.config import is_mongodb_url
from footfall.store.base import EventStore
from footfall.store.mongo import MongoEventStore
from footfall.store.postgres import PostgresEventStore


@dataclass(frozen=True)
class OpenedStore:
    store: EventStore
    description: str
    """The server, its version and the schema or write concern, for the start-up log."""


async def open_event_store(database_url: str, role: str) -> OpenedStore:
    """Connect, create or upgrade the schema (PostgreSQL) or the indexes (MongoDB), and log
    the server's facts.

    Raises BackendUnavailable when the server cannot be reached.
    """
    if is_mongodb_url(database_url):
        client = await mongo_db.open_client(database_url)
        try:
            await mongo_db.migrate(client)
            facts = await mongo_db.server_facts(client)
        except BaseException:
            await client.close()
            raise
        mongo_db.log_server_facts(facts, role)
        return OpenedStore(MongoEventStore(client), facts.describe())

    pool = await postgres_db.open_pool(database_url)
    try:
        schema = await postgres_db.migrate(pool)
        version = await postgres_db.server_version(pool)
    except BaseException:
        await pool.close()
        raise
    return OpenedStore(PostgresEventStore(pool), f"PostgreSQL {version} schema version {schema}")


async def migrate_event_store(database_url: str) -> str:
    """Create or upgrade the schema or the indexes and return what is in place, for a log line."""
    if is_mongodb_url(database_url):
        client = await mongo_db.open_client(database_url)
        try:
            indexes = await mongo_db.migrate(client)
            database = mongo_db.events_database(client).name
        finally:
            await client.close()
        return f"MongoDB database {database} has the indexes {', '.join(indexes)} on events"

    pool = await postgres_db.open_pool(database_url)
    try:
        version = await postgres_db.migrate(pool)
    finally:
        await pool.close()
    return f"PostgreSQL schema is at version {version}"
