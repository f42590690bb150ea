"""The batch loop every consumer runs: read or claim a batch, handle it, back off on failure.

A batch that failed is kept and handled again before anything new is read, so a backend
outage delays entries but never skips them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from footfall.errors import BackendPaused, BackendUnavailable
from footfall.log.base import EventLog, LogEntry

logger = logging.getLogger(__name__)

BATCH_SIZE_BUCKETS = (1, 10, 50, 100, 250, 500, 1000)
"""Upper bounds of the batch-size histogram buckets."""


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """Read and retry policy of a consumer.

    Batches hold up to `max_batch` entries; a read waits up to `block_ms` for new ones.
    Entries pending longer than `claim_idle_ms` at another consumer are claimed every
    `claim_interval_s`. After a failure the wait starts at `retry_delay_s` and doubles up
    to `max_retry_delay_s`. After a batch smaller than `max_batch` the consumer waits
    `linger_s` before reading again, which trades stats freshness for larger batches.
    """

    max_batch: int = 500
    block_ms: int = 500
    claim_idle_ms: int = 30_000
    claim_interval_s: float = 5.0
    retry_delay_s: float = 0.5
    max_retry_delay_s: float = 10.0
    linger_s: float = 0.0


@dataclass
class ConsumerMetrics:
    """Counts of one consumer's work since it started."""

    handled_entries: int = 0
    handled_batches: int = 0
    batch_sizes: Counter[float] = field(default_factory=Counter)
    batch_size_sum: int = 0
    _flushed: ConsumerMetrics | None = None

    def record_batch(self, size: int) -> None:
        self.handled_entries += size
        self.handled_batches += 1
        self.batch_size_sum += size
        bucket = next((bound for bound in BATCH_SIZE_BUCKETS if size <= bound), float("inf"))
        self.batch_sizes[bucket] += 1

    def take_delta(self) -> ConsumerMetrics:
        """Return what was recorded since the previous call (since the start, the first time)."""
        previous = self._flushed or ConsumerMetrics()
        delta = ConsumerMetrics(
            self.handled_entries - previous.handled_entries,
            self.handled_batches - previous.handled_batches,
            self.batch_sizes - previous.batch_sizes,
            self.batch_size_sum - previous.batch_size_sum,
        )
        self._flushed = ConsumerMetrics(
            self.handled_entries,
            self.handled_batches,
            Counter(self.batch_sizes),
            self.batch_size_sum,
        )
        return delta


Handler = Callable[[list[LogEntry]], Awaitable[None]]


class BatchConsumer:
    """Feeds batches of one consumer group to a handler until stopped."""

    def __init__(
        self,
        log: EventLog,
        group: str,
        name: str,
        handler: Handler,
        policy: BatchPolicy | None = None,
    ) -> None:
        self.group = group
        self.name = name
        self.metrics = ConsumerMetrics()
        self._log = log
        self._handler = handler
        self._policy = policy or BatchPolicy()
        self._held: list[LogEntry] = []
        self._stopping = asyncio.Event()
        self._next_claim_at = 0.0

    async def run(self) -> None:
        """Handle batches until `stop` is called, retrying failed batches with backoff."""
        logger.info("consumer %s of group %s started", self.name, self.group)
        delay_s = self._policy.retry_delay_s
        while not self._stopping.is_set():
            try:
                size = await self.run_once()
                delay_s = self._policy.retry_delay_s
                if 0 < size < self._policy.max_batch and self._policy.linger_s:
                    await self._sleep(self._policy.linger_s)
            except BackendPaused as pause:
                logger.debug("group %s paused, retrying in %.1f s: %s", self.group, delay_s, pause)
                await self._sleep(self._policy.retry_delay_s)
            except BackendUnavailable as error:
                logger.warning(
                    "consumer %s of group %s failed, retrying %d held entries in %.1f s: %s",
                    self.name,
                    self.group,
                    len(self._held),
                    delay_s,
                    error,
                )
                await self._sleep(delay_s)
                delay_s = min(delay_s * 2, self._policy.max_retry_delay_s)
            except Exception:
                # The loop is the consumer's last handler: a bug or an unexpected reply must
                # not end consumption silently while the process keeps running.
                logger.exception(
                    "consumer %s of group %s hit an unexpected error, retrying %d held "
                    "entries in %.1f s",
                    self.name,
                    self.group,
                    len(self._held),
                    delay_s,
                )
                await self._sleep(delay_s)
                delay_s = min(delay_s * 2, self._policy.max_retry_delay_s)
        logger.info(
            "consumer %s of group %s stopped after %d entries in %d batches",
            self.name,
            self.group,
            self.metrics.handled_entries,
            self.metrics.handled_batches,
        )

    async def run_once(self) -> int:
        """Handle one batch (the held one, stale claims, or new entries); return its size."""
        if not self._held:
            self._held = await self._next_batch()
        if not self._held:
            return 0
        await self._handler(self._held)
        size = len(self._held)
        self.metrics.record_batch(size)
        self._held = []
        return size

    async def drain(self) -> None:
        """Handle batches until the log has nothing new for the group."""
        while await self.run_once():
            pass

    def stop(self) -> None:
        """Ask `run` to return after the batch in progress."""
        self._stopping.set()

    async def _next_batch(self) -> list[LogEntry]:
        if time.monotonic() >= self._next_claim_at:
            self._next_claim_at = time.monotonic() + self._policy.claim_interval_s
            claimed = await self._log.claim_stale(
                self.group, self.name, self._policy.claim_idle_ms, self._policy.max_batch
            )
            if claimed:
                return claimed
        return await self._log.read_batch(
            self.group, self.name, self._policy.max_batch, self._policy.block_ms
        )

    async def _sleep(self, delay_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=delay_s)
