"""`--public-dashboard`: anyone may read, with IPs, e-mail addresses and positions masked."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from support.server import ServerProcess, StartServer, wait_for

VISITORS = [
    ("203.0.113.77", "jane.doe@example.com", 52.520008, 13.404954),
    ("2001:db8:1:2::7", "bob.smith@example.org", -33.868820, 151.209296),
]
FULL_VALUES = ["203.0.113.77", "2001:db8:1:2::7", "jane.doe", "bob.smith", "52.52", "151.209"]
MASKED_VALUES = ["203.0.113.0/24", "2001:db8:1::/48", "j***@example.com", "b***@example.org"]


@pytest.fixture
def public_server(start_server: StartServer) -> ServerProcess:
    server = start_server(["--public-dashboard", "--trusted-proxy", "127.0.0.0/8"])
    with server.client() as http:
        for ip, email, latitude, longitude in VISITORS:
            body = {"timezone": "UTC", "email": email, "latitude": latitude, "longitude": longitude}
            response = http.post("/api/events", json=body, headers={"x-forwarded-for": ip})
            assert response.status_code == 202, response.text
        wait_for(lambda: http.get("/api/stats").json()["total_visits"] == len(VISITORS))
    return server


def public_get(server: ServerProcess, path: str) -> httpx.Response:
    return httpx.get(f"{server.base_url}{path}", timeout=10)


@pytest.mark.parametrize("path", ["/api/stats", "/api/events"])
def test_public_read_masks_personal_data(public_server: ServerProcess, path: str) -> None:
    response = public_get(public_server, path)

    assert response.status_code == 200
    for value in FULL_VALUES:
        assert value not in response.text, value
    for value in MASKED_VALUES:
        assert value in response.text, value


def test_public_stats_round_positions(public_server: ServerProcess) -> None:
    visits: list[dict[str, Any]] = public_get(public_server, "/api/stats").json()["latest_visits"]

    assert sorted((visit["latitude"], visit["longitude"]) for visit in visits) == [
        (-33.9, 151.2),
        (52.5, 13.4),
    ]


@pytest.mark.parametrize("path", ["/api/stats", "/api/events"])
def test_token_reader_sees_full_data(public_server: ServerProcess, path: str) -> None:
    with public_server.client() as http:
        response = http.get(path)

    assert response.status_code == 200
    for value in ["203.0.113.77", "2001:db8:1:2::7", "jane.doe@example.com"]:
        assert value in response.text, value


def test_public_dashboard_opens_without_login(public_server: ServerProcess) -> None:
    response = public_get(public_server, "/")

    assert response.status_code == 200
    assert '<main id="app">' in response.text


def test_public_dashboard_rejects_bad_token(public_server: ServerProcess) -> None:
    response = httpx.get(
        f"{public_server.base_url}/api/stats", headers={"authorization": "Bearer ff.no.no"}
    )

    assert response.status_code == 401


def test_public_dashboard_keeps_admin_and_metrics_closed(public_server: ServerProcess) -> None:
    assert public_get(public_server, "/api/tokens").status_code == 401
    assert public_get(public_server, "/metrics").status_code == 401
