"""The event log interface. Every backend satisfies this contract and its contract tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from footfall.model import Visit

STATS_GROUP = "stats"
"""The consumer group that maintains the stats store."""
STORE_GROUP = "store"
"""The consumer group that writes the event store (distributed deployment only)."""


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One visit as a consumer group reads it from the log.

    `entry_id` is the log's own position (a SQLite `seq`, a Redis Stream id). It orders
    entries within the log and is what `ack` takes; `visit.id` is the event's identity.
    """

    entry_id: str
    visit: Visit
    deliveries: int = 1


class EventLog(Protocol):
    """An append-only log of visits, read by consumer groups.

    Each group receives every entry at least once. An entry that a group has not acknowledged is
    delivered again (to the same group) after a crash, so consumers must be idempotent.
    """

    async def append(self, visit: Visit, *, deduplicate: bool = False) -> None:
        """Append one visit and return only once it is durable.

        `deduplicate` marks an id chosen by the client, which a retry repeats: such a visit
        is appended once (SQLite: forever; Redis: within the dedup window).
        Raises BackendUnavailable when the log cannot take it: the caller responds with 503.
        """
        ...

    async def read_batch(
        self, group: str, consumer: str, max_count: int, block_ms: int
    ) -> list[LogEntry]:
        """Return up to `max_count` entries the group has not yet received, oldest first.

        Waits up to `block_ms` for new entries when there are none and returns an empty list
        after that. Entries returned stay pending until acknowledged.
        """
        ...

    async def claim_stale(
        self, group: str, consumer: str, min_idle_ms: int, max_count: int
    ) -> list[LogEntry]:
        """Take over up to `max_count` entries another consumer of the group left pending for
        `min_idle_ms` or longer (it probably died). Logs without pending entries return []."""
        ...

    async def ack(self, group: str, entries: list[LogEntry]) -> None:
        """Mark entries as done for the group. Acknowledging an entry twice is harmless."""
        ...

    async def backlog(self, group: str) -> int:
        """Return how many entries the group has not yet acknowledged."""
        ...

    async def close(self) -> None:
        """Stop accepting appends, finish the ones in flight and release the backend."""
        ...
