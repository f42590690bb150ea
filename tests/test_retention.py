"""Retention (`--retention-days`, `footfall retention run`) on both deployments, the
distributed one with PostgreSQL and with MongoDB.

Visits from weeks ago are appended to the event log with their old timestamps, so the
tests need no clock of their own and never wait for days.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.mongo import SecantusServer
from support.server import ServerProcess, running_stack, wait_for
from support.services import STORE_DEPLOYMENTS
from support.stack import (
    api_events,
    api_stats,
    append_visits,
    assert_stats_equal_recount,
    run_footfall,
    stored_visits,
    wait_until_counted,
)

from footfall.model import LATEST_VISITS_CAPACITY, Visit

SITES = ("site-a", "site-b")
DAY_MS = 24 * 60 * 60 * 1000
RETENTION_DAYS = 30
OLD_VISITS = 150
RECENT_VISITS = 60


@pytest.fixture(params=STORE_DEPLOYMENTS)
def deployment(request: pytest.FixtureRequest) -> str:
    """Every event store, MongoDB too: these tests delete stored visits."""
    name: str = request.param
    return name


def _visit(number: int, age_days: float, ip: str, site: str, now_ms: int) -> Visit:
    return Visit(
        id=f"visit-{number}",
        site=site,
        received_at_ms=now_ms - int(age_days * DAY_MS),
        ip=ip,
        timezone="Europe/Paris",
        email=f"visitor-{number % 4}@example.com",
        url=f"https://example.com/{number}",
    )


def _history(now_ms: int) -> tuple[list[Visit], list[Visit]]:
    """Return visits older than the retention period and visits within it.

    192.0.2.1 visits in both periods, so it stays a visitor with fewer visits.
    192.0.2.2 visits only long ago, so it disappears from the top visitors.
    """
    old = [
        _visit(
            number,
            RETENTION_DAYS + 1 + number % 60,
            ("192.0.2.1", "192.0.2.2")[number % 2],
            SITES[number % 3 % 2],
            now_ms,
        )
        for number in range(OLD_VISITS)
    ]
    recent = [
        _visit(
            OLD_VISITS + number,
            number % (RETENTION_DAYS - 2),
            ("192.0.2.1", "192.0.2.3")[number % 2],
            SITES[0] if number < RECENT_VISITS - 5 else SITES[1],
            now_ms,
        )
        for number in range(RECENT_VISITS)
    ]
    return old, recent


def _assert_only_recent_stored(server: ServerProcess, recent: list[Visit]) -> None:
    assert sorted(visit.id for visit in stored_visits(server)) == sorted(
        visit.id for visit in recent
    )


def test_retention_run_deletes_old_and_recounts(
    server: ServerProcess, client: httpx.Client
) -> None:
    now_ms = int(time.time() * 1000)
    old, recent = _history(now_ms)
    append_visits(server, old + recent)
    wait_until_counted(server, client, SITES)
    before = api_stats(client, "site-a")

    first = run_footfall(server, "retention", "run", "--retention-days", str(RETENTION_DAYS))
    repeated = run_footfall(server, "retention", "run", "--retention-days", str(RETENTION_DAYS))

    assert before["total_visits"] > LATEST_VISITS_CAPACITY
    assert first.returncode == 0, first.stderr
    assert f"retention pass deleted {OLD_VISITS} events older than 30 days" in first.stderr
    assert f"retention: {OLD_VISITS} events older than 30 days deleted" in first.stdout
    assert repeated.returncode == 0, repeated.stderr
    assert "retention pass deleted 0 events" in repeated.stderr
    _assert_only_recent_stored(server, recent)
    assert_stats_equal_recount(server, client, SITES)
    top_ips = [visitor["ip"] for visitor in api_stats(client, "site-a")["top_visitors"]]
    assert "192.0.2.2" not in top_ips
    cutoff_ms = now_ms - RETENTION_DAYS * DAY_MS
    for site in SITES:
        for event in api_events(client, site):
            assert event["id"] in {visit.id for visit in recent}, event
    assert all(visit.received_at_ms >= cutoff_ms for visit in stored_visits(server))


def test_retention_then_new_visits_count(server: ServerProcess, client: httpx.Client) -> None:
    now_ms = int(time.time() * 1000)
    old, recent = _history(now_ms)
    append_visits(server, old + recent)
    wait_until_counted(server, client, SITES)

    retention = run_footfall(server, "retention", "run", "--retention-days", str(RETENTION_DAYS))
    for number in range(5):
        body = {"timezone": "UTC", "site": "site-b", "event_id": f"after-{number}"}
        assert client.post("/api/events", json=body).status_code == 202
    wait_until_counted(server, client, SITES)

    assert retention.returncode == 0, retention.stderr
    assert api_stats(client, "site-b")["total_visits"] == 5 + 5
    assert_stats_equal_recount(server, client, SITES)


@pytest.fixture
def retention_stack(
    tmp_path: Path,
    deployment: str,
    monkeypatch: pytest.MonkeyPatch,
    event_store_server: SecantusServer | None,
) -> Iterator[ServerProcess]:
    """A stack whose scheduled retention runs every second: in serve (embedded) or in the
    worker (distributed)."""
    monkeypatch.setenv("FOOTFALL_RETENTION_INTERVAL_S", "1")
    retention = ["--retention-days", str(RETENTION_DAYS)]
    serve_args = retention if deployment == "embedded" else []
    with running_stack(
        tmp_path, deployment, serve_args, worker_args=retention, mongodb=event_store_server
    ) as server:
        yield server


def test_scheduled_retention_deletes_old(retention_stack: ServerProcess) -> None:
    now_ms = int(time.time() * 1000)
    old, recent = _history(now_ms)

    with retention_stack.client(timeout=10) as client:
        append_visits(retention_stack, old + recent)

        def only_recent_counted() -> bool:
            totals = sum(api_stats(client, site)["total_visits"] for site in SITES)
            return totals == len(recent) and len(stored_visits(retention_stack)) == len(recent)

        wait_for(only_recent_counted, timeout_s=60, interval_s=0.2)
        wait_until_counted(retention_stack, client, SITES)

        _assert_only_recent_stored(retention_stack, recent)
        assert_stats_equal_recount(retention_stack, client, SITES)
    assert "retention: events older than 30 days are deleted" in retention_stack.log_text()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "invalid --retention-days '0'"),
        ("-3", "invalid --retention-days '-3'"),
        ("ten", "invalid --retention-days 'ten'"),
        ("36501", "from 1 to 36500"),
    ],
)
def test_retention_days_rejects_bad_values(tmp_path: Path, value: str, message: str) -> None:
    server = ServerProcess(tmp_path / "footfall.db")

    result = run_footfall(server, "retention", "run", "--retention-days", value)

    assert result.returncode == 2
    assert message in result.stderr


def test_retention_run_needs_days(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "footfall.db")

    result = run_footfall(server, "retention", "run")

    assert result.returncode == 2
    assert "retention run needs --retention-days N" in result.stderr


def test_stats_rebuild_after_retention(server: ServerProcess, client: httpx.Client) -> None:
    now_ms = int(time.time() * 1000)
    old, recent = _history(now_ms)
    append_visits(server, old + recent)
    wait_until_counted(server, client, SITES)

    retention = run_footfall(server, "retention", "run", "--retention-days", str(RETENTION_DAYS))
    rebuild = run_footfall(server, "stats", "rebuild")

    assert retention.returncode == 0, retention.stderr
    assert rebuild.returncode == 0, rebuild.stderr
    assert f"stats rebuilt from {RECENT_VISITS} events" in rebuild.stderr
    assert_stats_equal_recount(server, client, SITES)
