"""The Redis and PostgreSQL servers the distributed tests use, with a fresh namespace each.

The tests require both services: when one cannot be reached they fail with a message that
names the command to start it, never skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
import redis

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


@contextmanager
def fresh_distributed_backends() -> Iterator[DistributedUrls]:
    """Flush the test Redis database and create an empty PostgreSQL database for one test."""
    client = require_redis()
    client.flushdb()
    name = f"footfall_test_{uuid.uuid4().hex[:12]}"
    with require_postgres() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield DistributedUrls(REDIS_URL, f"{base}/{name}")
    finally:
        client.flushdb()
        client.close()
        with require_postgres() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
