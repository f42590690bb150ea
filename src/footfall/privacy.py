"""The IP and e-mail modes: the part of a visitor's addresses that footfall keeps.

`--ip-mode` and `--email-mode` set them.

The ingest endpoint applies the modes before a visit is appended to the event log, so the
log, the event store and the stats never hold more than the mode keeps. The resolved
address stays in memory only as long as the rate limiter needs it.

- `--ip-mode full` keeps the address (the prototype's behaviour and the default).
- `--ip-mode truncated` keeps the network: the /24 of IPv4 (`203.0.113.0/24`) and the /48
  of IPv6 (`2001:db8:1::/48`). Everyone in that network counts as one visitor.
- `--ip-mode hashed` keeps `h:` and a keyed hash (HMAC-SHA-256, cut to 96 bits). The key
  rotates every UTC day at midnight: a visitor is one visitor within a day and a new one
  the next day. Keys are random, shared by every process through the deployment's key
  store, and deleted once two days old. After that, not even the operator can link a
  hash to an address again.
- `--email-mode keep|hash|drop` does the same for e-mail addresses (`hash` uses the
  same daily key, after lower-casing the address).

Erasure (`footfall erase`) looks for every form a visitor may be stored under: the full
address, its network and its hash under each key still kept.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import hmac
import ipaddress
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from footfall.backends.redis_client import translate_errors
from footfall.backends.sqlite_db import SqliteDatabase

ROTATION_PERIOD_S = 24 * 60 * 60
"""Hash keys rotate at 00:00 UTC every day."""

KEPT_PERIODS = 2
"""Keys of the current and the previous day are kept (for erasure); older ones are deleted."""

HASH_PREFIX = "h:"
IPV4_PREFIX_LENGTH = 24
IPV6_PREFIX_LENGTH = 48


class IpMode(enum.StrEnum):
    FULL = "full"
    TRUNCATED = "truncated"
    HASHED = "hashed"


class EmailMode(enum.StrEnum):
    KEEP = "keep"
    HASH = "hash"
    DROP = "drop"


def truncate_ip(ip: str) -> str:
    """Return the /24 (IPv4) or /48 (IPv6) network of an address, or `ip` if it is not one."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    length = IPV4_PREFIX_LENGTH if address.version == 4 else IPV6_PREFIX_LENGTH
    return str(ipaddress.ip_network(f"{address}/{length}", strict=False))


def keyed_hash(key: bytes, value: str) -> str:
    """Return the stored form of `value` under one hash key."""
    digest = hmac.new(key, value.encode(), hashlib.sha256).hexdigest()
    return HASH_PREFIX + digest[:24]


class HashKeyStore(Protocol):
    """The daily hash keys, shared by every process of a deployment."""

    async def key_for(self, period: int) -> bytes:
        """Return the key of `period`, creating it if no process has yet."""
        ...

    async def kept_keys(self) -> list[bytes]:
        """Return every key not yet deleted, for erasure."""
        ...


@dataclass(frozen=True, slots=True)
class StoredForms:
    """Every value a visitor's IP address or e-mail may be stored as."""

    ips: tuple[str, ...]
    emails: tuple[str, ...]


class Pseudonymizer:
    """Applies the IP and e-mail modes to each visit before it is logged."""

    def __init__(
        self,
        ip_mode: IpMode,
        email_mode: EmailMode,
        keys: HashKeyStore,
        clock_s: Callable[[], float] = time.time,
    ) -> None:
        self.ip_mode = ip_mode
        self.email_mode = email_mode
        self._keys = keys
        self._clock_s = clock_s
        self._period = -1
        self._key = b""

    @property
    def needs_key(self) -> bool:
        return self.ip_mode is IpMode.HASHED or self.email_mode is EmailMode.HASH

    async def apply(self, ip: str, email: str | None) -> tuple[str, str | None]:
        """Return the IP and e-mail as the modes keep them."""
        if self.ip_mode is IpMode.TRUNCATED:
            ip = truncate_ip(ip)
        elif self.ip_mode is IpMode.HASHED:
            ip = keyed_hash(await self._current_key(), ip)
        if email is not None:
            if self.email_mode is EmailMode.DROP:
                email = None
            elif self.email_mode is EmailMode.HASH:
                email = keyed_hash(await self._current_key(), email.lower())
        return ip, email

    async def stored_forms(self, ip: str | None, email: str | None) -> StoredForms:
        """Return every form `ip` and `email` may be stored under, whatever mode was on."""
        keys = await self._keys.kept_keys()
        ips: list[str] = []
        if ip is not None:
            ips = [ip, truncate_ip(ip), *(keyed_hash(key, ip) for key in keys)]
        emails: list[str] = []
        if email is not None:
            folded = email.lower()
            emails = [email, folded, *(keyed_hash(key, folded) for key in keys)]
        return StoredForms(tuple(dict.fromkeys(ips)), tuple(dict.fromkeys(emails)))

    async def _current_key(self) -> bytes:
        period = int(self._clock_s() // ROTATION_PERIOD_S)
        if period != self._period:
            self._key = await self._keys.key_for(period)
            self._period = period
        return self._key


def new_key() -> bytes:
    return os.urandom(32)


class SqliteHashKeys:
    """Hash keys in the embedded SQLite file (table `hash_keys`)."""

    def __init__(self, database: SqliteDatabase) -> None:
        self._database = database

    async def key_for(self, period: int) -> bytes:
        return await asyncio.to_thread(self._key_for, period)

    async def kept_keys(self) -> list[bytes]:
        rows = await asyncio.to_thread(
            lambda: self._database.connection().execute("SELECT key FROM hash_keys").fetchall()
        )
        return [bytes(row[0]) for row in rows]

    def _key_for(self, period: int) -> bytes:
        connection = self._database.connection()
        with connection:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute(
                "INSERT INTO hash_keys (period, key) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (period, new_key()),
            )
            connection.execute("DELETE FROM hash_keys WHERE period <= ?", (period - KEPT_PERIODS,))
            row = connection.execute(
                "SELECT key FROM hash_keys WHERE period = ?", (period,)
            ).fetchone()
        return bytes(row[0])


class RedisHashKeys:
    """Hash keys in one Redis hash, field = period, value = key (see `redis_keys`)."""

    def __init__(self, client: Any, key: str) -> None:
        self._client = client
        self._key = key

    async def key_for(self, period: int) -> bytes:
        return await translate_errors("reading the hash key", lambda: self._key_for(period))

    async def kept_keys(self) -> list[bytes]:
        values = await translate_errors(
            "reading the hash keys", lambda: self._client.hvals(self._key)
        )
        return [bytes(value) for value in values]

    async def _key_for(self, period: int) -> bytes:
        pipeline = self._client.pipeline(transaction=True)
        pipeline.hsetnx(self._key, str(period), new_key())
        pipeline.hget(self._key, str(period))
        pipeline.hkeys(self._key)
        _, key, periods = await pipeline.execute()
        stale = [field for field in periods if int(field) <= period - KEPT_PERIODS]
        if stale:
            await self._client.hdel(self._key, *stale)
        return bytes(key)
