"""The embedded event store: the same `events` table that serves as the log."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from typing import Any

from footfall.backends.sqlite_db import INSERT_VISIT, SqliteDatabase
from footfall.errors import BackendUnavailable
from footfall.faults import crash_point
from footfall.log.base import LogEntry
from footfall.model import VISIT_COLUMNS, Visit
from footfall.stats.sqlite import recount_in_sql
from footfall.store.base import EventPage, PageCursor

_ITER_CHUNK = 5_000


class SqliteEventStore:
    """EventStore over `events`. In the embedded deployment the log's appends already store
    each visit, so nothing calls `store_batch` there; it exists for the contract."""

    def __init__(self, database: SqliteDatabase) -> None:
        self._database = database

    async def store_batch(self, entries: list[LogEntry]) -> None:
        # The log entry id is the row's own seq here, so only the visits are written.
        if entries:
            await asyncio.to_thread(self._store_batch, [entry.visit for entry in entries])

    async def page(self, site: str, limit: int, cursor: PageCursor | None) -> EventPage:
        return await asyncio.to_thread(self._page, site, limit, cursor)

    async def delete_before(self, cutoff_ms: int) -> int:
        return await asyncio.to_thread(
            self._delete_and_recount, "received_at_ms < ?", [cutoff_ms], "deleting old events"
        )

    async def erase(self, ips: Sequence[str], emails: Sequence[str]) -> int:
        if not ips and not emails:
            return 0
        condition = (
            f"ip IN ({', '.join('?' * len(ips)) or 'NULL'}) "
            f"OR email IN ({', '.join('?' * len(emails)) or 'NULL'})"
        )
        return await asyncio.to_thread(
            self._delete_and_recount,
            condition,
            [*ips, *emails],
            "erasing a visitor",
            secure=True,
        )

    async def iter_entries(self) -> AsyncIterator[LogEntry]:
        after_seq = 0
        while True:
            rows = await asyncio.to_thread(self._chunk_after, after_seq)
            if not rows:
                return
            for row in rows:
                yield LogEntry(str(row[0]), Visit(*row[1:]))
            after_seq = rows[-1][0]

    async def close(self) -> None:
        return None

    def _store_batch(self, visits: list[Visit]) -> None:
        connection = self._database.connection()
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany(INSERT_VISIT, [visit.values() for visit in visits])
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise BackendUnavailable(f"storing {len(visits)} visits failed: {error}") from error

    def _delete_and_recount(
        self, condition: str, params: list[Any], operation: str, *, secure: bool = False
    ) -> int:
        """Delete the matching events and recount the stats in one transaction.

        `events` is also the log here, so a deleted visit that the stats consumer has not
        read yet is never counted. The recount moves the consumer's offset past every event,
        so a batch it read before the delete is skipped rather than counted. A crash before
        COMMIT leaves the events and the stats as they were.

        `secure` overwrites the deleted rows with zeros in the database file.
        NOTE: older copies of those pages stay in the WAL file until SQLite's next
        checkpoint reuses it, and in any backup taken before.
        """
        connection = self._database.connection()
        previous_secure = connection.execute("PRAGMA secure_delete").fetchone()[0]
        if secure:
            connection.execute("PRAGMA secure_delete=ON")
        try:
            connection.execute("BEGIN IMMEDIATE")
            deleted = connection.execute(f"DELETE FROM events WHERE {condition}", params).rowcount
            crash_point("maintenance.after_delete")
            if deleted:
                recount_in_sql(connection)
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise BackendUnavailable(f"{operation} failed: {error}") from error
        finally:
            connection.execute(f"PRAGMA secure_delete={int(previous_secure)}")
        return int(deleted)

    def _page(self, site: str, limit: int, cursor: PageCursor | None) -> EventPage:
        connection = self._database.connection()
        if cursor is None:
            rows = connection.execute(
                f"SELECT {VISIT_COLUMNS} FROM events WHERE site = ? "
                "ORDER BY received_at_ms DESC, id DESC LIMIT ?",
                (site, limit + 1),
            ).fetchall()
        else:
            rows = connection.execute(
                f"SELECT {VISIT_COLUMNS} FROM events WHERE site = ? "
                "AND (received_at_ms, id) < (?, ?) "
                "ORDER BY received_at_ms DESC, id DESC LIMIT ?",
                (site, cursor.received_at_ms, cursor.event_id, limit + 1),
            ).fetchall()
        visits = [Visit(*row) for row in rows[:limit]]
        has_more = len(rows) > limit
        next_cursor = PageCursor(visits[-1].received_at_ms, visits[-1].id) if has_more else None
        return EventPage(visits, next_cursor)

    def _chunk_after(self, after_seq: int) -> list[tuple[Any, ...]]:
        connection = self._database.connection()
        return connection.execute(
            f"SELECT seq, {VISIT_COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
            (after_seq, _ITER_CHUNK),
        ).fetchall()
