"""The Redis database and PostgreSQL database that the distributed phases run on.

The Redis database is flushed before each phase, so `open_redis` first checks that it
contains only keys that footfall or this benchmark wrote. Each phase gets a PostgreSQL
database of its own, created for it and dropped after it.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
import psycopg
import redis
from psycopg import sql

from footfall.backends import redis_keys as keys
from footfall.backends.redis_client import text
from footfall.log.redis import GROUPS
from footfall.model import Visit

from fill import SITE_WEIGHTS, visit_rows
from harness import BenchmarkError, process_cpu_s

BENCH_KEY_PREFIX = "bench:"
"""Keys of this benchmark's own reference measurements, beside footfall's `footfall:` keys."""

FILL_PIPELINE = 1000
"""XADD commands sent per round trip while filling a stream."""


@dataclass(frozen=True)
class GroupState:
    """One consumer group's position, as `XINFO GROUPS` reports it."""

    backlog: int
    """Entries not yet acknowledged: never delivered plus delivered but pending."""
    pending: int


def open_redis(url: str) -> redis.Redis:
    """Connect to the Redis database the benchmark may flush, or raise BenchmarkError.

    A database that contains keys outside `footfall:` and `bench:` belongs to someone
    else, so the benchmark rejects it instead of flushing it.
    """
    client = redis.Redis.from_url(url)
    try:
        client.ping()
        foreign = [
            text(key)
            for key in client.scan_iter(count=1000)
            if not text(key).startswith((f"{keys.PREFIX}:", BENCH_KEY_PREFIX))
        ]
    except redis.RedisError as error:
        raise BenchmarkError(f"Redis at {url} is unreachable: {error}") from error
    if foreign:
        raise BenchmarkError(
            f"Redis database {url} contains {len(foreign)} keys that the benchmark did "
            f"not write, such as {foreign[0]!r}. The benchmark flushes its database, so it "
            "stopped: pass --redis-url with an empty database number."
        )
    return client


def server_versions(redis_url: str, postgres_url: str) -> str:
    """Return the Redis and PostgreSQL server versions, for the report's machine facts."""
    try:
        with redis.Redis.from_url(redis_url) as client:
            info: dict[str, Any] = client.info("server")  # type: ignore[assignment]
        with psycopg.connect(postgres_url) as connection:
            row = connection.execute("SHOW server_version").fetchone()
    except (redis.RedisError, psycopg.Error) as error:
        raise BenchmarkError(f"cannot read the server versions: {error}") from error
    postgres_version = str(row[0]).split(" ", 1)[0] if row else "unknown"
    return f"Redis {info['redis_version']}, PostgreSQL {postgres_version}"


def flush_redis(client: redis.Redis) -> None:
    """Delete every key of the benchmark's Redis database (FLUSHDB)."""
    client.flushdb()


@contextlib.contextmanager
def scratch_database(admin_url: str, name: str) -> Iterator[str]:
    """Create the PostgreSQL database `name`, yield its URL, and drop it on exit.

    `admin_url` is a URL of an existing database whose user may create databases.
    """
    try:
        admin = psycopg.connect(admin_url, autocommit=True)
    except psycopg.Error as error:
        raise BenchmarkError(f"PostgreSQL at {admin_url} is unreachable: {error}") from error
    identifier = sql.Identifier(name)
    try:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(identifier))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(identifier))
        yield urlsplit(admin_url)._replace(path=f"/{name}").geturl()
    finally:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(identifier))
        admin.close()


def scratch_database_name(phase: str) -> str:
    """Return a database name that is unique to this benchmark process and phase."""
    return f"footfall_bench_{phase}_{os.getpid()}"


def synthetic_visits(count: int, seed: int = 1) -> list[Visit]:
    """Return `count` visits spread over sites and visitor IPs as `fill.py` spreads them.

    Unlike the rows of `fill.py`, the ids are random 32-digit hex strings like those
    `POST /api/events` assigns, because PostgreSQL's primary-key index does more work for
    random ids than for ids in insertion order.
    """
    rng = random.Random(seed)
    sites = rng.choices(list(SITE_WEIGHTS), weights=list(SITE_WEIGHTS.values()), k=count)
    ids = random.Random(seed + 1)
    visits = []
    for row in visit_rows(rng, sites):
        visits.append(Visit(f"{ids.getrandbits(128):032x}", *row[1:]))  # type: ignore[arg-type]
    return visits


def append_visits(client: redis.Redis, stream: str, visits: Sequence[Visit]) -> list[str]:
    """XADD each visit to `stream` as `POST /api/events` does, and return the entry ids."""
    entry_ids: list[str] = []
    for start in range(0, len(visits), FILL_PIPELINE):
        pipeline = client.pipeline(transaction=False)
        for visit in visits[start : start + FILL_PIPELINE]:
            pipeline.xadd(stream, {"v": orjson.dumps(visit.to_record())})
        entry_ids += [text(entry_id) for entry_id in pipeline.execute()]
    return entry_ids


def create_groups(client: redis.Redis, stream: str, groups: Sequence[str] = GROUPS) -> None:
    """Create consumer groups that start at the stream's first entry."""
    for group in groups:
        client.xgroup_create(stream, group, id="0", mkstream=True)


def group_states(client: redis.Redis, stream: str = keys.STREAM) -> dict[str, GroupState]:
    """Return the backlog and pending count of each consumer group of `stream`."""
    states: dict[str, GroupState] = {}
    groups: list[dict[str, Any]] = client.xinfo_groups(stream)  # type: ignore[assignment]
    for group in groups:
        pending = int(group["pending"])
        lag = group.get("lag")
        if lag is None:
            # Redis reports no lag when it cannot compute it cheaply (after XDEL, for one),
            # so the undelivered entries are counted.
            last = text(group["last-delivered-id"])
            lag = len(client.xrange(stream, min=f"({last}", max="+"))  # type: ignore[arg-type]
        states[text(group["name"])] = GroupState(int(lag) + pending, pending)
    return states


def redis_cpu_s(client: redis.Redis) -> float:
    """Return the CPU seconds the Redis server has used since it started, all threads."""
    info: dict[str, Any] = client.info("cpu")  # type: ignore[assignment]
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def postgres_backend_cpu_s(admin_url: str, database: str) -> dict[int, float]:
    """Return the CPU seconds so far of each PostgreSQL backend connected to `database`.

    Reads /proc, so it works only when PostgreSQL runs on this machine, and returns an
    empty dict elsewhere.
    """
    with psycopg.connect(admin_url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
    usage = {int(pid): process_cpu_s(int(pid)) for (pid,) in rows}
    return {pid: cpu_s for pid, cpu_s in usage.items() if cpu_s is not None}


def cpu_used_s(before: dict[int, float], after: dict[int, float]) -> float:
    """Return the CPU seconds used between two samples. A process new in `after` counts whole."""
    return sum(cpu_s - before.get(pid, 0.0) for pid, cpu_s in after.items())
