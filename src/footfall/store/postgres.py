"""The distributed event store: one PostgreSQL table, written in idempotent batches."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool

from footfall.errors import BackendUnavailable
from footfall.log.base import LogEntry
from footfall.model import VISIT_COLUMNS, Visit
from footfall.store.base import EventPage, PageCursor

_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS events_stage (LIKE events INCLUDING DEFAULTS) "
    "ON COMMIT DELETE ROWS"
)
_COPY = f"COPY events_stage (log_entry_id, {VISIT_COLUMNS}) FROM STDIN"
_MERGE = (
    f"INSERT INTO events (log_entry_id, {VISIT_COLUMNS}) "
    f"SELECT log_entry_id, {VISIT_COLUMNS} FROM events_stage ON CONFLICT (id) DO NOTHING"
)
_ITER_CHUNK = 5000

T = TypeVar("T")


class PostgresEventStore:
    """EventStore over the `events` table created by `backends.postgres_db.migrate`."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool

    async def store_batch(self, entries: list[LogEntry]) -> None:
        """COPY the batch into a staging table, then insert what is new in one statement."""
        if not entries:
            return

        async def store() -> None:
            async with self._pool.connection() as connection, connection.transaction():
                await connection.execute(_STAGE)
                async with connection.cursor().copy(_COPY) as copy:
                    for entry in entries:
                        await copy.write_row((entry.entry_id, *entry.visit.values()))
                await connection.execute(_MERGE)

        await _translate(f"storing {len(entries)} visits", store)

    async def page(self, site: str, limit: int, cursor: PageCursor | None) -> EventPage:
        query = f"SELECT {VISIT_COLUMNS} FROM events WHERE site = %s "
        params: list[Any] = [site]
        if cursor is not None:
            query += "AND (received_at_ms, id) < (%s, %s) "
            params += [cursor.received_at_ms, cursor.event_id]
        query += "ORDER BY received_at_ms DESC, id DESC LIMIT %s"
        params.append(limit + 1)

        async def fetch() -> list[Any]:
            async with self._pool.connection() as connection:
                return await (await connection.execute(query, params)).fetchall()

        rows = await _translate("reading events", fetch)
        visits = [Visit(*row) for row in rows[:limit]]
        has_more = len(rows) > limit
        next_cursor = PageCursor(visits[-1].received_at_ms, visits[-1].id) if has_more else None
        return EventPage(visits, next_cursor)

    async def delete_before(self, cutoff_ms: int) -> int:
        return await self._delete(
            "deleting old events", "DELETE FROM events WHERE received_at_ms < %s", (cutoff_ms,)
        )

    async def erase(self, ips: Sequence[str], emails: Sequence[str]) -> int:
        return await self._delete(
            "erasing a visitor",
            "DELETE FROM events WHERE ip = ANY(%s) OR email = ANY(%s)",
            (list(ips), list(emails)),
        )

    async def _delete(self, operation: str, statement: str, params: tuple[Any, ...]) -> int:
        async def delete() -> int:
            async with self._pool.connection() as connection, connection.transaction():
                cursor = await connection.execute(statement, params)
                return cursor.rowcount

        return await _translate(operation, delete)

    async def iter_entries(self) -> AsyncIterator[LogEntry]:
        after_id = ""
        while True:

            async def fetch(after: str = after_id) -> list[Any]:
                async with self._pool.connection() as connection:
                    cursor = await connection.execute(
                        f"SELECT log_entry_id, {VISIT_COLUMNS} FROM events WHERE id > %s "
                        "ORDER BY id LIMIT %s",
                        (after, _ITER_CHUNK),
                    )
                    return await cursor.fetchall()

            rows = await _translate("reading events", fetch)
            if not rows:
                return
            for row in rows:
                yield LogEntry(row[0], Visit(*row[1:]))
            after_id = rows[-1][1]

    async def count(self) -> int:
        async def fetch() -> int:
            async with self._pool.connection() as connection:
                row = await (await connection.execute("SELECT count(*) FROM events")).fetchone()
            return int(row[0]) if row else 0

        return await _translate("counting events", fetch)

    async def close(self) -> None:
        await self._pool.close()


async def _translate(operation: str, call: Callable[[], Awaitable[T]]) -> T:
    try:
        return await call()
    except (psycopg.OperationalError, psycopg.InterfaceError, TimeoutError) as error:
        raise BackendUnavailable(f"{operation} failed: PostgreSQL unavailable: {error}") from error
    except psycopg.errors.AdminShutdown as error:
        raise BackendUnavailable(f"{operation} failed: PostgreSQL shut down: {error}") from error
