"""Redis outages in the distributed deployment: 503 while it is down, nothing acknowledged lost.

A private redis-server appends every write to its append-only file and fsyncs it before
replying. During ingest the test stops it twice, once with SIGTERM and once with SIGKILL,
and restarts it on the same port and folder. While it is down every visit must get a 503
with Retry-After. Afterwards every visit acknowledged with 202 is stored once, the stats
equal a recount of the stored events, and no entry is left pending.

A stalled Redis (paused with SIGSTOP until reads time out) must not cost the event log a
pooled connection per failed append, or the log stops taking visits after Redis is back.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
import redis.asyncio as redis
from support.server import ServerProcess, WorkerProcess
from support.services import DistributedUrls

from faults.harness import (
    SITES,
    RedisServer,
    VisitSender,
    check_ground_truth,
    stop_processes,
    stored_visits,
    wait_until_drained,
)
from footfall.backends import redis_keys as keys
from footfall.errors import BackendUnavailable
from footfall.log.base import STATS_GROUP, STORE_GROUP
from footfall.log.redis import RedisEventLog, StreamPolicy
from footfall.model import Visit

SENDER_THREADS = 4
VISITS_PER_PHASE = 1500
"""Visits acknowledged with 202 before the first outage and after each restart."""
PROBES_PER_OUTAGE = 5
CLAIM_IDLE_MS = 1000
DRAIN_TIMEOUT_S = 90.0
STALL_POOL_SIZE = 2
"""Connections of the event log's pool in the stall test: small, so that a leak shows fast."""
STALL_READ_TIMEOUT_S = 0.5


@pytest.mark.slow
def test_redis_restart_keeps_acknowledged_visits(
    tmp_path: Path, postgres_database_url: str
) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    print(f"random seed {seed}")
    redis_server = RedisServer(tmp_path / "redis", append_only=True).start()
    try:
        urls = DistributedUrls(redis_server.url, postgres_database_url)
        sender, probe_ids, worker_statuses = run_with_restarts(tmp_path, urls, redis_server, seed)

        print(sender.summary())
        assert sender.unexpected_responses() == [], (
            "the API returned a status other than 202 or 503"
        )
        assert worker_statuses == [0, 0], "a worker stopped uncleanly"
        truth = check_ground_truth(
            urls.redis_url, urls.database_url, sender.accepted_ids(), sender.sent_ids()
        )
        print(truth.summary())
    finally:
        redis_server.stop()

    stored_ids = {visit.id for visit in stored_visits(urls.database_url)}
    assert not stored_ids & set(probe_ids), (
        "a visit rejected with 503 while Redis was down is stored"
    )


def run_with_restarts(
    tmp_path: Path, urls: DistributedUrls, redis_server: RedisServer, seed: int
) -> tuple[VisitSender, list[str], list[int]]:
    """Ingest through two Redis outages, probing the API during each, and drain the groups.

    Returns the sender, the event ids of the probes, and the workers' exit statuses.
    """
    api = ServerProcess(tmp_path / "api.db", [*urls.args(), "--trusted-proxy", "127.0.0.0/8"])
    env = {"FOOTFALL_CLAIM_IDLE_MS": str(CLAIM_IDLE_MS)}
    workers = [
        WorkerProcess(urls.args(), tmp_path / f"{group}.log", f"{group}-1", [group], env)
        for group in (STATS_GROUP, STORE_GROUP)
    ]
    sender = VisitSender([api.base_url], SENDER_THREADS, f"redis{seed:x}", seed)
    probe_ids: list[str] = []
    try:
        api.start()
        for worker in workers:
            worker.start()
        sender.start()
        sender.wait_for_more_accepted(VISITS_PER_PHASE, timeout_s=60)

        with api.client(timeout=60) as client:
            for stop_signal in (signal.SIGTERM, signal.SIGKILL):
                redis_server.stop(stop_signal)

                for number in range(PROBES_PER_OUTAGE):
                    event_id = f"probe-{stop_signal.name}-{number}"
                    probe_ids.append(event_id)
                    body = {"timezone": "UTC", "site": SITES[0], "event_id": event_id}
                    response = client.post("/api/events", json=body)
                    assert response.status_code == 503, (stop_signal.name, response.text)
                    assert response.headers.get("retry-after") == "1"
                stats = client.get("/api/stats", params={"site": SITES[0]})
                assert stats.status_code == 503, (stop_signal.name, stats.text)
                sender.wait_for_more_unavailable(1, timeout_s=30)

                redis_server.start()
                sender.wait_for_more_accepted(VISITS_PER_PHASE, timeout_s=60)

        sender.stop()
        wait_until_drained(urls.redis_url, DRAIN_TIMEOUT_S)
        for worker in workers:
            assert worker.running(), f"worker {worker.name} exited:\n{worker.log_text()[-3000:]}"
    finally:
        stuck_senders = sender.stop()
        *worker_statuses, _ = stop_processes([*workers, api])
    assert stuck_senders == [], "client requests still open 30 s after the senders stopped"
    return sender, probe_ids, worker_statuses


@pytest.mark.slow
def test_appends_recover_after_redis_stalls(tmp_path: Path) -> None:
    redis_server = RedisServer(tmp_path / "redis", append_only=False).start()

    def visit(number: int) -> Visit:
        return Visit(f"stall-{number}", SITES[0], 1_700_000_000_000 + number, "192.0.2.1", "UTC")

    async def scenario() -> None:
        # Like `backends.redis_client.connect`, with a smaller pool and a shorter read timeout.
        pool = redis.BlockingConnectionPool.from_url(
            redis_server.url,
            max_connections=STALL_POOL_SIZE,
            timeout=2,
            socket_timeout=STALL_READ_TIMEOUT_S,
        )
        client = redis.Redis(connection_pool=pool)
        log = RedisEventLog(client, StreamPolicy(appenders=1, backlog_check_interval_s=3600))
        await log.create_groups()
        log.start()
        try:
            appended = 0
            for stall in range(STALL_POOL_SIZE + 1):
                await log.append(visit(appended), deduplicate=True)
                appended += 1

                redis_server.pause()
                try:
                    with pytest.raises(BackendUnavailable):
                        await log.append(visit(1000 + stall), deduplicate=True)
                finally:
                    redis_server.resume()

            await log.append(visit(appended), deduplicate=True)
            appended += 1
            assert await client.xlen(keys.STREAM) == appended
        finally:
            await log.close()
            await client.aclose()

    try:
        asyncio.run(scenario())
    finally:
        redis_server.resume()
        redis_server.stop()
