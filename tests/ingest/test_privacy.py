"""The IP and e-mail modes, and the daily hash keys on SQLite and Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from support.services import REDIS_URL

from footfall.backends import redis_keys as keys
from footfall.backends.redis_client import connect
from footfall.backends.sqlite_db import SqliteDatabase
from footfall.privacy import (
    HASH_PREFIX,
    KEPT_PERIODS,
    ROTATION_PERIOD_S,
    EmailMode,
    HashKeyStore,
    IpMode,
    Pseudonymizer,
    RedisHashKeys,
    SqliteHashKeys,
    truncate_ip,
)

DAY = ROTATION_PERIOD_S


@pytest.mark.parametrize(
    ("ip", "network"),
    [
        ("203.0.113.77", "203.0.113.0/24"),
        ("198.51.100.1", "198.51.100.0/24"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1::/48"),
        ("::1", "::/48"),
        ("unknown", "unknown"),
    ],
)
def test_truncate_ip(ip: str, network: str) -> None:
    assert truncate_ip(ip) == network


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


KeyStoreTest = Callable[[HashKeyStore], Awaitable[None]]


@pytest.fixture(params=["sqlite", "redis"])
def with_key_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Callable[[KeyStoreTest], None]:
    """Run an async test body with a fresh key store of each kind, in one event loop."""

    def run(body: KeyStoreTest) -> None:
        async def main() -> None:
            if request.param == "sqlite":
                database = SqliteDatabase(tmp_path / "keys.db")
                try:
                    await body(SqliteHashKeys(database))
                finally:
                    database.close()
                return
            client = connect(REDIS_URL)
            hash_key = f"{keys.HASH_KEYS}:{tmp_path.name}"
            try:
                await body(RedisHashKeys(client, hash_key))
            finally:
                await client.delete(hash_key)
                await client.aclose()

        asyncio.run(main())

    return run


def test_full_and_keep_change_nothing(with_key_store: Callable[[KeyStoreTest], None]) -> None:
    async def body(key_store: HashKeyStore) -> None:
        pseudonymizer = Pseudonymizer(IpMode.FULL, EmailMode.KEEP, key_store)
        assert await pseudonymizer.apply("203.0.113.7", "Ann@Example.com") == (
            "203.0.113.7",
            "Ann@Example.com",
        )

    with_key_store(body)


def test_truncated_and_drop(with_key_store: Callable[[KeyStoreTest], None]) -> None:
    async def body(key_store: HashKeyStore) -> None:
        pseudonymizer = Pseudonymizer(IpMode.TRUNCATED, EmailMode.DROP, key_store)
        assert await pseudonymizer.apply("203.0.113.7", "ann@example.com") == (
            "203.0.113.0/24",
            None,
        )

    with_key_store(body)


def test_hash_rotates_daily(
    with_key_store: Callable[[KeyStoreTest], None],
) -> None:
    async def body(key_store: HashKeyStore) -> None:
        clock = Clock(100 * DAY + 10)
        pseudonymizer = Pseudonymizer(IpMode.HASHED, EmailMode.HASH, key_store, clock)

        ip, email = await pseudonymizer.apply("203.0.113.7", "Ann@Example.com")
        assert ip.startswith(HASH_PREFIX)
        assert "203.0.113" not in ip
        assert email is not None
        assert email.startswith(HASH_PREFIX)
        # Another process with the same key store gives the same hashes the same day.
        later = Clock(100 * DAY + DAY - 1)
        other = Pseudonymizer(IpMode.HASHED, EmailMode.HASH, key_store, later)
        assert await other.apply("203.0.113.7", "ann@example.com") == (ip, email)
        assert (await other.apply("203.0.113.8", None))[0] != ip

        clock.now += DAY
        assert (await pseudonymizer.apply("203.0.113.7", None))[0] != ip

    with_key_store(body)


def test_old_keys_are_deleted(with_key_store: Callable[[KeyStoreTest], None]) -> None:
    async def body(key_store: HashKeyStore) -> None:
        clock = Clock(200 * DAY)
        pseudonymizer = Pseudonymizer(IpMode.HASHED, EmailMode.KEEP, key_store, clock)
        first_day_hash, _ = await pseudonymizer.apply("203.0.113.7", None)
        for _ in range(KEPT_PERIODS + 1):
            clock.now += DAY
            await pseudonymizer.apply("203.0.113.7", None)

        assert len(await key_store.kept_keys()) == KEPT_PERIODS
        forms = await pseudonymizer.stored_forms("203.0.113.7", None)
        assert first_day_hash not in forms.ips

    with_key_store(body)


def test_stored_forms_cover_every_mode(with_key_store: Callable[[KeyStoreTest], None]) -> None:
    async def body(key_store: HashKeyStore) -> None:
        hashed = Pseudonymizer(IpMode.HASHED, EmailMode.HASH, key_store, Clock(300 * DAY))
        ip_hash, email_hash = await hashed.apply("2001:db8:1::9", "Ann@Example.com")

        forms = await hashed.stored_forms("2001:db8:1::9", "Ann@Example.com")

        assert {"2001:db8:1::9", "2001:db8:1::/48", ip_hash} <= set(forms.ips)
        assert {"Ann@Example.com", "ann@example.com", email_hash} <= set(forms.emails)
        assert (await hashed.stored_forms(None, None)).ips == ()

    with_key_store(body)
