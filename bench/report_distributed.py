"""Result tables and checks of the distributed phases, printed with rich.

Every rate is shown beside its ceiling from the same run: the worker rates beside Redis's
and PostgreSQL's own rates for the same writes, and the distributed ingest beside two bare
ASGI apps under the same load.
"""

from __future__ import annotations

import pymongo
from rich.console import Console
from rich.table import Table

from footfall.log.base import STATS_GROUP, STORE_GROUP
from footfall.log.redis import GROUPS

from apply_rate import ApplyRun, CeilingResult, DrainResult
from distributed_ingest import DistributedRun, LoadResult
from ingest import MEASURED_SITE
from mongo_apply import MongoApplyRun
from report import INGEST_RATE_TARGET, Check

EXPECTED_WARNINGS = ("Redis has no persistence",)
"""Start-up warnings about the Redis configuration, which are unrelated to the measured run."""


def print_apply(console: Console, run: ApplyRun) -> None:
    """Print each group's worker rate beside its ceiling and the CPU behind it."""
    table = _apply_table(
        f"One footfall worker per group, {run.visits:,} visits pre-filled, "
        f"batches of up to {run.batch_size}",
        "PostgreSQL",
    )
    table.add_row(STATS_GROUP, *_apply_cells(run.stats, run.stats_ceiling))
    table.add_row(STORE_GROUP, *_apply_cells(run.store, run.store_ceiling))
    console.print(table)
    console.print(
        "stats ceiling: EVALSHA of footfall's APPLY_STATS script, same batches, commands "
        "encoded in advance.\nstore ceiling: COPY of the same rows into a table like events "
        "(same indexes), one transaction per batch, text encoded in advance."
    )
    console.print(f"Filling both streams took {run.fill_s:.1f} s.")


def print_mongodb_apply(console: Console, run: MongoApplyRun) -> None:
    """Print the store worker's rate on MongoDB beside the server's own insert_many."""
    table = _apply_table(
        f"footfall worker --group store on {run.server}, {run.visits:,} visits "
        f"pre-filled, batches of up to {run.batch_size}, write concern {run.write_concern}",
        "MongoDB server",
    )
    table.add_row(f"{STORE_GROUP} (MongoDB)", *_apply_cells(run.store, run.ceiling))
    console.print(table)
    console.print(
        "MongoDB store ceiling: insert_many of the same documents, BSON encoded in advance, "
        f"into a collection with the indexes of events, same batches and write concern. "
        f"pymongo {pymongo.version}."
    )


def mongodb_apply_checks(run: MongoApplyRun) -> list[Check]:
    """Return the checks that the worker and the ceiling stored every pre-filled visit."""
    return [
        Check(
            "MongoDB store worker: documents in events = visits in the stream",
            f"{run.stored_documents:,} / {run.visits:,}",
            run.stored_documents == run.visits,
        ),
        Check(
            "MongoDB ceiling wrote every visit",
            f"{run.ceiling.verified:,} / {run.visits:,}",
            run.ceiling.verified == run.visits,
        ),
        Check(
            "MongoDB phase: dead-lettered entries = 0",
            f"{run.dead_lettered:,}",
            run.dead_lettered == 0,
        ),
    ]


def _apply_table(title: str, database: str) -> Table:
    """Return an empty table of worker rates, with `database` naming the event store's CPU."""
    table = Table(title=title)
    table.add_column("group")
    columns = (
        "worker visits/s",
        "ceiling visits/s",
        "worker / ceiling",
        "worker CPU µs per visit",
        "Redis CPU µs per visit",
        f"{database} CPU µs per visit",
        "machine CPU busy",
        "other load, cores",
    )
    for column in columns:
        table.add_column(column, justify="right")
    return table


def _apply_cells(result: DrainResult, ceiling: CeilingResult) -> list[str]:
    return [
        f"{result.visits_per_s:,.0f}",
        f"{ceiling.visits_per_s:,.0f}",
        f"{result.visits_per_s / ceiling.visits_per_s:.2f}",
        _per_visit_us(result.worker_cpu_s, result.visits),
        _per_visit_us(result.redis_cpu_s, result.visits),
        _per_visit_us(result.database_cpu_s, result.visits),
        f"{result.machine_busy:.0%}" if result.machine_busy is not None else "n/a",
        f"{result.other_cores:.2f}" if result.other_cores is not None else "n/a",
    ]


def print_distributed_ingest(console: Console, run: DistributedRun, connections: int) -> None:
    """Print the distributed ingest beside the bare apps, the visibility lag and the counts."""
    table = Table(
        title=f"POST /api/events on 2 processes, 2 wrk with {connections} connections in all"
    )
    table.add_column("servers")
    columns = (
        "requests/s (sum)",
        "p50 ms (max)",
        "p99 ms (max)",
        "server CPU µs per request",
        "machine CPU busy",
        "other load, cores",
        "non-2xx",
        "socket errors",
    )
    for column in columns:
        table.add_column(column, justify="right")
    table.add_row("bare app x2 (ceiling)", *_load_cells(run.bare))
    table.add_row("footfall serve x2, worker x2", *_load_cells(run.footfall))
    table.add_row(
        "footfall / bare",
        f"{run.footfall.requests_per_s / run.bare.requests_per_s:.2f}",
        f"{run.footfall.p50_ms / run.bare.p50_ms:.2f}",
        f"{run.footfall.p99_ms / run.bare.p99_ms:.2f}",
        *([""] * 5),
    )
    console.print(table)

    probe = run.probe
    p50, p99 = probe.lag_percentile_ms(50), probe.lag_percentile_ms(99)
    lag = (
        f"p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {max(probe.lags_ms):.0f} ms"
        if p50 is not None and p99 is not None
        else "too few probe visits seen for percentiles"
    )
    read_p50 = probe.stats_read_p50_ms
    console.print(
        f"202 to visible in GET /api/stats: {lag} over {len(probe.lags_ms)} probe visits "
        f"({probe.sent} sent, {probe.failed} failed, {probe.missing} never seen). "
        f"The {probe.stats_reads} stats reads took "
        f"{f'{read_p50:.1f} ms' if read_p50 is not None else 'n/a'} at p50."
    )

    visits = run.footfall.accepted + run.probe_visits
    backlog = ", ".join(f"{group} {count:,}" for group, count in run.backlog_after_load.items())
    drain = f"{run.drain_s:.1f} s" if run.drain_s is not None else "did not finish"
    console.print(
        f"Backlog when the load stopped: {backlog}; drained in {drain}. From the start of the "
        f"load to the end of the drain, per visit: workers "
        f"{_per_visit_us(run.worker_cpu_s, visits)} µs, Redis "
        f"{_per_visit_us(run.redis_cpu_s, visits)} µs, PostgreSQL backends "
        f"{_per_visit_us(run.postgres_cpu_s, visits)} µs of CPU."
    )
    counts = run.counts
    batch = ", ".join(f"{group} {size:.0f}" for group, size in counts.mean_batch_size.items())
    accepted = f"{counts.accepted:,}" if counts.accepted is not None else "n/a"
    console.print(
        f"total_visits: {', '.join(f'{site} {n:,}' for site, n in run.total_visits.items())}; "
        f"wrk accepted {run.footfall.accepted:,} in the measured run and "
        f"{run.warmup_accepted:,} in the warm-up; rows in PostgreSQL {run.stored_rows:,}; "
        f"GET /metrics accepted {accepted}, "
        f"rejected {counts.rejected:,}; mean batch size {batch or 'n/a'}."
    )
    failures = run.metrics_scrape_failures
    console.print(
        f"GET /metrics once a second during the load: {run.metrics_scrapes} scrapes, "
        f"{len(failures)} not 200{f', first: {failures[0]}' if failures else ''}.",
        markup=False,
        highlight=False,
    )
    for log_name, lines in _unexpected_log_lines(run).items():
        console.print(f"[bold yellow]{len(lines)} warnings or errors in {log_name}[/], first:")
        console.print(lines[0], markup=False, highlight=False)


def _unexpected_log_lines(run: DistributedRun) -> dict[str, list[str]]:
    unexpected = {
        log_name: [line for line in lines if not any(text in line for text in EXPECTED_WARNINGS)]
        for log_name, lines in run.log_problems.items()
    }
    return {log_name: lines for log_name, lines in unexpected.items() if lines}


def _load_cells(result: LoadResult) -> list[str]:
    cpu_us = result.server_cpu_us_per_request
    return [
        f"{result.requests_per_s:,.0f}",
        f"{result.p50_ms:.2f}",
        f"{result.p99_ms:.2f}",
        f"{cpu_us:.0f}" if cpu_us is not None else "n/a",
        f"{result.machine_busy:.0%}" if result.machine_busy is not None else "n/a",
        f"{result.other_cores:.2f}" if result.other_cores is not None else "n/a",
        str(result.error_responses),
        str(result.socket_errors),
    ]


def _per_visit_us(cpu_s: float | None, visits: int) -> str:
    if cpu_s is None or visits == 0:
        return "n/a"
    return f"{cpu_s * 1e6 / visits:.0f}"


def apply_checks(run: ApplyRun) -> list[Check]:
    """Return the checks that the counts after both workers equal the pre-filled visits."""
    return [
        Check(
            "stats worker: sum of total_visits = visits in the stream",
            f"{run.stats_total_visits:,} / {run.visits:,}",
            run.stats_total_visits == run.visits,
        ),
        Check(
            "store worker: rows in events = visits in the stream",
            f"{run.stored_rows:,} / {run.visits:,}",
            run.stored_rows == run.visits,
        ),
        Check(
            "ceilings wrote every visit",
            f"{run.stats_ceiling.verified:,} and {run.store_ceiling.verified:,}",
            run.stats_ceiling.verified == run.visits and run.store_ceiling.verified == run.visits,
        ),
        Check(
            "apply phase: dead-lettered entries = 0",
            f"{run.dead_lettered:,}",
            run.dead_lettered == 0,
        ),
    ]


def distributed_ingest_checks(run: DistributedRun, connections: int) -> list[Check]:
    """Return the rate target and the checks that no accepted visit was lost or doubled."""
    footfall = run.footfall
    ratio = footfall.requests_per_s / run.bare.requests_per_s
    # As in the embedded phase, requests in flight at wrk's deadline are accepted but not
    # counted by wrk: at most one per connection.
    uncounted = run.total_visits[MEASURED_SITE] - footfall.accepted
    all_visits = sum(run.total_visits.values())
    counts = run.counts
    unexpected = _unexpected_log_lines(run)
    checks = [
        Check(
            f"distributed ingest requests/s footfall / bare >= {INGEST_RATE_TARGET:g}",
            f"{ratio:.2f}",
            ratio >= INGEST_RATE_TARGET,
        ),
        Check(
            "distributed non-2xx responses = 0",
            str(footfall.error_responses),
            footfall.error_responses == 0,
        ),
        Check(
            "distributed socket errors = 0",
            str(footfall.socket_errors),
            footfall.socket_errors == 0,
        ),
        Check(
            f"distributed total_visits - accepted counted by wrk in 0..{connections}",
            f"{uncounted:+,}",
            0 <= uncounted <= connections,
        ),
        Check(
            "distributed: both groups drained after the load",
            f"{run.drain_s:.1f} s" if run.drain_s is not None else "timed out",
            run.drain_s is not None,
        ),
        Check(
            "distributed: rows in PostgreSQL = total_visits of all sites",
            f"{run.stored_rows:,} / {all_visits:,}",
            run.stored_rows == all_visits,
        ),
        Check(
            "distributed: /metrics accepted = total_visits of all sites",
            f"{counts.accepted:,} / {all_visits:,}" if counts.accepted is not None else "n/a",
            counts.accepted == all_visits,
        ),
        Check("distributed: /metrics rejected = 0", f"{counts.rejected:,}", counts.rejected == 0),
        Check(
            "distributed: /metrics backlog and dead letters = 0 per group",
            ", ".join(
                f"{group} {counts.backlog.get(group, 'n/a')}/"
                f"{counts.dead_lettered.get(group, 'n/a')}"
                for group in GROUPS
            ),
            all(
                counts.backlog.get(group) == 0 and counts.dead_lettered.get(group) == 0
                for group in GROUPS
            ),
        ),
        Check(
            "distributed: every accepted probe visit showed in /api/stats",
            f"{len(run.probe.lags_ms)} / {run.probe.accepted}",
            run.probe.missing == 0 and run.probe.failed == 0,
        ),
        Check(
            "distributed: GET /metrics during the load returned 200",
            f"{run.metrics_scrapes - len(run.metrics_scrape_failures)} / {run.metrics_scrapes}",
            not run.metrics_scrape_failures,
        ),
        Check(
            "distributed: no WARNING or ERROR lines in footfall's logs",
            str(sum(len(lines) for lines in unexpected.values())),
            not unexpected,
        ),
    ]
    return checks
