"""The distributed event log: a Redis Stream read by one consumer group per consumer.

Appends from concurrent requests are gathered and sent in one pipeline, because one round
trip per request would halve the ingest rate. Each append runs a small script that skips a
client `event_id` already appended within the dedup window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as redis
from redis import exceptions as redis_errors

from footfall.backends import redis_keys as keys
from footfall.backends.redis_client import parse_stream_id, text, translate_errors
from footfall.backends.redis_scripts import APPEND_ONCE, DEAD_LETTER
from footfall.errors import BackendUnavailable
from footfall.log.base import STATS_GROUP, STORE_GROUP, LogEntry
from footfall.log.redis_erasures import RedisErasures
from footfall.model import Visit

logger = logging.getLogger(__name__)

GROUPS = (STATS_GROUP, STORE_GROUP)
CLOSE_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class StreamPolicy:
    """Limits of the Redis log.

    `max_backlog`: appends get 503 while any group has more unacknowledged entries.
    `dedup_window_s`: how long a client event id is remembered to drop retries.
    `max_deliveries`: an entry delivered this often without an ack goes to the dead letters.
    """

    max_backlog: int = 1_000_000
    dedup_window_s: int = 24 * 3600
    max_deliveries: int = 5
    max_pipeline: int = 256
    appenders: int = 4
    backlog_check_interval_s: float = 0.5
    max_dead_letters: int = 100_000


@dataclass(slots=True)
class _Append:
    visit: Visit
    deduplicate: bool
    future: asyncio.Future[None]


class RedisEventLog:
    """EventLog over one Redis Stream with the consumer groups `stats` and `store`."""

    def __init__(self, client: redis.Redis, policy: StreamPolicy | None = None) -> None:
        # redis-py's reply types are unions of every reply shape, so replies are read as Any.
        self._client: Any = client
        self._policy = policy or StreamPolicy()
        self._append_once = client.register_script(APPEND_ONCE)
        self._dead_letter = client.register_script(DEAD_LETTER)
        self.erasures = RedisErasures(client)
        # A None item in the queue stops one appender.
        self._queue: asyncio.Queue[_Append | None] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._backlog = 0
        self._closed = False

    async def create_groups(self) -> None:
        """Create the stream and its groups if missing, reading from the first entry."""
        for group in GROUPS:
            try:
                await translate_errors(
                    "creating consumer group",
                    lambda group=group: self._client.xgroup_create(  # type: ignore[misc]
                        keys.STREAM, group, id="0", mkstream=True
                    ),
                )
            except redis_errors.ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise

    def start(self) -> None:
        """Start the pipelined appenders and the backlog monitor (API processes only)."""
        for number in range(self._policy.appenders):
            self._tasks.append(asyncio.create_task(self._append_loop(), name=f"append-{number}"))
        self._tasks.append(asyncio.create_task(self._watch_backlog(), name="backlog-monitor"))

    async def append(self, visit: Visit, *, deduplicate: bool = False) -> None:
        if self._closed:
            raise BackendUnavailable("the event log is shutting down")
        if self._backlog > self._policy.max_backlog:
            raise BackendUnavailable(
                f"backlog of {self._backlog} entries exceeds {self._policy.max_backlog}"
            )
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Append(visit, deduplicate, future))
        await future

    async def read_batch(
        self, group: str, consumer: str, max_count: int, block_ms: int
    ) -> list[LogEntry]:
        try:
            reply = await translate_errors(
                "reading the stream",
                lambda: self._client.xreadgroup(
                    group, consumer, {keys.STREAM: ">"}, count=max_count, block=block_ms or None
                ),
            )
        except redis_errors.ResponseError as error:
            if not str(error).startswith("NOGROUP"):
                raise
            # The stream was deleted (FLUSHDB, a failover to an empty replica): start it again.
            logger.error("stream %s or group %s is missing, recreating it", keys.STREAM, group)
            await self.create_groups()
            raise BackendUnavailable(f"consumer group {group} was missing: {error}") from error
        if not reply:
            return []
        return decode_entries(reply[0][1])

    async def claim_stale(
        self, group: str, consumer: str, min_idle_ms: int, max_count: int
    ) -> list[LogEntry]:
        """Take over entries another consumer left pending longer than `min_idle_ms`.

        Entries delivered `max_deliveries` times or more, and entries that cannot be
        decoded after that, move to the dead-letter stream instead of being returned.
        """
        reply = await translate_errors(
            "claiming stale entries",
            lambda: self._client.xautoclaim(
                keys.STREAM, group, consumer, min_idle_ms, "0-0", count=max_count
            ),
        )
        # XAUTOCLAIM returns the ids as bytes, but `_delivery_counts` keys its counts by str.
        claimed = [(text(entry_id), fields) for entry_id, fields in reply[1] if fields]
        if not claimed:
            return []

        deliveries = await self._delivery_counts(group, [entry_id for entry_id, _ in claimed])
        dead = [
            (entry_id, fields)
            for entry_id, fields in claimed
            if deliveries.get(entry_id, 1) > self._policy.max_deliveries
        ]
        if dead:
            await self._move_to_dead_letters(group, dead)
        dead_ids = {entry_id for entry_id, _ in dead}
        alive = [(entry_id, fields) for entry_id, fields in claimed if entry_id not in dead_ids]
        return [
            LogEntry(entry.entry_id, entry.visit, deliveries.get(entry.entry_id, 1))
            for entry in decode_entries(alive)
        ]

    async def ack(self, group: str, entries: list[LogEntry]) -> None:
        if entries:
            ids = [entry.entry_id for entry in entries]
            await translate_errors(
                "acknowledging", lambda: self._client.xack(keys.STREAM, group, *ids)
            )

    async def backlog(self, group: str) -> int:
        groups = await self.group_info()
        return int(groups.get(group, {}).get("backlog", 0))

    async def group_info(self) -> dict[str, dict[str, Any]]:
        """Return each group's backlog (undelivered + pending), pending count and last id."""
        reply = await translate_errors(
            "reading group info", lambda: self._client.xinfo_groups(keys.STREAM)
        )
        info: dict[str, dict[str, Any]] = {}
        for group in reply:
            name = text(group["name"])
            lag = group.get("lag")
            pending = int(group.get("pending", 0))
            # XINFO reports no lag when it cannot count the entries the group has read. The
            # stream length is then an upper bound, because trimming keeps only unacked entries.
            undelivered = int(lag) if lag is not None else await self._client.xlen(keys.STREAM)
            info[name] = {
                "pending": pending,
                "backlog": undelivered + pending,
                "last_delivered_id": text(group["last-delivered-id"]),
            }
        return info

    async def oldest_unacked_id(self, group: str, last_delivered_id: str) -> str | None:
        """Return the id of the oldest entry the group has not acknowledged, or None.

        That is its oldest pending entry, else the first entry it has not received. Workers
        may acknowledge between two reads here, so an empty pending list is not an error.
        """
        summary = await self._client.xpending(keys.STREAM, group)
        if summary and summary.get("min") is not None:
            return text(summary["min"])
        entries = await self._client.xrange(
            keys.STREAM, min=f"({last_delivered_id}", max="+", count=1
        )
        return text(entries[0][0]) if entries else None

    async def trim(self) -> int:
        """Delete entries every group has acknowledged, and return how many were deleted.

        Erasure marks that only covered deleted entries are deleted too.
        """
        groups = await self.group_info()
        if set(groups) != set(GROUPS):
            return 0  # A group that does not exist yet still needs every entry.
        boundaries = []
        for group, facts in groups.items():
            oldest = await self.oldest_unacked_id(group, facts["last_delivered_id"])
            if oldest is not None:
                boundaries.append(parse_stream_id(oldest))
            else:
                millis, sequence = parse_stream_id(facts["last_delivered_id"])
                boundaries.append((millis, sequence + 1))
        millis, sequence = min(boundaries)
        deleted: int = await translate_errors(
            "trimming the stream",
            lambda: self._client.xtrim(
                keys.STREAM, minid=f"{millis}-{sequence}", approximate=False
            ),
        )
        await self.erasures.forget_before(f"{millis}-{sequence}")
        return deleted

    async def close(self) -> None:
        """Stop taking appends, send the queued ones, then stop the background tasks.

        The tasks end by themselves rather than by cancellation alone: on Python 3.11 a
        cancellation can be lost inside a timed wait, which would leave close() hanging.
        """
        self._closed = True
        for _ in range(self._policy.appenders):
            self._queue.put_nowait(None)
        self._wake.set()
        if self._tasks:
            _, stuck = await asyncio.wait(self._tasks, timeout=CLOSE_TIMEOUT_S)
            for task in stuck:
                task.cancel()
        for item in self._drain_queue():
            if not item.future.done():
                item.future.set_exception(BackendUnavailable("the event log was closed"))

    def _drain_queue(self) -> list[_Append]:
        items = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None:
                items.append(item)
        return items

    async def _append_loop(self) -> None:
        while True:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._policy.max_pipeline and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    await self._send_batch(batch)
                    return
                batch.append(item)
            await self._send_batch(batch)

    async def _send_batch(self, batch: list[_Append]) -> None:
        pipeline = self._client.pipeline(transaction=False)
        for item in batch:
            payload = orjson.dumps(item.visit.to_record())
            if item.deduplicate:
                await self._append_once(
                    keys=[keys.STREAM, keys.seen_event(item.visit.id)],
                    args=[payload, self._policy.dedup_window_s],
                    client=pipeline,
                )
            else:
                pipeline.xadd(keys.STREAM, {"v": payload})
        try:
            results = await translate_errors(
                "appending to the stream", lambda: pipeline.execute(raise_on_error=False)
            )
        except BackendUnavailable as error:
            results = [error] * len(batch)
        except Exception as error:
            # An appender that died would leave every later request waiting forever.
            logger.exception("appending %d visits failed, their requests get 503", len(batch))
            results = [error] * len(batch)
        finally:
            # Return the connection to the pool. redis-py 8.2 keeps it out when loading the
            # scripts fails (Redis stopped mid-request), and the pool would shrink for good.
            await pipeline.reset()

        for item, result in zip(batch, results, strict=True):
            if item.future.done():
                continue
            if isinstance(result, BackendUnavailable):
                item.future.set_exception(result)
            elif isinstance(result, Exception):
                failure = BackendUnavailable(f"appending to the stream failed: {result}")
                failure.__cause__ = result
                item.future.set_exception(failure)
            else:
                item.future.set_result(None)

    async def _watch_backlog(self) -> None:
        while not self._closed:
            try:
                groups = await self.group_info()
                self._backlog = max((facts["backlog"] for facts in groups.values()), default=0)
            except Exception as error:
                # The check runs again shortly; the last known backlog stays in force meanwhile.
                logger.debug("backlog check failed, keeping the last value: %s", error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wake.wait(), timeout=self._policy.backlog_check_interval_s
                )

    async def _delivery_counts(self, group: str, entry_ids: list[str]) -> dict[str, int]:
        pipeline = self._client.pipeline(transaction=False)
        for entry_id in entry_ids:
            pipeline.xpending_range(keys.STREAM, group, min=entry_id, max=entry_id, count=1)
        replies = await pipeline.execute()
        counts: dict[str, int] = {}
        for reply in replies:
            for item in reply:
                counts[text(item["message_id"])] = int(item["times_delivered"])
        return counts

    async def _move_to_dead_letters(self, group: str, dead: list[tuple[Any, Any]]) -> None:
        args: list[Any] = [group, self._policy.max_dead_letters]
        for entry_id, fields in dead:
            args.extend([entry_id, fields.get(b"v", b"")])
        moved = await self._dead_letter(
            keys=[keys.STREAM, keys.DEAD_LETTER_STREAM, keys.METRICS], args=args
        )
        logger.warning(
            "moved %d entries of group %s to the dead-letter stream %s after %d deliveries",
            moved,
            group,
            keys.DEAD_LETTER_STREAM,
            self._policy.max_deliveries,
        )


def decode_entries(raw: list[tuple[Any, Any]]) -> list[LogEntry]:
    """Decode stream entries; an undecodable entry is logged and left out, so it stays
    pending until it is claimed again and, after `max_deliveries`, dead-lettered."""
    entries: list[LogEntry] = []
    for entry_id, fields in raw:
        try:
            visit = Visit.from_record(orjson.loads(fields[b"v"]))
        except (KeyError, TypeError, ValueError) as error:
            logger.error(
                "stream entry %s cannot be decoded, leaving it pending: %s", entry_id, error
            )
            continue
        entries.append(LogEntry(text(entry_id), visit))
    return entries
