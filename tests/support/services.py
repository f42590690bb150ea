"""The Redis and PostgreSQL servers the distributed tests use, with a fresh namespace each.

The tests require both services: when one cannot be reached they fail with a message that
names the command to start it, never skip. Tests of the MongoDB event store use a SecantusDB
server that the `mongodb_server` fixture starts (see `support.mongo`) instead of PostgreSQL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
import redis

from footfall.backends import redis_keys as keys
from support.mongo import SecantusServer, fresh_mongodb_database

STORE_DEPLOYMENTS = ["embedded", "distributed", "mongodb"]
"""The deployments by event store: SQLite, PostgreSQL and MongoDB (see tests/conftest.py)."""

REDIS_URL = os.environ.get("FOOTFALL_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
POSTGRES_ADMIN_URL = os.environ.get(
    "FOOTFALL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@dataclass(frozen=True)
class DistributedUrls:
    redis_url: str
    database_url: str

    def args(self) -> list[str]:
        return ["--redis-url", self.redis_url, "--database-url", self.database_url]


def require_redis() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as error:
        raise RuntimeError(
            f"Redis at {REDIS_URL} is unreachable ({error}); start it with scripts/services"
        ) from error
    return client


def require_postgres() -> psycopg.Connection:
    try:
        return psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True)
    except psycopg.OperationalError as error:
        raise RuntimeError(
            f"PostgreSQL at {POSTGRES_ADMIN_URL} is unreachable ({error}); "
            "start it with scripts/services"
        ) from error


def delete_prefixed_keys(client: redis.Redis) -> None:
    """Delete this test session's keys, leaving keys of other sessions in the same database."""
    for key in client.scan_iter(match=f"{keys.PREFIX}:*", count=1000):
        client.delete(key)


@contextmanager
def fresh_distributed_backends(
    mongodb_server: SecantusServer | None = None,
) -> Iterator[DistributedUrls]:
    """Empty this session's Redis keys and create an empty event store database for one test:
    on `mongodb_server` when it is given, else on PostgreSQL.

    Each pytest session uses its own key prefix (see tests/conftest.py), so two sessions on
    one Redis database do not delete each other's keys.
    """
    client = require_redis()
    delete_prefixed_keys(client)
    database = (
        fresh_mongodb_database(mongodb_server)
        if mongodb_server is not None
        else fresh_postgres_database()
    )
    try:
        with database as database_url:
            yield DistributedUrls(REDIS_URL, database_url)
    finally:
        delete_prefixed_keys(client)
        client.close()


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """Create an empty PostgreSQL database, yield its URL, and drop it afterwards."""
    name = f"footfall_test_{uuid.uuid4().hex[:12]}"
    with require_postgres() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with require_postgres() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
