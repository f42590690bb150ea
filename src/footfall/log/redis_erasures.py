"""Erasure marks in the Redis log, and the lock that keeps maintenance to one process.

An erasure cannot delete a visitor's entries from the stream safely: an entry may be
pending at a consumer that is about to apply it. It marks the visitor's stored forms
instead (`redis_keys.ERASED`), with the id of the newest entry at that moment. Both
consumer groups then skip an entry of a marked form up to that id and acknowledge it, so
the normal trim removes it. Entries appended after the erasure count as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import orjson

from footfall.backends import redis_keys as keys
from footfall.backends.redis_client import parse_stream_id, text, translate_errors
from footfall.backends.redis_scripts import FORGET_ERASED, MARK_ERASED, RELEASE_LOCK
from footfall.errors import FootfallError
from footfall.log.base import LogEntry

logger = logging.getLogger(__name__)

LOCK_TTL_S = 30
"""Seconds until the maintenance lock expires once its holder stops renewing it, for example
because the holder died."""
LOCK_RENEW_INTERVAL_S = 10.0
_DEAD_LETTER_CHUNK = 1000


class MaintenanceBusy(FootfallError):
    """Another process holds the maintenance lock. Retrying later helps."""


class RedisErasures:
    """Reads and writes the erasure marks of one Redis log."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._mark = client.register_script(MARK_ERASED)
        self._forget = client.register_script(FORGET_ERASED)
        self._release = client.register_script(RELEASE_LOCK)

    async def mark(self, forms: Sequence[str]) -> str:
        """Mark `forms` as erased up to the newest stream entry and return that entry's id."""
        boundary = await translate_errors(
            "marking an erasure",
            lambda: self._mark(keys=[keys.STREAM, keys.ERASED], args=list(forms)),
        )
        return text(boundary)

    async def drop_erased(self, entries: list[LogEntry]) -> list[LogEntry]:
        """Return the entries that no erasure mark covers, in their order."""
        forms = sorted(
            {entry.visit.ip for entry in entries}
            | {entry.visit.email for entry in entries if entry.visit.email}
        )
        if not forms:
            return entries
        values = await translate_errors(
            "reading erasure marks", lambda: self._client.hmget(keys.ERASED, forms)
        )
        marks = {
            form: parse_stream_id(text(value))
            for form, value in zip(forms, values, strict=True)
            if value
        }
        if not marks:
            return entries
        return [entry for entry in entries if not _covered(entry, marks)]

    async def delete_dead_letters(self, forms: Sequence[str]) -> int:
        """Delete the dead-letter entries whose visit has one of `forms`, and return how many."""
        matching_forms = set(forms)
        deleted = 0
        start = "-"
        while True:
            entries = await translate_errors(
                "reading dead letters",
                lambda start=start: self._client.xrange(  # type: ignore[misc]
                    keys.DEAD_LETTER_STREAM, min=start, max="+", count=_DEAD_LETTER_CHUNK
                ),
            )
            matching = [
                entry_id for entry_id, fields in entries if _mentions(fields, matching_forms)
            ]
            if matching:
                deleted += await self._client.xdel(keys.DEAD_LETTER_STREAM, *matching)
            if len(entries) < _DEAD_LETTER_CHUNK:
                return deleted
            start = f"({text(entries[-1][0])}"

    async def forget_before(self, boundary_id: str) -> int:
        """Delete the marks whose last entry lies below `boundary_id`, the trim boundary."""
        deleted: int = await self._forget(keys=[keys.ERASED], args=[boundary_id])
        return deleted

    async def wait_for_in_flight(
        self, group: str, boundary_id: str, abandoned_after_ms: int, timeout_s: float
    ) -> bool:
        """Wait until no consumer of `group` may still write an entry read before the mark.

        Such an entry is pending at or below `boundary_id`. The wait ends for it once it is
        acknowledged, delivered again (the new delivery checks the marks), or idle for
        `abandoned_after_ms` (its consumer died, and the consumer that claims it checks the marks).
        Returns False when `timeout_s` passed first.
        """
        read_before = await self._pending_at_or_before(group, boundary_id)
        deadline = time.monotonic() + timeout_s
        while read_before:
            now = await self._pending_at_or_before(group, boundary_id)
            read_before = {
                entry_id: facts
                for entry_id, facts in read_before.items()
                if entry_id in now
                and now[entry_id][0] <= facts[0]
                and now[entry_id][1] < abandoned_after_ms
            }
            if not read_before:
                break
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.1)
        return True

    @asynccontextmanager
    async def lock(self, purpose: str, wait_s: float = 0.0) -> AsyncIterator[None]:
        """Hold the maintenance lock, renewing it until the block ends.

        Waits up to `wait_s` for another holder to finish, then raises MaintenanceBusy.
        """
        token = f"{uuid.uuid4().hex} {purpose}"
        deadline = time.monotonic() + wait_s
        while not await self._try_lock(token):
            if time.monotonic() >= deadline:
                holder = await self._client.get(keys.MAINTENANCE_LOCK)
                holder_purpose = text(holder).partition(" ")[2] if holder else "unknown"
                raise MaintenanceBusy(
                    f"another footfall process is running {holder_purpose}; try again when "
                    f"it has finished (its lock expires {LOCK_TTL_S} s after that process "
                    "stops)"
                )
            await asyncio.sleep(0.5)
        renewal = asyncio.create_task(self._renew(token))
        try:
            yield
        finally:
            renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewal
            await self._release(keys=[keys.MAINTENANCE_LOCK], args=[token])

    async def _try_lock(self, token: str) -> bool:
        acquired = await translate_errors(
            "taking the maintenance lock",
            lambda: self._client.set(keys.MAINTENANCE_LOCK, token, nx=True, ex=LOCK_TTL_S),
        )
        return bool(acquired)

    async def _renew(self, token: str) -> None:
        while True:
            await asyncio.sleep(LOCK_RENEW_INTERVAL_S)
            try:
                # Only this holder's token is renewed, never a lock another process took.
                if text(await self._client.get(keys.MAINTENANCE_LOCK) or b"") == token:
                    await self._client.expire(keys.MAINTENANCE_LOCK, LOCK_TTL_S)
            except Exception as error:
                logger.warning(
                    "renewing the maintenance lock failed, retrying in %.0f s: %s",
                    LOCK_RENEW_INTERVAL_S,
                    error,
                )

    async def _pending_at_or_before(
        self, group: str, boundary_id: str
    ) -> dict[str, tuple[int, int]]:
        if boundary_id == "0-0":
            return {}
        pending = await self._client.xpending_range(
            keys.STREAM, group, min="-", max=boundary_id, count=1_000_000
        )
        return {
            text(item["message_id"]): (
                int(item["times_delivered"]),
                int(item["time_since_delivered"]),
            )
            for item in pending
        }


def _mentions(fields: dict[bytes, bytes], forms: set[str]) -> bool:
    """Return whether a dead letter's visit has one of `forms` as its IP or e-mail.

    A payload that is not a visit is checked as text, since it failed to decode before.
    """
    payload = fields.get(b"v", b"")
    try:
        record = orjson.loads(payload)
        return bool(record.get("ip") in forms or record.get("email") in forms)
    except (orjson.JSONDecodeError, AttributeError):
        raw = payload.decode(errors="replace")
        return any(form in raw for form in forms)


def _covered(entry: LogEntry, marks: dict[str, tuple[int, int]]) -> bool:
    position = parse_stream_id(entry.entry_id)
    for form in (entry.visit.ip, entry.visit.email):
        if form is not None and form in marks and position <= marks[form]:
            return True
    return False
