"""Fixtures of the fault tests: fresh backends for each test.

The Redis and PostgreSQL servers of `support.services` must be running; a test fails, not
skips, when one is down. Tests that stop a server start a private one instead.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from support.services import (
    POSTGRES_ADMIN_URL,
    REDIS_URL,
    DistributedUrls,
    delete_prefixed_keys,
    fresh_distributed_backends,
    require_postgres,
    require_redis,
)


@pytest.fixture
def distributed_urls() -> Iterator[DistributedUrls]:
    """The test Redis database without this session's keys, and an empty PostgreSQL database."""
    with fresh_distributed_backends() as urls:
        yield urls


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The test Redis database, with this session's keys deleted before and after the test."""
    client = require_redis()
    delete_prefixed_keys(client)
    try:
        yield REDIS_URL
    finally:
        delete_prefixed_keys(client)
        client.close()


@pytest.fixture
def postgres_database_url() -> Iterator[str]:
    """An empty PostgreSQL database, dropped after the test."""
    name = f"footfall_test_{uuid.uuid4().hex[:12]}"
    with require_postgres() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with require_postgres() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
