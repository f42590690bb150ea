"""The credential store contract, on SQLite and on Redis, with an injected clock."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from support.services import REDIS_URL, delete_prefixed_keys, require_redis

from footfall.backends.redis_client import connect
from footfall.backends.sqlite_db import SqliteDatabase
from footfall.credentials.base import CredentialStore, Role, hash_secret
from footfall.credentials.redis import RedisCredentialStore
from footfall.credentials.sqlite import SqliteCredentialStore
from footfall.errors import InvalidInput

T = TypeVar("T")


class Clock:
    def __init__(self) -> None:
        self.now_ms = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now_ms


Scenario = Callable[[CredentialStore, Clock], Awaitable[T]]


@pytest.fixture(params=["sqlite", "redis"])
def run(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[Scenario[T]], T]]:
    """Run an async scenario against a fresh store of the parametrized backend."""
    backend: str = request.param
    if backend == "redis":
        delete_prefixed_keys(require_redis())

    def run_scenario(scenario: Scenario[T]) -> T:
        async def main() -> T:
            clock = Clock()
            if backend == "sqlite":
                database = SqliteDatabase(tmp_path / "footfall.db")
                try:
                    return await scenario(SqliteCredentialStore(database, clock), clock)
                finally:
                    database.close()
            client = connect(REDIS_URL)
            try:
                return await scenario(RedisCredentialStore(client, clock), clock)
            finally:
                await client.aclose()

        return asyncio.run(main())

    yield run_scenario
    if backend == "redis":
        delete_prefixed_keys(require_redis())


def test_token_authenticates_until_revoked(run: Callable[[Scenario[None]], None]) -> None:
    async def scenario(store: CredentialStore, clock: Clock) -> None:
        issued = await store.create_token("ci", Role.READ)

        found = await store.authenticate_token(issued.token)
        assert found is not None
        assert found.role is Role.READ
        assert found.name == "ci"

        clock.now_ms += 5
        revoked = await store.revoke_token(issued.record.id)
        assert revoked is not None
        assert revoked.revoked_at_ms == clock.now_ms
        assert await store.authenticate_token(issued.token) is None

    run(scenario)


def test_wrong_secret_or_shape_rejected(run: Callable[[Scenario[None]], None]) -> None:
    async def scenario(store: CredentialStore, clock: Clock) -> None:
        issued = await store.create_token("ci", Role.ADMIN)
        token_id = issued.record.id

        for wrong in [
            f"ff.{token_id}.not-the-secret",
            f"ff.{token_id}.",
            f"ff.unknown.{issued.token.split('.')[2]}",
            issued.token + "x",
            issued.token.replace("ff.", "xx.", 1),
            "",
            "Bearer",
        ]:
            assert await store.authenticate_token(wrong) is None, wrong

    run(scenario)


def test_store_keeps_hash_not_secret(run: Callable[[Scenario[None]], None]) -> None:
    async def scenario(store: CredentialStore, clock: Clock) -> None:
        issued = await store.create_token("ci", Role.ADMIN)
        secret = issued.token.split(".")[2]

        [listed] = await store.list_tokens()

        assert listed.secret_hash == hash_secret(secret)
        assert secret not in repr(listed)

    run(scenario)


def test_first_admin_created_once(run: Callable[[Scenario[None]], None]) -> None:
    async def scenario(store: CredentialStore, clock: Clock) -> None:
        results = await asyncio.gather(*(store.create_first_admin() for _ in range(5)))

        created = [issued for issued in results if issued is not None]
        assert len(created) == 1
        assert created[0].record.role is Role.ADMIN
        assert len(await store.list_tokens()) == 1

    run(scenario)


def test_first_admin_skipped_after_revoke(run: Callable[[Scenario[None]], None]) -> None:
    async def scenario(store: CredentialStore, clock: Clock) -> None:
        issued = await store.create_token("old", Role.ADMIN)
        await store.revoke_token(issued.record.id)

        assert await store.create_first_admin() is None

    run(scenario)


def test_revoke_unknown_returns_none(run: Callable[[Scenario[None]], None]) -> None:
    async def scenario(store: CredentialStore, clock: Clock) -> None:
        assert await store.revoke_token("000000000000") is None

    run(scenario)


def test_revoke_twice_keeps_first_time(run: Callable[[Scenario[None]], None]) -> None:
    async def scenario(store: CredentialStore, clock: Clock) -> None:
        issued = await store.create_token("ci", Role.READ)
        first = await store.revoke_token(issued.record.id)
        clock.now_ms += 1000
        second = await store.revoke_token(issued.record.id)

        assert first is not None
        assert second is not None
        assert second.revoked_at_ms == first.revoked_at_ms

    run(scenario)


def test_session_expires(run: Callable[[Scenario[None]], None]) -> None:
    async def scenario(store: CredentialStore, clock: Clock) -> None:
        issued = await store.create_token("ci", Role.READ)
        session = await store.create_session(issued.record.id, ttl_s=60)

        clock.now_ms += 59_999
        assert await store.authenticate_session(session) is not None
        clock.now_ms += 1
        assert await store.authenticate_session(session) is None

    run(scenario)


def test_revoke_ends_sessions(run: Callable[[Scenario[None]], None]) -> None:
    async def scenario(store: CredentialStore, clock: Clock) -> None:
        issued = await store.create_token("ci", Role.READ)
        other = await store.create_token("other", Role.READ)
        session = await store.create_session(issued.record.id)
        other_session = await store.create_session(other.record.id)

        await store.revoke_token(issued.record.id)

        assert await store.authenticate_session(session) is None
        assert await store.authenticate_session(other_session) is not None

    run(scenario)


def test_end_session_logs_out(run: Callable[[Scenario[None]], None]) -> None:
    async def scenario(store: CredentialStore, clock: Clock) -> None:
        issued = await store.create_token("ci", Role.READ)
        session = await store.create_session(issued.record.id)

        await store.end_session(session)
        await store.end_session(session)

        assert await store.authenticate_session(session) is None

    run(scenario)


def test_login_code_works_once(run: Callable[[Scenario[None]], None]) -> None:
    async def scenario(store: CredentialStore, clock: Clock) -> None:
        issued = await store.create_token("ci", Role.ADMIN)
        code = await store.create_login_code(issued.record.id)

        results = await asyncio.gather(*(store.redeem_login_code(code) for _ in range(3)))

        assert [r.id for r in results if r is not None] == [issued.record.id]
        assert await store.redeem_login_code(code) is None

    run(scenario)


def test_login_code_expires(run: Callable[[Scenario[None]], None]) -> None:
    async def scenario(store: CredentialStore, clock: Clock) -> None:
        issued = await store.create_token("ci", Role.ADMIN)
        code = await store.create_login_code(issued.record.id, ttl_s=3600)

        clock.now_ms += 3600 * 1000

        assert await store.redeem_login_code(code) is None

    run(scenario)


def test_login_code_of_revoked_token_rejected(run: Callable[[Scenario[None]], None]) -> None:
    async def scenario(store: CredentialStore, clock: Clock) -> None:
        issued = await store.create_token("ci", Role.ADMIN)
        code = await store.create_login_code(issued.record.id)

        await store.revoke_token(issued.record.id)

        assert await store.redeem_login_code(code) is None

    run(scenario)


def test_list_tokens_oldest_first(run: Callable[[Scenario[None]], None]) -> None:
    async def scenario(store: CredentialStore, clock: Clock) -> None:
        names = ["b-first", "a-second", "c-third"]
        for name in names:
            await store.create_token(name, Role.READ)
            clock.now_ms += 1

        listed = await store.list_tokens()

        assert [record.name for record in listed] == names
        assert all(record.active for record in listed)

    run(scenario)


@pytest.mark.parametrize("name", ["", " ", "x" * 65, "tab\there"])
def test_invalid_token_name_rejected(run: Callable[[Scenario[None]], None], name: str) -> None:
    async def scenario(store: CredentialStore, clock: Clock) -> None:
        with pytest.raises(InvalidInput, match="invalid token name"):
            await store.create_token(name, Role.READ)

    run(scenario)
