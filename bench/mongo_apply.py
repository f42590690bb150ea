"""The store worker's rate on MongoDB: one `footfall worker --group store` emptying a
pre-filled stream into MongoDB, against the server's own insert_many of the same documents.

No MongoDB server runs on footfall's machines, so unless `--mongodb-url` names one, the
run starts SecantusDB (`secantusd-py`, from the test extra), a MongoDB-compatible server
written in Python, on a free port with its data in the work folder. Its figures are
SecantusDB's, not MongoDB's.

The ceiling is insert_many of the same documents, encoded to BSON before the clock starts,
into a collection with the indexes of `events`, unordered, in batches of the worker's size
with the write concern the worker uses. It leaves out what the worker adds: the XREADGROUP,
decoding each entry, building its document and the XACK after the insert.

The ceiling runs before the worker. The second of two identical runs of 100,000 inserts on
one SecantusDB server was 10% slower than the first. SecantusDB caps its oplog at 100,000
entries by default and prunes it from then on, which may be the cause. This order puts that
cost on the worker, so the ratio errs low rather than high.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import bson
import pymongo
import redis
from bson.raw_bson import RawBSONDocument
from rich.console import Console

from footfall.backends import mongo_db
from footfall.backends import redis_keys as keys
from footfall.log.base import STORE_GROUP, LogEntry
from footfall.model import Visit
from footfall.store.mongo import to_document

from apply_rate import BATCH_SIZE, CeilingResult, DrainResult, drain_group
from harness import (
    HOST,
    BenchmarkError,
    footfall_worker_command,
    free_port,
    log_tail,
    process_cpu_s,
    run_command,
    running_process,
)
from services import append_visits, create_groups, flush_redis, open_redis, synthetic_visits

CEILING_COLLECTION = "bench_insert_ceiling"
SERVER_READY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class MongoApplyRun:
    """The store worker's rate on MongoDB, its ceiling, and the counts behind them."""

    visits: int
    batch_size: int
    server: str
    """The server and its version, as `footfall worker` logs them."""
    write_concern: str
    fill_s: float
    store: DrainResult
    ceiling: CeilingResult
    stored_documents: int
    dead_lettered: int


@dataclass(frozen=True)
class _Server:
    url: str
    cpu_s: Callable[[], dict[int, float]] | None
    """CPU seconds so far of the server process, when it runs on this machine."""


def benchmark_mongodb_apply(
    console: Console, work_dir: Path, redis_url: str, mongodb_url: str | None, visits: int
) -> MongoApplyRun:
    """Fill the stream with `visits`, then time a store worker writing them to MongoDB."""
    client = open_redis(redis_url)
    try:
        flush_redis(client)
        with _mongodb_server(work_dir, mongodb_url) as server:
            database_url = urlsplit(server.url)._replace(path="/footfall_bench_apply").geturl()
            with _scratch_database(database_url):
                return _run(console, work_dir, client, redis_url, server, database_url, visits)
    finally:
        flush_redis(client)
        client.close()


def _run(
    console: Console,
    work_dir: Path,
    client: redis.Redis,
    redis_url: str,
    server: _Server,
    database_url: str,
    count: int,
) -> MongoApplyRun:
    visits = synthetic_visits(count)
    with console.status(f"Appending {count:,} visits to {keys.STREAM}"):
        started = time.perf_counter()
        entry_ids = append_visits(client, keys.STREAM, visits)
        fill_s = time.perf_counter() - started
    create_groups(client, keys.STREAM, [STORE_GROUP])
    run_command(
        [sys.executable, "-m", "footfall", "db", "migrate", "--database-url", database_url],
        "footfall db migrate",
        timeout_s=60,
    )
    console.log(f"{count:,} visits appended in {fill_s:.1f} s")

    ceiling = _insert_ceiling(console, database_url, visits, entry_ids)
    command = footfall_worker_command(redis_url, database_url, [STORE_GROUP])
    store = drain_group(console, work_dir, client, command, STORE_GROUP, count, server.cpu_s)
    with pymongo.MongoClient(database_url, **mongo_db.client_options(database_url)) as mongo:
        stored = mongo.get_default_database()[mongo_db.EVENTS_COLLECTION].count_documents({})
        info = mongo.server_info()
        write_concern = mongo_db.describe_write_concern(mongo.write_concern.document)
    version = f"MongoDB {info['version']}"
    if "secantusVersion" in info:
        version += f" (SecantusDB {info['secantusVersion']})"
    return MongoApplyRun(
        visits=count,
        batch_size=BATCH_SIZE,
        server=version,
        write_concern=write_concern,
        fill_s=fill_s,
        store=store,
        ceiling=ceiling,
        stored_documents=stored,
        dead_lettered=int(client.xlen(keys.DEAD_LETTER_STREAM)),
    )


def _insert_ceiling(
    console: Console, database_url: str, visits: Sequence[Visit], entry_ids: Sequence[str]
) -> CeilingResult:
    documents = [
        RawBSONDocument(bson.encode(to_document(LogEntry(entry_id, visit))))
        for visit, entry_id in zip(visits, entry_ids, strict=True)
    ]
    batches = [
        documents[start : start + BATCH_SIZE] for start in range(0, len(documents), BATCH_SIZE)
    ]
    options = mongo_db.client_options(database_url)
    with pymongo.MongoClient(database_url, **options) as mongo:
        collection = mongo.get_default_database()[CEILING_COLLECTION]
        collection.create_indexes(list(mongo_db.EVENT_INDEXES))
        with console.status(f"Store ceiling: insert_many of {len(documents):,} documents"):
            started = time.perf_counter()
            for batch in batches:
                collection.insert_many(batch, ordered=False)
            seconds = time.perf_counter() - started
        verified = collection.count_documents({})
    result = CeilingResult(len(documents), seconds, verified)
    console.log(f"MongoDB store ceiling: {result.visits_per_s:,.0f} visits/s")
    return result


@contextlib.contextmanager
def _mongodb_server(work_dir: Path, mongodb_url: str | None) -> Iterator[_Server]:
    """Yield the server at `mongodb_url`, or a SecantusDB server started for the run."""
    if mongodb_url is not None:
        yield _Server(mongodb_url, None)
        return

    binary = Path(sys.executable).with_name("secantusd-py")
    if not binary.exists():
        raise BenchmarkError(
            f"{binary} is missing: install the test extra (pip install -e '.[test]'), which "
            "brings SecantusDB, or pass --mongodb-url"
        )
    port = free_port()
    log_path = work_dir / "secantusd.log"
    command = [str(binary), "--host", HOST, "--port", str(port)]
    command += ["--storage-path", str(work_dir / "secantus-data")]
    with running_process("secantusd-py", command, log_path) as process:
        url = f"mongodb://{HOST}:{port}/?directConnection=true"
        _wait_until_answering(url, process.poll, log_path)
        yield _Server(url, lambda: _cpu_of(process.pid))


def _wait_until_answering(url: str, exited: Callable[[], int | None], log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_READY_TIMEOUT_S
    with pymongo.MongoClient(url, serverSelectionTimeoutMS=500) as mongo:
        while time.monotonic() < deadline:
            if exited() is not None:
                raise BenchmarkError(
                    f"secantusd-py exited before it was ready. Last lines of {log_path}:\n"
                    f"{log_tail(log_path)}"
                )
            try:
                mongo.admin.command("ping")
                return
            except pymongo.errors.ConnectionFailure:
                time.sleep(0.1)
    raise BenchmarkError(f"secantusd-py was not ready within {SERVER_READY_TIMEOUT_S:.0f} s")


def _cpu_of(pid: int) -> dict[int, float]:
    cpu_s = process_cpu_s(pid)
    return {} if cpu_s is None else {pid: cpu_s}


@contextlib.contextmanager
def _scratch_database(database_url: str) -> Iterator[None]:
    """Drop the database of `database_url` before the phase, left over from an interrupted
    run, and after it."""

    def drop() -> None:
        with pymongo.MongoClient(database_url) as mongo:
            mongo.drop_database(mongo.get_default_database().name)

    drop()
    try:
        yield
    finally:
        drop()
