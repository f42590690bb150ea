"""The distributed deployment with its events in MongoDB (SecantusDB): `db migrate`, the
start-up log, ingest through serve and a worker, paging and a stats rebuild."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pymongo
import pytest
from support.mongo import SecantusServer
from support.server import running_stack
from support.services import DistributedUrls, fresh_distributed_backends
from support.stack import (
    api_events,
    api_stats,
    assert_stats_equal_recount,
    run_footfall,
    stored_visits,
    wait_until_counted,
)

from footfall.model import LATEST_VISITS_CAPACITY

SITES = ("shop", "blog")
VISITS = 240


@pytest.fixture
def urls(mongodb_server: SecantusServer) -> Iterator[DistributedUrls]:
    with fresh_distributed_backends(mongodb_server) as fresh:
        yield fresh


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "footfall", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_db_migrate_creates_indexes(urls: DistributedUrls) -> None:
    first = run_cli("db", "migrate", "--database-url", urls.database_url)
    again = run_cli("db", "migrate", "--database-url", urls.database_url)

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
    result = run_cli("db", "migrate", "--database-url", url)

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


def test_serve_worker_and_rebuild_on_mongodb(
    tmp_path: Path, mongodb_server: SecantusServer
) -> None:
    proxies = ["--trusted-proxy", "127.0.0.0/8"]
    with running_stack(tmp_path, "mongodb", proxies, mongodb=mongodb_server) as api:
        with api.client() as client:
            for number in range(VISITS):
                _post(client, number)
            wait_until_counted(api, client, SITES)
            pages = {site: [event["id"] for event in api_events(client, site)] for site in SITES}
            live = {site: api_stats(client, site) for site in SITES}

            rebuild = run_footfall(api, "stats", "rebuild")
            rebuilt = {site: api_stats(client, site) for site in SITES}
            assert_stats_equal_recount(api, client, SITES)
        visits = stored_visits(api)
        log = api.log_text()

    assert len(visits) == VISITS
    for site in SITES:
        newest_first = sorted(
            (visit for visit in visits if visit.site == site),
            key=lambda visit: (visit.received_at_ms, visit.id),
            reverse=True,
        )
        assert pages[site] == [visit.id for visit in newest_first], f"pages of site {site}"
    assert rebuild.returncode == 0, rebuild.stderr
    assert f"stats rebuilt from {VISITS} events" in rebuild.stderr
    assert rebuilt == live
    assert live["shop"]["total_visits"] > LATEST_VISITS_CAPACITY

    for role in ("footfall serve", "footfall worker"):
        assert f"{role} on MongoDB 8" in log
    assert "(SecantusDB" in log
    assert "write concern w: majority, j: true" in log
    assert "weaker than" not in log
