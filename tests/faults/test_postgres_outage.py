"""PostgreSQL outage in the distributed deployment: ingest and stats go on, the store catches up.

The API only needs Redis to take a visit, so it keeps returning 202 while PostgreSQL is
down. The stats worker keeps counting. The store worker keeps its failed batch, logs each
retry with a doubling delay, and stores everything once PostgreSQL is back.

The test stops a private PostgreSQL cluster, because stopping the machine's server would
break every other test that runs at the same time.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
import pytest
import redis
from support.server import ServerProcess, WorkerProcess, wait_for
from support.services import DistributedUrls

from faults.harness import (
    SITES,
    PostgresServer,
    VisitSender,
    check_ground_truth,
    stop_processes,
    wait_until_drained,
)
from footfall.backends import redis_keys as keys
from footfall.consumers.loop import BatchPolicy
from footfall.log.base import STATS_GROUP, STORE_GROUP

SENDER_THREADS = 4
VISITS_PER_PHASE = 2000
"""Visits acknowledged with 202 before the outage, during it, and after it."""
RETRIES_DURING_OUTAGE = 3
DRAIN_TIMEOUT_S = 90.0
STORE_RETRY = re.compile(
    r"consumer \S+ of group store failed, retrying (\d+) held entries in ([\d.]+) s"
)


def store_retries(worker: WorkerProcess) -> list[tuple[int, float]]:
    """Return the held entry count and delay of each retry line in the store worker's log."""
    return [(int(match[1]), float(match[2])) for match in STORE_RETRY.finditer(worker.log_text())]


def counted_visits(redis_url: str) -> int:
    """Return the visits the stats store has counted over all sites."""
    client = redis.Redis.from_url(redis_url)
    try:
        totals = [client.hget(keys.SiteKeys.of(site).totals, "visits") for site in SITES]
    finally:
        client.close()
    return sum(int(total or 0) for total in totals)


def wait_for_store_retries(worker: WorkerProcess, count: int, timeout_s: float) -> None:
    try:
        wait_for(lambda: len(store_retries(worker)) >= count, timeout_s=timeout_s)
    except AssertionError:
        raise AssertionError(
            f"the store worker logged {len(store_retries(worker))} of {count} retries within "
            f"{timeout_s} s of the outage:\n{worker.log_text()[-3000:]}"
        ) from None


def wait_for_counted_above(redis_url: str, count: int, timeout_s: float) -> None:
    try:
        wait_for(lambda: counted_visits(redis_url) > count, timeout_s=timeout_s)
    except AssertionError:
        raise AssertionError(
            f"the stats store counted no visit beyond {count} within {timeout_s} s "
            "while PostgreSQL was down"
        ) from None


@pytest.mark.slow
def test_ingest_survives_postgres_outage(tmp_path: Path, redis_url: str) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    print(f"random seed {seed}")
    postgres = PostgresServer()
    try:
        postgres.start()
        urls = DistributedUrls(redis_url, postgres.url())
        api = ServerProcess(tmp_path / "api.db", [*urls.args(), "--trusted-proxy", "127.0.0.0/8"])
        stats_worker = WorkerProcess(urls.args(), tmp_path / "stats.log", "stats-1", [STATS_GROUP])
        store_worker = WorkerProcess(urls.args(), tmp_path / "store.log", "store-1", [STORE_GROUP])
        sender = VisitSender([api.base_url], SENDER_THREADS, f"pg{seed:x}", seed)
        try:
            api.start()
            stats_worker.start()
            store_worker.start()
            sender.start()
            sender.wait_for_more_accepted(VISITS_PER_PHASE, timeout_s=60)

            postgres.stop()
            try:
                wait_for_store_retries(store_worker, RETRIES_DURING_OUTAGE, timeout_s=90)
                counted_before = counted_visits(urls.redis_url)
                sender.wait_for_more_accepted(VISITS_PER_PHASE, timeout_s=60)
                wait_for_counted_above(urls.redis_url, counted_before, timeout_s=30)
                history = httpx.get(
                    f"{api.base_url}/api/events",
                    params={"site": SITES[0]},
                    headers=api.auth_headers,
                    timeout=60,
                )
                assert history.status_code == 503, history.text
                assert history.headers.get("retry-after") == "1"
                assert store_worker.running(), "the store worker exited during the outage"
            finally:
                postgres.start()

            sender.wait_for_more_accepted(VISITS_PER_PHASE, timeout_s=60)
            sender.stop()
            wait_until_drained(urls.redis_url, DRAIN_TIMEOUT_S)
            assert store_worker.running(), "the store worker exited after the outage"
            assert stats_worker.running(), "the stats worker exited"
        finally:
            stuck_senders = sender.stop()
            stats_status, store_status, _ = stop_processes([stats_worker, store_worker, api])

        print(sender.summary())
        assert stuck_senders == [], "client requests still open 30 s after the senders stopped"
        assert sender.unexpected_responses() == [], (
            "the API returned a status other than 202 or 503"
        )
        assert sender.unavailable_count() == 0, "ingest returned 503 while only PostgreSQL was down"
        assert stats_status == 0, "the stats worker stopped uncleanly"
        assert store_status == 0, "the store worker stopped uncleanly"

        retries = store_retries(store_worker)
        print(f"store retries (held entries, delay in s): {retries}")
        policy = BatchPolicy()
        expected_delays = [
            min(policy.retry_delay_s * 2**number, policy.max_retry_delay_s)
            for number in range(len(retries))
        ]
        assert [delay for _, delay in retries] == expected_delays
        assert all(held > 0 for held, _ in retries), "a retry held no entries"

        truth = check_ground_truth(
            urls.redis_url, urls.database_url, sender.accepted_ids(), sender.sent_ids()
        )
        print(truth.summary())
    finally:
        postgres.remove()
