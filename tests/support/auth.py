"""API tokens for tests: one shared way to give a test server a token and send it.

`ServerProcess` calls `provision_admin_token` before its first start, so every server the
fixtures start already has an admin token (and so prints no first-run link). Tests send it
with `server.client()` or `server.auth_headers`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from footfall.backends.redis_client import connect
from footfall.backends.sqlite_db import SqliteDatabase
from footfall.credentials.base import Role
from footfall.credentials.redis import RedisCredentialStore
from footfall.credentials.sqlite import SqliteCredentialStore


def option_value(args: Sequence[str], name: str) -> str | None:
    """Return the value of `--name VALUE` or `--name=VALUE` in a command line, or None."""
    for index, arg in enumerate(args):
        if arg == name and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
    return None


def create_token(
    db_path: Path, server_args: Sequence[str], role: Role = Role.ADMIN, name: str = "tests"
) -> str:
    """Create a token in the store that `footfall serve --db db_path *server_args` uses."""
    redis_url = option_value(server_args, "--redis-url")

    async def create() -> str:
        if redis_url:
            client = connect(redis_url)
            try:
                return (await RedisCredentialStore(client).create_token(name, role)).token
            finally:
                await client.aclose()
        database = SqliteDatabase(db_path)
        try:
            return (await SqliteCredentialStore(database).create_token(name, role)).token
        finally:
            database.close()

    # A thread of its own, because Playwright's sync API keeps an event loop running in
    # the test's thread, where asyncio.run() is not allowed.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, create()).result()


def provision_admin_token(db_path: Path, server_args: Sequence[str]) -> str:
    return create_token(db_path, server_args, Role.ADMIN, "tests admin")


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def backend_args(db_path: Path, server_args: Sequence[str]) -> list[str]:
    """Return the `--db`, `--redis-url` and `--database-url` options of a server's command."""
    args = ["--db", str(db_path)]
    for name in ("--redis-url", "--database-url"):
        value = option_value(server_args, name)
        if value:
            args += [name, value]
    return args


def run_token_command(
    db_path: Path, server_args: Sequence[str], *command: str
) -> subprocess.CompletedProcess[str]:
    """Run `footfall token COMMAND...` against a server's store, as an operator would."""
    return subprocess.run(
        [sys.executable, "-m", "footfall", "token", *command, *backend_args(db_path, server_args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
