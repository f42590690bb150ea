"""The first run: an admin token and a one-time login link, printed once."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import httpx
import pytest
from support.auth import bearer
from support.server import ServerProcess, StartServer
from support.services import fresh_distributed_backends

TOKEN_LINE = re.compile(r"^ {4}(ff\.[0-9a-f]+\.[A-Za-z0-9_-]+)$", re.MULTILINE)
LINK_LINE = re.compile(r"^ {4}(http://\S+/login/link\?code=[A-Za-z0-9_-]+)$", re.MULTILINE)


def printed_token_and_link(server: ServerProcess) -> tuple[str, str]:
    log = server.log_path.read_text()
    tokens = TOKEN_LINE.findall(log)
    links = LINK_LINE.findall(log)
    assert len(tokens) == 1, log
    assert len(links) == 1, log
    return tokens[0], links[0]


def test_first_run_token_is_admin(start_server: StartServer) -> None:
    server = start_server(provision_token=False)
    token, _ = printed_token_and_link(server)

    response = httpx.get(f"{server.base_url}/api/tokens", headers=bearer(token))

    assert response.status_code == 200
    assert [(row["role"], row["revoked_at"]) for row in response.json()] == [("admin", None)]


def test_first_run_link_works_once(start_server: StartServer) -> None:
    server = start_server(provision_token=False)
    _, link = printed_token_and_link(server)
    assert link.startswith(f"{server.base_url}/login/link?code=")

    with httpx.Client(timeout=10) as browser:
        first = browser.get(link)
        assert first.status_code == 303
        assert first.headers["location"] == "/"
        assert browser.get(f"{server.base_url}/api/stats").status_code == 200

    with httpx.Client(timeout=10) as other_browser:
        second = other_browser.get(link)
        assert second.status_code == 401
        assert "set-cookie" not in second.headers
        assert "invalid, used or expired" in second.text
        assert other_browser.get(f"{server.base_url}/api/stats").status_code == 401


def test_restart_prints_nothing_again(start_server: StartServer) -> None:
    server = start_server(provision_token=False)
    token, _ = printed_token_and_link(server)

    server.stop()
    server.start()

    assert printed_token_and_link(server)[0] == token
    assert "no API token existed" not in server.log_path.read_text().split(token, 1)[1]
    assert httpx.get(f"{server.base_url}/api/stats", headers=bearer(token)).status_code == 200


def test_provisioned_server_prints_no_token(server: ServerProcess) -> None:
    log = server.log_path.read_text()

    assert TOKEN_LINE.findall(log) == []
    assert LINK_LINE.findall(log) == []


@pytest.mark.parametrize("deployment", ["distributed"])
def test_replicas_create_one_token(tmp_path: Path, deployment: str) -> None:
    """Three API processes that start together on one Redis create exactly one token."""
    with fresh_distributed_backends() as urls:
        servers = [
            ServerProcess(tmp_path / f"api-{number}.db", urls.args(), provision_token=False)
            for number in range(3)
        ]
        threads = [threading.Thread(target=server.start) for server in servers]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            logs = [server.log_path.read_text() for server in servers]
            listed = servers[0].token_command("list")
        finally:
            for server in servers:
                server.stop()

    assert sum(len(TOKEN_LINE.findall(log)) for log in logs) == 1
    assert sum(len(LINK_LINE.findall(log)) for log in logs) == 1
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count("first-run admin") == 1
