"""Result tables and target checks of the benchmark run, printed with rich.

Every figure is shown beside its reference from the same run: stats latency beside the
smallest database's, footfall's ingest beside the bare app's.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from ingest import IngestRun, WrkResult
from stats_latency import StatsRun

STATS_P50_GROWTH_TARGET = 2.0
"""The largest database's stats p50 may be at most this multiple of the smallest's."""

INGEST_RATE_TARGET = 0.6
"""footfall's ingest requests/s must be at least this fraction of the bare app's."""


@dataclass(frozen=True)
class Check:
    """One target or correctness check and whether this run met it."""

    name: str
    measured: str
    met: bool


def print_stats(console: Console, runs: list[StatsRun]) -> None:
    """Print the stats latency per database size, relative to the smallest size."""
    reference = runs[0]
    requests = reference.stats.requests
    table = Table(title=f"GET /api/stats?site=default, {requests} sequential requests per size")
    for column in ("visits stored", "p50 ms", "p50 vs smallest", "p99 ms", "p99 vs smallest"):
        table.add_column(column, justify="right")
    table.add_column("GET /healthz p50 ms", justify="right")
    table.add_column("fill + rebuild s", justify="right")

    for run in runs:
        table.add_row(
            f"{run.visits:,}",
            f"{run.stats.p50_ms:.2f}",
            f"{run.stats.p50_ms / reference.stats.p50_ms:.2f}x",
            f"{run.stats.p99_ms:.2f}",
            f"{run.stats.p99_ms / reference.stats.p99_ms:.2f}x",
            f"{run.health.p50_ms:.2f}",
            f"{run.fill_s:.1f} + {run.rebuild_s:.1f}",
        )
    console.print(table)


def print_ingest(console: Console, run: IngestRun, connections: int) -> None:
    """Print footfall's and the bare app's ingest figures, and footfall's counts."""
    table = Table(title=f"POST /api/events with wrk, {connections} connections")
    table.add_column("server")
    columns = (
        "requests/s",
        "p50 ms",
        "p99 ms",
        "server CPU µs per request",
        "machine CPU busy",
        "non-2xx",
        "socket errors",
    )
    for column in columns:
        table.add_column(column, justify="right")

    bare, footfall = run.bare, run.footfall
    table.add_row("bare ASGI app (ceiling)", *_ingest_cells(bare))
    table.add_row("footfall serve", *_ingest_cells(footfall))
    bare_cpu, footfall_cpu = bare.server_cpu_us_per_request, footfall.server_cpu_us_per_request
    table.add_row(
        "footfall / bare",
        f"{footfall.requests_per_s / bare.requests_per_s:.2f}",
        f"{footfall.p50_ms / bare.p50_ms:.2f}",
        f"{footfall.p99_ms / bare.p99_ms:.2f}",
        f"{footfall_cpu / bare_cpu:.2f}" if footfall_cpu and bare_cpu else "",
        "",
        "",
        "",
    )
    console.print(table)
    for name, result in (("bare app", bare), ("footfall", footfall)):
        if result.error_responses or result.socket_errors:
            console.print(
                f"[bold yellow]warning:[/] {name} had {result.error_responses} responses with "
                f"status 400 or more and {result.socket_errors} socket errors"
            )

    console.print(
        f"footfall, measured run: {footfall.accepted:,} accepted responses counted by wrk, "
        f"total_visits {run.measured_total_visits:,} after the stats consumer caught up."
    )
    console.print(
        f"footfall, warm-up: {run.warmup_accepted:,} accepted responses counted by wrk, "
        f"total_visits {run.warmup_total_visits:,}."
    )
    counts = run.server_counts
    if counts is None:
        console.print("[yellow]footfall's GET /metrics did not report accepted visits.[/]")
        return
    backlog = "not reported" if counts.stats_backlog is None else f"{counts.stats_backlog:,}"
    console.print(
        f"footfall's GET /metrics: {counts.accepted:,} accepted, {counts.rejected:,} rejected, "
        f"stats backlog {backlog}."
    )


def _ingest_cells(result: WrkResult) -> list[str]:
    cpu_us = result.server_cpu_us_per_request
    return [
        f"{result.requests_per_s:,.0f}",
        f"{result.p50_ms:.2f}",
        f"{result.p99_ms:.2f}",
        f"{cpu_us:.0f}" if cpu_us is not None else "n/a",
        f"{result.machine_busy:.0%}" if result.machine_busy is not None else "n/a",
        str(result.error_responses),
        str(result.socket_errors),
    ]


def collect_checks(
    stats_runs: list[StatsRun], ingest_run: IngestRun | None, connections: int
) -> list[Check]:
    """Return the targets and correctness checks that this run's phases can decide."""
    checks = [
        Check(
            f"{run.visits:,} visits: total_visits equals the visits written",
            f"{run.reported_total_visits:,} of {run.expected_total_visits:,}",
            run.reported_total_visits == run.expected_total_visits,
        )
        for run in stats_runs
    ]
    if len(stats_runs) > 1:
        smallest, largest = stats_runs[0], stats_runs[-1]
        growth = largest.stats.p50_ms / smallest.stats.p50_ms
        checks.append(
            Check(
                f"stats p50 at {largest.visits:,} / at {smallest.visits:,} "
                f"<= {STATS_P50_GROWTH_TARGET:g}",
                f"{growth:.2f}",
                growth <= STATS_P50_GROWTH_TARGET,
            )
        )
    if ingest_run is not None:
        checks.extend(_ingest_checks(ingest_run, connections))
    return checks


def _ingest_checks(run: IngestRun, connections: int) -> list[Check]:
    footfall = run.footfall
    rate_ratio = footfall.requests_per_s / run.bare.requests_per_s
    # wrk stops counting at the deadline, but the server still accepts the requests that
    # were in flight then: at most one per connection.
    uncounted = run.measured_total_visits - footfall.accepted
    checks = [
        Check(
            f"ingest requests/s footfall / bare >= {INGEST_RATE_TARGET:g}",
            f"{rate_ratio:.2f}",
            rate_ratio >= INGEST_RATE_TARGET,
        ),
        Check(
            "footfall non-2xx responses = 0",
            str(footfall.error_responses),
            footfall.error_responses == 0,
        ),
        Check(
            "footfall socket errors = 0", str(footfall.socket_errors), footfall.socket_errors == 0
        ),
        Check(
            f"total_visits - accepted counted by wrk in 0..{connections}",
            f"{uncounted:+,}",
            0 <= uncounted <= connections,
        ),
    ]
    counts = run.server_counts
    if counts is not None:
        counted = run.measured_total_visits + run.warmup_total_visits
        checks.append(
            Check(
                "/metrics accepted = total_visits of measured and warm-up sites",
                f"{counts.accepted:,} / {counted:,}",
                counts.accepted == counted,
            )
        )
        checks.append(Check("/metrics rejected = 0", f"{counts.rejected:,}", counts.rejected == 0))
    if counts is not None and counts.stats_backlog is not None:
        checks.append(
            Check(
                "/metrics stats backlog = 0 after the drain",
                f"{counts.stats_backlog:,}",
                counts.stats_backlog == 0,
            )
        )
    return checks


def print_checks(console: Console, checks: list[Check]) -> None:
    """Print each check with a clear MISSED for the ones this run did not meet."""
    table = Table(title="Targets and checks")
    table.add_column("check")
    table.add_column("measured", justify="right")
    table.add_column("result")
    for check in checks:
        table.add_row(check.name, check.measured, "met" if check.met else "[bold red]MISSED[/]")
    console.print(table)

    missed = [check.name for check in checks if not check.met]
    if missed:
        console.print(f"[bold red]{len(missed)} of {len(checks)} missed:[/] " + "; ".join(missed))
