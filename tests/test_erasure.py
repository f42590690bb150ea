"""Erasure of one visitor (`footfall erase`, `POST /api/admin/erasures`) on both deployments,
the distributed one with PostgreSQL and with MongoDB."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.mongo import SecantusServer
from support.server import ServerProcess, running_stack
from support.services import STORE_DEPLOYMENTS
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
TARGET_IP = "192.0.2.1"
TARGET_EMAIL = "ada@example.com"
OTHER_IPS = ("192.0.2.2", "198.51.100.3", "2001:db8::7")
ERASURES = "/api/admin/erasures"


@pytest.fixture(params=STORE_DEPLOYMENTS)
def deployment(request: pytest.FixtureRequest) -> str:
    """Every event store, MongoDB too: these tests delete stored visits."""
    name: str = request.param
    return name


def _stack(
    tmp_path: Path,
    deployment: str,
    extra_args: list[str],
    mongodb: SecantusServer | None = None,
) -> Iterator[ServerProcess]:
    """Serve (and, distributed, one worker) trusting proxy headers from 127.0.0.0/8."""
    args = ["--trusted-proxy", "127.0.0.0/8", *extra_args]
    with running_stack(tmp_path, deployment, args, mongodb=mongodb) as server:
        yield server


@pytest.fixture
def stack(
    tmp_path: Path, deployment: str, event_store_server: SecantusServer | None
) -> Iterator[ServerProcess]:
    yield from _stack(tmp_path, deployment, [], event_store_server)


@pytest.fixture
def http(stack: ServerProcess) -> Iterator[httpx.Client]:
    with stack.client(timeout=60) as client:
        yield client


def _post(client: httpx.Client, ip: str, email: str | None, site: str, number: int) -> None:
    body: dict[str, Any] = {"timezone": "Europe/Rome", "site": site, "url": f"/page/{number}"}
    if email is not None:
        body["email"] = email
    response = client.post("/api/events", json=body, headers={"X-Forwarded-For": ip})
    assert response.status_code == 202, response.text


def _post_mixed_visits(client: httpx.Client, count: int) -> None:
    """Post `count` visits: every third from the target IP, every fifth with its e-mail."""
    for number in range(count):
        ip = TARGET_IP if number % 3 == 0 else OTHER_IPS[number % len(OTHER_IPS)]
        email = TARGET_EMAIL if number % 5 == 0 else f"someone-{number % 4}@example.org"
        _post(client, ip, email, SITES[number % 2], number)


def _traces(server: ServerProcess, client: httpx.Client, ip: str | None, email: str | None) -> Any:
    """Return where `ip` or `email` still appears: stored events, stats and the API."""
    found: list[str] = []
    for visit in stored_visits(server):
        if visit.ip == ip or (email is not None and visit.email == email):
            found.append(f"stored event {visit.id}")
    for site in SITES:
        stats = api_stats(client, site)
        found += [f"top visitor of {site}" for v in stats["top_visitors"] if v["ip"] == ip]
        found += [
            f"latest visit {v['id']}"
            for v in stats["latest_visits"]
            if v["ip"] == ip or (email is not None and v["email"] == email)
        ]
        found += [
            f"/api/events {v['id']}"
            for v in api_events(client, site)
            if v["ip"] == ip or (email is not None and v["email"] == email)
        ]
    return found


def test_erase_by_ip_over_http(stack: ServerProcess, http: httpx.Client) -> None:
    _post_mixed_visits(http, 330)
    wait_until_counted(stack, http, SITES)
    target_visits = sum(1 for visit in stored_visits(stack) if visit.ip == TARGET_IP)

    first = http.post(ERASURES, json={"ip": TARGET_IP})
    wait_until_counted(stack, http, SITES)

    assert first.status_code == 200, first.text
    assert first.json() == {"deleted_events": target_visits}
    assert target_visits == 110
    assert _traces(stack, http, TARGET_IP, None) == []
    assert_stats_equal_recount(stack, http, SITES)
    for site in SITES:
        latest = api_stats(http, site)["latest_visits"]
        assert len(latest) == LATEST_VISITS_CAPACITY, "the latest visits must be refilled"
    assert TARGET_IP not in stack.log_text()

    repeated = http.post(ERASURES, json={"ip": TARGET_IP})

    assert repeated.status_code == 200, repeated.text
    assert repeated.json() == {"deleted_events": 0}
    assert_stats_equal_recount(stack, http, SITES)


def test_visit_after_erasure_counts(stack: ServerProcess, http: httpx.Client) -> None:
    _post_mixed_visits(http, 30)
    wait_until_counted(stack, http, SITES)

    erased = http.post(ERASURES, json={"ip": TARGET_IP, "email": TARGET_EMAIL})
    _post(http, TARGET_IP, TARGET_EMAIL, "shop", 1000)
    wait_until_counted(stack, http, SITES)

    assert erased.status_code == 200, erased.text
    top = {v["ip"]: v["visits"] for v in api_stats(http, "shop")["top_visitors"]}
    assert top[TARGET_IP] == 1
    assert [v.id for v in stored_visits(stack) if v.ip == TARGET_IP] != []
    assert_stats_equal_recount(stack, http, SITES)


def test_erase_by_email_with_cli(stack: ServerProcess, http: httpx.Client) -> None:
    _post_mixed_visits(http, 120)
    wait_until_counted(stack, http, SITES)
    target_visits = sum(1 for visit in stored_visits(stack) if visit.email == TARGET_EMAIL)

    result = run_footfall(stack, "erase", "--email", TARGET_EMAIL)
    wait_until_counted(stack, http, SITES)

    assert result.returncode == 0, result.stderr
    assert f"erased: {target_visits} events deleted" in result.stdout
    assert f"erased one visitor: {target_visits} events deleted" in result.stderr
    assert TARGET_EMAIL not in result.stdout + result.stderr
    assert target_visits == 24
    assert _traces(stack, http, None, TARGET_EMAIL) == []
    assert any(visit.ip == TARGET_IP for visit in stored_visits(stack)), (
        "visits of the same IP without the e-mail must stay"
    )
    assert_stats_equal_recount(stack, http, SITES)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body"),
        ({"ip": "192.0.2"}, "ip"),
        ({"ip": "not an address"}, "ip"),
        ({"email": ""}, "email"),
        ({"ip": TARGET_IP, "name": "Ada"}, "name"),
    ],
)
def test_erasure_rejects_bad_body(http: httpx.Client, body: dict[str, str], field: str) -> None:
    response = http.post(ERASURES, json=body)

    assert response.status_code == 400, response.text
    assert [error["field"] for error in response.json()["errors"]] == [field]


def test_erase_cli_rejects_bad_address(stack: ServerProcess) -> None:
    bad_ip = run_footfall(stack, "erase", "--ip", "192.0.2.300")
    nothing = run_footfall(stack, "erase")

    assert bad_ip.returncode == 2
    assert "--ip: invalid IP address '192.0.2.300'" in bad_ip.stderr
    assert nothing.returncode == 2
    assert "erase needs --ip ADDR, --email ADDR or both" in nothing.stderr


def test_erasure_documented_in_openapi(http: httpx.Client) -> None:
    document = http.get("/openapi.json").json()

    operation = document["paths"][ERASURES]["post"]
    assert set(operation["responses"]) >= {"200", "400", "409", "503"}
    assert "ErasureIn" in document["components"]["schemas"]
    assert "ErasureOut" in document["components"]["schemas"]


MODES = {
    "ip-hashed": (["--ip-mode", "hashed"], {"ip": TARGET_IP}),
    "ip-truncated": (["--ip-mode", "truncated"], {"ip": "192.0.2.200"}),
    "email-hash": (["--email-mode", "hash"], {"email": "Ada@Example.com"}),
}


@pytest.fixture(params=list(MODES))
def mode(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def mode_stack(
    tmp_path: Path, deployment: str, mode: str, event_store_server: SecantusServer | None
) -> Iterator[ServerProcess]:
    yield from _stack(tmp_path, deployment, MODES[mode][0], event_store_server)


def test_erasure_finds_stored_forms(mode_stack: ServerProcess, mode: str) -> None:
    with mode_stack.client(timeout=60) as client:
        _post_mixed_visits(client, 60)
        wait_until_counted(mode_stack, client, SITES)
        stored = stored_visits(mode_stack)
        # The target's stored form: the visit posted first came from it with its e-mail.
        first = next(visit for visit in stored if visit.url == "/page/0")
        form = first.email if mode == "email-hash" else first.ip
        target_count = sum(1 for visit in stored if form in (visit.ip, visit.email))

        response = client.post(ERASURES, json=MODES[mode][1])
        wait_until_counted(mode_stack, client, SITES)

        assert form not in (TARGET_IP, TARGET_EMAIL), "the mode must have changed the value"
        assert target_count > 0
        assert response.status_code == 200, response.text
        assert response.json() == {"deleted_events": target_count}
        ip = form if mode != "email-hash" else None
        email = form if mode == "email-hash" else None
        assert _traces(mode_stack, client, ip, email) == []
        assert_stats_equal_recount(mode_stack, client, SITES)


def test_embedded_erasure_overwrites_file(tmp_path: Path) -> None:
    # Some SQLite builds (Debian's among them) overwrite deleted rows by default. Erasure
    # turns that on itself for the builds that do not.
    stack = _stack(tmp_path, "embedded", [])
    server = next(stack)
    with server.client(timeout=60) as client:
        _post_mixed_visits(client, 60)
        wait_until_counted(server, client, SITES)

        erased = run_footfall(server, "erase", "--ip", TARGET_IP, "--email", TARGET_EMAIL)
    server.stop()

    files = [path for path in tmp_path.iterdir() if path.name.startswith("footfall.db")]
    assert erased.returncode == 0, erased.stderr
    assert files != []
    for path in files:
        content = path.read_bytes()
        assert TARGET_EMAIL.encode() not in content, path.name
        assert TARGET_IP.encode() not in content, path.name


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"ip":', "invalid JSON"),
        (b'["192.0.2.1"]', "must be a JSON object"),
    ],
)
def test_erasure_rejects_malformed_body(http: httpx.Client, content: bytes, message: str) -> None:
    response = http.post(ERASURES, content=content, headers={"content-type": "application/json"})

    assert response.status_code == 400, response.text
    [error] = response.json()["errors"]
    assert error["field"] == "body"
    assert error["message"].startswith(message)


def test_erasure_error_has_no_pydantic_prefix(http: httpx.Client) -> None:
    response = http.post(ERASURES, json={"ip": "192.0.2"})

    [error] = response.json()["errors"]
    assert error["message"].startswith("invalid IP address")
