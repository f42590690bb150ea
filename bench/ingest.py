"""The ingest benchmark: wrk POSTs one visit per request to footfall and to the bare app.

Both servers get the same warm-up and the same measured run, one after the other, so the
bare app's figures are the ceiling for this machine at this moment. After footfall's run,
the stats endpoint must count every visit that wrk saw accepted.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
from rich.console import Console

from footfall.log.base import STATS_GROUP

from harness import (
    BenchmarkError,
    Server,
    bare_app_command,
    create_read_token,
    footfall_command,
    machine_cpu_ticks,
    process_cpu_s,
    run_command,
    running_server,
)

WRK_SCRIPT = Path(__file__).with_name("post_visit.lua")
RESULT_MARKER = "BENCH_RESULT "
INGEST_PATH = "/api/events"
MEASURED_SITE = "default"
WARMUP_SITE = "warmup"
DRAIN_TIMEOUT_S = 60.0
DRAIN_STABLE_READS = 4
"""The stats total counts as final after this many equal reads, 0.5 s apart."""

METRIC_LINE = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")
"""One sample line of the Prometheus text format, without a timestamp."""


@dataclass(frozen=True)
class WrkOptions:
    """wrk settings: threads, open connections, and seconds of warm-up and of the measured run."""

    executable: str
    threads: int
    connections: int
    duration_s: int
    warmup_s: int


@dataclass(frozen=True)
class WrkResult:
    """One wrk run, as its script's `done()` reports it."""

    requests: int
    duration_s: float
    error_responses: int
    """Responses with a status of 400 or more (wrk's "Non-2xx or 3xx responses")."""
    socket_errors: int
    """Failed connects, reads and writes, and requests that timed out."""
    p50_ms: float
    p99_ms: float
    output: str
    server_cpu_s: float | None = None
    """CPU seconds the server process used during the run over all its threads, or None
    where /proc does not exist."""
    machine_busy: float | None = None
    """Fraction of the machine's CPU time that was not idle during the run, from 0 to 1."""

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.duration_s

    @property
    def server_cpu_us_per_request(self) -> float | None:
        if self.server_cpu_s is None or self.requests == 0:
            return None
        return self.server_cpu_s * 1e6 / self.requests

    @property
    def accepted(self) -> int:
        """Completed requests without an error status, which are 202s from both servers."""
        return self.requests - self.error_responses


@dataclass(frozen=True)
class ServerCounts:
    """footfall's own counts from `GET /metrics`, read after its stats consumer caught up."""

    accepted: int
    rejected: int
    stats_backlog: int | None
    """Entries the stats consumer group has not acknowledged, None if not reported."""


@dataclass(frozen=True)
class IngestRun:
    """footfall's and the bare app's ingest figures from the same run, and the count check."""

    bare: WrkResult
    footfall: WrkResult
    measured_total_visits: int
    warmup_total_visits: int
    warmup_accepted: int
    server_counts: ServerCounts | None
    """None when the server has no `/metrics` or it lacks the accepted-visits counter."""


def find_wrk() -> str:
    """Return the path of wrk, or raise BenchmarkError saying how to install it."""
    executable = shutil.which("wrk")
    if executable is None:
        raise BenchmarkError(
            "wrk not found on PATH. Install it with scripts/install-bench-tools as root "
            "(or `sudo apt-get install wrk`), then run the benchmark again."
        )
    return executable


def benchmark_ingest(console: Console, work_dir: Path, options: WrkOptions) -> IngestRun:
    """Measure the bare app, then footfall on an empty database, and check footfall's counts."""
    bare_log = work_dir / "bare-app.log"
    with running_server("bare app", bare_app_command, bare_log) as server:
        _run_wrk(console, server, options, WARMUP_SITE, options.warmup_s)
        bare = _run_wrk(console, server, options, MEASURED_SITE, options.duration_s)
    (work_dir / "wrk-bare-app.txt").write_text(bare.output)

    db_path = work_dir / "ingest.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    footfall_log = work_dir / "footfall-ingest.log"
    token = create_read_token(["--db", str(db_path)])
    with running_server("footfall serve", footfall_command(db_path), footfall_log, token) as server:
        warmup = _run_wrk(console, server, options, WARMUP_SITE, options.warmup_s)
        footfall = _run_wrk(console, server, options, MEASURED_SITE, options.duration_s)
        with console.status("Waiting for footfall's stats consumer to catch up"):
            measured_total = _wait_for_final_total(server, MEASURED_SITE)
            warmup_total = _read_total(server, WARMUP_SITE)
            server_counts = _read_server_counts(server)
    (work_dir / "wrk-footfall.txt").write_text(footfall.output)

    return IngestRun(
        bare=bare,
        footfall=footfall,
        measured_total_visits=measured_total,
        warmup_total_visits=warmup_total,
        warmup_accepted=warmup.accepted,
        server_counts=server_counts,
    )


def _run_wrk(
    console: Console, server: Server, options: WrkOptions, site: str, duration_s: int
) -> WrkResult:
    phase = "warm-up" if site == WARMUP_SITE else "measured run"
    command = wrk_command(options, server.base_url, site, duration_s)
    label = f"{server.name}: {phase}, {duration_s} s at {options.connections} connections"
    with console.status(label):
        cpu_before_s = process_cpu_s(server.pid)
        ticks_before = machine_cpu_ticks()
        output = run_command(command, f"wrk against {server.name}", timeout_s=duration_s + 60)
        cpu_after_s = process_cpu_s(server.pid)
        ticks_after = machine_cpu_ticks()

    result = parse_wrk_output(output)
    if cpu_before_s is not None and cpu_after_s is not None:
        result = replace(result, server_cpu_s=cpu_after_s - cpu_before_s)
    if ticks_before is not None and ticks_after is not None:
        total = ticks_after[0] - ticks_before[0]
        idle = ticks_after[1] - ticks_before[1]
        result = replace(result, machine_busy=1 - idle / total if total else None)
    return result


def wrk_command(options: WrkOptions, base_url: str, site: str, duration_s: int) -> list[str]:
    """Return the wrk command line that POSTs visits of `site` to `base_url` for `duration_s`."""
    return [
        options.executable,
        f"--threads={options.threads}",
        f"--connections={options.connections}",
        f"--duration={duration_s}s",
        "--latency",
        f"--script={WRK_SCRIPT}",
        f"{base_url}{INGEST_PATH}",
        "--",
        site,
    ]


def parse_wrk_output(output: str) -> WrkResult:
    """Parse the result line that the done() function of post_visit.lua prints."""
    lines = [line for line in output.splitlines() if line.startswith(RESULT_MARKER)]
    if not lines:
        raise BenchmarkError(f"wrk printed no {RESULT_MARKER.strip()} line:\n{output}")

    result = json.loads(lines[-1].removeprefix(RESULT_MARKER))
    errors = result["errors"]
    latency_us = result["latency_us"]
    return WrkResult(
        requests=result["requests"],
        duration_s=result["duration_us"] / 1e6,
        error_responses=errors["status"],
        socket_errors=errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
        p50_ms=latency_us["p50"] / 1000,
        p99_ms=latency_us["p99"] / 1000,
        output=output,
    )


def _wait_for_final_total(server: Server, site: str) -> int:
    """Poll the site's `total_visits` until DRAIN_STABLE_READS reads in a row are equal.

    A total that no longer changes after the load stopped means the stats consumer caught up.
    """
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    previous = -1
    equal_reads = 0
    while time.monotonic() < deadline:
        total = _read_total(server, site)
        equal_reads = equal_reads + 1 if total == previous else 0
        if equal_reads >= DRAIN_STABLE_READS:
            return total
        previous = total
        time.sleep(0.5)
    raise BenchmarkError(
        f"total_visits of site {site!r} was still changing {DRAIN_TIMEOUT_S:.0f} s after the run"
    )


def _read_total(server: Server, site: str) -> int:
    response = httpx.get(
        f"{server.base_url}/api/stats", params={"site": site}, headers=server.headers, timeout=10.0
    )
    if response.status_code != 200:
        raise BenchmarkError(
            f"GET /api/stats?site={site} returned {response.status_code}: {response.text[:300]}"
        )
    return int(response.json()["total_visits"])


def _read_server_counts(server: Server) -> ServerCounts | None:
    response = httpx.get(f"{server.base_url}/metrics", headers=server.headers, timeout=10.0)
    if response.status_code != 200:
        return None

    accepted: int | None = None
    rejected = 0
    stats_backlog: int | None = None
    for line in response.text.splitlines():
        match = METRIC_LINE.match(line)
        if match is None:
            continue
        name, labels, value = match["name"], match["labels"] or "", int(float(match["value"]))
        if name == "footfall_events_accepted_total":
            accepted = value
        elif name == "footfall_events_rejected_total":
            rejected += value
        elif name == "footfall_backlog_entries" and f'group="{STATS_GROUP}"' in labels:
            stats_backlog = value

    if accepted is None:
        return None
    return ServerCounts(accepted, rejected, stats_backlog)
