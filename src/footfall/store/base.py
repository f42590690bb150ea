"""The event store interface and its paging cursor."""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from footfall.errors import InvalidInput
from footfall.log.base import LogEntry
from footfall.model import Visit

MAX_TIMESTAMP_MS = 2**63
"""Timestamps are stored as signed 64-bit integers by SQLite and PostgreSQL alike."""


@dataclass(frozen=True, slots=True)
class PageCursor:
    """Start of the next page: strictly after (older than) this time and event id."""

    received_at_ms: int
    event_id: str

    def encode(self) -> str:
        raw = f"{self.received_at_ms}:{self.event_id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> PageCursor:
        """Parse a token from `encode`, raising InvalidInput for anything else."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            millis, event_id = raw.split(":", 1)
            cursor = cls(int(millis), event_id)
        except (binascii.Error, UnicodeDecodeError, ValueError) as error:
            raise InvalidInput(
                f"invalid cursor {token[:80]!r}: pass the next_cursor of the previous page"
            ) from error
        if not event_id or not -MAX_TIMESTAMP_MS <= cursor.received_at_ms < MAX_TIMESTAMP_MS:
            raise InvalidInput(
                f"invalid cursor {token[:80]!r}: pass the next_cursor of the previous page"
            )
        return cursor


@dataclass(frozen=True, slots=True)
class EventPage:
    """One page of history, newest first, and the cursor of the next page (None at the end)."""

    visits: list[Visit]
    next_cursor: PageCursor | None


class EventStore(Protocol):
    """The durable history of every accepted visit, each stored once by its id."""

    async def store_batch(self, entries: list[LogEntry]) -> None:
        """Store the entries' visits durably, each with its log entry id.

        Idempotent: a visit whose id is already stored is skipped.

        Returns only after the batch is committed. Raises BackendUnavailable when the store
        cannot take it; nothing of the batch may be counted as stored then.
        """
        ...

    async def page(self, site: str, limit: int, cursor: PageCursor | None) -> EventPage:
        """Return up to `limit` visits of a site ordered by (time, id), newest first.

        Pages never repeat or skip a visit, even when visits share a timestamp or arrive
        while a client is paging.
        """
        ...

    async def delete_before(self, cutoff_ms: int) -> int:
        """Delete every visit received before `cutoff_ms` (ms since the Unix epoch, UTC).

        Returns how many visits were deleted, so a repeat with the same cutoff returns 0.
        Raises BackendUnavailable when the store cannot take it. The embedded store recounts
        its stats in the same transaction, because its events table is also the log.
        """
        ...

    async def erase(self, ips: Sequence[str], emails: Sequence[str]) -> int:
        """Delete every visit whose ip is in `ips` or whose email is in `emails`.

        Values match exactly, as stored. Returns how many visits were deleted, so a repeat
        returns 0. Raises BackendUnavailable when the store cannot take it.
        """
        ...

    def iter_entries(self) -> AsyncIterator[LogEntry]:
        """Yield every stored visit of every site with its log entry id, in no promised order."""
        ...

    async def close(self) -> None:
        """Release the backend."""
        ...
