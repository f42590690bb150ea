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

from footfall.backends import redis_keys as keys

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
def fresh_distributed_backends() -> Iterator[DistributedUrls]:
    """Empty this session's Redis keys and create an empty PostgreSQL database for one test.

    Each pytest session uses its own key prefix (see tests/conftest.py), so two sessions on
    one Redis database do not delete each other's keys.
    """
    client = require_redis()
    delete_prefixed_keys(client)
    name = f"footfall_test_{uuid.uuid4().hex[:12]}"
    with require_postgres() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield DistributedUrls(REDIS_URL, f"{base}/{name}")
    finally:
        delete_prefixed_keys(client)
        client.close()
        with require_postgres() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
