"""`POST /api/events` through a real `footfall serve` process on SQLite."""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Iterator
from typing import Any

import httpx
from support.server import ServerProcess, wait_for

VISIT = {"timezone": "Europe/Berlin", "url": "https://example.com/"}


def stored_events(http: httpx.Client, site: str = "default") -> list[dict[str, Any]]:
    response = http.get("/api/events", params={"site": site, "limit": 1000})
    assert response.status_code == 200
    events: list[dict[str, Any]] = response.json()["events"]
    return events


def assert_only_marker_stored(http: httpx.Client) -> None:
    """Send one valid marker visit, wait until it is stored, and check that it is all that is.

    The store can lag behind the 202 (the distributed store worker), so waiting for a later
    visit is what proves the rejected ones before it were never stored.
    """
    marker = http.post("/api/events", json={**VISIT, "url": "https://example.com/marker"})
    assert marker.status_code == 202
    marker_id = marker.json()["id"]
    events = wait_for(lambda: stored_events(http) or None)
    assert [event["id"] for event in events] == [marker_id]


def latest_visit(http: httpx.Client, event_id: str, site: str = "default") -> dict[str, Any]:
    """Wait until the stats consumer has applied `event_id`, then return it from /api/stats."""

    def find() -> dict[str, Any] | None:
        visits = http.get("/api/stats", params={"site": site}).json()["latest_visits"]
        return next((visit for visit in visits if visit["id"] == event_id), None)

    return wait_for(find)


def test_visit_accepted_and_counted(client: httpx.Client) -> None:
    response = client.post("/api/events", json=VISIT)

    assert response.status_code == 202
    visit = latest_visit(client, response.json()["id"])
    assert visit["timezone"] == "Europe/Berlin"
    assert visit["ip"] == "127.0.0.1"
    assert visit["url"] == "https://example.com/"


def test_prototype_shape_accepted(client: httpx.Client) -> None:
    body = {
        "Email": "ada@example.com",
        "TIMEZONE": "Asia/Tokyo",
        "latitude": 35.7,
        "LONGITUDE": 139.7,
    }

    response = client.post("/api/events", json=body)

    assert response.status_code == 202
    visit = latest_visit(client, response.json()["id"])
    assert visit["email"] == "ada@example.com"
    assert visit["latitude"] == 35.7
    assert visit["longitude"] == 139.7


def test_server_stamps_receive_time(client: httpx.Client) -> None:
    body = {**VISIT, "visited_at": "1999-01-01T00:00:00+00:00"}

    response = client.post("/api/events", json=body)

    visit = latest_visit(client, response.json()["id"])
    assert visit["visited_at"].endswith("+00:00")
    assert not visit["visited_at"].startswith("1999")


def test_content_types_accepted(client: httpx.Client) -> None:
    content = json.dumps(VISIT).encode()
    for content_type in [
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "text/plain;charset=UTF-8",
        "Application/JSON",
    ]:
        response = client.post(
            "/api/events", content=content, headers={"content-type": content_type}
        )
        assert response.status_code == 202, content_type


def test_other_content_types_415(client: httpx.Client) -> None:
    content = json.dumps(VISIT).encode()
    for content_type in [
        "application/x-www-form-urlencoded",
        "text/html",
        "multipart/form-data",
        "",
    ]:
        response = client.post(
            "/api/events", content=content, headers={"content-type": content_type}
        )
        assert response.status_code == 415, content_type
        assert "application/json or text/plain" in response.json()["detail"]

    assert_only_marker_stored(client)


def test_malformed_json_400(client: httpx.Client) -> None:
    bodies = [
        b'{"timezone": ',
        b"{'timezone': 'UTC'}",
        b"",
        b"\xff\xfe",
        b'{"latitude": NaN}',
        b'{"timezone": "UTC", "latitude": 1e999, "longitude": 1}',
    ]
    for body in bodies:
        response = client.post(
            "/api/events", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, body
        assert response.json()["detail"].startswith("invalid JSON")

    assert_only_marker_stored(client)


def test_deeply_nested_json_400(client: httpx.Client) -> None:
    body = b'{"timezone": "UTC", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"

    response = client.post(
        "/api/events", content=body, headers={"content-type": "application/json"}
    )

    assert response.status_code == 400
    assert_only_marker_stored(client)


def test_invalid_fields_422_named(client: httpx.Client) -> None:
    response = client.post(
        "/api/events", json={"timezone": "Mars/Olympus_Mons", "latitude": 98.23, "longitude": 10}
    )

    assert response.status_code == 422
    fields = {error["field"]: error["message"] for error in response.json()["errors"]}
    assert "Mars/Olympus_Mons" in fields["timezone"]
    assert "98.23" in fields["latitude"]
    assert_only_marker_stored(client)


def test_latitude_out_of_range_422(client: httpx.Client) -> None:
    response = client.post("/api/events", json={**VISIT, "latitude": 98.23, "longitude": 1.0})

    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == ["latitude"]


def test_unknown_timezone_422(client: httpx.Client) -> None:
    response = client.post("/api/events", json={"timezone": "Mars/Olympus_Mons"})

    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == ["timezone"]


def test_string_and_boolean_coordinates_422(client: httpx.Client) -> None:
    for latitude, longitude in [("52.5", 13.4), (True, 13.4), (52.5, False)]:
        response = client.post(
            "/api/events", json={**VISIT, "latitude": latitude, "longitude": longitude}
        )
        assert response.status_code == 422, (latitude, longitude)

    assert_only_marker_stored(client)


def chunked_body(total_bytes: int) -> Iterator[bytes]:
    chunk = b"x" * 65536
    sent = 0
    yield b'{"timezone": "UTC", "url": "'
    while sent < total_bytes:
        yield chunk
        sent += len(chunk)
    yield b'"}'


def test_huge_chunked_body_413_then_next_visit_accepted(server: ServerProcess) -> None:
    with server.client(timeout=30) as http:
        try:
            response = http.post(
                "/api/events",
                content=chunked_body(20 * 1024 * 1024),
                headers={"content-type": "application/json"},
            )
            status = response.status_code
        except httpx.TransportError:
            # The server may close the connection while the client is still sending.
            status = None

    with server.client(timeout=10) as http:
        assert status in (413, None)
        assert_only_marker_stored(http)


def test_huge_body_413_raw_socket(server: ServerProcess) -> None:
    """The 413 arrives while the client is still sending, so the body is not buffered first."""
    chunk = b"x" * 65536
    sent_bytes = 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(
            b"POST /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        try:
            while sent_bytes < 20 * 1024 * 1024:
                connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent_bytes += len(chunk)
                readable, _, _ = select.select([connection], [], [], 0.01)
                if readable:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        reply = connection.recv(4096)

    assert reply.startswith(b"HTTP/1.1 413")
    assert sent_bytes < 20 * 1024 * 1024


def test_declared_length_over_limit_413(client: httpx.Client) -> None:
    response = client.post(
        "/api/events",
        content=b"{" + b" " * 70_000 + b"}",
        headers={"content-type": "application/json"},
    )

    assert response.status_code == 413
    assert "64" in response.json()["detail"] or "65536" in response.json()["detail"]


def test_emoji_url_round_trips(client: httpx.Client) -> None:
    url = "https://example.com/🦶/füße?q=👣#ß"

    response = client.post("/api/events", json={**VISIT, "url": url, "title": "👣 steps"})

    visit = latest_visit(client, response.json()["id"])
    assert visit["url"] == url


def test_ten_thousand_char_url_cut(client: httpx.Client) -> None:
    url = "https://example.com/" + "a" * 9_980

    response = client.post("/api/events", json={**VISIT, "url": url})

    assert response.status_code == 202
    visit = latest_visit(client, response.json()["id"])
    assert len(visit["url"]) == 2048
    assert url.startswith(visit["url"])


def test_retry_with_same_event_id_stored_once(client: httpx.Client) -> None:
    body = {**VISIT, "event_id": "0f8e2a3b-retry-test"}

    first = client.post("/api/events", json=body)
    second = client.post("/api/events", json=body)

    assert first.status_code == 202
    assert second.status_code == 202
    assert first.json()["id"] == second.json()["id"] == "0f8e2a3b-retry-test"
    latest_visit(client, "0f8e2a3b-retry-test")
    assert client.get("/api/stats").json()["total_visits"] == 1
    events = wait_for(lambda: stored_events(client) or None)
    assert [event["id"] for event in events] == ["0f8e2a3b-retry-test"]


def test_preflight_allows_any_origin(client: httpx.Client) -> None:
    response = client.options(
        "/api/events",
        headers={
            "origin": "https://shop.example",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type",
        },
    )

    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "content-type" in response.headers["access-control-allow-headers"].lower()


def test_cors_on_success_and_errors(client: httpx.Client) -> None:
    origin = {"origin": "https://shop.example"}
    responses = [
        client.post("/api/events", json=VISIT, headers=origin),
        client.post("/api/events", json={"timezone": "Nowhere"}, headers=origin),
        client.post("/api/events", content=b"{", headers={**origin, "content-type": "text/plain"}),
        client.post("/api/events", content=b"{}", headers={**origin, "content-type": "text/csv"}),
    ]

    assert [response.status_code for response in responses] == [202, 422, 400, 415]
    for response in responses:
        assert response.headers["access-control-allow-origin"] == "*"


def test_forged_forwarded_for_ignored_from_untrusted_peer(client: httpx.Client) -> None:
    response = client.post("/api/events", json=VISIT, headers={"x-forwarded-for": "203.0.113.99"})

    assert latest_visit(client, response.json()["id"])["ip"] == "127.0.0.1"


def test_trusted_proxy_ipv6_stored_whole(proxied_server: ServerProcess) -> None:
    with proxied_server.client(timeout=10) as http:
        response = http.post(
            "/api/events", json=VISIT, headers={"x-forwarded-for": "2001:db8:85a3::8a2e:370:7334"}
        )

        assert latest_visit(http, response.json()["id"])["ip"] == "2001:db8:85a3::8a2e:370:7334"


def test_trusted_proxy_port_removed(proxied_server: ServerProcess) -> None:
    with proxied_server.client(timeout=10) as http:
        response = http.post(
            "/api/events", json=VISIT, headers={"x-forwarded-for": "203.0.113.7:51234"}
        )

        assert latest_visit(http, response.json()["id"])["ip"] == "203.0.113.7"


def test_trusted_proxy_forwarded_header(proxied_server: ServerProcess) -> None:
    with proxied_server.client(timeout=10) as http:
        response = http.post(
            "/api/events", json=VISIT, headers={"forwarded": 'for="[::ffff:192.0.2.10]:443"'}
        )

        assert latest_visit(http, response.json()["id"])["ip"] == "192.0.2.10"


def test_trusted_proxy_non_ip_header_ignored(proxied_server: ServerProcess) -> None:
    with proxied_server.client(timeout=10) as http:
        response = http.post("/api/events", json=VISIT, headers={"x-forwarded-for": "<script>"})

        assert latest_visit(http, response.json()["id"])["ip"] == "127.0.0.1"
