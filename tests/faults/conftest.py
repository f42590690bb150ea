"""Fixtures of the fault tests: fresh backends for each test.

The Redis and PostgreSQL servers of `support.services` must be running; a test fails, not
skips, when one is down. Tests that stop a server start a private one instead. The MongoDB
tests run on the session's SecantusDB server (the `mongodb_server` fixture).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.mongo import SecantusServer
from support.services import (
    REDIS_URL,
    DistributedUrls,
    delete_prefixed_keys,
    fresh_distributed_backends,
    fresh_postgres_database,
    require_redis,
)


@pytest.fixture
def distributed_urls() -> Iterator[DistributedUrls]:
    """The test Redis database without this session's keys, and an empty PostgreSQL database."""
    with fresh_distributed_backends() as urls:
        yield urls


@pytest.fixture(params=["postgresql", "mongodb"])
def store_urls(request: pytest.FixtureRequest) -> Iterator[DistributedUrls]:
    """As `distributed_urls`, once with an empty PostgreSQL database and once with an empty
    MongoDB database on the session's SecantusDB server."""
    server: SecantusServer | None = None
    if request.param == "mongodb":
        server = request.getfixturevalue("mongodb_server")
    with fresh_distributed_backends(server) as urls:
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
    with fresh_postgres_database() as url:
        yield url
