"""Helpers for tests that delete visits from a running stack: retention and erasure.

They work on both deployments, taking the backend from the server's own arguments: the
SQLite file of an embedded server, or the Redis and event store URLs of a distributed one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterable
from typing import Any

import httpx
from faults.harness import stored_visits as harness_stored_visits
from faults.harness import wait_until_drained

from footfall.api.schemas import StatsOut
from footfall.backends.redis_client import connect
from footfall.backends.sqlite_db import SqliteDatabase
from footfall.log.redis import RedisEventLog
from footfall.log.sqlite import SqliteEventLog
from footfall.model import LATEST_VISITS_CAPACITY, VISIT_COLUMNS, Visit
from footfall.stats.model import empty_stats, recount
from support.server import ServerProcess, wait_for

COMMAND_TIMEOUT_S = 180
DRAIN_TIMEOUT_S = 30.0


def is_distributed(server: ServerProcess) -> bool:
    return "--database-url" in server.extra_args


def _option(server: ServerProcess, name: str) -> str:
    return server.extra_args[server.extra_args.index(name) + 1]


def backend_args(server: ServerProcess) -> list[str]:
    """Return the arguments that point an admin command at the server's backends."""
    if is_distributed(server):
        return [
            "--redis-url",
            _option(server, "--redis-url"),
            "--database-url",
            _option(server, "--database-url"),
        ]
    return ["--db", str(server.db_path)]


def run_footfall(
    server: ServerProcess, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `footfall ARGS` against the server's backends and return the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "footfall", *args, *backend_args(server)],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
        env={**os.environ, **(env or {})},
    )


def stored_visits(server: ServerProcess) -> list[Visit]:
    """Read every visit in the server's event store."""
    if is_distributed(server):
        return harness_stored_visits(_option(server, "--database-url"))
    with contextlib.closing(sqlite3.connect(server.db_path)) as connection:
        rows = connection.execute(f"SELECT {VISIT_COLUMNS} FROM events").fetchall()
    return [Visit(*row) for row in rows]


def append_visits(server: ServerProcess, visits: Iterable[Visit]) -> None:
    """Append visits to the server's event log as they are, with their own timestamps.

    This is how a test gets visits that arrived days ago without waiting for days.
    """
    asyncio.run(_append(server, list(visits)))


async def _append(server: ServerProcess, visits: list[Visit]) -> None:
    if is_distributed(server):
        client = connect(_option(server, "--redis-url"))
        redis_log = RedisEventLog(client)
        redis_log.start()
        try:
            for visit in visits:
                await redis_log.append(visit)
        finally:
            await redis_log.close()
            await client.aclose()
        return

    database = SqliteDatabase(server.db_path)
    sqlite_log = SqliteEventLog(database)
    sqlite_log.start()
    try:
        for visit in visits:
            await sqlite_log.append(visit)
    finally:
        await sqlite_log.close()
        database.close()


def api_stats(client: httpx.Client, site: str) -> dict[str, Any]:
    response = client.get("/api/stats", params={"site": site, "limit": LATEST_VISITS_CAPACITY})
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def api_events(client: httpx.Client, site: str) -> list[dict[str, Any]]:
    """Return every visit `/api/events` lists for a site, walking all pages."""
    events: list[dict[str, Any]] = []
    params: dict[str, Any] = {"site": site, "limit": 1000}
    while True:
        response = client.get("/api/events", params=params)
        response.raise_for_status()
        page = response.json()
        events += page["events"]
        if page["next_cursor"] is None:
            return events
        params["cursor"] = page["next_cursor"]


def wait_until_counted(server: ServerProcess, client: httpx.Client, sites: Iterable[str]) -> None:
    """Wait until the consumers have stored and counted every visit in the log."""
    if is_distributed(server):
        wait_until_drained(_option(server, "--redis-url"), DRAIN_TIMEOUT_S)
        return

    def counted() -> bool:
        total = sum(api_stats(client, site)["total_visits"] for site in sites)
        return total == len(stored_visits(server))

    wait_for(counted, timeout_s=DRAIN_TIMEOUT_S)


def assert_stats_equal_recount(
    server: ServerProcess, client: httpx.Client, sites: Iterable[str]
) -> None:
    """Assert that `/api/stats` of each site equals a recount of the stored visits."""
    counted = recount(stored_visits(server))
    for site in sites:
        expected = StatsOut.of(counted.get(site, empty_stats(site))).model_dump(mode="json")
        actual = api_stats(client, site)
        assert actual["total_visits"] == expected["total_visits"], site
        assert actual["distinct_visitors"] == expected["distinct_visitors"], site
        assert actual["top_visitors"] == expected["top_visitors"], site
        assert actual["latest_visits"] == expected["latest_visits"], site
