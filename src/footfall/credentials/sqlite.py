"""The embedded deployment's credentials: the `auth_*` tables of the SQLite file."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from footfall.backends.sqlite_db import SqliteDatabase
from footfall.credentials.base import CredentialStore, Role, TokenRecord, now_ms
from footfall.errors import BackendUnavailable

T = TypeVar("T")

TOKEN_COLUMNS = "id, name, role, secret_hash, created_at_ms, revoked_at_ms"


def _record(row: tuple[Any, ...]) -> TokenRecord:
    return TokenRecord(row[0], row[1], Role(row[2]), row[3], row[4], row[5])


class SqliteCredentialStore(CredentialStore):
    """Credentials in the same SQLite file as the events. Queries run in a worker thread."""

    def __init__(self, database: SqliteDatabase, clock_ms: Callable[[], int] = now_ms) -> None:
        super().__init__(clock_ms)
        self.database = database

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            try:
                return work(self.database.connection())
            except sqlite3.Error as error:
                raise BackendUnavailable(f"SQLite credential query failed: {error}") from error

        return await asyncio.to_thread(call)

    async def _insert_token(self, record: TokenRecord, *, only_if_none: bool) -> bool:
        values = (
            record.id,
            record.name,
            record.role.value,
            record.secret_hash,
            record.created_at_ms,
            record.revoked_at_ms,
        )

        def insert(connection: sqlite3.Connection) -> bool:
            # BEGIN IMMEDIATE takes the write lock before the count, so two processes that
            # start on one file cannot both see no token and both create one.
            connection.execute("BEGIN IMMEDIATE")
            try:
                if only_if_none and connection.execute("SELECT 1 FROM auth_tokens").fetchone():
                    connection.execute("ROLLBACK")
                    return False
                connection.execute(
                    f"INSERT INTO auth_tokens ({TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)", values
                )
                connection.execute("COMMIT")
                return True
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise

        return await self._run(insert)

    async def _get_token(self, token_id: str) -> TokenRecord | None:
        def get(connection: sqlite3.Connection) -> TokenRecord | None:
            row = connection.execute(
                f"SELECT {TOKEN_COLUMNS} FROM auth_tokens WHERE id = ?", (token_id,)
            ).fetchone()
            return _record(row) if row else None

        return await self._run(get)

    async def _all_tokens(self) -> list[TokenRecord]:
        def select(connection: sqlite3.Connection) -> list[TokenRecord]:
            rows = connection.execute(f"SELECT {TOKEN_COLUMNS} FROM auth_tokens").fetchall()
            return [_record(row) for row in rows]

        return await self._run(select)

    async def _mark_revoked(self, token_id: str, revoked_at_ms: int) -> None:
        def revoke(connection: sqlite3.Connection) -> None:
            with connection:
                connection.execute("BEGIN IMMEDIATE")
                connection.execute(
                    "UPDATE auth_tokens SET revoked_at_ms = ? "
                    "WHERE id = ? AND revoked_at_ms IS NULL",
                    (revoked_at_ms, token_id),
                )
                connection.execute("DELETE FROM auth_sessions WHERE token_id = ?", (token_id,))
                connection.execute("DELETE FROM auth_login_codes WHERE token_id = ?", (token_id,))

        await self._run(revoke)

    async def _put_session(self, session_hash: str, token_id: str, expires_at_ms: int) -> None:
        def put(connection: sqlite3.Connection) -> None:
            with connection:
                connection.execute("BEGIN IMMEDIATE")
                # Expired sessions are deleted here, at the rare login, not on every read.
                connection.execute(
                    "DELETE FROM auth_sessions WHERE expires_at_ms <= ?", (self.clock_ms(),)
                )
                connection.execute(
                    "INSERT INTO auth_sessions VALUES (?, ?, ?)",
                    (session_hash, token_id, expires_at_ms),
                )

        await self._run(put)

    async def _get_session(self, session_hash: str) -> tuple[str, int] | None:
        def get(connection: sqlite3.Connection) -> tuple[str, int] | None:
            row = connection.execute(
                "SELECT token_id, expires_at_ms FROM auth_sessions WHERE session_hash = ?",
                (session_hash,),
            ).fetchone()
            return (row[0], row[1]) if row else None

        return await self._run(get)

    async def _delete_session(self, session_hash: str) -> None:
        def delete(connection: sqlite3.Connection) -> None:
            connection.execute("DELETE FROM auth_sessions WHERE session_hash = ?", (session_hash,))

        await self._run(delete)

    async def _put_login_code(self, code_hash: str, token_id: str, expires_at_ms: int) -> None:
        def put(connection: sqlite3.Connection) -> None:
            connection.execute(
                "INSERT INTO auth_login_codes VALUES (?, ?, ?)",
                (code_hash, token_id, expires_at_ms),
            )

        await self._run(put)

    async def _take_login_code(self, code_hash: str) -> tuple[str, int] | None:
        def take(connection: sqlite3.Connection) -> tuple[str, int] | None:
            # fetchall() runs the statement to its end, which is when SQLite commits it.
            rows = connection.execute(
                "DELETE FROM auth_login_codes WHERE code_hash = ? "
                "RETURNING token_id, expires_at_ms",
                (code_hash,),
            ).fetchall()
            return (rows[0][0], rows[0][1]) if rows else None

        return await self._run(take)
