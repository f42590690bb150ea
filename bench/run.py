"""Run footfall's benchmarks and print each figure beside its reference from the same run.

    .venv/bin/python bench/run.py [--duration-s 10] [--connections 64]
                                  [--sizes 1000,100000,1000000] [--skip-stats] [--skip-ingest]
                                  [--skip-apply] [--skip-mongodb-apply] [--mongodb-url URL]
                                  [--skip-distributed-ingest] [--skip-distributed]

Embedded (SQLite):
  Stats: `GET /api/stats` latency with each number of visits stored, against the smallest.
  Ingest: `POST /api/events` driven by wrk, against a bare ASGI app served the same way.
Distributed (Redis and PostgreSQL; the Redis database is flushed):
  Apply: one `footfall worker` per group emptying a pre-filled stream, against Redis's and
  PostgreSQL's own rates for the same writes.
  MongoDB apply: one `footfall worker --group store` emptying a pre-filled stream into
  MongoDB, against the server's own insert_many of the same documents. Without
  --mongodb-url the server is SecantusDB, started for the run (see bench/mongo_apply.py).
  Distributed ingest: two API processes and two workers under wrk, against two bare apps,
  with the time from a 202 until the visit shows in `GET /api/stats`.
The exit status is 0 when every phase ran, even if a target was missed, and 1 when a phase
could not run (wrk missing, a server failing to start or crashing).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import psycopg
import redis
import uvicorn
from rich.console import Console

from apply_rate import ApplyRun, benchmark_apply
from distributed_ingest import DistributedRun, benchmark_distributed_ingest
from harness import BenchmarkError
from ingest import IngestRun, WrkOptions, benchmark_ingest, find_wrk
from mongo_apply import MongoApplyRun, benchmark_mongodb_apply
from report import collect_checks, print_checks, print_ingest, print_stats
from report_distributed import (
    apply_checks,
    distributed_ingest_checks,
    mongodb_apply_checks,
    print_apply,
    print_distributed_ingest,
    print_mongodb_apply,
)
from services import server_versions
from stats_latency import StatsRun, benchmark_stats

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected phases, print results and checks, and return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.stats_requests < 2:
        parser.error("--stats-requests must be at least 2 to compute percentiles")
    console = Console()
    _print_machine(console)

    if args.skip_distributed:
        args.skip_apply = args.skip_mongodb_apply = args.skip_distributed_ingest = True

    stats_runs: list[StatsRun] = []
    ingest_run: IngestRun | None = None
    apply_run: ApplyRun | None = None
    mongodb_apply_run: MongoApplyRun | None = None
    distributed_run: DistributedRun | None = None
    try:
        needs_wrk = not (args.skip_ingest and args.skip_distributed_ingest)
        options = WrkOptions(
            executable=find_wrk() if needs_wrk else "wrk",
            threads=min(args.threads, args.connections),
            connections=args.connections,
            duration_s=args.duration_s,
            warmup_s=args.warmup_s,
        )
        if not (args.skip_apply and args.skip_distributed_ingest):
            console.print(
                f"{server_versions(args.redis_url, args.postgres_url)}, redis-py "
                f"{redis.__version__}, psycopg {psycopg.__version__}"
            )
        with _work_dir(args.work_dir) as work_dir:
            console.log(f"databases and server logs in {work_dir}")
            if not args.skip_stats:
                for visits in sorted(args.sizes):
                    stats_runs.append(
                        benchmark_stats(console, work_dir, visits, args.stats_requests)
                    )
            if not args.skip_ingest:
                ingest_run = benchmark_ingest(console, work_dir, options)
            if not args.skip_apply:
                apply_run = benchmark_apply(
                    console, work_dir, args.redis_url, args.postgres_url, args.apply_visits
                )
            if not args.skip_mongodb_apply:
                mongodb_apply_run = benchmark_mongodb_apply(
                    console, work_dir, args.redis_url, args.mongodb_url, args.apply_visits
                )
            if not args.skip_distributed_ingest:
                distributed_run = benchmark_distributed_ingest(
                    console, work_dir, options, args.redis_url, args.postgres_url
                )
    except BenchmarkError as error:
        console.print(f"[bold red]benchmark failed:[/] {error}")
        return 1

    if stats_runs:
        print_stats(console, stats_runs)
    if ingest_run is not None:
        print_ingest(console, ingest_run, args.connections)
    if apply_run is not None:
        print_apply(console, apply_run)
    if mongodb_apply_run is not None:
        print_mongodb_apply(console, mongodb_apply_run)
    if distributed_run is not None:
        print_distributed_ingest(console, distributed_run, args.connections)

    checks = collect_checks(stats_runs, ingest_run, args.connections)
    if apply_run is not None:
        checks += apply_checks(apply_run)
    if mongodb_apply_run is not None:
        checks += mongodb_apply_checks(mongodb_apply_run)
    if distributed_run is not None:
        checks += distributed_ingest_checks(distributed_run, args.connections)
    print_checks(console, checks)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/run.py",
        description="Measure footfall's stats latency, ingest rate and worker rates on 127.0.0.1.",
    )
    parser.add_argument(
        "--duration-s",
        type=_positive_int,
        default=10,
        help="seconds of each measured wrk run (default 10)",
    )
    parser.add_argument(
        "--warmup-s",
        type=_positive_int,
        default=2,
        help="seconds of wrk warm-up before each measured run (default 2)",
    )
    parser.add_argument(
        "--connections",
        type=_positive_int,
        default=64,
        help="open connections wrk keeps (default 64)",
    )
    parser.add_argument(
        "--threads",
        type=_positive_int,
        default=2,
        help="wrk threads, at most --connections (default 2)",
    )
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=[1000, 100_000, 1_000_000],
        help="comma-separated numbers of stored visits for the stats phase "
        "(default 1000,100000,1000000)",
    )
    parser.add_argument(
        "--stats-requests",
        type=_positive_int,
        default=500,
        help="sequential GET /api/stats requests timed per size, at least 2 (default 500)",
    )
    parser.add_argument("--skip-stats", action="store_true", help="skip the embedded stats phase")
    parser.add_argument("--skip-ingest", action="store_true", help="skip the embedded ingest phase")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="keep databases, server logs and wrk output in this folder "
        "(default: a temporary folder, removed at the end)",
    )
    _add_distributed_options(parser)
    return parser


def _add_distributed_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--apply-visits",
        type=_positive_int,
        default=100_000,
        help="visits pre-filled in the stream for the worker apply phase (default 100000)",
    )
    parser.add_argument(
        "--redis-url",
        default=DEFAULT_REDIS_URL,
        help="Redis database of the distributed phases, flushed before and after each phase, "
        "and rejected if it contains keys the benchmark did not write "
        f"(default {DEFAULT_REDIS_URL})",
    )
    parser.add_argument(
        "--postgres-url",
        default=DEFAULT_POSTGRES_URL,
        help="existing PostgreSQL database whose user may create databases. Each distributed "
        f"phase creates a database of its own and drops it (default {DEFAULT_POSTGRES_URL})",
    )
    parser.add_argument(
        "--skip-apply", action="store_true", help="skip the distributed worker apply phase"
    )
    parser.add_argument(
        "--skip-mongodb-apply",
        action="store_true",
        help="skip the store worker phase on MongoDB",
    )
    parser.add_argument(
        "--mongodb-url",
        default=None,
        help="MongoDB server of the MongoDB apply phase, which creates and drops the database "
        "footfall_bench_apply on it (default: start SecantusDB from the test extra)",
    )
    parser.add_argument(
        "--skip-distributed-ingest",
        action="store_true",
        help="skip the distributed ingest phase",
    )
    parser.add_argument(
        "--skip-distributed",
        action="store_true",
        help="skip every distributed phase (same as --skip-apply --skip-mongodb-apply "
        "--skip-distributed-ingest)",
    )


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a positive integer")
    return int(text)


def _sizes(text: str) -> list[int]:
    parts = [part.strip().replace("_", "") for part in text.split(",") if part.strip()]
    if not parts or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise argparse.ArgumentTypeError(
            f"invalid sizes {text!r}: expected positive integers separated by commas, "
            "such as 1000,100000,1000000"
        )
    return [int(part) for part in parts]


@contextlib.contextmanager
def _work_dir(requested: Path | None) -> Iterator[Path]:
    if requested is not None:
        requested.mkdir(parents=True, exist_ok=True)
        yield requested.resolve()
        return
    with tempfile.TemporaryDirectory(prefix="footfall-bench-") as temporary:
        yield Path(temporary)


def _print_machine(console: Console) -> None:
    console.print(
        f"cores available (nproc): {len(os.sched_getaffinity(0))}, CPU: {_cpu_model()}\n"
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"uvicorn {uvicorn.__version__}, {_wrk_version()}\n"
        "Server and load generator share these cores with anything else running."
    )


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _wrk_version() -> str:
    # `wrk --version` prints its version line, then the usage text, and exits with status 1.
    try:
        completed = subprocess.run(
            ["wrk", "--version"], capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        return "wrk not installed"
    first_line = (completed.stdout or completed.stderr).splitlines()[:1]
    return " ".join(first_line[0].split()[:2]) if first_line else "wrk (unknown version)"


if __name__ == "__main__":
    sys.exit(main())
