"""Retention and erasure: deleting visits wherever footfall keeps them.

Afterwards the stats equal a recount of the events that remain, on both deployments,
because both recount rather than subtract. A subtraction would have to know, for each
deleted visit, whether the stats had already applied it, and subtract it exactly once
across crashes. A recount is right by construction and reuses `footfall stats
rebuild`, which the tests already hold to the reference recount:

- Embedded, the SQLite event store deletes and recounts in one transaction
  (`SqliteEventStore.delete_before` and `erase`).
- Distributed, one process at a time (a Redis lock) deletes from the event store and then
  rebuilds the Redis stats. A marker key set before the delete makes a rerun rebuild even
  when the crashed run had already deleted everything, so the rerun repairs the stats.

The cost is one recount per retention pass (hourly) and per erasure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from footfall.backends import redis_keys as keys
from footfall.errors import BackendUnavailable, ConfigurationError, FootfallError, InvalidInput
from footfall.faults import crash_point
from footfall.ingest.client_ip import canonical_ip
from footfall.ingest.validation import MAX_EMAIL_CHARS
from footfall.log.base import STORE_GROUP
from footfall.log.redis_erasures import LOCK_TTL_S, MaintenanceBusy, RedisErasures
from footfall.privacy import StoredForms
from footfall.stats.base import StatsStore
from footfall.store.base import EventStore

logger = logging.getLogger(__name__)

MS_PER_DAY = 24 * 60 * 60 * 1000
RETENTION_INTERVAL_S = 3600.0
"""A retention pass runs when the process starts and then every hour, unless
FOOTFALL_RETENTION_INTERVAL_S sets another interval in seconds."""
ADMIN_LOCK_WAIT_S = LOCK_TTL_S + 15.0
"""How long `footfall erase` and `retention run` wait for another holder of the lock, which
covers the expiry of a lock whose holder died."""
IN_FLIGHT_TIMEOUT_S = 60.0
"""How long an erasure waits for store batches that were read before its mark."""

MAX_RETENTION_DAYS = 36_500
"""The largest --retention-days, about a hundred years. To keep events forever, leave the
flag unset."""

DeleteBefore = Callable[[int], Awaitable[int]]


def canonical_erasure_ip(text: str) -> str:
    """Return the IP of an erasure request in its stored form, raising InvalidInput."""
    ip = canonical_ip(text)
    if ip is None:
        raise InvalidInput(
            f"invalid IP address {text[:80]!r}: expected an IPv4 or IPv6 address such as "
            "192.0.2.10 or 2001:db8::1"
        )
    return ip


def checked_erasure_email(text: str) -> str:
    """Return the e-mail address of an erasure request, stripped, raising InvalidInput."""
    email = text.strip()
    if not email or len(email) > MAX_EMAIL_CHARS:
        raise InvalidInput(
            f"invalid e-mail address {text[:80]!r}: expected the address the visitor gave, "
            f"1 to {MAX_EMAIL_CHARS} characters"
        )
    return email


def retention_interval_s() -> float:
    """Return the time between retention passes, from FOOTFALL_RETENTION_INTERVAL_S."""
    value = os.environ.get("FOOTFALL_RETENTION_INTERVAL_S")
    if value is None:
        return RETENTION_INTERVAL_S
    try:
        interval_s = float(value)
    except ValueError:
        interval_s = 0.0
    if not interval_s >= 1:
        raise ConfigurationError(
            f"invalid FOOTFALL_RETENTION_INTERVAL_S={value!r}: expected seconds, 1 or more"
        )
    return interval_s


def retention_cutoff_ms(retention_days: int, now_ms: int) -> int:
    """Return the time before which visits are older than `retention_days` days."""
    return now_ms - retention_days * MS_PER_DAY


async def run_retention(
    delete_before: DeleteBefore, retention_days: int, now_ms: int | None = None
) -> int:
    """Delete the visits older than `retention_days` days, log the count and return it."""
    if now_ms is None:
        now_ms = int(time.time() * 1000)
    deleted = await delete_before(retention_cutoff_ms(retention_days, now_ms))
    logger.info("retention pass deleted %d events older than %d days", deleted, retention_days)
    return deleted


async def retention_schedule(
    delete_before: DeleteBefore,
    retention_days: int,
    closing: asyncio.Event,
    interval_s: float,
) -> None:
    """Run a retention pass now and then every `interval_s` until `closing` is set."""
    logger.info(
        "retention: events older than %d days are deleted now and every %.0f s",
        retention_days,
        interval_s,
    )
    while not closing.is_set():
        try:
            await run_retention(delete_before, retention_days)
        except MaintenanceBusy as busy:
            logger.info("retention pass skipped, retrying in %.0f s: %s", interval_s, busy)
        except FootfallError as error:
            logger.warning("retention pass failed, retrying in %.0f s: %s", interval_s, error)
        except Exception:
            # The schedule must outlive one bad pass, or old events would silently stay.
            logger.exception(
                "retention pass hit an unexpected error, retrying in %.0f s", interval_s
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(closing.wait(), timeout=interval_s)


class DistributedMaintenance:
    """Retention and erasure on Redis and the event store, one process at a time."""

    def __init__(
        self,
        client: Any,
        erasures: RedisErasures,
        store: EventStore,
        stats: StatsStore,
        abandoned_after_ms: int,
    ) -> None:
        self._client = client
        self._erasures = erasures
        self._store = store
        self._stats = stats
        self._abandoned_after_ms = abandoned_after_ms

    async def delete_before(self, cutoff_ms: int, lock_wait_s: float) -> int:
        """Delete the visits received before `cutoff_ms` and rebuild the stats if any were.

        Waits up to `lock_wait_s` for another retention pass or erasure to finish.
        """
        async with self._erasures.lock("a retention pass", lock_wait_s):
            was_stale = await self._mark_stale("retention")
            deleted = await self._store.delete_before(cutoff_ms)
            crash_point("maintenance.after_delete")
            if deleted or was_stale:
                await self._rebuild_stats()
            else:
                await self._client.delete(keys.STATS_STALE)
        return deleted

    async def erase(self, forms: StoredForms, lock_wait_s: float) -> int:
        """Delete a visitor's visits from the event store and the stats, and mark its entries
        still in the stream so that the consumers skip them.

        The mark comes first, so a store batch read after it skips the visitor. A batch
        read before it may still be committing, so the delete runs again once those
        batches are done.
        """
        async with self._erasures.lock("an erasure", lock_wait_s):
            await self._mark_stale("erasure")
            boundary_id = await self._erasures.mark([*forms.ips, *forms.emails])
            deleted = await self._store.erase(forms.ips, forms.emails)
            crash_point("maintenance.after_delete")
            settled = await self._erasures.wait_for_in_flight(
                STORE_GROUP, boundary_id, self._abandoned_after_ms, IN_FLIGHT_TIMEOUT_S
            )
            if not settled:
                logger.warning(
                    "store batches read before the erasure are still pending after %.0f s; "
                    "deleting again now, and a repeated erasure deletes what they store later",
                    IN_FLIGHT_TIMEOUT_S,
                )
            deleted += await self._store.erase(forms.ips, forms.emails)
            await self._erasures.delete_dead_letters([*forms.ips, *forms.emails])
            await self._rebuild_stats()
        return deleted

    async def rebuild(self, lock_wait_s: float) -> int:
        """Rebuild the stats under the lock, and return the number of events counted.

        Two rebuilds at once would let the first swap end the second's pause of the stats
        group, and the second would then swap in a count that misses visits.
        """
        async with self._erasures.lock("a stats rebuild", lock_wait_s):
            counted = await self._stats.rebuild(self._store)
            await self._client.delete(keys.STATS_STALE)
        return counted

    async def _mark_stale(self, reason: str) -> bool:
        """Set the stats-stale marker and return whether an earlier run had left it set."""
        try:
            previous = await self._client.set(keys.STATS_STALE, reason, get=True)
        except Exception as error:
            raise BackendUnavailable(f"setting {keys.STATS_STALE} failed: {error}") from error
        return previous is not None

    async def _rebuild_stats(self) -> None:
        crash_point("maintenance.before_rebuild")
        counted = await self._stats.rebuild(self._store)
        await self._client.delete(keys.STATS_STALE)
        logger.info("stats rebuilt from the %d events that remain", counted)
