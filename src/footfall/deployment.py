"""The two deployments behind one interface: embedded (SQLite) and distributed (Redis with
PostgreSQL or MongoDB). The API, the worker and the admin commands work only through this."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sqlite3
from collections import Counter
from typing import Any

from footfall.backends import redis_keys as keys
from footfall.backends.redis_client import (
    check_server,
    connect,
    log_server_facts,
    parse_stream_id,
)
from footfall.backends.sqlite_db import SqliteDatabase
from footfall.config import Settings, is_mongodb_url
from footfall.consumers.groups import stats_consumer, store_consumer
from footfall.consumers.loop import BatchConsumer, BatchPolicy
from footfall.credentials.redis import RedisCredentialStore
from footfall.credentials.sqlite import SqliteCredentialStore
from footfall.errors import BackendUnavailable, ConfigurationError
from footfall.log.base import STATS_GROUP, STORE_GROUP
from footfall.log.redis import RedisEventLog, StreamPolicy
from footfall.log.sqlite import SqliteEventLog, read_offset
from footfall.maintenance import (
    DistributedMaintenance,
    retention_interval_s,
    retention_schedule,
)
from footfall.metrics import (
    BatchHistogram,
    GroupFacts,
    IngestCounters,
    Snapshot,
    histograms_from_redis,
    lag_seconds,
    redis_fields,
)
from footfall.privacy import (
    EmailMode,
    HashKeyStore,
    IpMode,
    Pseudonymizer,
    RedisHashKeys,
    SqliteHashKeys,
    StoredForms,
)
from footfall.stats.redis import RedisStatsStore
from footfall.stats.sqlite import SqliteStatsStore
from footfall.store.base import EventStore
from footfall.store.distributed import open_event_store
from footfall.store.sqlite import SqliteEventStore

logger = logging.getLogger(__name__)

METRICS_FLUSH_INTERVAL_S = 1.0
EMBEDDED_STATS_LINGER_S = float(os.environ.get("FOOTFALL_STATS_LINGER_S", "0.2"))
TRIM_INTERVAL_S = 10.0
CLOSE_TIMEOUT_S = 10.0


def default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def worker_batch_policy() -> BatchPolicy:
    """Return the worker consumers' policy, taking `claim_idle_ms` from FOOTFALL_CLAIM_IDLE_MS."""
    value = os.environ.get("FOOTFALL_CLAIM_IDLE_MS")
    if value is None:
        return BatchPolicy()
    if not value.isdigit() or int(value) < 1:
        raise ConfigurationError(
            f"invalid FOOTFALL_CLAIM_IDLE_MS={value!r}: expected a whole number of "
            "milliseconds, 1 or more"
        )
    return BatchPolicy(claim_idle_ms=int(value))


class EmbeddedDeployment:
    """One SQLite file; the stats consumer runs inside the serving process."""

    name = "embedded"

    def __init__(self, settings: Settings) -> None:
        self.database = SqliteDatabase(settings.db_path)
        self.log = SqliteEventLog(self.database)
        self.store = SqliteEventStore(self.database)
        self.stats = SqliteStatsStore(self.database)
        self.credentials = SqliteCredentialStore(self.database)
        self.counters = IngestCounters()
        # The consumer shares the process and SQLite's write lock with ingest, so it waits
        # a little between batches to apply fewer, larger ones.
        policy = BatchPolicy(linger_s=EMBEDDED_STATS_LINGER_S)
        self.consumers = [stats_consumer(self.log, self.stats, "serve", policy)]
        self._settings = settings
        self.description = f"SQLite database {settings.db_path.resolve()}"
        self._tasks: list[asyncio.Task[None]] = []
        self._retention_tasks: list[asyncio.Task[None]] = []
        self._closing = asyncio.Event()
        self._accepted_total = 0
        self._rejected_total: Counter[str] = Counter()
        self._ignored_total: Counter[str] = Counter()
        self.hash_keys = SqliteHashKeys(self.database)

    async def start_api(self) -> None:
        self.log.start()
        self._tasks = [asyncio.create_task(consumer.run()) for consumer in self.consumers]
        if self._settings.retention_days is not None:
            self._retention_tasks.append(
                asyncio.create_task(
                    retention_schedule(
                        self.delete_before,
                        self._settings.retention_days,
                        self._closing,
                        retention_interval_s(),
                    )
                )
            )
        self.description = (
            f"SQLite database {self._settings.db_path.resolve()} (sqlite {sqlite3.sqlite_version})"
        )

    async def open_admin(self) -> None:
        return None

    async def delete_before(self, cutoff_ms: int, lock_wait_s: float = 0.0) -> int:
        """Delete the visits received before `cutoff_ms` and recount the stats with it."""
        return await self.store.delete_before(cutoff_ms)

    async def erase_visitor(
        self, ip: str | None, email: str | None, lock_wait_s: float = 0.0
    ) -> int:
        """Delete every visit stored under any form of `ip` or `email`, with the stats."""
        forms = await stored_forms(self.hash_keys, ip, email)
        deleted = await self.store.erase(forms.ips, forms.emails)
        log_erasure(deleted)
        return deleted

    async def metrics_snapshot(self) -> Snapshot:
        accepted, rejected, ignored = self.counters.take()
        self._accepted_total += accepted
        self._rejected_total.update(rejected)
        self._ignored_total.update(ignored)
        backlog, oldest_ms = await asyncio.to_thread(self._stats_backlog)
        histogram = BatchHistogram()
        for consumer in self.consumers:
            histogram.add(consumer.metrics)
        return Snapshot(
            self._accepted_total,
            dict(self._rejected_total),
            {STATS_GROUP: GroupFacts(backlog, 0, lag_seconds(oldest_ms))},
            {STATS_GROUP: histogram},
            dict(self._ignored_total),
        )

    async def close(self) -> None:
        """Stop taking visits, commit the queued ones, let the consumer catch up, then close."""
        self._closing.set()
        if self._retention_tasks:
            await asyncio.gather(*self._retention_tasks)
        await self.log.close()
        for consumer in self.consumers:
            consumer.stop()
        if self._tasks:
            await asyncio.gather(*self._tasks)
            for consumer in self.consumers:
                await consumer.drain()
        self.database.close()
        applied = sum(consumer.metrics.handled_entries for consumer in self.consumers)
        logger.info(
            "SQLite closed: %d visits committed in %d groups, %d applied to stats",
            self.log.committed_visits,
            self.log.committed_batches,
            applied,
        )

    def _stats_backlog(self) -> tuple[int, int | None]:
        connection = self.database.connection()
        offset = read_offset(connection, STATS_GROUP)
        count, oldest_ms = connection.execute(
            "SELECT count(*), min(received_at_ms) FROM events WHERE seq > ?", (offset,)
        ).fetchone()
        return int(count), oldest_ms


class DistributedDeployment:
    """Redis Streams as the log, Redis for stats and PostgreSQL or MongoDB for the event
    history, by the scheme of `--database-url`."""

    name = "distributed"

    def __init__(self, settings: Settings) -> None:
        assert settings.redis_url and settings.database_url
        self.client: Any = connect(settings.redis_url)
        self.log = RedisEventLog(self.client, StreamPolicy(max_backlog=settings.max_backlog))
        self.stats = RedisStatsStore(self.client)
        self.hash_keys = RedisHashKeys(self.client, keys.HASH_KEYS)
        self.credentials = RedisCredentialStore(self.client)
        self.store: EventStore
        self.maintenance: DistributedMaintenance
        self.counters = IngestCounters()
        self.consumers: list[BatchConsumer] = []
        events = "MongoDB" if is_mongodb_url(settings.database_url) else "PostgreSQL"
        self.description = f"Redis and {events}"
        self._settings = settings
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = asyncio.Event()
        self._accepted_total = 0
        self._rejected_total = 0

    async def _open(self, role: str) -> None:
        facts = await check_server(self.client)
        log_server_facts(facts, role)
        assert self._settings.database_url
        opened = await open_event_store(self._settings.database_url, role)
        self.store = opened.store
        self.maintenance = DistributedMaintenance(
            self.client,
            self.log.erasures,
            self.store,
            self.stats,
            worker_batch_policy().claim_idle_ms,
        )
        await self.log.create_groups()
        self.description = f"Redis {facts.version} stream {keys.STREAM}, {opened.description}"
        logger.info("%s backends: %s", role, self.description)

    async def open_admin(self) -> None:
        await self._open("footfall admin")

    async def start_api(self) -> None:
        await self._open("footfall serve")
        self.log.start()
        if self._settings.retention_days is not None:
            logger.info(
                "--retention-days is ignored by serve in the distributed deployment: the "
                "workers started with it run the retention passes"
            )
        self._tasks.append(asyncio.create_task(self._flush_metrics_loop()))

    async def start_worker(self) -> None:
        policy = worker_batch_policy()
        await self._open("footfall worker")
        name = self._settings.consumer_name or default_consumer_name()
        if STATS_GROUP in self._settings.groups:
            self.consumers.append(stats_consumer(self.log, self.stats, name, policy))
        if STORE_GROUP in self._settings.groups:
            self.consumers.append(
                store_consumer(self.log, self.store, name, policy, self.log.erasures.drop_erased)
            )
        self._tasks += [asyncio.create_task(consumer.run()) for consumer in self.consumers]
        self._tasks.append(asyncio.create_task(self._flush_metrics_loop()))
        self._tasks.append(asyncio.create_task(self._trim_loop()))
        if self._settings.retention_days is not None:
            self._tasks.append(
                asyncio.create_task(
                    retention_schedule(
                        self.delete_before,
                        self._settings.retention_days,
                        self._closing,
                        retention_interval_s(),
                    )
                )
            )

    async def delete_before(self, cutoff_ms: int, lock_wait_s: float = 0.0) -> int:
        """Delete the visits received before `cutoff_ms`, then rebuild the stats.

        Raises MaintenanceBusy when another process holds the lock after `lock_wait_s`.
        """
        return await self.maintenance.delete_before(cutoff_ms, lock_wait_s)

    async def erase_visitor(
        self, ip: str | None, email: str | None, lock_wait_s: float = 0.0
    ) -> int:
        """Delete every visit stored under any form of `ip` or `email`, also from the stream's
        unconsumed entries, then rebuild the stats. See `DistributedMaintenance.erase`."""
        forms = await stored_forms(self.hash_keys, ip, email)
        deleted = await self.maintenance.erase(forms, lock_wait_s)
        log_erasure(deleted)
        return deleted

    async def wait(self) -> None:
        """Wait until every consumer has stopped."""
        await asyncio.gather(*self._tasks[: len(self.consumers)])

    async def metrics_snapshot(self) -> Snapshot:
        await self._flush_metrics()
        fields = {
            name.decode(): int(value)
            for name, value in (await self.client.hgetall(keys.METRICS)).items()
        }
        groups = await self.log.group_info()
        facts = {}
        for group, info in groups.items():
            oldest_ms = await self._oldest_unacked_ms(group, info)
            facts[group] = GroupFacts(
                info["backlog"],
                info["pending"],
                lag_seconds(oldest_ms),
                fields.get(f"dead_lettered:{group}", 0),
            )
        rejected = _by_reason(fields, "rejected:")
        ignored = _by_reason(fields, "ignored:")
        return Snapshot(
            fields.get("accepted", 0), rejected, facts, histograms_from_redis(fields), ignored
        )

    async def close(self) -> None:
        for consumer in self.consumers:
            consumer.stop()
        if self.consumers:
            await asyncio.gather(*self._tasks[: len(self.consumers)])
        await self.log.close()
        self._closing.set()
        try:
            await self._flush_metrics()
        except BackendUnavailable as error:
            logger.warning("final metrics flush failed, these counts are lost: %s", error)
        if self._tasks:
            _, stuck = await asyncio.wait(self._tasks, timeout=CLOSE_TIMEOUT_S)
            for task in stuck:
                logger.warning("background task %s did not stop, cancelling it", task.get_name())
                task.cancel()
        if self._accepted_total or not self.consumers:
            logger.info(
                "this process accepted %d visits and rejected %d",
                self._accepted_total,
                self._rejected_total,
            )
        if hasattr(self, "store"):
            await self.store.close()
        await self.client.aclose()
        for consumer in self.consumers:
            logger.info(
                "group %s: %d entries handled in %d batches",
                consumer.group,
                consumer.metrics.handled_entries,
                consumer.metrics.handled_batches,
            )

    async def _flush_metrics(self) -> None:
        fields = redis_fields(self.counters, self.consumers)
        if not fields:
            return
        self._accepted_total += fields.get("accepted", 0)
        self._rejected_total += sum(
            value for name, value in fields.items() if name.startswith("rejected:")
        )
        pipeline = self.client.pipeline(transaction=False)
        for name, value in fields.items():
            pipeline.hincrby(keys.METRICS, name, value)
        await pipeline.execute()

    async def _flush_metrics_loop(self) -> None:
        while await self._tick(METRICS_FLUSH_INTERVAL_S):
            try:
                await self._flush_metrics()
            except Exception as error:
                logger.warning(
                    "metrics flush failed, retrying in %.0f s: %s", METRICS_FLUSH_INTERVAL_S, error
                )

    async def _trim_loop(self) -> None:
        while await self._tick(TRIM_INTERVAL_S):
            try:
                deleted = await self.log.trim()
                logger.debug("trimmed %d acknowledged entries from the stream", deleted)
            except Exception as error:
                logger.warning("stream trim failed, retrying in %.0f s: %s", TRIM_INTERVAL_S, error)

    async def _tick(self, interval_s: float) -> bool:
        """Wait one interval and return whether the loop should run again.

        The loops end on the closing flag, not by cancellation alone: on Python 3.11 a
        cancellation can be lost inside a timed wait in redis-py, which hung close().
        """
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), timeout=interval_s)
        return not self._closing.is_set()

    async def _oldest_unacked_ms(self, group: str, info: dict[str, Any]) -> int | None:
        oldest = await self.log.oldest_unacked_id(group, info["last_delivered_id"])
        return parse_stream_id(oldest)[0] if oldest is not None else None


async def stored_forms(hash_keys: HashKeyStore, ip: str | None, email: str | None) -> StoredForms:
    """Return every form a visitor may be stored under, whichever modes were on."""
    # The modes matter only to `apply`, because stored_forms lists the forms of every mode.
    pseudonymizer = Pseudonymizer(IpMode.FULL, EmailMode.KEEP, hash_keys)
    return await pseudonymizer.stored_forms(ip, email)


def log_erasure(deleted: int) -> None:
    # The address is personal data, so the log records only that an erasure happened.
    logger.info("erased one visitor: %d events deleted", deleted)


def _by_reason(fields: dict[str, int], prefix: str) -> dict[str, int]:
    return {name[len(prefix) :]: value for name, value in fields.items() if name.startswith(prefix)}


Deployment = EmbeddedDeployment | DistributedDeployment


def create_deployment(settings: Settings) -> Deployment:
    """Return the deployment the settings ask for; nothing connects until it is started."""
    if settings.distributed:
        return DistributedDeployment(settings)
    return EmbeddedDeployment(settings)
