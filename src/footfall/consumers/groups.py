"""The two consumer groups: `stats` applies batches to the stats store, `store` writes them
to the event store and acknowledges them after the commit."""

from __future__ import annotations

from footfall.consumers.loop import BatchConsumer, BatchPolicy
from footfall.faults import crash_point
from footfall.log.base import STATS_GROUP, STORE_GROUP, EventLog, LogEntry
from footfall.stats.base import StatsStore
from footfall.store.base import EventStore


def stats_consumer(
    log: EventLog, stats: StatsStore, name: str, policy: BatchPolicy | None = None
) -> BatchConsumer:
    """Build a consumer that applies each batch and acknowledges it in one atomic step."""

    async def apply(entries: list[LogEntry]) -> None:
        crash_point("stats.before_apply")
        await stats.apply_batch(STATS_GROUP, entries)
        crash_point("stats.after_apply")

    return BatchConsumer(log, STATS_GROUP, name, apply, policy)


def store_consumer(
    log: EventLog, store: EventStore, name: str, policy: BatchPolicy | None = None
) -> BatchConsumer:
    """Build a consumer that stores each batch and acknowledges it only after the commit."""

    async def store_then_ack(entries: list[LogEntry]) -> None:
        crash_point("store.before_commit")
        await store.store_batch(entries)
        crash_point("store.after_commit")
        await log.ack(STORE_GROUP, entries)

    return BatchConsumer(log, STORE_GROUP, name, store_then_ack, policy)
