"""End-to-end distributed ingest: two API processes and two workers under wrk.

Each API process gets its own wrk with half of the connections, both running at the same
time. The ceiling is two bare ASGI apps under the same two wrk runs, measured first in the
same run. During footfall's measured run a probe times how long an accepted visit takes to
show in `GET /api/stats`. After the load, the run waits until both consumer groups have
acknowledged everything, then checks that the stats, PostgreSQL and `/metrics` agree with
the visits wrk saw accepted.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import psycopg
import redis
from rich.console import Console

from harness import (
    BenchmarkError,
    Server,
    bare_app_command,
    busy_cpu_s,
    busy_fraction,
    create_read_token,
    ensure_running,
    footfall_distributed_command,
    footfall_worker_command,
    log_problems,
    machine_cpu_ticks,
    own_cpu_s,
    process_cpu_s,
    running_process,
    running_server,
)
from ingest import (
    MEASURED_SITE,
    METRIC_LINE,
    WARMUP_SITE,
    WrkOptions,
    WrkResult,
    parse_wrk_output,
    wrk_command,
)
from probe import PROBE_SITE, MetricsScraper, ProbeResult, VisibilityProbe
from services import (
    cpu_used_s,
    flush_redis,
    group_states,
    open_redis,
    postgres_backend_cpu_s,
    redis_cpu_s,
    scratch_database,
    scratch_database_name,
)

PROCESSES = 2
"""API processes, each with its own wrk, and worker processes that each run both groups."""

DRAIN_TIMEOUT_S = 120.0
PROBE_TIMEOUT_S = 30.0
"""How long the probe waits after the load for visits not yet in the stats."""
METRICS_SETTLE_S = 1.5
"""footfall processes add their counters to Redis once a second, so `/metrics` is read later."""


@dataclass(frozen=True)
class LoadResult:
    """Two wrk runs at the same time, one per server, and the servers' CPU meanwhile."""

    runs: tuple[WrkResult, ...]
    server_cpu_s: float | None
    machine_busy: float | None
    other_cores: float | None
    """CPU that processes outside the benchmark used during the runs, in cores: the machine's
    busy time less that of the servers, wrk, the benchmark itself and the given backends."""

    @property
    def requests_per_s(self) -> float:
        return sum(run.requests_per_s for run in self.runs)

    @property
    def accepted(self) -> int:
        return sum(run.accepted for run in self.runs)

    @property
    def requests(self) -> int:
        return sum(run.requests for run in self.runs)

    @property
    def p50_ms(self) -> float:
        """The larger of the two runs' medians."""
        return max(run.p50_ms for run in self.runs)

    @property
    def p99_ms(self) -> float:
        """The larger of the two runs' 99th percentiles."""
        return max(run.p99_ms for run in self.runs)

    @property
    def error_responses(self) -> int:
        return sum(run.error_responses for run in self.runs)

    @property
    def socket_errors(self) -> int:
        return sum(run.socket_errors for run in self.runs)

    @property
    def server_cpu_us_per_request(self) -> float | None:
        if self.server_cpu_s is None or self.requests == 0:
            return None
        return self.server_cpu_s * 1e6 / self.requests


@dataclass(frozen=True)
class DistributedCounts:
    """footfall's `GET /metrics` after the drain."""

    accepted: int | None
    rejected: int
    backlog: dict[str, int]
    dead_lettered: dict[str, int]
    mean_batch_size: dict[str, float]


@dataclass(frozen=True)
class DistributedRun:
    """Distributed ingest beside its bare-app ceiling, with the lag and the count checks."""

    bare: LoadResult
    footfall: LoadResult
    warmup_accepted: int
    probe: ProbeResult
    backlog_after_load: dict[str, int]
    drain_s: float | None
    """Seconds from the end of the load until both groups had acknowledged everything, or
    None when they had not within DRAIN_TIMEOUT_S."""
    worker_cpu_s: float | None
    redis_cpu_s: float
    postgres_cpu_s: float | None
    """CPU of the scratch database's backends. All three CPU figures run from the start of
    the measured run until the drain ended."""
    total_visits: dict[str, int]
    """`total_visits` of the measured, warm-up and probe sites after the drain."""
    stored_rows: int
    counts: DistributedCounts
    metrics_scrapes: int
    metrics_scrape_failures: list[str]
    """Status and start of the body of each `/metrics` scrape during the load that was not 200."""
    log_problems: dict[str, list[str]]
    """WARNING and ERROR lines of each footfall process's log, by log file name."""

    @property
    def probe_visits(self) -> int:
        return self.probe.accepted


def benchmark_distributed_ingest(
    console: Console, work_dir: Path, options: WrkOptions, redis_url: str, admin_url: str
) -> DistributedRun:
    """Measure two bare apps, then two footfall API processes with two workers."""
    if options.connections < PROCESSES:
        raise BenchmarkError(
            f"the distributed ingest phase splits --connections over {PROCESSES} API "
            f"processes: pass at least {PROCESSES}"
        )
    per_process = [
        replace(options, threads=1, connections=share)
        for share in _split(options.connections, PROCESSES)
    ]
    bare = _measure_bare(console, work_dir, per_process)

    client = open_redis(redis_url)
    database = scratch_database_name("ingest")
    try:
        flush_redis(client)
        with scratch_database(admin_url, database) as database_url:
            return _measure_footfall(
                console,
                work_dir,
                per_process,
                client,
                redis_url,
                admin_url,
                database,
                database_url,
                bare,
            )
    finally:
        flush_redis(client)
        client.close()


def _measure_bare(console: Console, work_dir: Path, per_process: list[WrkOptions]) -> LoadResult:
    with contextlib.ExitStack() as stack:
        servers = [
            stack.enter_context(
                running_server(
                    f"bare app {number}", bare_app_command, work_dir / f"bare-app-{number}.log"
                )
            )
            for number in range(1, PROCESSES + 1)
        ]
        warmup_s = per_process[0].warmup_s
        _run_wrk_pair(console, servers, per_process, WARMUP_SITE, warmup_s)
        return _run_wrk_pair(
            console, servers, per_process, MEASURED_SITE, per_process[0].duration_s
        )


def _measure_footfall(
    console: Console,
    work_dir: Path,
    per_process: list[WrkOptions],
    client: redis.Redis,
    redis_url: str,
    admin_url: str,
    database: str,
    database_url: str,
    bare: LoadResult,
) -> DistributedRun:
    with contextlib.ExitStack() as stack:
        workers, servers = _start_footfall(stack, work_dir, redis_url, database_url)
        log_paths = [log_path for _, log_path in workers] + [server.log_path for server in servers]
        warmup = _run_wrk_pair(console, servers, per_process, WARMUP_SITE, per_process[0].warmup_s)
        # The measured run starts with empty backlogs, which also shows that the workers,
        # started without a readiness check, are consuming.
        with console.status("Waiting for the workers to apply the warm-up visits"):
            if _wait_for_drain(client, workers) is None:
                raise BenchmarkError(
                    f"the workers had not applied the warm-up visits {DRAIN_TIMEOUT_S:.0f} s "
                    f"after the warm-up: see {', '.join(str(path) for path in log_paths)}"
                )
        worker_pids = [process.pid for process, _ in workers]
        workers_before = [process_cpu_s(pid) for pid in worker_pids]
        redis_before = redis_cpu_s(client)
        postgres_before = postgres_backend_cpu_s(admin_url, database)

        probe = VisibilityProbe([server.base_url for server in servers], servers[0].headers)
        scraper = MetricsScraper([server.base_url for server in servers], servers[0].headers)
        probe.start()
        scraper.start()
        try:
            measured = _run_wrk_pair(
                console,
                servers,
                per_process,
                MEASURED_SITE,
                per_process[0].duration_s,
                backend_cpu_s=lambda: _backend_cpu_s(client, worker_pids, admin_url, database),
            )
        finally:
            probe.stop_sending()
            scraper.stop()
        backlog_after_load = {group: state.backlog for group, state in group_states(client).items()}
        with console.status("Waiting for both consumer groups to acknowledge every visit"):
            drain_s = _wait_for_drain(client, workers)
            probe_result = probe.finish(PROBE_TIMEOUT_S)

        workers_after = [process_cpu_s(pid) for pid in worker_pids]
        worker_cpu_s = _sum_differences(workers_before, workers_after)
        redis_used_s = redis_cpu_s(client) - redis_before
        postgres_after = postgres_backend_cpu_s(admin_url, database)
        postgres_used_s = cpu_used_s(postgres_before, postgres_after) if postgres_after else None

        time.sleep(METRICS_SETTLE_S)
        sites = (MEASURED_SITE, WARMUP_SITE, PROBE_SITE)
        total_visits = {site: _read_total(servers[0], site) for site in sites}
        stored_rows = _count_events(database_url)
        counts = _read_counts(servers[0])

    console.log(
        f"footfall distributed: {measured.requests_per_s:,.0f} requests/s, "
        f"bare apps {bare.requests_per_s:,.0f} requests/s"
    )
    return DistributedRun(
        bare=bare,
        footfall=measured,
        warmup_accepted=warmup.accepted,
        probe=probe_result,
        backlog_after_load=backlog_after_load,
        drain_s=drain_s,
        worker_cpu_s=worker_cpu_s,
        redis_cpu_s=redis_used_s,
        postgres_cpu_s=postgres_used_s,
        total_visits=total_visits,
        stored_rows=stored_rows,
        counts=counts,
        metrics_scrapes=scraper.scrapes,
        metrics_scrape_failures=scraper.failures,
        log_problems={path.name: log_problems(path) for path in log_paths},
    )


def _start_footfall(
    stack: contextlib.ExitStack, work_dir: Path, redis_url: str, database_url: str
) -> tuple[list[tuple[subprocess.Popen[bytes], Path]], list[Server]]:
    """Start the workers, then the API processes, all stopped when `stack` closes."""
    workers = []
    for number in range(1, PROCESSES + 1):
        log_path = work_dir / f"distributed-worker-{number}.log"
        command = footfall_worker_command(redis_url, database_url)
        process = stack.enter_context(
            running_process(f"footfall worker {number}", command, log_path)
        )
        workers.append((process, log_path))

    servers = []
    token = create_read_token(["--redis-url", redis_url, "--database-url", database_url])
    for number in range(1, PROCESSES + 1):
        log_path = work_dir / f"distributed-serve-{number}.log"
        command = footfall_distributed_command(redis_url, database_url)
        server = running_server(f"footfall serve {number}", command, log_path, token)
        servers.append(stack.enter_context(server))
    return workers, servers


def _run_wrk_pair(
    console: Console,
    servers: Sequence[Server],
    per_process: Sequence[WrkOptions],
    site: str,
    duration_s: int,
    backend_cpu_s: Callable[[], float] | None = None,
) -> LoadResult:
    """Run one wrk per server at the same time and sum what they measured.

    `backend_cpu_s` returns the CPU seconds so far of the other processes under test (the
    workers, Redis and PostgreSQL), so that they do not count as other load.
    """
    commands = [
        wrk_command(options, server.base_url, site, duration_s)
        for options, server in zip(per_process, servers, strict=True)
    ]
    phase = "warm-up" if site == WARMUP_SITE else "measured run"
    connections = sum(options.connections for options in per_process)
    label = (
        f"{servers[0].name.rsplit(' ', 1)[0]} x{len(servers)}: {phase}, {duration_s} s at "
        f"{connections} connections"
    )
    with console.status(label):
        cpu_before = [process_cpu_s(server.pid) for server in servers]
        backends_before = backend_cpu_s() if backend_cpu_s else 0.0
        own_before = own_cpu_s()
        ticks_before = machine_cpu_ticks()
        started = time.perf_counter()
        outputs = _run_together(commands, timeout_s=duration_s + 60)
        elapsed_s = time.perf_counter() - started
        ticks_after = machine_cpu_ticks()
        own_used_s = own_cpu_s() - own_before
        backends_used_s = (backend_cpu_s() if backend_cpu_s else 0.0) - backends_before
        cpu_after = [process_cpu_s(server.pid) for server in servers]

    server_cpu_s = _sum_differences(cpu_before, cpu_after)
    busy_s = busy_cpu_s(ticks_before, ticks_after)
    other_cores = None
    if busy_s is not None and server_cpu_s is not None:
        other_cores = (busy_s - server_cpu_s - own_used_s - backends_used_s) / elapsed_s
    return LoadResult(
        runs=tuple(parse_wrk_output(output) for output in outputs),
        server_cpu_s=server_cpu_s,
        machine_busy=busy_fraction(ticks_before, ticks_after),
        other_cores=other_cores,
    )


def _run_together(commands: Sequence[Sequence[str]], timeout_s: float) -> list[str]:
    """Start every command, wait for all, and return their outputs, or raise BenchmarkError."""
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for command in commands
    ]
    outputs = []
    try:
        for process in processes:
            stdout, stderr = process.communicate(timeout=timeout_s)
            if process.returncode != 0:
                raise BenchmarkError(
                    f"wrk failed with exit status {process.returncode}:\n"
                    f"{(stderr or stdout).strip()}"
                )
            outputs.append(stdout)
    except subprocess.TimeoutExpired as error:
        raise BenchmarkError(f"wrk timed out after {timeout_s:.0f} s") from error
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return outputs


def _wait_for_drain(
    client: redis.Redis, workers: Sequence[tuple[subprocess.Popen[bytes], Path]]
) -> float | None:
    started = time.perf_counter()
    while time.perf_counter() - started < DRAIN_TIMEOUT_S:
        for number, (process, log_path) in enumerate(workers, start=1):
            ensure_running(f"footfall worker {number}", process, log_path)
        if all(state.backlog == 0 for state in group_states(client).values()):
            return time.perf_counter() - started
        time.sleep(0.05)
    return None


def _read_total(server: Server, site: str) -> int:
    response = httpx.get(
        f"{server.base_url}/api/stats", params={"site": site}, headers=server.headers, timeout=10.0
    )
    if response.status_code != 200:
        raise BenchmarkError(
            f"GET /api/stats?site={site} returned {response.status_code}: {response.text[:300]}"
        )
    return int(response.json()["total_visits"])


def _count_events(database_url: str) -> int:
    with psycopg.connect(database_url) as connection:
        row = connection.execute("SELECT count(*) FROM events").fetchone()
    return int(row[0]) if row else 0


def _read_counts(server: Server) -> DistributedCounts:
    response = httpx.get(f"{server.base_url}/metrics", headers=server.headers, timeout=10.0)
    if response.status_code != 200:
        raise BenchmarkError(f"GET /metrics returned {response.status_code}")

    accepted: int | None = None
    rejected = 0
    by_group: dict[str, dict[str, float]] = {}
    for line in response.text.splitlines():
        match = METRIC_LINE.match(line)
        if match is None:
            continue
        name, value = match["name"], float(match["value"])
        labels = dict(
            part.split("=", 1) for part in (match["labels"] or "").split(",") if "=" in part
        )
        group = labels.get("group", "").strip('"')
        if name == "footfall_events_accepted_total":
            accepted = int(value)
        elif name == "footfall_events_rejected_total":
            rejected += int(value)
        elif group:
            by_group.setdefault(group, {})[name] = value

    def per_group(name: str) -> dict[str, float]:
        return {group: facts[name] for group, facts in by_group.items() if name in facts}

    sums, batches = per_group("footfall_batch_size_sum"), per_group("footfall_batch_size_count")
    return DistributedCounts(
        accepted=accepted,
        rejected=rejected,
        backlog={
            group: int(value) for group, value in per_group("footfall_backlog_entries").items()
        },
        dead_lettered={
            group: int(value)
            for group, value in per_group("footfall_dead_lettered_entries_total").items()
        },
        mean_batch_size={
            group: sums[group] / batches[group] for group in sums if batches.get(group)
        },
    )


def _backend_cpu_s(
    client: redis.Redis, worker_pids: Sequence[int], admin_url: str, database: str
) -> float:
    workers = sum(process_cpu_s(pid) or 0.0 for pid in worker_pids)
    postgres = sum(postgres_backend_cpu_s(admin_url, database).values())
    return workers + redis_cpu_s(client) + postgres


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if index < total % parts else 0) for index in range(parts)]


def _sum_differences(before: Sequence[float | None], after: Sequence[float | None]) -> float | None:
    if any(value is None for value in (*before, *after)):
        return None
    return sum(end - start for start, end in zip(before, after, strict=True))  # type: ignore[operator]
