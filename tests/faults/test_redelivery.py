"""Redelivery in the Redis event log: an entry delivered twice is stored and counted once.

Consumer A reads a batch and stalls before handling it. Consumer B claims the same entries
as stale and handles them. Then A handles its stale copy. This runs with PostgreSQL and with
MongoDB as the event store. Also covered: a client retry with the same event_id, and an
undecodable entry that ends in the dead-letter stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import redis.asyncio as redis
from support.services import DistributedUrls

from faults.harness import stored_visits
from footfall.backends import redis_keys as keys
from footfall.backends.redis_client import connect, text
from footfall.log.base import STATS_GROUP, STORE_GROUP
from footfall.log.redis import RedisEventLog, StreamPolicy
from footfall.model import LATEST_VISITS_CAPACITY, Visit
from footfall.stats.model import recount
from footfall.stats.redis import RedisStatsStore
from footfall.store.distributed import open_event_store
from footfall.store.mongo import MongoEventStore
from footfall.store.postgres import PostgresEventStore

SITES = ("shop", "blog")
BATCH_LIMIT = 100
START_MS = 1_700_000_000_000


@dataclass
class Pipeline:
    """The distributed backends as one worker process opens them."""

    client: redis.Redis
    log: RedisEventLog
    stats: RedisStatsStore
    store: PostgresEventStore | MongoEventStore


@asynccontextmanager
async def open_pipeline(
    urls: DistributedUrls, policy: StreamPolicy | None = None
) -> AsyncIterator[Pipeline]:
    client = connect(urls.redis_url)
    store = (await open_event_store(urls.database_url, "test")).store
    assert isinstance(store, PostgresEventStore | MongoEventStore)
    log = RedisEventLog(client, policy)
    await log.create_groups()
    log.start()
    try:
        yield Pipeline(client, log, RedisStatsStore(client), store)
    finally:
        await log.close()
        await store.close()
        await client.aclose()


def make_visit(number: int) -> Visit:
    return Visit(
        id=f"visit-{number}",
        site=SITES[number % len(SITES)],
        received_at_ms=START_MS + number * 1000,
        ip=f"192.0.2.{number % 3 + 1}",
        timezone="Europe/Berlin",
        url=f"https://example.com/page/{number}",
    )


async def pending_count(pipeline: Pipeline, group: str) -> int:
    summary = await pipeline.client.xpending(keys.STREAM, group)
    return int(summary["pending"])


@pytest.mark.slow
def test_redelivered_batch_counts_once(store_urls: DistributedUrls) -> None:
    visits = [make_visit(number) for number in range(12)]

    async def scenario() -> None:
        async with open_pipeline(store_urls) as pipeline:
            log = pipeline.log
            for visit in visits:
                await log.append(visit, deduplicate=True)

            # Consumer A reads every entry of both groups and stalls before handling them.
            stale_stats = await log.read_batch(STATS_GROUP, "consumer-a", BATCH_LIMIT, 0)
            stale_store = await log.read_batch(STORE_GROUP, "consumer-a", BATCH_LIMIT, 0)
            assert [entry.visit for entry in stale_stats] == visits
            assert [entry.visit for entry in stale_store] == visits

            # Consumer B claims the same entries as stale and handles them.
            claimed_stats = await log.claim_stale(STATS_GROUP, "consumer-b", 0, BATCH_LIMIT)
            claimed_store = await log.claim_stale(STORE_GROUP, "consumer-b", 0, BATCH_LIMIT)
            stale_entry_ids = [entry.entry_id for entry in stale_stats]
            assert [entry.entry_id for entry in claimed_stats] == stale_entry_ids
            assert [entry.entry_id for entry in claimed_store] == stale_entry_ids
            assert {entry.deliveries for entry in claimed_stats} == {2}
            await pipeline.stats.apply_batch(STATS_GROUP, claimed_stats)
            await pipeline.store.store_batch(claimed_store)
            await log.ack(STORE_GROUP, claimed_store)

            # Consumer A wakes up and handles its stale copy of the same entries.
            await pipeline.stats.apply_batch(STATS_GROUP, stale_stats)
            await pipeline.store.store_batch(stale_store)
            await log.ack(STORE_GROUP, stale_store)

            assert await pending_count(pipeline, STATS_GROUP) == 0
            assert await pending_count(pipeline, STORE_GROUP) == 0
            assert await pipeline.store.count() == len(visits)
            expected = recount(visits)
            for site in SITES:
                found = await pipeline.stats.site_stats(site, LATEST_VISITS_CAPACITY)
                assert found == expected[site], f"stats of site {site}"

    asyncio.run(scenario())
    by_id = sorted(stored_visits(store_urls.database_url), key=lambda visit: visit.id)
    assert by_id == sorted(visits, key=lambda visit: visit.id)


@pytest.mark.slow
def test_client_retry_appends_once(distributed_urls: DistributedUrls) -> None:
    visit = make_visit(1)

    async def scenario() -> None:
        async with open_pipeline(distributed_urls) as pipeline:
            await pipeline.log.append(visit, deduplicate=True)
            await pipeline.log.append(visit, deduplicate=True)
            assert await pipeline.client.xlen(keys.STREAM) == 1

            entries = await pipeline.log.read_batch(STATS_GROUP, "consumer-a", BATCH_LIMIT, 0)
            assert [entry.visit for entry in entries] == [visit]
            await pipeline.stats.apply_batch(STATS_GROUP, entries)
            found = await pipeline.stats.site_stats(visit.site, LATEST_VISITS_CAPACITY)
            assert found.total_visits == 1

    asyncio.run(scenario())


@pytest.mark.slow
def test_undecodable_entry_is_dead_lettered(distributed_urls: DistributedUrls) -> None:
    policy = StreamPolicy(max_deliveries=3)
    garbage = b"{not a visit"
    valid = [make_visit(1), make_visit(2)]

    async def scenario() -> None:
        async with open_pipeline(distributed_urls, policy) as pipeline:
            log = pipeline.log
            await log.append(valid[0])
            raw_entry_id = text(await pipeline.client.xadd(keys.STREAM, {"v": garbage}))
            await log.append(valid[1])

            for group in (STATS_GROUP, STORE_GROUP):
                # The read leaves the undecodable entry out and pending: delivery 1.
                entries = await log.read_batch(group, "consumer-a", BATCH_LIMIT, 0)
                assert [entry.visit for entry in entries] == valid, group
                if group == STATS_GROUP:
                    await pipeline.stats.apply_batch(group, entries)
                else:
                    await pipeline.store.store_batch(entries)
                    await log.ack(group, entries)
                assert await pending_count(pipeline, group) == 1, group

                # Each claim delivers it once more, still undecodable, up to max_deliveries.
                for _ in range(policy.max_deliveries - 1):
                    assert await log.claim_stale(group, "consumer-b", 0, BATCH_LIMIT) == []
                    assert await pending_count(pipeline, group) == 1, group
                details = await pipeline.client.xpending_range(
                    keys.STREAM, group, min="-", max="+", count=10
                )
                assert [item["times_delivered"] for item in details] == [policy.max_deliveries]
                assert await pipeline.client.xlen(keys.DEAD_LETTER_STREAM) == (
                    0 if group == STATS_GROUP else 1
                )

                # The next claim moves it to the dead-letter stream and acknowledges it.
                assert await log.claim_stale(group, "consumer-b", 0, BATCH_LIMIT) == []
                assert await pending_count(pipeline, group) == 0, group

            dead: Any = await pipeline.client.xrange(keys.DEAD_LETTER_STREAM)
            assert [fields for _, fields in dead] == [
                {b"entry_id": raw_entry_id.encode(), b"group": group.encode(), b"v": garbage}
                for group in (STATS_GROUP, STORE_GROUP)
            ]
            metrics = await pipeline.client.hgetall(keys.METRICS)
            assert metrics[f"dead_lettered:{STATS_GROUP}".encode()] == b"1"
            assert metrics[f"dead_lettered:{STORE_GROUP}".encode()] == b"1"

            assert await pipeline.store.count() == len(valid)
            expected = recount(valid)
            for site, site_stats in expected.items():
                found = await pipeline.stats.site_stats(site, LATEST_VISITS_CAPACITY)
                assert found == site_stats, f"stats of site {site}"

    asyncio.run(scenario())
