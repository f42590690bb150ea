from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.server import ServerProcess


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A footfall server on a fresh SQLite file, with no trusted proxy."""
    process = ServerProcess(tmp_path / "footfall.db").start()
    yield process
    process.stop()


@pytest.fixture
def proxied_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A footfall server that trusts proxy headers from 127.0.0.0/8."""
    process = ServerProcess(tmp_path / "footfall.db", ["--trusted-proxy", "127.0.0.0/8"]).start()
    yield process
    process.stop()


@pytest.fixture
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        yield http
