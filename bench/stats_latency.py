"""The read benchmark: latency of `GET /api/stats` with 10^3 to 10^6 visits stored.

The stats endpoint reads bounded tables, so its latency should barely grow with the number
of stored visits. Requests are sent one after another on one keep-alive connection, which
measures the latency of one request with no queueing behind others.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console

from fill import fill_events, rebuild_stats
from harness import BenchmarkError, create_read_token, footfall_command, running_server

STATS_PATH = "/api/stats?site=default"
HEALTH_PATH = "/healthz"
WARMUP_REQUESTS = 50


@dataclass(frozen=True)
class LatencySample:
    """Latency of one path over `requests` sequential requests, in milliseconds."""

    requests: int
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True)
class StatsRun:
    """The stats latency with `visits` stored, and the facts needed to trust it."""

    visits: int
    stats: LatencySample
    health: LatencySample
    expected_total_visits: int
    reported_total_visits: int
    fill_s: float
    rebuild_s: float


def benchmark_stats(console: Console, work_dir: Path, visits: int, requests: int) -> StatsRun:
    """Fill a database with `visits`, serve it with footfall and measure `GET /api/stats`."""
    db_path = work_dir / f"stats-{visits}.db"

    started = time.perf_counter()
    with console.status(f"Writing {visits:,} visits to {db_path.name}"):
        per_site = fill_events(db_path, visits)
    fill_s = time.perf_counter() - started

    started = time.perf_counter()
    with console.status(f"Running footfall stats rebuild on {visits:,} visits"):
        rebuild_stats(db_path)
    rebuild_s = time.perf_counter() - started
    console.log(f"{visits:,} visits: filled in {fill_s:.1f} s, stats rebuilt in {rebuild_s:.1f} s")

    log_path = work_dir / f"footfall-stats-{visits}.log"
    token = create_read_token(["--db", str(db_path)])
    with (
        console.status(f"Measuring GET {STATS_PATH} with {visits:,} visits stored"),
        running_server("footfall serve", footfall_command(db_path), log_path, token) as server,
        httpx.Client(base_url=server.base_url, headers=server.headers, timeout=10.0) as client,
    ):
        reported_total = client.get(STATS_PATH).json()["total_visits"]
        stats = measure_latency(client, STATS_PATH, requests)
        health = measure_latency(client, HEALTH_PATH, requests)

    return StatsRun(
        visits=visits,
        stats=stats,
        health=health,
        expected_total_visits=per_site.get("default", 0),
        reported_total_visits=int(reported_total),
        fill_s=fill_s,
        rebuild_s=rebuild_s,
    )


def measure_latency(client: httpx.Client, path: str, requests: int) -> LatencySample:
    """Send WARMUP_REQUESTS, then time `requests` sequential GETs.

    A status other than 200 raises BenchmarkError.
    """
    for _ in range(WARMUP_REQUESTS):
        _get(client, path)

    latencies_ms: list[float] = []
    for _ in range(requests):
        started_ns = time.perf_counter_ns()
        _get(client, path)
        latencies_ms.append((time.perf_counter_ns() - started_ns) / 1e6)

    # 99 cut points: index 49 is the median, index 98 the 99th percentile.
    cuts = statistics.quantiles(latencies_ms, n=100, method="inclusive")
    return LatencySample(requests=requests, p50_ms=cuts[49], p99_ms=cuts[98])


def _get(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    if response.status_code != 200:
        raise BenchmarkError(f"GET {path} returned {response.status_code}: {response.text[:300]}")
