"""`footfall stats rebuild` against a real server's database: offline and during ingest."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.server import ServerProcess, wait_for

from footfall.api.schemas import StatsOut
from footfall.model import LATEST_VISITS_CAPACITY, VISIT_COLUMNS, Visit
from footfall.stats.model import empty_stats, recount

SITES = ("site-a", "site-b", "site-c")
VISITOR_IPS = ("192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.10", "2001:db8::5")
REBUILD_TIMEOUT_S = 60


def _post_visit(client: httpx.Client, number: int, event_id: str) -> httpx.Response:
    body = {
        "timezone": "America/Chicago",
        "site": SITES[number % len(SITES)],
        "event_id": event_id,
        "url": f"https://example.com/page/{number % 7}",
    }
    headers = {"X-Forwarded-For": VISITOR_IPS[number * 3 % len(VISITOR_IPS)]}
    return client.post("/api/events", json=body, headers=headers)


def _api_stats(client: httpx.Client, site: str) -> dict[str, Any]:
    response = client.get("/api/stats", params={"site": site, "limit": LATEST_VISITS_CAPACITY})
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def _all_api_stats(server: ServerProcess) -> dict[str, dict[str, Any]]:
    with server.client(timeout=10) as client:
        return {site: _api_stats(client, site) for site in SITES}


def _stored_events(db_path: Path) -> list[Visit]:
    with contextlib.closing(sqlite3.connect(db_path)) as connection:
        rows = connection.execute(f"SELECT {VISIT_COLUMNS} FROM events ORDER BY seq").fetchall()
    return [Visit(*row) for row in rows]


def _wait_until_stats_caught_up(server: ServerProcess, db_path: Path) -> None:
    def caught_up() -> bool:
        counted = sum(stats["total_visits"] for stats in _all_api_stats(server).values())
        return counted == len(_stored_events(db_path))

    wait_for(caught_up, timeout_s=20)


def _recounted_json(db_path: Path) -> dict[str, dict[str, Any]]:
    """Return the `/api/stats` body each site should have, from a recount of the file."""
    counted = recount(_stored_events(db_path))
    return {
        site: StatsOut.of(counted.get(site, empty_stats(site))).model_dump(mode="json")
        for site in SITES
    }


def _run_rebuild(db_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "footfall", "stats", "rebuild", "--db", str(db_path)],
        capture_output=True,
        text=True,
        timeout=REBUILD_TIMEOUT_S,
        check=False,
    )


def _empty_stats_tables(db_path: Path) -> None:
    """Delete every stats row but keep the consumer's offset, as after lost read models."""
    with contextlib.closing(sqlite3.connect(db_path)) as connection:
        connection.execute("DELETE FROM visitor_stats")
        connection.execute("DELETE FROM latest_visits")
        connection.execute("DELETE FROM site_totals")
        connection.commit()


def _assert_same_stats(
    actual: dict[str, dict[str, Any]], expected: dict[str, dict[str, Any]]
) -> None:
    for site in SITES:
        assert actual[site]["total_visits"] == expected[site]["total_visits"], site
        assert actual[site]["distinct_visitors"] == expected[site]["distinct_visitors"], site
        assert actual[site]["top_visitors"] == expected[site]["top_visitors"], site
        assert actual[site]["latest_visits"] == expected[site]["latest_visits"], site


@pytest.mark.parametrize("stats_lost", [False, True], ids=["stats-kept", "stats-lost"])
def test_offline_rebuild_equals_live_stats(tmp_path: Path, stats_lost: bool) -> None:
    db_path = tmp_path / "footfall.db"
    server = ServerProcess(db_path, ["--trusted-proxy", "127.0.0.0/8"]).start()
    try:
        with server.client(timeout=10) as client:
            # 450 visits over three sites, so each site has more than its latest 100.
            # Every tenth event_id is sent again, as a client retry with other fields.
            for number in range(LATEST_VISITS_CAPACITY * 3 + 150):
                event_id = f"visit-{number}"
                assert _post_visit(client, number, event_id).status_code == 202
                if number % 10 == 0:
                    assert _post_visit(client, number + 1, event_id).status_code == 202
        _wait_until_stats_caught_up(server, db_path)
        live = _all_api_stats(server)
    finally:
        server.stop()

    if stats_lost:
        _empty_stats_tables(db_path)
    rebuild = _run_rebuild(db_path)

    assert rebuild.returncode == 0, rebuild.stderr
    stored_count = len(_stored_events(db_path))
    assert stored_count == LATEST_VISITS_CAPACITY * 3 + 150
    assert f"stats rebuilt from {stored_count} events" in rebuild.stderr
    server.start()
    try:
        rebuilt = _all_api_stats(server)
    finally:
        server.stop()

    assert live["site-a"]["total_visits"] > LATEST_VISITS_CAPACITY
    _assert_same_stats(rebuilt, live)
    _assert_same_stats(rebuilt, _recounted_json(db_path))


def _send_until_stopped(
    base_url: str, stop: threading.Event, accepted: list[str], failures: list[str]
) -> None:
    with httpx.Client(base_url=base_url, timeout=10) as client:
        number = 0
        while not stop.is_set():
            event_id = f"live-{number}"
            response = _post_visit(client, number, event_id)
            if response.status_code == 202:
                accepted.append(event_id)
            else:
                failures.append(f"{event_id}: {response.status_code} {response.text}")
            number += 1


def test_rebuild_during_ingest_equals_recount(tmp_path: Path) -> None:
    db_path = tmp_path / "footfall.db"
    server = ServerProcess(db_path, ["--trusted-proxy", "127.0.0.0/8"]).start()
    stop = threading.Event()
    accepted: list[str] = []
    failures: list[str] = []
    sender = threading.Thread(
        target=_send_until_stopped,
        args=(server.base_url, stop, accepted, failures),
        daemon=True,
    )
    rebuilds: list[subprocess.CompletedProcess[str]] = []
    try:
        sender.start()
        for round_number in range(1, 4):
            wait_for(lambda target=round_number * 200: len(accepted) >= target, timeout_s=20)
            rebuilds.append(_run_rebuild(db_path))
        accepted_at_last_rebuild = len(accepted)
        wait_for(lambda: len(accepted) >= accepted_at_last_rebuild + 100, timeout_s=20)
        stop.set()
        sender.join(timeout=20)
        _wait_until_stats_caught_up(server, db_path)
        live = _all_api_stats(server)
    finally:
        stop.set()
        server.stop()

    for rebuild in rebuilds:
        assert rebuild.returncode == 0, rebuild.stderr
    assert failures == []
    stored_ids = {visit.id for visit in _stored_events(db_path)}
    assert set(accepted) <= stored_ids
    _assert_same_stats(live, _recounted_json(db_path))
