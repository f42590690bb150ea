"""The embedded event log: the SQLite `events` table, appended with group commit.

One writer thread owns all appends. It takes every visit waiting in its queue (up to
`max_batch`), inserts them in one transaction and commits once, then resolves all their
futures. Requests that arrive while a commit is on disk form the next group, so the
fsync cost is shared by everyone waiting instead of paid per request.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from dataclasses import dataclass

from footfall.backends.sqlite_db import INSERT_VISIT, SqliteDatabase, connect
from footfall.errors import BackendUnavailable
from footfall.log.base import LogEntry
from footfall.model import VISIT_COLUMNS, Visit

logger = logging.getLogger(__name__)

_STOP = object()


@dataclass(frozen=True, slots=True)
class GroupCommitPolicy:
    """Group commit limits: at most `max_batch` visits per commit, and at most `max_pending`
    visits waiting before new appends are rejected as overload (503)."""

    max_batch: int = 1024
    max_pending: int = 20_000


@dataclass(slots=True)
class _Pending:
    visit: Visit
    future: asyncio.Future[None]


class SqliteEventLog:
    """EventLog over the `events` table. Offsets are `seq` values kept per consumer group."""

    def __init__(self, database: SqliteDatabase, policy: GroupCommitPolicy | None = None) -> None:
        self._database = database
        self._policy = policy or GroupCommitPolicy()
        self._queue: queue.SimpleQueue[list[_Pending] | object] = queue.SimpleQueue()
        # Appends of one event loop iteration go to the writer as one queue item, because
        # waking the writer thread once per request costs the event loop its GIL each time.
        self._outbox: list[_Pending] = []
        self._pending = 0
        self._appended = threading.Condition()
        self._writer: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop
        self._closed = False
        self.committed_visits = 0
        self.committed_batches = 0

    def start(self) -> None:
        """Start the writer thread, from the event loop that will append."""
        # get_running_loop() costs a getpid() system call, too much to pay per request.
        self._loop = asyncio.get_running_loop()
        self._writer = threading.Thread(target=self._write_loop, name="footfall-sqlite-writer")
        self._writer.start()

    async def append(self, visit: Visit, *, deduplicate: bool = False) -> None:
        # The UNIQUE id column drops every repeated id, so `deduplicate` changes nothing here.
        if self._closed:
            raise BackendUnavailable("the event log is shutting down")
        if self._pending >= self._policy.max_pending:
            raise BackendUnavailable(
                f"{self._pending} visits are waiting for the disk; try again shortly"
            )

        future: asyncio.Future[None] = self._loop.create_future()
        if not self._outbox:
            self._loop.call_soon(self._flush_outbox)
        self._outbox.append(_Pending(visit, future))
        self._pending += 1
        try:
            await future
        finally:
            self._pending -= 1

    def _flush_outbox(self) -> None:
        if self._outbox:
            self._queue.put(self._outbox)
            self._outbox = []

    async def read_batch(
        self, group: str, consumer: str, max_count: int, block_ms: int
    ) -> list[LogEntry]:
        entries = await asyncio.to_thread(self._read_after_offset, group, max_count)
        if entries or block_ms <= 0:
            return entries
        await asyncio.to_thread(self._wait_for_append, block_ms / 1000)
        return await asyncio.to_thread(self._read_after_offset, group, max_count)

    async def claim_stale(
        self, group: str, consumer: str, min_idle_ms: int, max_count: int
    ) -> list[LogEntry]:
        # Offsets leave nothing pending at a dead consumer: the next read starts after them.
        return []

    async def ack(self, group: str, entries: list[LogEntry]) -> None:
        if not entries:
            return
        last_seq = max(int(entry.entry_id) for entry in entries)
        await asyncio.to_thread(self._move_offset, group, last_seq)

    async def backlog(self, group: str) -> int:
        return await asyncio.to_thread(self._backlog, group)

    async def close(self) -> None:
        """Stop taking appends, commit every visit already queued, then stop the writer."""
        self._closed = True
        self._flush_outbox()
        self._queue.put(_STOP)
        if self._writer is not None:
            await asyncio.to_thread(self._writer.join)

    def _write_loop(self) -> None:
        connection = connect(self._database.path)
        try:
            while True:
                group, stop = self._take_group()
                if group:
                    self._commit_group(connection, group)
                if stop:
                    return
        finally:
            connection.close()

    def _take_group(self) -> tuple[list[_Pending], bool]:
        item = self._queue.get()
        group: list[_Pending] = []
        while True:
            if item is _STOP:
                return group, True
            group.extend(item)  # type: ignore[arg-type]
            if len(group) >= self._policy.max_batch:
                return group, False
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return group, False

    def _commit_group(self, connection: sqlite3.Connection, group: list[_Pending]) -> None:
        error: BackendUnavailable | None = None
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany(INSERT_VISIT, [item.visit.values() for item in group])
            connection.execute("COMMIT")
        except sqlite3.Error as cause:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            logger.warning(
                "group commit of %d visits failed, their requests get 503: %s",
                len(group),
                cause,
            )
            error = BackendUnavailable(f"SQLite commit failed: {cause}")
            error.__cause__ = cause

        if error is None:
            self.committed_visits += len(group)
            self.committed_batches += 1
            with self._appended:
                self._appended.notify_all()
        _resolve(group, error)

    def _wait_for_append(self, timeout_s: float) -> None:
        with self._appended:
            self._appended.wait(timeout_s)

    def _read_after_offset(self, group: str, max_count: int) -> list[LogEntry]:
        connection = self._database.connection()
        offset = read_offset(connection, group)
        rows = connection.execute(
            f"SELECT seq, {VISIT_COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
            (offset, max_count),
        ).fetchall()
        return [LogEntry(str(row[0]), Visit(*row[1:])) for row in rows]

    def _move_offset(self, group: str, seq: int) -> None:
        connection = self._database.connection()
        connection.execute(
            "INSERT INTO consumer_offsets (grp, offset_seq) VALUES (?, ?) "
            "ON CONFLICT (grp) DO UPDATE SET offset_seq = max(offset_seq, excluded.offset_seq)",
            (group, seq),
        )

    def _backlog(self, group: str) -> int:
        connection = self._database.connection()
        offset = read_offset(connection, group)
        row = connection.execute("SELECT count(*) FROM events WHERE seq > ?", (offset,)).fetchone()
        return int(row[0])


def read_offset(connection: sqlite3.Connection, group: str) -> int:
    """Return the last `seq` the group has acknowledged, 0 before its first batch."""
    row = connection.execute(
        "SELECT offset_seq FROM consumer_offsets WHERE grp = ?", (group,)
    ).fetchone()
    return int(row[0]) if row else 0


def _resolve(group: list[_Pending], error: BackendUnavailable | None) -> None:
    """Complete each request's future on its own event loop, once per loop for the group."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for item in group:
        by_loop.setdefault(item.future.get_loop(), []).append(item.future)
    for loop, futures in by_loop.items():
        loop.call_soon_threadsafe(_set_results, futures, error)


def _set_results(futures: list[asyncio.Future[None]], error: BackendUnavailable | None) -> None:
    for future in futures:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
