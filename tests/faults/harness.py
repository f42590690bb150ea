"""What the fault tests share: client threads, a worker supervisor and the ground-truth checks.

Every fault test of the distributed deployment ends with the same checks. Each event id
acknowledged with 202 is stored exactly once in the event store, PostgreSQL or MongoDB. The
Redis stats equal a recount of the stored events. Neither consumer group leaves a stream
entry pending.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import subprocess
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pymongo
import redis
from support.server import STARTUP_TIMEOUT_S, ServerProcess, WorkerProcess, free_port, wait_for

from footfall.backends import redis_keys as keys
from footfall.backends.redis_client import connect
from footfall.config import is_mongodb_url
from footfall.log.base import STATS_GROUP, STORE_GROUP
from footfall.model import LATEST_VISITS_CAPACITY, VISIT_COLUMNS, SiteStats, Visit
from footfall.stats.model import empty_stats, recount, tally_visits
from footfall.stats.redis import RedisStatsStore
from footfall.store.mongo import from_document

SITES = ("shop", "blog", "docs", "status")
REGULAR_IPS = tuple(f"198.51.100.{number}" for number in range(1, 21))
OCCASIONAL_IPS = tuple(f"203.0.113.{number}" for number in range(1, 255)) + tuple(
    f"192.0.2.{number}" for number in range(1, 127)
)
REGULAR_SHARE = 0.4
"""Share of visits from the 20 regular visitors, so the top-visitors ranking has a clear head."""

GROUPS = (STATS_GROUP, STORE_GROUP)
TRANSPORT_RETRY_S = 0.1
"""How long a client thread waits before resending after a transport error."""


@dataclass
class SenderRecord:
    """What one client thread sent and how the API responded."""

    sent_ids: set[str] = field(default_factory=set)
    accepted_ids: list[str] = field(default_factory=list)
    unavailable: int = 0
    transport_errors: int = 0
    unexpected: list[tuple[int, str]] = field(default_factory=list)


class VisitSender:
    """Client threads that post visits, each with its own event_id, until stopped.

    Thread `n` posts to `base_urls[n % len(base_urls)]` over one keep-alive connection.
    A visit rejected with 503 (after its Retry-After) or met by a transport error is sent
    again with the same event_id, as a tracker retries.
    """

    def __init__(self, base_urls: Sequence[str], threads: int, tag: str, seed: int) -> None:
        self.records = [SenderRecord() for _ in range(threads)]
        self._base_urls = list(base_urls)
        self._tag = tag
        self._seed = seed
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(number,), daemon=True, name=f"sender-{number}")
            for number in range(threads)
        ]

    def start(self) -> VisitSender:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> list[str]:
        """Stop the threads and return the names of those still in a request after 30 s."""
        self._stop.set()
        for thread in self._threads:
            if thread.ident is not None:
                thread.join(timeout=30)
        return [thread.name for thread in self._threads if thread.is_alive()]

    def accepted_count(self) -> int:
        return sum(len(record.accepted_ids) for record in self.records)

    def unavailable_count(self) -> int:
        return sum(record.unavailable for record in self.records)

    def accepted_ids(self) -> set[str]:
        return {event_id for record in self.records for event_id in record.accepted_ids}

    def sent_ids(self) -> set[str]:
        return set().union(*(record.sent_ids for record in self.records))

    def unexpected_responses(self) -> list[tuple[int, str]]:
        return [response for record in self.records for response in record.unexpected]

    def summary(self) -> str:
        transport_errors = sum(record.transport_errors for record in self.records)
        return (
            f"{self.accepted_count()} got 202, {self.unavailable_count()} got 503, "
            f"{transport_errors} transport errors, {len(self.unexpected_responses())} unexpected"
        )

    def wait_for_more_accepted(self, count: int, timeout_s: float) -> None:
        """Wait until `count` more visits than now have got a 202 response."""
        self._wait_for_more(self.accepted_count, count, "got 202", timeout_s)

    def wait_for_more_unavailable(self, count: int, timeout_s: float) -> None:
        """Wait until `count` more requests than now have got a 503 response."""
        self._wait_for_more(self.unavailable_count, count, "got 503", timeout_s)

    def _wait_for_more(
        self, counter: Callable[[], int], count: int, outcome: str, timeout_s: float
    ) -> None:
        target = counter() + count
        try:
            wait_for(lambda: counter() >= target, timeout_s=timeout_s)
        except AssertionError:
            raise AssertionError(
                f"fewer than {target} requests {outcome} within {timeout_s} s: "
                f"{self.summary()}; first unexpected responses: {self.unexpected_responses()[:3]}"
            ) from None

    def _run(self, number: int) -> None:
        rng = random.Random(self._seed * 1000 + number)
        record = self.records[number]
        sequence = 0
        retry: tuple[str, dict[str, str], dict[str, str]] | None = None
        with httpx.Client(
            base_url=self._base_urls[number % len(self._base_urls)], timeout=30
        ) as client:
            while not self._stop.is_set():
                if retry is None:
                    event_id = f"{self._tag}-{number}-{sequence}"
                    sequence += 1
                    body, headers = _visit_request(rng, event_id, sequence)
                else:
                    event_id, body, headers = retry
                record.sent_ids.add(event_id)
                try:
                    response = client.post("/api/events", json=body, headers=headers)
                except httpx.TransportError:
                    record.transport_errors += 1
                    retry = (event_id, body, headers)
                    self._stop.wait(TRANSPORT_RETRY_S)
                    continue

                retry = None
                if response.status_code == 202 and response.json() == {"id": event_id}:
                    record.accepted_ids.append(event_id)
                elif response.status_code == 503:
                    record.unavailable += 1
                    retry = (event_id, body, headers)
                    retry_after = response.headers.get("retry-after", "")
                    if not retry_after.isdigit():
                        record.unexpected.append((503, f"Retry-After {retry_after!r}"))
                        retry_after = "1"
                    self._stop.wait(int(retry_after))
                else:
                    record.unexpected.append((response.status_code, response.text[:200]))


def _visit_request(
    rng: random.Random, event_id: str, sequence: int
) -> tuple[dict[str, str], dict[str, str]]:
    site = rng.choice(SITES)
    body = {
        "timezone": "Europe/Berlin",
        "site": site,
        "event_id": event_id,
        "url": f"https://{site}.example.com/page/{sequence % 17}",
    }
    pool = REGULAR_IPS if rng.random() < REGULAR_SHARE else OCCASIONAL_IPS
    return body, {"X-Forwarded-For": rng.choice(pool)}


@dataclass
class WorkerSlot:
    """One worker the supervisor keeps running, and the crash points it arms in turn.

    A slot with crash points arms exactly one of them per process start. It moves to the
    next one only after that point has killed the process. So each self-kill is attributed
    to its point, and every point is reached in turn.
    """

    process: WorkerProcess
    crash_points: tuple[str, ...] = ()
    base_name: str = ""
    starts: int = 0
    crash_kills: int = 0
    armed_point: str | None = None
    killed_by_test: bool = False

    def __post_init__(self) -> None:
        self.base_name = self.base_name or self.process.name


class WorkerSupervisor:
    """Restarts every worker that exits, as a process manager would, and records why it exited.

    Each restart keeps the consumer name or takes a new one, at random: a new name leaves the
    old name's pending entries to be claimed by XAUTOCLAIM. Workers get
    FOOTFALL_CLAIM_IDLE_MS=`claim_idle_ms`, and armed slots FOOTFALL_CRASH_AT too.
    `stranded_entries` sums the entries pending at each dead worker's consumer name when it
    died, so an entry stranded twice under one name counts twice.
    """

    def __init__(
        self,
        slots: Sequence[WorkerSlot],
        redis_url: str,
        seed: int,
        claim_idle_ms: int,
        crash_probability: float = 0.0,
        rename_share: float = 0.5,
    ) -> None:
        self.slots = list(slots)
        self.test_kills = 0
        self.renamed_starts = 0
        self.stranded_entries = 0
        self.crash_kills: Counter[str] = Counter()
        self.unexpected_exits: list[tuple[str, int | None, str]] = []
        self._redis: Any = redis.Redis.from_url(redis_url)
        self._rng = random.Random(seed)
        self._claim_idle_ms = claim_idle_ms
        self._crash_probability = crash_probability
        self._rename_share = rename_share
        self._arming = True
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="supervisor")

    def start(self) -> WorkerSupervisor:
        with self._lock:
            for slot in self.slots:
                self._start(slot)
        self._thread.start()
        return self

    def kill_random(self) -> str | None:
        """SIGKILL one running worker chosen at random and return its consumer name."""
        with self._lock:
            running = [slot for slot in self.slots if slot.process.running()]
            if not running:
                return None
            slot = self._rng.choice(running)
            slot.killed_by_test = True
            slot.process.kill()
            self.test_kills += 1
            self._count_stranded(slot)
            return slot.process.name

    def disarm(self) -> None:
        """Start every worker from now on without crash points."""
        with self._lock:
            self._arming = False

    def stop(self) -> dict[str, int]:
        """Stop restarting, end every running worker with SIGTERM and return each exit status.

        A worker that died after the watcher's last look is recorded as the watcher would
        have recorded it, and has no status. A worker still starting is given up to
        STARTUP_TIMEOUT_S to finish first, so that SIGTERM meets its handler.
        """
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=30)
        with self._lock:
            for slot in self.slots:
                if slot.process.process is not None and not slot.process.running():
                    self._record_exit(slot)
            processes = [slot.process for slot in self.slots if slot.process.running()]
            wait_for(
                lambda: all(process.started() or not process.running() for process in processes),
                timeout_s=STARTUP_TIMEOUT_S,
            )
            statuses = stop_processes(processes)
        self._redis.close()
        return {process.name: status for process, status in zip(processes, statuses, strict=True)}

    def summary(self) -> str:
        crashes = ", ".join(f"{point} {count}" for point, count in sorted(self.crash_kills.items()))
        return (
            f"{self.test_kills} kills by the test, crash-point kills: {crashes or 'none'}, "
            f"{self.renamed_starts} restarts under a new consumer name, "
            f"{self.stranded_entries} entries left pending by dead workers"
        )

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            with self._lock:
                for slot in self.slots:
                    if not slot.process.running():
                        self._record_exit(slot)
                        self._start(slot)

    def _record_exit(self, slot: WorkerSlot) -> None:
        assert slot.process.process is not None
        status = slot.process.process.returncode
        if slot.killed_by_test:
            return
        if status == -signal.SIGKILL and slot.armed_point is not None:
            self.crash_kills[slot.armed_point] += 1
            slot.crash_kills += 1
            self._count_stranded(slot)
            return
        log_tail = slot.process.log_text()[-2000:]
        self.unexpected_exits.append((slot.process.name, status, log_tail))

    def _count_stranded(self, slot: WorkerSlot) -> None:
        name = slot.process.name.encode()
        for group in slot.process.groups:
            consumers = self._redis.xpending(keys.STREAM, group)["consumers"]
            self.stranded_entries += sum(
                int(consumer["pending"]) for consumer in consumers if consumer["name"] == name
            )

    def _start(self, slot: WorkerSlot) -> None:
        if slot.starts and self._rng.random() < self._rename_share:
            slot.process.name = f"{slot.base_name}-{slot.starts}"
            self.renamed_starts += 1
        env = {"FOOTFALL_CLAIM_IDLE_MS": str(self._claim_idle_ms)}
        slot.armed_point = None
        if slot.crash_points and self._arming:
            slot.armed_point = slot.crash_points[slot.crash_kills % len(slot.crash_points)]
            env["FOOTFALL_CRASH_AT"] = f"{slot.armed_point}={self._crash_probability}"
        slot.process.env = env
        slot.killed_by_test = False
        slot.starts += 1
        slot.process.start()


def stop_processes(processes: Sequence[ServerProcess | WorkerProcess]) -> list[int]:
    """Stop every process with SIGTERM, in order, and return their exit statuses.

    A process still running 30 s after SIGTERM gets SIGKILL, and once every process has
    stopped an AssertionError names each such process with the end of its log.
    """
    statuses = []
    stuck = []
    for process in processes:
        try:
            statuses.append(process.stop())
        except subprocess.TimeoutExpired:
            assert process.process is not None
            process.process.kill()
            statuses.append(process.process.wait())
            stuck.append(f"{process.log_path}:\n{process.log_text()[-3000:]}")
    assert not stuck, "processes still running 30 s after SIGTERM:\n" + "\n".join(stuck)
    return statuses


class RedisServer:
    """A private redis-server on a free port of 127.0.0.1, restartable on the same port and folder.

    With `append_only`, Redis runs with `appendfsync always`: it fsyncs each write to its
    append-only file before it replies, so a restart, even after SIGKILL, keeps every
    acknowledged write. Without it, the data lives in memory only.
    """

    def __init__(self, directory: Path, append_only: bool) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH: install the redis-server package")
        self.binary = binary
        self.directory = directory
        self.append_only = append_only
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start the server and wait until it replies to PING."""
        command = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        if self.append_only:
            command += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            command += ["--appendonly", "no"]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        client = redis.Redis.from_url(self.url, socket_timeout=2)
        try:
            wait_for(lambda: self._replies_to_ping(client), timeout_s=30)
        finally:
            client.close()
        return self

    def stop(self, signal_number: int = signal.SIGTERM) -> int:
        """Send `signal_number` (SIGTERM: shut down, SIGKILL: crash) and wait for the exit."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal_number)
        return self.process.wait(timeout=30)

    def pause(self) -> None:
        """Freeze the server with SIGSTOP: it keeps its connections but replies to nothing."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server run again with SIGCONT."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def log_text(self) -> str:
        path = self.directory / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _replies_to_ping(self, client: redis.Redis) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(
                f"redis-server exited with status {self.process.returncode}:\n{self.log_text()}"
            )
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False  # Not listening yet, or still loading the append-only file.


class PostgresServer:
    """A private PostgreSQL cluster on a free port of 127.0.0.1, stopped and started by a test.

    PostgreSQL refuses to run as root, so under root the cluster belongs to the `postgres`
    user and every command runs through `runuser`. The folder is outside pytest's tmp_path,
    which only root can enter.
    """

    def __init__(self) -> None:
        missing = [name for name in ("initdb", "pg_ctl") if shutil.which(name) is None]
        if missing:
            raise RuntimeError(
                f"{' and '.join(missing)} not on PATH: add the PostgreSQL server's bin folder "
                "(for example /usr/lib/postgresql/15/bin)"
            )
        self.directory = Path(tempfile.mkdtemp(prefix="footfall-fault-pg-"))
        self.data = self.directory / "data"
        self.log_path = self.directory / "postgres.log"
        self.port = free_port()
        self._run_as: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
            self._run_as = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Start the cluster and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1"
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-o", options, "-w", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the cluster: `fast` ends every session and rolls back open transactions."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        status = subprocess.run(
            [*self._run_as, "pg_ctl", "-D", str(self.data), "status"], capture_output=True
        )
        return status.returncode == 0

    def remove(self) -> None:
        """Stop the cluster if it runs and delete its folder."""
        if self.data.exists() and self.running():
            self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _run(self, *command: str) -> None:
        result = subprocess.run([*self._run_as, *command], capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(
                f"{command[0]} failed with status {result.returncode}:\n{result.stdout}"
                f"{result.stderr}\n{self.log_text()[-2000:]}"
            )


@dataclass(frozen=True)
class GroundTruth:
    """What the checks found, for the test's summary line."""

    stored: int
    accepted: int
    site_totals: dict[str, int]

    def summary(self) -> str:
        totals = ", ".join(f"{site} {count}" for site, count in sorted(self.site_totals.items()))
        return f"{self.accepted} ids got 202, {self.stored} events stored ({totals})"


def group_facts(client: Any) -> dict[str, dict[str, Any]]:
    """Return each group's pending count and last delivered id, keyed by group name."""
    facts: dict[str, dict[str, Any]] = {}
    for group in client.xinfo_groups(keys.STREAM):
        name = group["name"].decode()
        facts[name] = {
            "pending": int(group["pending"]),
            "last_delivered_id": group["last-delivered-id"].decode(),
        }
    return facts


def wait_until_drained(redis_url: str, timeout_s: float) -> None:
    """Wait until both groups have received the stream's last entry and acknowledged all."""
    client: Any = redis.Redis.from_url(redis_url)

    def drained() -> bool:
        last_id = client.xinfo_stream(keys.STREAM)["last-generated-id"].decode()
        facts = group_facts(client)
        return set(facts) == set(GROUPS) and all(
            group["pending"] == 0 and group["last_delivered_id"] == last_id
            for group in facts.values()
        )

    try:
        wait_for(drained, timeout_s=timeout_s, interval_s=0.2)
    except AssertionError:
        last_id = client.xinfo_stream(keys.STREAM)["last-generated-id"].decode()
        raise AssertionError(
            f"the consumer groups did not drain within {timeout_s} s: last entry {last_id}, "
            f"groups {group_facts(client)}"
        ) from None
    finally:
        client.close()


def stored_visits(database_url: str) -> list[Visit]:
    """Read every event in PostgreSQL or MongoDB, asserting that no event id is stored twice."""
    if is_mongodb_url(database_url):
        with pymongo.MongoClient(database_url) as client:
            documents = list(client.get_default_database()["events"].find())
        visits = [from_document(document) for document in documents]
        duplicates = len(visits) - len({visit.id for visit in visits})
        assert duplicates == 0, f"{duplicates} event ids are stored more than once"
        return visits

    with psycopg.connect(database_url) as connection:
        row = connection.execute("SELECT count(*), count(DISTINCT id) FROM events").fetchone()
        rows = connection.execute(f"SELECT {VISIT_COLUMNS} FROM events").fetchall()
    assert row is not None
    total, distinct = row
    assert total == distinct, f"{total - distinct} event ids are stored more than once"
    assert len(rows) == total
    return [Visit(*values) for values in rows]


def check_ground_truth(
    redis_url: str, database_url: str, accepted_ids: set[str], sent_ids: set[str]
) -> GroundTruth:
    """Assert the three end-of-test facts of the distributed pipeline and return its figures.

    Call it after `wait_until_drained`: with the groups still behind, the stats lag behind
    the event store and the check fails.
    """
    visits = stored_visits(database_url)
    stored_ids = {visit.id for visit in visits}
    missing = accepted_ids - stored_ids
    assert not missing, (
        f"{len(missing)} visits acknowledged with 202 are not stored: {sorted(missing)[:20]}"
    )
    unknown = stored_ids - sent_ids
    assert not unknown, f"{len(unknown)} stored ids were never sent: {sorted(unknown)[:20]}"

    client: Any = redis.Redis.from_url(redis_url)
    try:
        for group in GROUPS:
            pending = client.xpending(keys.STREAM, group)["pending"]
            assert pending == 0, f"group {group} has {pending} entries pending"
        dead_letters = client.xlen(keys.DEAD_LETTER_STREAM)
        assert dead_letters == 0, f"{dead_letters} valid entries ended in the dead-letter stream"
        _check_visitor_tallies(client, visits)
    finally:
        client.close()

    _check_site_stats(redis_url, visits)
    totals = Counter(visit.site for visit in visits)
    return GroundTruth(len(visits), len(accepted_ids), dict(totals))


def _check_visitor_tallies(client: Any, visits: list[Visit]) -> None:
    """Compare every visitor's count and last visit time in Redis with the stored events."""
    tallies = tally_visits(visits)
    stats_sites = {site.decode() for site in client.smembers(keys.SITES)}
    assert stats_sites == set(tallies), "the Redis site set differs from the stored sites"
    for site, tally in tallies.items():
        site_keys = keys.SiteKeys.of(site)
        counts = {
            member.decode(): int(-score)
            for member, score in client.zrange(site_keys.visitors, 0, -1, withscores=True)
        }
        assert counts == tally.visits, f"visitor counts of site {site} differ from a recount"
        last_visits = {
            ip.decode(): int(value) for ip, value in client.hgetall(site_keys.last_visit).items()
        }
        assert last_visits == tally.last_visit_at_ms, f"last visit times of site {site} differ"


def _check_site_stats(redis_url: str, visits: list[Visit]) -> None:
    """Compare what `/api/stats` would return for each site with a recount of `visits`."""
    expected = recount(visits)
    sites = sorted(set(SITES) | set(expected))
    actual = asyncio.run(_read_site_stats(redis_url, sites))
    for site in sites:
        expected_stats = expected.get(site, empty_stats(site))
        found = actual[site]
        assert found.total_visits == expected_stats.total_visits, f"total visits of site {site}"
        assert found.distinct_visitors == expected_stats.distinct_visitors, (
            f"distinct visitors of {site}"
        )
        assert found.top_visitors == expected_stats.top_visitors, f"top visitors of site {site}"
        found_ids = [visit.id for visit in found.latest_visits]
        expected_ids = [visit.id for visit in expected_stats.latest_visits]
        assert found_ids == expected_ids, f"latest visit ids of site {site}"
        assert found.latest_visits == expected_stats.latest_visits, f"latest visits of site {site}"


async def _read_site_stats(redis_url: str, sites: list[str]) -> dict[str, SiteStats]:
    client = connect(redis_url)
    try:
        stats = RedisStatsStore(client)
        return {site: await stats.site_stats(site, LATEST_VISITS_CAPACITY) for site in sites}
    finally:
        await client.aclose()
