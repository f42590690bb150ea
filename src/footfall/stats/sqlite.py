"""The embedded stats store: SQLite tables updated in the transaction that moves the offset.

Applying a batch and advancing the group's offset commit together, and entries at or
below the stored offset are skipped inside that transaction. A batch replayed after a
crash, or read by two consumers at once, therefore counts each visit exactly once.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import defaultdict

from footfall.backends.sqlite_db import SqliteDatabase
from footfall.errors import BackendUnavailable
from footfall.log.base import STATS_GROUP, LogEntry
from footfall.log.sqlite import read_offset
from footfall.model import (
    LATEST_VISITS_CAPACITY,
    VISIT_COLUMNS,
    SiteStats,
    Visit,
    VisitorCount,
)
from footfall.store.base import EventStore


class SqliteStatsStore:
    """StatsStore over the tables `visitor_stats`, `latest_visits` and `site_totals`."""

    def __init__(self, database: SqliteDatabase) -> None:
        self._database = database

    async def apply_batch(self, group: str, entries: list[LogEntry]) -> None:
        if entries:
            await asyncio.to_thread(self._apply_batch, group, entries)

    async def site_stats(self, site: str, limit: int) -> SiteStats:
        return await asyncio.to_thread(self._site_stats, site, limit)

    async def rebuild(self, store: EventStore) -> int:
        """Recount from the `events` table of the same file, which is the embedded store."""
        return await asyncio.to_thread(self._rebuild)

    async def close(self) -> None:
        return None

    def _apply_batch(self, group: str, entries: list[LogEntry]) -> None:
        connection = self._database.connection()
        try:
            connection.execute("BEGIN IMMEDIATE")
            offset = read_offset(connection, group)
            fresh = [
                (int(entry.entry_id), entry.visit)
                for entry in entries
                if int(entry.entry_id) > offset
            ]
            if fresh:
                _apply_visits(connection, fresh)
                connection.execute(
                    "INSERT INTO consumer_offsets (grp, offset_seq) VALUES (?, ?) "
                    "ON CONFLICT (grp) DO UPDATE SET offset_seq = excluded.offset_seq",
                    (group, max(seq for seq, _ in fresh)),
                )
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise BackendUnavailable(f"applying a stats batch failed: {error}") from error

    def _site_stats(self, site: str, limit: int) -> SiteStats:
        connection = self._database.connection()
        totals = connection.execute(
            "SELECT visits, visitors FROM site_totals WHERE site = ?", (site,)
        ).fetchone()
        top = connection.execute(
            "SELECT ip, visits, last_visit_at_ms FROM visitor_stats WHERE site = ? "
            "ORDER BY visits DESC, ip ASC LIMIT ?",
            (site, limit),
        ).fetchall()
        latest = connection.execute(
            f"SELECT {VISIT_COLUMNS} FROM latest_visits WHERE site = ? "
            "ORDER BY received_at_ms DESC, id DESC LIMIT ?",
            (site, limit),
        ).fetchall()
        total_visits, visitors = totals if totals else (0, 0)
        return SiteStats(
            site,
            total_visits,
            visitors,
            tuple(VisitorCount(*row) for row in top),
            tuple(Visit(*row) for row in latest),
        )

    def _rebuild(self) -> int:
        connection = self._database.connection()
        try:
            connection.execute("BEGIN IMMEDIATE")
            counted = recount_in_sql(connection)
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise BackendUnavailable(f"stats rebuild failed: {error}") from error
        return counted


def _apply_visits(connection: sqlite3.Connection, fresh: list[tuple[int, Visit]]) -> None:
    per_visitor: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for _, visit in fresh:
        tally = per_visitor[(visit.site, visit.ip)]
        tally[0] += 1
        tally[1] = max(tally[1], visit.received_at_ms)

    per_site: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for (site, ip), (visits, last_visit_at_ms) in per_visitor.items():
        known = connection.execute(
            "SELECT 1 FROM visitor_stats WHERE site = ? AND ip = ?", (site, ip)
        ).fetchone()
        connection.execute(
            "INSERT INTO visitor_stats (site, ip, visits, last_visit_at_ms) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (site, ip) DO UPDATE SET visits = visits + excluded.visits, "
            "last_visit_at_ms = max(last_visit_at_ms, excluded.last_visit_at_ms)",
            (site, ip, visits, last_visit_at_ms),
        )
        per_site[site][0] += visits
        per_site[site][1] += 0 if known else 1

    for site, (visits, new_visitors) in per_site.items():
        connection.execute(
            "INSERT INTO site_totals (site, visits, visitors) VALUES (?, ?, ?) "
            "ON CONFLICT (site) DO UPDATE SET visits = visits + excluded.visits, "
            "visitors = visitors + excluded.visitors",
            (site, visits, new_visitors),
        )

    connection.executemany(
        f"INSERT INTO latest_visits (seq, {VISIT_COLUMNS}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(seq, *visit.values()) for seq, visit in fresh],
    )
    for site in per_site:
        _trim_latest(connection, site)


def _trim_latest(connection: sqlite3.Connection, site: str) -> None:
    connection.execute(
        "DELETE FROM latest_visits WHERE site = ? AND (received_at_ms, id) <= ("
        "SELECT received_at_ms, id FROM latest_visits WHERE site = ? "
        "ORDER BY received_at_ms DESC, id DESC LIMIT 1 OFFSET ?)",
        (site, site, LATEST_VISITS_CAPACITY),
    )


def recount_in_sql(connection: sqlite3.Connection) -> int:
    """Replace the stats tables with a recount of `events` and move the offset to its end."""
    last_seq, counted = connection.execute(
        "SELECT coalesce(max(seq), 0), count(*) FROM events"
    ).fetchone()
    connection.execute("DELETE FROM visitor_stats")
    connection.execute("DELETE FROM latest_visits")
    connection.execute("DELETE FROM site_totals")
    connection.execute(
        "INSERT INTO visitor_stats (site, ip, visits, last_visit_at_ms) "
        "SELECT site, ip, count(*), max(received_at_ms) FROM events GROUP BY site, ip"
    )
    connection.execute(
        "INSERT INTO site_totals (site, visits, visitors) "
        "SELECT site, sum(visits), count(*) FROM visitor_stats GROUP BY site"
    )
    connection.execute(
        f"INSERT INTO latest_visits (seq, {VISIT_COLUMNS}) "
        f"SELECT seq, {VISIT_COLUMNS} FROM ("
        f"SELECT seq, {VISIT_COLUMNS}, "
        "row_number() OVER (PARTITION BY site ORDER BY received_at_ms DESC, id DESC) AS position "
        "FROM events"
        ") WHERE position <= ?",
        (LATEST_VISITS_CAPACITY,),
    )
    connection.execute(
        "INSERT INTO consumer_offsets (grp, offset_seq) VALUES (?, ?) "
        "ON CONFLICT (grp) DO UPDATE SET offset_seq = excluded.offset_seq",
        (STATS_GROUP, last_seq),
    )
    return int(counted)
