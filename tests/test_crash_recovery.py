"""Crash recovery of `footfall serve`: SIGKILL at random moments loses and doubles nothing.

Client threads send visits, some of them retries with an event_id sent before, while the
server is killed with SIGKILL and restarted on the same SQLite file. Afterwards every visit
that got a 202 is stored exactly once, and the stats equal a recount of the stored events.
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.server import ServerProcess, wait_for

from footfall.api.schemas import StatsOut
from footfall.model import LATEST_VISITS_CAPACITY, VISIT_COLUMNS, Visit
from footfall.stats.model import empty_stats, recount

SITES = ("site-a", "site-b", "site-c")
VISITOR_IPS = tuple(f"198.51.100.{number}" for number in range(1, 8))
KILLS = 12
SENDER_THREADS = 4
RETRY_SHARE = 0.25
"""Share of requests that resend an event_id the same thread sent before."""
ACCEPTED_PER_ROUND = (50, 400)
"""Range of new 202s to wait for before each kill, drawn per round."""


@dataclass
class SenderRecord:
    """What one client thread sent and the status codes it received."""

    sent_ids: set[str] = field(default_factory=set)
    accepted_ids: list[str] = field(default_factory=list)
    unavailable: int = 0
    transport_errors: int = 0
    unexpected: list[tuple[int, str]] = field(default_factory=list)


def _send_visits(
    base_url: str, name: str, seed: int, stop: threading.Event, record: SenderRecord
) -> None:
    """Post visits until `stop` is set, recording every event_id that got a 202."""
    rng = random.Random(seed)
    own_ids: list[str] = []
    with httpx.Client(base_url=base_url, timeout=5) as client:
        while not stop.is_set():
            if own_ids and rng.random() < RETRY_SHARE:
                event_id = rng.choice(own_ids)
            else:
                event_id = f"{name}-{len(own_ids)}"
                own_ids.append(event_id)
            record.sent_ids.add(event_id)
            body = {"timezone": "UTC", "site": rng.choice(SITES), "event_id": event_id}
            headers = {"X-Forwarded-For": rng.choice(VISITOR_IPS)}
            try:
                response = client.post("/api/events", json=body, headers=headers)
            except httpx.TransportError:
                # The server is down or restarting, so the outcome of this request is unknown.
                record.transport_errors += 1
                stop.wait(0.02)
                continue
            if response.status_code == 202 and response.json() == {"id": event_id}:
                record.accepted_ids.append(event_id)
            elif response.status_code == 503:
                record.unavailable += 1
            else:
                record.unexpected.append((response.status_code, response.text))


def _stored_events(db_path: Path) -> list[Visit]:
    """Read every stored event from the SQLite file, in log order."""
    with contextlib.closing(sqlite3.connect(db_path)) as connection:
        rows = connection.execute(f"SELECT {VISIT_COLUMNS} FROM events ORDER BY seq").fetchall()
    return [Visit(*row) for row in rows]


def _stored_count(db_path: Path) -> int:
    with contextlib.closing(sqlite3.connect(db_path)) as connection:
        return int(connection.execute("SELECT count(*) FROM events").fetchone()[0])


def _api_stats(client: httpx.Client, site: str) -> dict[str, Any]:
    response = client.get("/api/stats", params={"site": site, "limit": LATEST_VISITS_CAPACITY})
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def _counted_total(client: httpx.Client) -> int:
    return sum(_api_stats(client, site)["total_visits"] for site in SITES)


@pytest.mark.slow
def test_sigkill_loses_and_doubles_nothing(tmp_path: Path) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    print(f"random seed {seed}")
    rng = random.Random(seed)
    db_path = tmp_path / "footfall.db"
    server = ServerProcess(db_path, ["--trusted-proxy", "127.0.0.0/8"]).start()
    stop = threading.Event()
    records = [SenderRecord() for _ in range(SENDER_THREADS)]
    senders = [
        threading.Thread(
            target=_send_visits,
            args=(server.base_url, f"sender{number}", seed + number, stop, records[number]),
            daemon=True,
        )
        for number in range(SENDER_THREADS)
    ]

    def accepted_count() -> int:
        return sum(len(record.accepted_ids) for record in records)

    try:
        for sender in senders:
            sender.start()
        for _ in range(KILLS):
            target = accepted_count() + rng.randint(*ACCEPTED_PER_ROUND)
            wait_for(lambda target=target: accepted_count() >= target, timeout_s=20)
            server.kill()
            server.start()
        # Some visits after the last restart, so the final process has work of its own.
        target = accepted_count() + rng.randint(*ACCEPTED_PER_ROUND)
        wait_for(lambda: accepted_count() >= target, timeout_s=20)
        stop.set()
        for sender in senders:
            sender.join(timeout=10)
        with server.client(timeout=10) as client:
            wait_for(lambda: _counted_total(client) == _stored_count(db_path), timeout_s=20)
            api_stats = {site: _api_stats(client, site) for site in SITES}
    finally:
        stop.set()
        server.stop()

    stored = _stored_events(db_path)
    stored_ids = [visit.id for visit in stored]
    accepted = {event_id for record in records for event_id in record.accepted_ids}
    sent = set().union(*(record.sent_ids for record in records))
    unexpected = [answer for record in records for answer in record.unexpected]

    print(
        f"{len(accepted)} ids answered 202, {len(stored)} stored, {len(sent)} sent, "
        f"{sum(record.transport_errors for record in records)} transport errors, "
        f"{sum(record.unavailable for record in records)} answers 503"
    )
    assert unexpected == [], f"seed {seed}"
    assert sum(record.transport_errors for record in records) > 0, "no request met a kill"
    assert len(stored_ids) == len(set(stored_ids)), f"an event is stored twice, seed {seed}"
    missing = accepted - set(stored_ids)
    assert not missing, f"{len(missing)} visits answered 202 are lost, seed {seed}: {missing}"
    assert set(stored_ids) <= sent, "the events table contains ids nobody sent"

    expected = recount(stored)
    for site in SITES:
        site_stats = expected.get(site, empty_stats(site))
        expected_json = StatsOut.of(site_stats).model_dump(mode="json")
        actual_json = api_stats[site]
        assert actual_json["total_visits"] == expected_json["total_visits"], site
        assert actual_json["distinct_visitors"] == expected_json["distinct_visitors"], site
        assert actual_json["top_visitors"] == expected_json["top_visitors"], site
        assert actual_json["latest_visits"] == expected_json["latest_visits"], site
