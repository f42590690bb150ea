"""The stats consumer: reads the log in batches and applies them to the stats store."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from footfall.errors import BackendUnavailable
from footfall.log.base import STATS_GROUP, EventLog
from footfall.stats.base import StatsStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """Read policy of a consumer: batches of up to `max_batch` entries, a wait of up to
    `block_ms` for new ones, and a pause of `retry_delay_s` after a backend failure."""

    max_batch: int = 500
    block_ms: int = 500
    retry_delay_s: float = 1.0


class StatsConsumer:
    """Moves visits from the log into the stats store until stopped."""

    def __init__(
        self,
        log: EventLog,
        stats: StatsStore,
        consumer_name: str,
        policy: BatchPolicy | None = None,
    ) -> None:
        self._log = log
        self._stats = stats
        self._name = consumer_name
        self._policy = policy or BatchPolicy()
        self._stopping = asyncio.Event()
        self.applied_visits = 0
        self.applied_batches = 0

    async def run(self) -> None:
        """Read and apply batches until `stop` is called; back-end failures are retried."""
        logger.info("stats consumer %s started", self._name)
        while not self._stopping.is_set():
            try:
                await self.run_once()
            except BackendUnavailable as error:
                logger.warning(
                    "stats consumer %s failed to apply a batch, retrying in %.1f s: %s",
                    self._name,
                    self._policy.retry_delay_s,
                    error,
                )
                await asyncio.sleep(self._policy.retry_delay_s)
        logger.info(
            "stats consumer %s stopped after %d visits in %d batches",
            self._name,
            self.applied_visits,
            self.applied_batches,
        )

    async def run_once(self) -> int:
        """Apply at most one batch and return how many entries it held."""
        entries = await self._log.read_batch(
            STATS_GROUP, self._name, self._policy.max_batch, self._policy.block_ms
        )
        if not entries:
            return 0
        await self._stats.apply_batch(STATS_GROUP, entries)
        self.applied_visits += len(entries)
        self.applied_batches += 1
        return len(entries)

    async def drain(self) -> None:
        """Apply batches until the log has nothing new for the group."""
        while await self.run_once():
            pass

    def stop(self) -> None:
        """Ask `run` to return after the batch in progress."""
        self._stopping.set()
