"""Fill a fresh footfall database with synthetic visits, written straight into `events`.

Inserting rows with sqlite3 takes seconds for 10^6 visits, where POSTing them would take
minutes. `footfall stats rebuild` then recomputes the stats tables and sets the stats
consumer's offset, so a server started on the file begins with up-to-date stats.
"""

from __future__ import annotations

import random
import sqlite3
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from footfall.backends.sqlite_db import SCHEMA, VISIT_COLUMNS

from harness import run_command

SITE_WEIGHTS = {"default": 7, "blog": 2, "shop": 1}
VISITS_PER_VISITOR = 10
"""Visits divided by this is the number of visitor IPs to draw from."""

HISTORY_MS = 30 * 24 * 3600 * 1000
START_MS = 1_780_000_000_000
"""Visits are spread evenly over the 30 days after this fixed time, in `seq` order."""

PAGES = (
    ("https://example.com/", "Home"),
    ("https://example.com/pricing", "Pricing"),
    ("https://example.com/blog/launch", "We launched"),
    ("https://example.com/docs/install", "Install"),
    ("https://example.com/contact", "Contact"),
)
PLACES = (
    ("Europe/Berlin", 52.52, 13.405),
    ("America/New_York", 40.713, -74.006),
    ("Asia/Tokyo", 35.676, 139.65),
    ("Australia/Sydney", -33.869, 151.209),
    ("America/Sao_Paulo", -23.55, -46.633),
    ("Africa/Lagos", 6.524, 3.379),
)
REBUILD_TIMEOUT_S = 600.0


def fill_events(path: Path, visits: int, seed: int = 1) -> dict[str, int]:
    """Create the database at `path` with `visits` rows in `events` and return visits per site.

    Any file already at `path` is replaced. Visitor IPs are drawn with a skew, so a few
    visitors have many visits and most have a few, as on a real site.
    """
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)

    rng = random.Random(seed)
    sites = rng.choices(list(SITE_WEIGHTS), weights=list(SITE_WEIGHTS.values()), k=visits)

    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.executescript(SCHEMA)
        # A scratch file needs no crash safety while it is filled.
        connection.execute("PRAGMA journal_mode=OFF")
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("BEGIN")
        connection.executemany(
            f"INSERT INTO events ({VISIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            visit_rows(rng, sites),
        )
        connection.execute("COMMIT")
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()
    return dict(Counter(sites))


def rebuild_stats(path: Path) -> None:
    """Run `footfall stats rebuild` on the database, raising BenchmarkError if it fails."""
    run_command(
        [sys.executable, "-m", "footfall", "stats", "rebuild", "--db", str(path)],
        "footfall stats rebuild",
        REBUILD_TIMEOUT_S,
    )


def visit_rows(rng: random.Random, sites: list[str]) -> Iterator[tuple[object, ...]]:
    """Yield one row per site in `sites`, with the values in the order of VISIT_COLUMNS.

    Row N has the id N in hex, so the ids are unique and sort in insertion order.
    """
    visitors = max(1, len(sites) // VISITS_PER_VISITOR)
    step_ms = HISTORY_MS / max(1, len(sites))
    for index, site in enumerate(sites):
        # Squaring a uniform draw favours low visitor numbers: visitor k gets a share of
        # visits proportional to 1/sqrt(k), and nearly every visitor gets at least one.
        visitor = int(visitors * rng.random() ** 2)
        url, title = PAGES[index % len(PAGES)]
        timezone, latitude, longitude = PLACES[visitor % len(PLACES)]
        yield (
            f"{index:032x}",
            site,
            START_MS + int(index * step_ms),
            f"10.{(visitor >> 16) & 255}.{(visitor >> 8) & 255}.{visitor & 255}",
            timezone,
            None,
            latitude,
            longitude,
            url,
            "https://example.com/",
            title,
        )
