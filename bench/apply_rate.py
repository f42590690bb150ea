"""The worker apply rate: how fast one `footfall worker` empties a pre-filled stream.

The stream contains N visits before the worker starts, so no ingest competes with it. The
rate is the entries the group acknowledged from the first poll that showed progress until
its backlog was 0, divided by that time, so the worker's start-up is left out. Each group
is measured with a worker that runs that group alone, then compared with a ceiling measured
right after it in the same run:

- stats: EVALSHA of footfall's own APPLY_STATS script, with batches of the worker's size,
  on a second stream holding the same visits. Its entries are made pending before the clock
  starts and the commands are encoded in advance, so the ceiling is Redis's own time to
  run the script.
- store: COPY of the same rows into a table with the columns and indexes of `events`, with
  batches of the worker's size and one transaction each, from text encoded in advance.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import redis
from psycopg import sql
from rich.console import Console

from footfall.backends import redis_keys as keys
from footfall.backends.redis_client import text
from footfall.backends.redis_scripts import APPLY_STATS
from footfall.consumers.loop import BatchPolicy
from footfall.log.base import STATS_GROUP, STORE_GROUP
from footfall.model import LATEST_VISITS_CAPACITY, VISIT_COLUMNS, Visit
from footfall.stats.redis import latest_member

from harness import (
    BenchmarkError,
    busy_cpu_s,
    busy_fraction,
    ensure_running,
    footfall_worker_command,
    log_tail,
    machine_cpu_ticks,
    own_cpu_s,
    process_cpu_s,
    run_command,
    running_process,
)
from services import (
    BENCH_KEY_PREFIX,
    append_visits,
    cpu_used_s,
    create_groups,
    flush_redis,
    group_states,
    open_redis,
    postgres_backend_cpu_s,
    redis_cpu_s,
    scratch_database,
    scratch_database_name,
    synthetic_visits,
)

BATCH_SIZE = BatchPolicy().max_batch
"""The worker's default batch size, which the ceilings use too."""

POLL_INTERVAL_S = 0.02
MIN_DRAIN_TIMEOUT_S = 120.0
STUCK_RATE = 500
"""Visits/s so far below any rate measured that a worker this slow counts as stuck, which
sets the drain timeout for large fills."""
CEILING_STREAM = f"{BENCH_KEY_PREFIX}{{ceiling}}:events"
CEILING_REBUILD_FLAG = f"{BENCH_KEY_PREFIX}{{ceiling}}:rebuild"
CEILING_SITES = f"{BENCH_KEY_PREFIX}ceiling:stats:sites"
CEILING_ERASED = f"{BENCH_KEY_PREFIX}{{ceiling}}:erased"
CEILING_TABLE = "bench_copy_ceiling"
EVALSHA_PIPELINE = 2
"""EVALSHA calls in flight, so Redis has the next batch while it replies to one."""

READ_ENTRIES = """
local reply = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3],
  'STREAMS', KEYS[1], '>')
if not reply then
  return 0
end
return #reply[1][2]
"""
"""Deliver entries to a consumer inside Redis, so they become pending without being sent."""


@dataclass(frozen=True)
class DrainResult:
    """One worker emptying its group's backlog, with the CPU the processes used meanwhile."""

    group: str
    visits: int
    """Entries acknowledged between the first poll that showed progress and the last."""
    seconds: float
    worker_cpu_s: float | None
    redis_cpu_s: float
    """CPU of the whole Redis server, which other clients may share."""
    database_cpu_s: float | None
    """CPU of the event store's server processes serving the worker (the PostgreSQL backends,
    or the MongoDB server), or None for the stats group."""
    machine_busy: float | None
    other_cores: float | None
    """CPU that processes outside the benchmark used meanwhile, in cores."""

    @property
    def visits_per_s(self) -> float:
        return self.visits / self.seconds


@dataclass(frozen=True)
class CeilingResult:
    """The backend alone doing the same writes for the same visits."""

    visits: int
    seconds: float
    verified: int
    """Visits the backend reports as written: applied by the script, or rows in the table."""

    @property
    def visits_per_s(self) -> float:
        return self.visits / self.seconds


@dataclass(frozen=True)
class ApplyRun:
    """Both groups' worker rates and ceilings, and the counts that show nothing was lost."""

    visits: int
    batch_size: int
    fill_s: float
    stats: DrainResult
    stats_ceiling: CeilingResult
    store: DrainResult
    store_ceiling: CeilingResult
    stats_total_visits: int
    """Sum of `total_visits` over the sites once the stats worker has finished."""
    stored_rows: int
    dead_lettered: int


def benchmark_apply(
    console: Console, work_dir: Path, redis_url: str, admin_url: str, visits: int
) -> ApplyRun:
    """Fill the stream with `visits`, then time a stats worker and a store worker on it."""
    client = open_redis(redis_url)
    database = scratch_database_name("apply")
    try:
        flush_redis(client)
        with scratch_database(admin_url, database) as database_url:
            return _run(
                console, work_dir, client, redis_url, admin_url, database, database_url, visits
            )
    finally:
        flush_redis(client)
        client.close()


def _run(
    console: Console,
    work_dir: Path,
    client: redis.Redis,
    redis_url: str,
    admin_url: str,
    database: str,
    database_url: str,
    count: int,
) -> ApplyRun:
    visits = synthetic_visits(count)
    with console.status(f"Appending {count:,} visits to {keys.STREAM} and to {CEILING_STREAM}"):
        started = time.perf_counter()
        entry_ids = append_visits(client, keys.STREAM, visits)
        ceiling_ids = append_visits(client, CEILING_STREAM, visits)
        fill_s = time.perf_counter() - started
    create_groups(client, keys.STREAM)
    create_groups(client, CEILING_STREAM, [STATS_GROUP])
    run_command(
        [sys.executable, "-m", "footfall", "db", "migrate", "--database-url", database_url],
        "footfall db migrate",
        timeout_s=60,
    )
    console.log(f"{count:,} visits appended to both streams in {fill_s:.1f} s")

    def drain(group: str) -> DrainResult:
        command = footfall_worker_command(redis_url, database_url, [group])
        database_cpu = (
            functools.partial(postgres_backend_cpu_s, admin_url, database)
            if group == STORE_GROUP
            else None
        )
        return drain_group(console, work_dir, client, command, group, count, database_cpu)

    stats = drain(STATS_GROUP)
    stats_total = _stats_total(client)
    stats_ceiling = _stats_ceiling(console, client, visits, ceiling_ids)
    store = drain(STORE_GROUP)
    stored_rows = _count_rows(database_url, "events")
    store_ceiling = _store_ceiling(console, database_url, visits, entry_ids)
    return ApplyRun(
        visits=count,
        batch_size=BATCH_SIZE,
        fill_s=fill_s,
        stats=stats,
        stats_ceiling=stats_ceiling,
        store=store,
        store_ceiling=store_ceiling,
        stats_total_visits=stats_total,
        stored_rows=stored_rows,
        dead_lettered=int(client.xlen(keys.DEAD_LETTER_STREAM)),
    )


@dataclass(frozen=True)
class _Sample:
    at: float
    backlog: int
    worker_cpu_s: float | None
    redis_cpu_s: float
    database_cpu: dict[int, float] | None
    ticks: tuple[int, int] | None
    own_cpu_s: float


def drain_group(
    console: Console,
    work_dir: Path,
    client: redis.Redis,
    command: list[str],
    group: str,
    count: int,
    database_cpu: Callable[[], dict[int, float]] | None,
) -> DrainResult:
    """Run `command`, a worker of `group` alone, until the group's backlog is 0, and time it.

    `database_cpu` returns the CPU seconds so far of each event store server process, by pid.
    """
    name = f"footfall worker --group {group}"
    log_path = work_dir / f"worker-{group}.log"
    timeout_s = max(MIN_DRAIN_TIMEOUT_S, count / STUCK_RATE)

    def sample(at: float, backlog: int, pid: int) -> _Sample:
        return _Sample(
            at,
            backlog,
            process_cpu_s(pid),
            redis_cpu_s(client),
            database_cpu() if database_cpu else None,
            machine_cpu_ticks(),
            own_cpu_s(),
        )

    with (
        console.status(f"{name}: applying {count:,} visits"),
        running_process(name, command, log_path) as process,
    ):
        started = time.perf_counter()
        first: _Sample | None = None
        while True:
            ensure_running(name, process, log_path)
            backlog = group_states(client)[group].backlog
            now = time.perf_counter()
            if first is None and backlog < count:
                first = sample(now, backlog, process.pid)
            if backlog == 0:
                break
            if now - started > timeout_s:
                raise BenchmarkError(
                    f"the backlog of group {group} was still {backlog:,} of {count:,} after "
                    f"{timeout_s:.0f} s. Last lines of {log_path}:\n{log_tail(log_path)}"
                )
            time.sleep(POLL_INTERVAL_S)
        last = sample(now, 0, process.pid)

    assert first is not None
    if first.backlog == 0:
        raise BenchmarkError(
            f"{name} applied all {count:,} visits before the first poll: use more visits"
        )
    seconds = last.at - first.at
    worker_cpu_s = _difference(first.worker_cpu_s, last.worker_cpu_s)
    redis_used_s = last.redis_cpu_s - first.redis_cpu_s
    database_used_s = (
        cpu_used_s(first.database_cpu, last.database_cpu)
        if first.database_cpu is not None and last.database_cpu is not None
        else None
    )
    busy_s = busy_cpu_s(first.ticks, last.ticks)
    other_cores = None
    if busy_s is not None and worker_cpu_s is not None:
        known_s = worker_cpu_s + redis_used_s + (database_used_s or 0.0)
        other_cores = (busy_s - known_s - (last.own_cpu_s - first.own_cpu_s)) / seconds
    result = DrainResult(
        group=group,
        visits=first.backlog,
        seconds=seconds,
        worker_cpu_s=worker_cpu_s,
        redis_cpu_s=redis_used_s,
        database_cpu_s=database_used_s,
        machine_busy=busy_fraction(first.ticks, last.ticks),
        other_cores=other_cores,
    )
    console.log(f"{name}: {result.visits_per_s:,.0f} visits/s")
    return result


def _stats_ceiling(
    console: Console, client: redis.Redis, visits: Sequence[Visit], entry_ids: Sequence[str]
) -> CeilingResult:
    delivered = 0
    while True:
        # Chunks keep each script short, because Redis serves no other client while it runs.
        count = client.eval(READ_ENTRIES, 1, CEILING_STREAM, STATS_GROUP, "ceiling", 5000)
        if not count:
            break
        delivered += int(count)  # type: ignore[arg-type]
    if delivered != len(entry_ids):
        raise BenchmarkError(
            f"the ceiling stream delivered {delivered} of {len(entry_ids)} entries"
        )

    sha = client.script_load(APPLY_STATS)
    connection = client.connection_pool.get_connection()
    try:
        batches = [
            connection.pack_command(
                *_apply_command(
                    sha, visits[start : start + BATCH_SIZE], entry_ids[start : start + BATCH_SIZE]
                )
            )
            for start in range(0, len(visits), BATCH_SIZE)
        ]
        with console.status(f"Stats ceiling: EVALSHA APPLY_STATS on {len(visits):,} visits"):
            started = time.perf_counter()
            applied = _send_pipelined(connection, batches)
            seconds = time.perf_counter() - started
    finally:
        client.connection_pool.release(connection)
    result = CeilingResult(len(visits), seconds, applied)
    console.log(f"stats ceiling: {result.visits_per_s:,.0f} visits/s")
    return result


def _apply_command(sha: str, visits: Sequence[Visit], entry_ids: Sequence[str]) -> list[Any]:
    # The same keys and arguments as RedisStatsStore.apply_batch builds, on keys of the
    # ceiling's own.
    sites: list[str] = []
    site_numbers: dict[str, int] = {}
    arguments: list[Any] = []
    for visit, entry_id in zip(visits, entry_ids, strict=True):
        if visit.site not in site_numbers:
            sites.append(visit.site)
            site_numbers[visit.site] = len(sites)
        arguments += [
            entry_id,
            site_numbers[visit.site],
            visit.ip,
            visit.email or "",
            visit.received_at_ms,
            latest_member(visit),
        ]
    script_keys = [CEILING_STREAM, CEILING_REBUILD_FLAG, CEILING_SITES, CEILING_ERASED]
    for site in sites:
        base = f"{BENCH_KEY_PREFIX}ceiling:stats:{{{site}}}"
        script_keys += [
            f"{base}:visitors",
            f"{base}:last_visit",
            f"{base}:latest",
            f"{base}:totals",
        ]
    return [
        "EVALSHA",
        sha,
        len(script_keys),
        *script_keys,
        STATS_GROUP,
        LATEST_VISITS_CAPACITY,
        len(sites),
        *sites,
        *arguments,
    ]


def _send_pipelined(connection: Any, batches: list[list[bytes]]) -> int:
    """Send encoded EVALSHA calls with EVALSHA_PIPELINE in flight, and return the sum of
    their replies."""
    applied = 0
    in_flight = 0
    for packed in batches:
        connection.send_packed_command(packed, check_health=False)
        in_flight += 1
        if in_flight == EVALSHA_PIPELINE:
            applied += _applied(connection.read_response())
            in_flight -= 1
    for _ in range(in_flight):
        applied += _applied(connection.read_response())
    return applied


def _applied(reply: Any) -> int:
    if reply == -1:
        raise BenchmarkError("APPLY_STATS returned -1: a rebuild flag is set on the ceiling keys")
    return int(reply)


def _store_ceiling(
    console: Console, database_url: str, visits: Sequence[Visit], entry_ids: Sequence[str]
) -> CeilingResult:
    columns = [column.strip() for column in VISIT_COLUMNS.split(",")]
    blocks = []
    for start in range(0, len(visits), BATCH_SIZE):
        rows = zip(
            visits[start : start + BATCH_SIZE], entry_ids[start : start + BATCH_SIZE], strict=True
        )
        blocks.append(
            "".join(
                _copy_line([entry_id, *(visit.to_record()[column] for column in columns)])
                for visit, entry_id in rows
            ).encode()
        )
    table = sql.Identifier(CEILING_TABLE)
    copy = sql.SQL("COPY {} (log_entry_id, {}) FROM STDIN").format(
        table, sql.SQL(", ").join(sql.Identifier(column) for column in columns)
    )

    with psycopg.connect(database_url) as connection:
        connection.execute(sql.SQL("CREATE TABLE {} (LIKE events INCLUDING ALL)").format(table))
        connection.commit()
        with console.status(f"Store ceiling: COPY of {len(visits):,} rows"):
            started = time.perf_counter()
            for block in blocks:
                with connection.cursor() as cursor, cursor.copy(copy) as writer:
                    writer.write(block)
                connection.commit()
            seconds = time.perf_counter() - started
    result = CeilingResult(len(visits), seconds, _count_rows(database_url, CEILING_TABLE))
    console.log(f"store ceiling: {result.visits_per_s:,.0f} visits/s")
    return result


def _copy_line(values: Sequence[object]) -> str:
    """Return one row in COPY's text format: tab-separated, `\\N` for NULL, escaped."""
    fields = []
    for value in values:
        if value is None:
            fields.append("\\N")
            continue
        fields.append(
            str(value)
            .replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    return "\t".join(fields) + "\n"


def _stats_total(client: redis.Redis) -> int:
    sites = [text(site) for site in client.smembers(keys.SITES)]  # type: ignore[union-attr]
    totals = [client.hget(keys.SiteKeys.of(site).totals, "visits") for site in sites]
    return sum(int(total or 0) for total in totals)  # type: ignore[arg-type]


def _count_rows(database_url: str, table: str) -> int:
    with psycopg.connect(database_url) as connection:
        row = connection.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        ).fetchone()
    return int(row[0]) if row else 0


def _difference(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before
