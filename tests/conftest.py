"""Fixtures for tests that go through a real server.

`server`, `proxied_server` and `client` run once per deployment: `embedded` (one process on
a fresh SQLite file) and `distributed` (serve plus a worker on Redis and PostgreSQL, with a
fresh Redis database and PostgreSQL database). A module can add `mongodb`, the distributed
deployment with its events in MongoDB, by overriding `deployment` with the params
`support.services.STORE_DEPLOYMENTS`. `mongodb_server` is one SecantusDB server for the
whole session, started by the first test that needs it.
"""

from __future__ import annotations

import os
import uuid

# Set before footfall is imported: every Redis key of this session, in this process and in
# the servers and workers it starts, carries this prefix.
os.environ.setdefault("FOOTFALL_REDIS_PREFIX", f"footfall-test-{uuid.uuid4().hex[:8]}")
# Most tests send many visits from 127.0.0.1 with httpx's User-Agent, which the default
# rate limit and bot filter would drop. The guard tests turn both on for their own servers.
os.environ.setdefault("FOOTFALL_RATE_LIMIT", "0")
os.environ.setdefault("FOOTFALL_KEEP_BOTS", "1")

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest
from support.mongo import SecantusServer
from support.server import ServerProcess, StartServer, running_stack

DEPLOYMENTS = ["embedded", "distributed"]


@pytest.fixture(scope="session")
def mongodb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecantusServer]:
    """A SecantusDB server with its data in memory; each test takes a database of its own."""
    server = SecantusServer(tmp_path_factory.mktemp("secantus") / "secantusd.log").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=DEPLOYMENTS)
def deployment(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def event_store_server(request: pytest.FixtureRequest, deployment: str) -> SecantusServer | None:
    """The SecantusDB server of the `mongodb` deployment, None for the others."""
    if deployment != "mongodb":
        return None
    server: SecantusServer = request.getfixturevalue("mongodb_server")
    return server


@pytest.fixture
def server(
    tmp_path: Path, deployment: str, event_store_server: SecantusServer | None
) -> Iterator[ServerProcess]:
    """A footfall server with no trusted proxy, on each deployment."""
    with running_stack(tmp_path, deployment, mongodb=event_store_server) as process:
        yield process


@pytest.fixture
def proxied_server(
    tmp_path: Path, deployment: str, event_store_server: SecantusServer | None
) -> Iterator[ServerProcess]:
    """A footfall server that trusts proxy headers from 127.0.0.0/8, on each deployment."""
    proxies = ["--trusted-proxy", "127.0.0.0/8"]
    with running_stack(tmp_path, deployment, proxies, mongodb=event_store_server) as process:
        yield process


@pytest.fixture
def start_server(
    tmp_path: Path, deployment: str, event_store_server: SecantusServer | None
) -> Iterator[StartServer]:
    """Start servers with extra `serve` flags, on each deployment, stopped after the test.

    `start_server(["--public-dashboard"])` returns a started ServerProcess with its own
    backends; `provision_token=False` starts it with no token, as a first run. Start one
    server per test: distributed backends are emptied when the next one starts.
    """
    with contextlib.ExitStack() as stack:
        count = 0

        def start(extra_args: Sequence[str] = (), *, provision_token: bool = True) -> ServerProcess:
            nonlocal count
            count += 1
            directory = tmp_path / f"server-{count}"
            directory.mkdir()
            return stack.enter_context(
                running_stack(
                    directory,
                    deployment,
                    extra_args,
                    provision_token=provision_token,
                    mongodb=event_store_server,
                )
            )

        yield start


@pytest.fixture
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    """An httpx client for `server` that sends the server's admin token."""
    with server.client() as http:
        yield http
