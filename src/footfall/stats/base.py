"""The stats store interface. Every backend satisfies it and its contract tests."""

from __future__ import annotations

from typing import Protocol

from footfall.log.base import LogEntry
from footfall.model import SiteStats
from footfall.store.base import EventStore


class StatsStore(Protocol):
    """Bounded read models per site: visits per visitor, the latest visits and the totals."""

    async def apply_batch(self, group: str, entries: list[LogEntry]) -> None:
        """Apply each entry's effects and acknowledge it for `group`, as one atomic step.

        An entry whose acknowledgement is not its first (a redelivery) changes nothing, so
        applying the same batch twice counts each visit once. Raises BackendUnavailable
        when the store cannot take it, and then nothing of the batch is applied.
        """
        ...

    async def site_stats(self, site: str, limit: int) -> SiteStats:
        """Return the top `limit` visitors and `limit` latest visits of a site.

        The cost is bounded by `limit`, never by the number of stored events.
        """
        ...

    async def rebuild(self, store: EventStore) -> int:
        """Replace all stats with a recount of the events in `store`, in one atomic swap.

        Returns the number of events counted. Readers see either the old or the new stats.
        """
        ...

    async def close(self) -> None:
        """Release the backend."""
        ...
