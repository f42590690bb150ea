"""The distributed stats store: per-site sorted sets, hashes and counters in Redis.

A batch is applied by one Lua script that acknowledges each entry with XACK and applies
its effects only when that acknowledgement was the first (see `redis_scripts.APPLY_STATS`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

import orjson
import redis.asyncio as redis

from footfall.backends import redis_keys as keys
from footfall.backends.redis_client import parse_stream_id, text, translate_errors
from footfall.backends.redis_scripts import APPLY_STATS, SWAP_STATS
from footfall.errors import BackendPaused, FootfallError
from footfall.log.base import STATS_GROUP, STORE_GROUP, LogEntry
from footfall.model import LATEST_VISITS_CAPACITY, SiteStats, Visit, VisitorCount
from footfall.stats.model import SiteTally, tally_visits
from footfall.store.base import EventStore

logger = logging.getLogger(__name__)

REBUILD_FLAG_TTL_S = 600
"""The rebuild flag expires by itself, so a crashed rebuild pauses the stats for at most this."""

STORE_CATCH_UP_TIMEOUT_S = 120.0
_WRITE_CHUNK = 1000


class RebuildFailed(FootfallError):
    """The rebuild could not finish; the live stats are unchanged."""


class RedisStatsStore:
    """StatsStore over the keys documented in `backends.redis_keys`."""

    def __init__(self, client: redis.Redis) -> None:
        # redis-py's reply types are unions of every reply shape, so replies are read as Any.
        self._client: Any = client
        self._apply = client.register_script(APPLY_STATS)
        self._swap = client.register_script(SWAP_STATS)

    async def apply_batch(self, group: str, entries: list[LogEntry]) -> None:
        if not entries:
            return
        sites: list[str] = []
        site_numbers: dict[str, int] = {}
        args: list[Any] = []
        for entry in entries:
            site = entry.visit.site
            if site not in site_numbers:
                sites.append(site)
                site_numbers[site] = len(sites)
            args += [
                entry.entry_id,
                site_numbers[site],
                entry.visit.ip,
                entry.visit.email or "",
                entry.visit.received_at_ms,
                latest_member(entry.visit),
            ]
        script_keys = [keys.STREAM, keys.REBUILD_FLAG, keys.SITES, keys.ERASED]
        for site in sites:
            script_keys += keys.SiteKeys.of(site).all()

        applied = await translate_errors(
            "applying a stats batch",
            lambda: self._apply(
                keys=script_keys,
                args=[group, LATEST_VISITS_CAPACITY, len(sites), *sites, *args],
            ),
        )
        if applied == -1:
            raise BackendPaused("a stats rebuild is in progress")

    async def site_stats(self, site: str, limit: int) -> SiteStats:
        site_keys = keys.SiteKeys.of(site)
        pipeline = self._client.pipeline(transaction=False)
        pipeline.hget(site_keys.totals, "visits")
        pipeline.zcard(site_keys.visitors)
        pipeline.zrange(site_keys.visitors, 0, limit - 1, withscores=True)
        pipeline.zrange(site_keys.latest, 0, limit - 1, desc=True)
        total, visitors, top, latest = await translate_errors("reading stats", pipeline.execute)

        ips = [member.decode() for member, _ in top]
        last_visits: list[Any] = []
        if ips:
            last_visits = await translate_errors(
                "reading stats", lambda: self._client.hmget(site_keys.last_visit, ips)
            )
        top_visitors = tuple(
            VisitorCount(ip, int(-score), int(last_ms or 0))
            for ip, (_, score), last_ms in zip(ips, top, last_visits, strict=True)
        )
        latest_visits = tuple(Visit.from_record(orjson.loads(member)) for member in latest)
        return SiteStats(site, int(total or 0), int(visitors), top_visitors, latest_visits)

    async def rebuild(self, store: EventStore) -> int:
        """Recount from the event store into fresh keys and swap them in atomically.

        Ingest keeps running. The stats group stops applying while the flag is set, so the
        set of entries it has applied is fixed: every entry up to its last delivered id,
        less those still pending. Once the store group has stored all of them, exactly
        those events are recounted and swapped in, and the stats group carries on.
        """
        await self._client.set(keys.REBUILD_FLAG, str(time.time()), ex=REBUILD_FLAG_TTL_S)
        try:
            last_id, pending = await self._applied_boundary(STATS_GROUP)
            await self._wait_for_store(last_id)
            tallies, counted = await self._tally_applied(store, last_id, pending)
            await self._write_fresh_keys(tallies)
            await self._swap_in(tallies)
        except BaseException:
            await self._client.delete(keys.REBUILD_FLAG)
            raise
        return counted

    async def close(self) -> None:
        return None

    async def _applied_boundary(self, group: str) -> tuple[tuple[int, int], set[str]]:
        groups = {text(info["name"]): info for info in await self._client.xinfo_groups(keys.STREAM)}
        if group not in groups:
            return (0, 0), set()
        last_id = parse_stream_id(text(groups[group]["last-delivered-id"]))
        pending = await self._client.xpending_range(
            keys.STREAM, group, min="-", max="+", count=1_000_000
        )
        return last_id, {text(item["message_id"]) for item in pending}

    async def _wait_for_store(self, last_id: tuple[int, int]) -> None:
        deadline = time.monotonic() + STORE_CATCH_UP_TIMEOUT_S
        while True:
            store_last, store_pending = await self._applied_boundary(STORE_GROUP)
            behind = store_last < last_id or any(
                parse_stream_id(entry_id) <= last_id for entry_id in store_pending
            )
            if not behind:
                return
            if time.monotonic() > deadline:
                raise RebuildFailed(
                    f"the store group has not stored every entry up to {last_id[0]}-{last_id[1]} "
                    f"within {STORE_CATCH_UP_TIMEOUT_S:.0f} s: check that `footfall worker "
                    "--group store` is running, then rebuild again"
                )
            await self._client.expire(keys.REBUILD_FLAG, REBUILD_FLAG_TTL_S)
            await asyncio.sleep(0.2)

    async def _tally_applied(
        self, store: EventStore, last_id: tuple[int, int], pending: set[str]
    ) -> tuple[dict[str, SiteTally], int]:
        dead = await self._dead_lettered(STATS_GROUP)
        counted = 0

        async def applied_visits() -> Any:
            nonlocal counted
            async for entry in store.iter_entries():
                if entry.entry_id in pending or entry.entry_id in dead:
                    continue
                if entry.entry_id and parse_stream_id(entry.entry_id) > last_id:
                    continue
                counted += 1
                yield entry.visit

        # NOTE: the recount keeps every applied visit in memory at once, which bounds the
        # history a rebuild can handle by this process's memory (an estimated 1 KB per visit).
        visits: list[Visit] = [visit async for visit in applied_visits()]
        return tally_visits(visits), counted

    async def _dead_lettered(self, group: str) -> set[str]:
        entries = await self._client.xrange(keys.DEAD_LETTER_STREAM, count=1_000_000)
        return {
            text(fields[b"entry_id"]) for _, fields in entries if text(fields[b"group"]) == group
        }

    async def _write_fresh_keys(self, tallies: dict[str, SiteTally]) -> None:
        for site, tally in tallies.items():
            fresh = keys.SiteKeys.of(site, rebuild=True)
            await self._client.delete(*fresh.all())
            for chunk in _chunks(tally.visits.items()):
                await self._client.zadd(fresh.visitors, {ip: -count for ip, count in chunk})
            for chunk in _chunks(tally.last_visit_at_ms.items()):
                await self._client.hset(fresh.last_visit, mapping=dict(chunk))
            latest = {latest_member(visit): visit.received_at_ms for visit in tally.latest}
            if latest:
                await self._client.zadd(fresh.latest, latest)
            await self._client.hset(fresh.totals, "visits", sum(tally.visits.values()))
            await self._client.expire(keys.REBUILD_FLAG, REBUILD_FLAG_TTL_S)

    async def _swap_in(self, tallies: dict[str, SiteTally]) -> None:
        old_sites = {text(site) for site in await self._client.smembers(keys.SITES)}
        swap_keys = [keys.REBUILD_FLAG, keys.SITES]
        for site in sorted(old_sites | set(tallies)):
            swap_keys += keys.SiteKeys.of(site, rebuild=True).all()
            swap_keys += keys.SiteKeys.of(site).all()
        await self._swap(keys=swap_keys, args=sorted(tallies))


def latest_member(visit: Visit) -> bytes:
    """Return the latest-visits member of a visit: its JSON, which starts with its id, so
    members of equal time sort by id."""
    return orjson.dumps(visit.to_record())


def _chunks(items: Iterable[tuple[str, int]]) -> Iterable[list[tuple[str, int]]]:
    chunk: list[tuple[str, int]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == _WRITE_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
