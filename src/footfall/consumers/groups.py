"""The two consumer groups: `stats` applies batches to the stats store, `store` writes them
to the event store and acknowledges them after the commit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

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


EntryFilter = Callable[[list[LogEntry]], Awaitable[list[LogEntry]]]


def store_consumer(
    log: EventLog,
    store: EventStore,
    name: str,
    policy: BatchPolicy | None = None,
    drop_erased: EntryFilter | None = None,
) -> BatchConsumer:
    """Build a consumer that stores each batch and acknowledges it only after the commit.

    `drop_erased` removes the entries of erased visitors, which are acknowledged unstored.
    It runs again each time a failed batch is retried, so a retry also drops the visitors
    of a newer erasure.
    """

    async def store_then_ack(entries: list[LogEntry]) -> None:
        to_store = await drop_erased(entries) if drop_erased else entries
        crash_point("store.before_commit")
        await store.store_batch(to_store)
        crash_point("store.after_commit")
        await log.ack(STORE_GROUP, entries)

    return BatchConsumer(log, STORE_GROUP, name, store_then_ack, policy)
