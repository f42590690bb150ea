"""The distributed deployment with its events in MongoDB (SecantusDB): `db migrate`, the
start-up log, ingest through serve and a worker, paging and a stats rebuild."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pymongo
import pytest
from faults.harness import stored_visits
from support.mongo import SecantusServer
from support.reads import all_events
from support.server import ServerProcess, WorkerProcess, wait_for
from support.services import DistributedUrls, fresh_distributed_backends

from footfall.api.schemas import StatsOut
from footfall.model import LATEST_VISITS_CAPACITY
from footfall.stats.model import recount

SITES = ("shop", "blog")
VISITS = 240


@pytest.fixture
def urls(mongodb_server: SecantusServer) -> Iterator[DistributedUrls]:
    with fresh_distributed_backends(mongodb_server) as fresh:
        yield fresh


def run_footfall(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "footfall", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_db_migrate_creates_indexes(urls: DistributedUrls) -> None:
    first = run_footfall("db", "migrate", "--database-url", urls.database_url)
    again = run_footfall("db", "migrate", "--database-url", urls.database_url)

    assert first.returncode == 0, first.stderr
    assert again.returncode == 0, again.stderr
    assert "has the indexes site_time, received_at, ip, email on events" in first.stderr
    with pymongo.MongoClient(urls.database_url) as client:
        indexes = client.get_default_database()["events"].index_information()
    assert set(indexes) == {"_id_", "site_time", "received_at", "ip", "email"}


@pytest.mark.parametrize(
    "url", ["mysql://127.0.0.1/footfall", "mongodb:///footfall"], ids=["scheme", "no-host"]
)
def test_db_migrate_rejects_bad_url(url: str) -> None:
    result = run_footfall("db", "migrate", "--database-url", url)

    assert result.returncode == 2
    assert "invalid --database-url" in result.stderr
    assert "mongodb://HOST:PORT/DATABASE" in result.stderr


def _post(client: httpx.Client, number: int) -> None:
    body = {"timezone": "Asia/Tokyo", "site": SITES[number % 2], "event_id": f"visit-{number}"}
    if number % 3 == 0:
        body["email"] = f"visitor-{number % 7}@example.org"
    headers = {"X-Forwarded-For": f"198.51.100.{number % 9 + 1}"}
    response = client.post("/api/events", json=body, headers=headers)
    assert response.status_code == 202, response.text


def _stats(client: httpx.Client) -> dict[str, Any]:
    return {site: client.get("/api/stats", params={"site": site}).json() for site in SITES}


def test_serve_worker_and_rebuild_on_mongodb(tmp_path: Path, urls: DistributedUrls) -> None:
    api = ServerProcess(tmp_path / "api.db", [*urls.args(), "--trusted-proxy", "127.0.0.0/8"])
    worker = WorkerProcess(urls.args(), tmp_path / "worker.log", "worker-1").start()
    api.workers.append(worker)
    try:
        api.start()
        with api.client() as client:
            for number in range(VISITS):
                _post(client, number)
            wait_for(lambda: len(stored_visits(urls.database_url)) == VISITS, timeout_s=30)
            wait_for(
                lambda: sum(s["total_visits"] for s in _stats(client).values()) == VISITS,
                timeout_s=30,
            )
            pages = {site: [event["id"] for event in all_events(client, site)] for site in SITES}
            live = _stats(client)

            rebuild = run_footfall("stats", "rebuild", *urls.args())
            rebuilt = _stats(client)
    finally:
        api.stop()
        worker.stop()

    visits = stored_visits(urls.database_url)
    for site in SITES:
        newest_first = sorted(
            (visit for visit in visits if visit.site == site),
            key=lambda visit: (visit.received_at_ms, visit.id),
            reverse=True,
        )
        assert pages[site] == [visit.id for visit in newest_first], f"pages of site {site}"

    assert rebuild.returncode == 0, rebuild.stderr
    assert f"stats rebuilt from {VISITS} events" in rebuild.stderr
    expected = recount(visits)
    for site in SITES:
        recounted = StatsOut.of(expected[site]).model_dump(mode="json")
        assert rebuilt[site] == live[site] == recounted, f"stats of site {site}"
    assert live["shop"]["total_visits"] > LATEST_VISITS_CAPACITY

    log = api.log_text()
    for role in ("footfall serve", "footfall worker"):
        assert f"{role} on MongoDB 8" in log
        assert "(SecantusDB" in log
        assert "write concern w: majority, j: true" in log
    assert "weaker than" not in log
