"""Credentials on the read side, through a real server on each deployment."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx
import pytest
from support.auth import bearer
from support.server import ServerProcess, StartServer

READ_PATHS = ["/api/stats", "/api/events", "/metrics", "/api/tokens"]
PUBLIC_PATHS = ["/healthz", "/openapi.json", "/tracker.js", "/login", "/static/app.js"]


def create_token(server: ServerProcess, role: str, name: str = "test") -> tuple[str, str]:
    """Create a token with the CLI and return (token, id)."""
    result = server.token_command("create", "--name", name, "--role", role)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    return token, token.split(".")[1]


def revoke(server: ServerProcess, token_id: str) -> None:
    result = server.token_command("revoke", token_id)
    assert result.returncode == 0, result.stderr


@contextlib.contextmanager
def log_in(server: ServerProcess, token: str) -> Iterator[httpx.Client]:
    """Log in through the form as a browser would and yield a client with the cookie."""
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        response = http.post("/login", data={"token": token}, headers={"origin": server.base_url})
        assert response.status_code == 303, response.text
        assert response.headers["location"] == "/"
        yield http


@pytest.mark.parametrize("path", READ_PATHS)
def test_read_without_credentials_401(server: ServerProcess, path: str) -> None:
    response = httpx.get(f"{server.base_url}{path}")

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "authentication required" in response.json()["detail"]


def test_read_with_token_200(server: ServerProcess) -> None:
    with server.client() as http:
        for path in READ_PATHS:
            assert http.get(path).status_code == 200, path


def test_revoked_token_401(server: ServerProcess) -> None:
    token, token_id = create_token(server, "admin")
    for path in READ_PATHS:
        assert httpx.get(f"{server.base_url}{path}", headers=bearer(token)).status_code == 200

    revoke(server, token_id)

    for path in READ_PATHS:
        response = httpx.get(f"{server.base_url}{path}", headers=bearer(token))
        assert response.status_code == 401, path
        assert "revoked" in response.json()["detail"]


@pytest.mark.parametrize(
    "authorization",
    ["Bearer ff.nope.nope", "Bearer", "Basic dXNlcjpwYXNz", "ff.abc.def", "Bearer x.y.z"],
)
def test_invalid_authorization_401(server: ServerProcess, authorization: str) -> None:
    response = httpx.get(f"{server.base_url}/api/stats", headers={"authorization": authorization})

    assert response.status_code == 401


def test_read_token_cannot_administer(server: ServerProcess) -> None:
    token, _ = create_token(server, "read")

    stats = httpx.get(f"{server.base_url}/api/stats", headers=bearer(token))
    tokens = httpx.get(f"{server.base_url}/api/tokens", headers=bearer(token))

    assert stats.status_code == 200
    assert tokens.status_code == 403
    assert tokens.json()["detail"] == "this endpoint needs an admin token"


def test_erasure_needs_admin_token(server: ServerProcess) -> None:
    token, _ = create_token(server, "read")
    url = f"{server.base_url}/api/admin/erasures"
    body = {"ip": "203.0.113.7"}

    anonymous = httpx.post(url, json=body)
    reader = httpx.post(url, json=body, headers=bearer(token))
    admin = httpx.post(url, json=body, headers=server.auth_headers)

    assert anonymous.status_code == 401
    assert reader.status_code == 403
    assert admin.status_code == 200
    assert admin.json() == {"deleted_events": 0}


def test_token_list_never_shows_secret(server: ServerProcess) -> None:
    token, token_id = create_token(server, "read", name="grafana")
    secret = token.split(".")[2]

    listed = server.token_command("list")
    over_http = httpx.get(f"{server.base_url}/api/tokens", headers=server.auth_headers)

    assert listed.returncode == 0
    assert token_id in listed.stdout
    assert "grafana" in listed.stdout
    assert secret not in listed.stdout + listed.stderr
    assert secret not in over_http.text
    [row] = [row for row in over_http.json() if row["id"] == token_id]
    assert row == {
        "id": token_id,
        "name": "grafana",
        "role": "read",
        "created_at": row["created_at"],
        "revoked_at": None,
    }


def test_revoke_unknown_token_fails(server: ServerProcess) -> None:
    result = server.token_command("revoke", "000000000000")

    assert result.returncode == 2
    assert "not found" in result.stderr


@pytest.mark.parametrize("path", PUBLIC_PATHS)
def test_public_paths_need_no_credentials(server: ServerProcess, path: str) -> None:
    assert httpx.get(f"{server.base_url}{path}").status_code == 200


def test_ingest_needs_no_credentials(server: ServerProcess) -> None:
    response = httpx.post(f"{server.base_url}/api/events", json={"timezone": "UTC"})

    assert response.status_code == 202
    assert response.headers["access-control-allow-origin"] == "*"


def test_dashboard_redirects_to_login(server: ServerProcess) -> None:
    response = httpx.get(f"{server.base_url}/")

    assert response.status_code == 303
    assert response.headers["location"] == "/login"


def test_login_opens_dashboard(server: ServerProcess) -> None:
    assert server.token is not None
    with log_in(server, server.token) as http:
        response = http.get("/")
        stats = http.get("/api/stats")

    assert response.status_code == 200
    assert '<main id="app">' in response.text
    assert stats.status_code == 200


def test_login_cookie_flags(server: ServerProcess) -> None:
    assert server.token is not None
    response = httpx.post(
        f"{server.base_url}/login",
        data={"token": server.token},
        headers={"origin": server.base_url},
    )

    cookie = response.headers["set-cookie"]
    attributes = [part.strip().lower() for part in cookie.split(";")]
    assert cookie.startswith("footfall_session=")
    assert "httponly" in attributes
    assert "samesite=strict" in attributes
    assert "path=/" in attributes
    # The server listens on 127.0.0.1, where cookies are not Secure unless asked for.
    assert "secure" not in attributes


def test_secure_cookies_flag(start_server: StartServer) -> None:
    server = start_server(["--secure-cookies"])
    assert server.token is not None

    response = httpx.post(
        f"{server.base_url}/login",
        data={"token": server.token},
        headers={"origin": server.base_url},
    )

    attributes = [part.strip().lower() for part in response.headers["set-cookie"].split(";")]
    assert "secure" in attributes


@pytest.mark.parametrize("token", ["", "ff.nope.nope", "wrong"])
def test_login_wrong_token_401(server: ServerProcess, token: str) -> None:
    response = httpx.post(
        f"{server.base_url}/login", data={"token": token}, headers={"origin": server.base_url}
    )

    assert response.status_code == 401
    assert "set-cookie" not in response.headers
    assert "Invalid or revoked token." in response.text


@pytest.mark.parametrize("origin", [None, "http://evil.example", "null"])
def test_cross_site_login_403(server: ServerProcess, origin: str | None) -> None:
    assert server.token is not None
    headers = {"origin": origin} if origin else {}

    response = httpx.post(f"{server.base_url}/login", data={"token": server.token}, headers=headers)

    assert response.status_code == 403
    assert "set-cookie" not in response.headers


def test_logout_ends_session(server: ServerProcess) -> None:
    assert server.token is not None
    with log_in(server, server.token) as http:
        session = http.cookies["footfall_session"]
        response = http.post("/logout", headers={"origin": server.base_url})

        assert response.status_code == 303
        assert response.headers["location"] == "/login"
        assert "footfall_session" not in http.cookies

    stale = httpx.get(f"{server.base_url}/api/stats", cookies={"footfall_session": session})
    assert stale.status_code == 401


def test_cross_site_logout_403(server: ServerProcess) -> None:
    assert server.token is not None
    with log_in(server, server.token) as http:
        response = http.post("/logout", headers={"origin": "http://evil.example"})

        assert response.status_code == 403
        assert http.get("/api/stats").status_code == 200


def test_revoke_ends_sessions(server: ServerProcess) -> None:
    token, token_id = create_token(server, "read")
    with log_in(server, token) as http:
        assert http.get("/api/stats").status_code == 200

        revoke(server, token_id)

        assert http.get("/api/stats").status_code == 401
        assert http.get("/").status_code == 303


def test_security_headers(server: ServerProcess) -> None:
    with server.client() as http:
        for path in ["/", "/api/stats", "/login", "/static/app.js", "/openapi.json"]:
            headers = http.get(path).headers
            assert headers["content-security-policy"].startswith("default-src 'self'"), path
            assert "frame-ancestors 'none'" in headers["content-security-policy"], path
            assert headers["x-content-type-options"] == "nosniff", path
            assert headers["x-frame-options"] == "DENY", path
            assert headers["referrer-policy"] == "same-origin", path


def test_ingest_keeps_cors_response(server: ServerProcess) -> None:
    preflight = httpx.options(
        f"{server.base_url}/api/events",
        headers={"origin": "https://shop.example", "access-control-request-method": "POST"},
    )

    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "content-security-policy" not in preflight.headers


def test_public_metrics_flag(start_server: StartServer) -> None:
    server = start_server(["--public-metrics"])

    assert httpx.get(f"{server.base_url}/metrics").status_code == 200
    assert httpx.get(f"{server.base_url}/api/stats").status_code == 401


def test_login_form_too_large_413(server: ServerProcess) -> None:
    response = httpx.post(
        f"{server.base_url}/login",
        data={"token": "x" * 5000},
        headers={"origin": server.base_url},
    )

    assert response.status_code == 413
    assert "set-cookie" not in response.headers
