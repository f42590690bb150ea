"""Fixtures for tests that go through a real server.

`server`, `proxied_server` and `client` run once per deployment: `embedded` (one process on
a fresh SQLite file) and `distributed` (serve plus a worker on Redis and PostgreSQL, with a
fresh Redis database and PostgreSQL database).
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
from support.server import ServerProcess, StartServer, WorkerProcess
from support.services import fresh_distributed_backends

DEPLOYMENTS = ["embedded", "distributed"]


@pytest.fixture(params=DEPLOYMENTS)
def deployment(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def start_stack(
    tmp_path: Path, deployment: str, extra_args: list[str], *, provision_token: bool = True
) -> Iterator[ServerProcess]:
    if deployment == "embedded":
        process = ServerProcess(
            tmp_path / "footfall.db", extra_args, provision_token=provision_token
        ).start()
        yield process
        process.stop()
        return

    with fresh_distributed_backends() as urls:
        process = ServerProcess(
            tmp_path / "footfall.db", [*urls.args(), *extra_args], provision_token=provision_token
        )
        worker = WorkerProcess(urls.args(), tmp_path / "worker.log", "worker-1").start()
        process.workers.append(worker)
        try:
            process.start()
            yield process
        finally:
            process.stop()
            worker.stop()


@pytest.fixture
def server(tmp_path: Path, deployment: str) -> Iterator[ServerProcess]:
    """A footfall server with no trusted proxy, on each deployment."""
    yield from start_stack(tmp_path, deployment, [])


@pytest.fixture
def proxied_server(tmp_path: Path, deployment: str) -> Iterator[ServerProcess]:
    """A footfall server that trusts proxy headers from 127.0.0.0/8, on each deployment."""
    yield from start_stack(tmp_path, deployment, ["--trusted-proxy", "127.0.0.0/8"])


@pytest.fixture
def start_server(tmp_path: Path, deployment: str) -> Iterator[StartServer]:
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
            stack_context = contextlib.contextmanager(start_stack)
            server: ServerProcess = stack.enter_context(
                stack_context(
                    directory, deployment, list(extra_args), provision_token=provision_token
                )
            )
            return server

        yield start


@pytest.fixture
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    """An httpx client for `server` that sends the server's admin token."""
    with server.client() as http:
        yield http
