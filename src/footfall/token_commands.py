"""`footfall token create|list|revoke`: manage the API tokens of either deployment.

`create` prints the new token once on standard output, alone on its line, so that a script
can capture it. The store keeps only its hash, and `list` never shows a token or its hash.
In the distributed deployment the commands need only Redis, where the tokens live, but take
the same `--redis-url` and `--database-url` as every other command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from footfall.backends.sqlite_db import SqliteDatabase
from footfall.config import Settings
from footfall.credentials.base import CredentialStore, Role, TokenRecord, parse_token
from footfall.errors import ConfigurationError, InvalidInput
from footfall.model import iso_from_ms


def add_token_parser(
    commands: Any, add_backend_options: Callable[[argparse.ArgumentParser], None]
) -> None:
    token = commands.add_parser("token", help="manage API tokens")
    token_commands = token.add_subparsers(dest="token_command", metavar="COMMAND", required=True)

    create = token_commands.add_parser(
        "create",
        help="create a token and print it once",
        description="Create an API token and print it once; only its hash is stored.",
    )
    add_backend_options(create)
    create.add_argument("--name", required=True, help="what the token is for, 1-64 characters")
    create.add_argument(
        "--role",
        choices=[role.value for role in Role],
        default=Role.READ.value,
        help="admin may do everything, read may only read (default read)",
    )

    listing = token_commands.add_parser("list", help="list tokens, never showing their secret")
    add_backend_options(listing)

    revoke = token_commands.add_parser(
        "revoke", help="revoke a token, which also ends its dashboard sessions"
    )
    add_backend_options(revoke)
    revoke.add_argument("token_id", metavar="ID", help="the token's id, as `token list` shows")


async def run_token_command(settings: Settings, args: argparse.Namespace) -> int:
    # `create` may make the SQLite file, so that an operator can provision a token before
    # the first `serve`. Listing or revoking in a missing file means a wrong --db.
    store, close = await _open_store(settings, must_exist=args.token_command != "create")
    try:
        if args.token_command == "create":
            issued = await store.create_token(args.name, Role(args.role))
            print(
                f"created {issued.record.role.value} token {issued.record.id} "
                f"({issued.record.name}); it is shown only this once:",
                file=sys.stderr,
            )
            print(issued.token, flush=True)
            return 0
        if args.token_command == "list":
            _print_tokens(await store.list_tokens())
            return 0
        token_id = _token_id(args.token_id)
        record = await store.revoke_token(token_id)
        if record is None:
            raise InvalidInput(
                f"token {token_id[:40]!r} not found: `footfall token list` shows the ids"
            )
        print(f"token {record.id} ({record.name}) is revoked; its sessions have ended")
        return 0
    finally:
        await close()


def _token_id(text: str) -> str:
    """Return the id of a whole pasted token, or `text` itself when it is an id.

    Only the id is used, so the secret of a pasted token is never printed back.
    """
    parsed = parse_token(text.strip())
    return parsed[0] if parsed else text.strip()


def _print_tokens(records: list[TokenRecord]) -> None:
    print(f"{'ID':<12}  {'ROLE':<5}  {'CREATED':<29}  {'REVOKED':<29}  NAME")
    for record in records:
        revoked = iso_from_ms(record.revoked_at_ms) if record.revoked_at_ms is not None else "-"
        created = iso_from_ms(record.created_at_ms)
        print(
            f"{record.id:<12}  {record.role.value:<5}  {created:<29}  {revoked:<29}  {record.name}"
        )


async def _open_store(
    settings: Settings, *, must_exist: bool
) -> tuple[CredentialStore, Callable[[], Any]]:
    if settings.distributed:
        from footfall.backends.redis_client import check_server, connect
        from footfall.credentials.redis import RedisCredentialStore

        assert settings.redis_url
        client = connect(settings.redis_url)
        try:
            # Reaching the server first turns a wrong URL into one clear error.
            await check_server(client)
        except BaseException:
            await client.aclose()
            raise
        return RedisCredentialStore(client), client.aclose

    if must_exist and not settings.db_path.exists():
        raise ConfigurationError(
            f"SQLite database {settings.db_path} not found: pass the --db that footfall serve "
            "uses (footfall serve creates it)"
        )
    from footfall.credentials.sqlite import SqliteCredentialStore

    database = SqliteDatabase(settings.db_path)

    async def close() -> None:
        database.close()

    return SqliteCredentialStore(database), close
