"""Bad `FOOTFALL_*` values and pasted tokens at the command line: a message, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def footfall(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "footfall", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("FOOTFALL_LOG_LEVEL", "verbose", "invalid FOOTFALL_LOG_LEVEL='verbose'"),
        ("FOOTFALL_MAX_BACKLOG", "lots", "invalid FOOTFALL_MAX_BACKLOG='lots'"),
        ("FOOTFALL_RATE_BURST", "many", "invalid FOOTFALL_RATE_BURST='many'"),
    ],
)
def test_bad_variable_named_without_traceback(
    tmp_path: Path, name: str, value: str, message: str
) -> None:
    result = footfall("token", "list", "--db", str(tmp_path / "x.db"), env={name: value})

    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_redis_prefix_stops_only_redis_commands(tmp_path: Path) -> None:
    version = footfall("--version", env={"FOOTFALL_REDIS_PREFIX": "a{b}"})
    distributed = footfall(
        "token",
        "list",
        "--redis-url",
        "redis://127.0.0.1:6379/15",
        "--database-url",
        "postgresql://127.0.0.1:5432/postgres",
        env={"FOOTFALL_REDIS_PREFIX": "a{b}"},
    )

    assert version.returncode == 0
    assert distributed.returncode == 2
    assert "invalid FOOTFALL_REDIS_PREFIX='a{b}'" in distributed.stderr
    assert "Traceback" not in distributed.stderr


def test_unusable_redis_database_is_one_message() -> None:
    result = footfall(
        "token",
        "list",
        "--redis-url",
        "redis://127.0.0.1:6379/99",
        "--database-url",
        "postgresql://127.0.0.1:5432/postgres",
    )

    assert result.returncode == 2
    assert "--redis-url" in result.stderr
    assert "Traceback" not in result.stderr


def test_revoke_accepts_a_pasted_token(tmp_path: Path) -> None:
    db = str(tmp_path / "footfall.db")
    created = footfall("token", "create", "--name", "ci", "--db", db)
    token = created.stdout.strip()
    secret = token.split(".")[2]

    revoked = footfall("token", "revoke", token, "--db", db)

    assert revoked.returncode == 0, revoked.stderr
    assert "is revoked" in revoked.stdout
    assert secret not in revoked.stdout + revoked.stderr
