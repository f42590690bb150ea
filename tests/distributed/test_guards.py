"""Start-up checks, the backlog bound, stream trimming and metrics of the distributed deployment."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from faults.harness import RedisServer
from support.server import ServerProcess, free_port, wait_for
from support.services import DistributedUrls, fresh_distributed_backends

from footfall.backends import redis_keys as keys
from footfall.backends.redis_client import connect
from footfall.log.base import STATS_GROUP, STORE_GROUP
from footfall.log.redis import RedisEventLog
from footfall.model import Visit

VISIT = {"timezone": "Europe/Berlin", "url": "https://example.com/"}


@pytest.fixture
def urls() -> Iterator[DistributedUrls]:
    with fresh_distributed_backends() as fresh:
        yield fresh


def run_footfall(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "footfall", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_evicting_redis_refused(tmp_path: Path, urls: DistributedUrls, command: str) -> None:
    server = RedisServer(tmp_path / "redis", append_only=False).start()
    try:
        redis.Redis.from_url(server.url).config_set("maxmemory-policy", "allkeys-lru")
        extra = ["--port", str(free_port())] if command == "serve" else []

        result = run_footfall(
            command, "--redis-url", server.url, "--database-url", urls.database_url, *extra
        )
    finally:
        server.stop()

    assert result.returncode == 2
    assert "maxmemory-policy is 'allkeys-lru'" in result.stderr
    assert "noeviction" in result.stderr


@pytest.mark.parametrize(("append_only", "warned"), [(False, True), (True, False)])
def test_persistence_warning(
    tmp_path: Path, urls: DistributedUrls, append_only: bool, warned: bool
) -> None:
    server = RedisServer(tmp_path / "redis", append_only=append_only).start()
    api = ServerProcess(
        tmp_path / "footfall.db", ["--redis-url", server.url, "--database-url", urls.database_url]
    )
    try:
        api.start()
        log = api.log_text()
    finally:
        api.stop()
        server.stop()

    assert ("Redis has no persistence" in log) is warned
    assert "footfall serve backends: Redis" in log


def test_backlog_bound_answers_503(tmp_path: Path, urls: DistributedUrls) -> None:
    """Without workers the backlog grows; past --max-backlog the API rejects with 503."""
    api = ServerProcess(tmp_path / "footfall.db", [*urls.args(), "--max-backlog", "5"]).start()
    accepted = 0
    try:
        with api.client(timeout=10) as http:

            def rejected() -> httpx.Response | None:
                nonlocal accepted
                response = http.post("/api/events", json=VISIT)
                if response.status_code == 202:
                    accepted += 1
                    return None
                return response

            response = wait_for(rejected, timeout_s=20, interval_s=0.05)
    finally:
        api.stop()

    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert "backlog" in api.log_text()
    stream_length = redis.Redis.from_url(urls.redis_url).xlen(keys.STREAM)
    assert stream_length == accepted
    assert accepted > 5


def make_visit(number: int) -> Visit:
    return Visit(f"trim-{number}", "default", 1_800_000_000_000 + number, "192.0.2.1", "UTC")


def test_trim_keeps_unacknowledged_entries(urls: DistributedUrls) -> None:
    async def scenario() -> tuple[int, int, int]:
        client = connect(urls.redis_url)
        log = RedisEventLog(client)
        await log.create_groups()
        log.start()
        try:
            for number in range(10):
                await log.append(make_visit(number))
            stats_entries = await log.read_batch(STATS_GROUP, "a", 10, 100)
            await log.ack(STATS_GROUP, stats_entries)
            store_entries = await log.read_batch(STORE_GROUP, "b", 4, 100)
            await log.ack(STORE_GROUP, store_entries)
            pending_store = await log.read_batch(STORE_GROUP, "b", 3, 100)

            await log.trim()
            after_partial = int(await client.xlen(keys.STREAM))

            await log.ack(STORE_GROUP, pending_store)
            rest = await log.read_batch(STORE_GROUP, "b", 10, 100)
            await log.ack(STORE_GROUP, rest)
            await log.trim()
            after_full = int(await client.xlen(keys.STREAM))
            return after_partial, after_full, len(rest)
        finally:
            await log.close()
            await client.aclose()

    after_partial, after_full, rest = asyncio.run(scenario())

    # 4 entries are acknowledged by both groups; 3 are pending at the store group and 3 were
    # never delivered to it, so 6 must stay.
    assert after_partial == 6
    assert rest == 3
    assert after_full == 0
