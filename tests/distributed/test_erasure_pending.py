"""Erasure while visits of the visitor still wait in the Redis stream.

A visit appended before the erasure but consumed after it must not bring the visitor back,
whether its entry was not yet delivered (the worker was stopped) or pending at a worker that
died. A visit appended after the erasure counts as a new visitor's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis
from faults.harness import group_facts, wait_until_drained
from support.server import ServerProcess, WorkerProcess, wait_for
from support.services import DistributedUrls, fresh_distributed_backends
from support.stack import api_stats, assert_stats_equal_recount, run_footfall, stored_visits

from footfall.backends import redis_keys as keys
from footfall.log.base import STATS_GROUP, STORE_GROUP
from footfall.model import Visit

SITES = ("shop",)
TARGET_IP = "192.0.2.1"
OTHER_IP = "198.51.100.9"
DRAIN_TIMEOUT_S = 60.0


@pytest.fixture
def urls() -> Iterator[DistributedUrls]:
    with fresh_distributed_backends() as fresh:
        yield fresh


def _post(client: httpx.Client, ip: str, url: str) -> None:
    body = {"timezone": "Asia/Seoul", "site": "shop", "url": url}
    response = client.post("/api/events", json=body, headers={"X-Forwarded-For": ip})
    assert response.status_code == 202, response.text


def _post_both(client: httpx.Client, label: str, count: int) -> None:
    for number in range(count):
        _post(client, TARGET_IP, f"/{label}/target/{number}")
        _post(client, OTHER_IP, f"/{label}/other/{number}")


def _target_urls(server: ServerProcess) -> list[str]:
    return sorted(str(visit.url) for visit in stored_visits(server) if visit.ip == TARGET_IP)


def _target_visits_in_stats(client: httpx.Client) -> int:
    stats = api_stats(client, "shop")
    top = {visitor["ip"]: visitor["visits"] for visitor in stats["top_visitors"]}
    latest = [visit for visit in stats["latest_visits"] if visit["ip"] == TARGET_IP]
    assert len(latest) == top.get(TARGET_IP, 0)
    return int(top.get(TARGET_IP, 0))


def test_erasure_skips_undelivered_entries(tmp_path: Path, urls: DistributedUrls) -> None:
    server_args = [*urls.args(), "--trusted-proxy", "127.0.0.0/8"]
    server = ServerProcess(tmp_path / "api.db", server_args)
    worker = WorkerProcess(urls.args(), tmp_path / "worker.log", "worker-1")
    server.workers.append(worker)
    try:
        worker.start()
        server.start()
        with server.client(timeout=60) as client:
            _post_both(client, "before", 5)
            wait_until_drained(urls.redis_url, DRAIN_TIMEOUT_S)
            assert worker.stop() == 0

            _post_both(client, "queued", 5)
            erased = run_footfall(server, "erase", "--ip", TARGET_IP)
            _post_both(client, "after", 2)
            worker.start()
            wait_until_drained(urls.redis_url, DRAIN_TIMEOUT_S)

            assert erased.returncode == 0, erased.stderr
            assert "erased: 5 events deleted" in erased.stdout
            assert _target_urls(server) == ["/after/target/0", "/after/target/1"]
            assert _target_visits_in_stats(client) == 2
            assert api_stats(client, "shop")["total_visits"] == 2 + 12
            assert_stats_equal_recount(server, client, SITES)
            # The worker trims the stream every 10 s, and drops the marks it has passed.
            wait_for(lambda: _erasure_marks(urls.redis_url) == 0, timeout_s=40, interval_s=0.5)
    finally:
        server.stop()
        worker.stop()


def _erasure_marks(redis_url: str) -> int:
    client: Any = redis.Redis.from_url(redis_url)
    try:
        return int(client.hlen(keys.ERASED))
    finally:
        client.close()


def test_erasure_skips_entries_pending_at_dead_worker(
    tmp_path: Path, urls: DistributedUrls
) -> None:
    server_args = [*urls.args(), "--trusted-proxy", "127.0.0.0/8"]
    server = ServerProcess(tmp_path / "api.db", server_args)
    store_worker = WorkerProcess(urls.args(), tmp_path / "store.log", "store-1", [STORE_GROUP])
    crashing = WorkerProcess(
        urls.args(),
        tmp_path / "stats-crash.log",
        "stats-1",
        [STATS_GROUP],
        env={"FOOTFALL_CRASH_AT": "stats.before_apply=1"},
    )
    stats_worker = WorkerProcess(
        urls.args(),
        tmp_path / "stats.log",
        "stats-2",
        [STATS_GROUP],
        env={"FOOTFALL_CLAIM_IDLE_MS": "200"},
    )
    server.workers += [store_worker, crashing, stats_worker]
    client_redis: Any = redis.Redis.from_url(urls.redis_url)
    try:
        store_worker.start()
        server.start()
        with server.client(timeout=60) as client:
            _post_both(client, "queued", 5)
            crashing.start()
            wait_for(lambda: not crashing.running(), timeout_s=30)
            stats_pending = group_facts(client_redis)[STATS_GROUP]["pending"]
            wait_for(lambda: len(stored_visits(server)) == 10, timeout_s=30)

            erased = run_footfall(server, "erase", "--ip", TARGET_IP)
            _post(client, TARGET_IP, "/after/target/0")
            stats_worker.start()
            wait_until_drained(urls.redis_url, DRAIN_TIMEOUT_S)

            assert stats_pending > 0, "the crashing worker must leave entries pending"
            assert erased.returncode == 0, erased.stderr
            assert "erased: 5 events deleted" in erased.stdout
            assert _target_urls(server) == ["/after/target/0"]
            assert _target_visits_in_stats(client) == 1
            assert_stats_equal_recount(server, client, SITES)
            assert client_redis.hlen(keys.ERASED) >= 1
    finally:
        client_redis.close()
        server.stop()
        for worker in (store_worker, crashing, stats_worker):
            worker.stop()


def test_erasure_deletes_dead_letters(tmp_path: Path, urls: DistributedUrls) -> None:
    client_redis: Any = redis.Redis.from_url(urls.redis_url)
    target = orjson.dumps(Visit("dead-1", "shop", 1, TARGET_IP, "UTC").to_record())
    other = orjson.dumps(Visit("dead-2", "shop", 2, OTHER_IP, "UTC").to_record())
    try:
        for payload in (target, other, b"{not json " + TARGET_IP.encode()):
            client_redis.xadd(
                keys.DEAD_LETTER_STREAM, {"entry_id": "1-0", "group": STATS_GROUP, "v": payload}
            )
        server = ServerProcess(tmp_path / "api.db", urls.args())

        erased = run_footfall(server, "erase", "--ip", TARGET_IP)
        left = [fields[b"v"] for _, fields in client_redis.xrange(keys.DEAD_LETTER_STREAM)]
    finally:
        client_redis.close()

    assert erased.returncode == 0, erased.stderr
    assert left == [other]
