"""Worker SIGKILLs in the distributed deployment: nothing is lost and nothing is doubled.

It runs once with PostgreSQL and once with MongoDB (SecantusDB) as the event store.

Two API processes take visits from client threads while two workers per consumer group run.
The test kills a random worker at least KILLS times. One worker of each group also kills
itself at a crash point: before the stats apply, after the stats apply and acknowledgement,
and before or after the store commit. A supervisor restarts every dead worker, under its old
consumer name or a new one. Afterwards every visit acknowledged with 202 is stored once, the
stats equal a recount of the stored events, and no entry is left pending.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest
from support.server import ServerProcess, WorkerProcess
from support.services import DistributedUrls

from faults.harness import (
    VisitSender,
    WorkerSlot,
    WorkerSupervisor,
    check_ground_truth,
    stop_processes,
    wait_until_drained,
)
from footfall.faults import CRASH_POINTS
from footfall.log.base import STATS_GROUP, STORE_GROUP

API_PROCESSES = 2
SENDER_THREADS = 6
MIN_VISITS = 25_000
KILLS = 20
ACCEPTED_PER_KILL = (300, 1400)
"""Range of new 202s to wait for before each kill, drawn per kill."""
CLAIM_IDLE_MS = 1000
CRASH_PROBABILITY = 0.05
"""Chance that an armed worker kills itself each time it passes its crash point."""
INGEST_DEADLINE_S = 150.0
DRAIN_TIMEOUT_S = 90.0


def crash_points_of(group: str) -> tuple[str, ...]:
    return tuple(point for point in CRASH_POINTS if point.startswith(f"{group}."))


@pytest.mark.slow
def test_worker_sigkills_lose_nothing(tmp_path: Path, store_urls: DistributedUrls) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    print(f"random seed {seed}")
    rng = random.Random(seed)

    api_args = [*store_urls.args(), "--trusted-proxy", "127.0.0.0/8"]
    apis = [
        ServerProcess(tmp_path / f"api-{number}.db", api_args) for number in range(API_PROCESSES)
    ]
    slots = []
    for group in (STATS_GROUP, STORE_GROUP):
        for number, crash_points in enumerate(((), crash_points_of(group)), start=1):
            name = f"{group}-{number}"
            worker = WorkerProcess(store_urls.args(), tmp_path / f"{name}.log", name, [group])
            slots.append(WorkerSlot(worker, crash_points))
    supervisor = WorkerSupervisor(
        slots, store_urls.redis_url, seed, CLAIM_IDLE_MS, CRASH_PROBABILITY
    )
    sender = VisitSender([api.base_url for api in apis], SENDER_THREADS, f"kills{seed:x}", seed)

    def goals_met() -> bool:
        every_point_crashed = all(supervisor.crash_kills[point] for point in CRASH_POINTS)
        return (
            supervisor.test_kills >= KILLS
            and sender.accepted_count() >= MIN_VISITS
            and every_point_crashed
        )

    started = time.monotonic()
    try:
        for api in apis:
            api.start()
        supervisor.start()
        sender.start()
        deadline = time.monotonic() + INGEST_DEADLINE_S
        while not goals_met():
            assert time.monotonic() < deadline, (
                f"the kill goals were not met within {INGEST_DEADLINE_S} s: "
                f"{supervisor.summary()}; {sender.summary()}"
            )
            sender.wait_for_more_accepted(rng.randint(*ACCEPTED_PER_KILL), timeout_s=60)
            supervisor.kill_random()
        sender.stop()
        ingest_s = time.monotonic() - started

        supervisor.disarm()
        wait_until_drained(store_urls.redis_url, DRAIN_TIMEOUT_S)
    finally:
        stuck_senders = sender.stop()
        try:
            worker_statuses = supervisor.stop()
        finally:
            stop_processes(apis)

    print(
        f"ingest {ingest_s:.0f} s, total {time.monotonic() - started:.0f} s; "
        f"{supervisor.summary()}; {sender.summary()}"
    )
    assert stuck_senders == [], "client requests still open 30 s after the senders stopped"
    assert supervisor.unexpected_exits == [], "a worker exited other than by SIGKILL"
    assert supervisor.stranded_entries > 0, (
        "no dead worker left an entry pending, so no claim was tested"
    )
    assert sender.unexpected_responses() == [], "the API returned a status other than 202 or 503"
    assert sender.unavailable_count() == 0, "ingest returned 503 while Redis was up"
    assert worker_statuses == {name: 0 for name in worker_statuses}, "a worker stopped uncleanly"

    truth = check_ground_truth(
        store_urls.redis_url,
        store_urls.database_url,
        sender.accepted_ids(),
        sender.sent_ids(),
    )
    print(truth.summary())
