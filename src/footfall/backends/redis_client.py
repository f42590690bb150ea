"""Redis connections and the start-up checks every process runs against the server."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio as redis
from redis import exceptions as redis_errors

from footfall.backends import redis_keys as keys
from footfall.errors import BackendUnavailable, ConfigurationError

logger = logging.getLogger(__name__)

MAX_CONNECTIONS = 64
"""Connections per process. Callers beyond this wait for a free one instead of failing."""

POOL_TIMEOUT_S = 5.0
SOCKET_TIMEOUT_S = 10.0

T = TypeVar("T")


def connect(url: str) -> redis.Redis:
    """Create a client whose pool blocks when all connections are busy.

    redis-py's default asyncio pool raises MaxConnectionsError once it has handed out
    its maximum, which under load would turn into false 503s.
    """
    keys.check_prefix()
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=POOL_TIMEOUT_S,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=POOL_TIMEOUT_S,
    )
    return redis.Redis(connection_pool=pool)


async def translate_errors(operation: str, call: Callable[[], Awaitable[T]]) -> T:
    """Await `call`, turning Redis connection, timeout and OOM errors into BackendUnavailable."""
    try:
        return await call()
    except (redis_errors.ConnectionError, redis_errors.TimeoutError) as error:
        raise BackendUnavailable(
            f"{operation} failed: Redis unreachable ({error}); check that Redis is running "
            "and --redis-url is right"
        ) from error
    except redis_errors.ResponseError as error:
        if str(error).startswith(("OOM ", "LOADING ", "BUSY ", "MASTERDOWN ", "READONLY ")):
            raise BackendUnavailable(f"{operation} failed: {error}") from error
        raise


@dataclass(frozen=True, slots=True)
class ServerFacts:
    """What a Redis server reports about itself that footfall depends on."""

    version: str
    maxmemory_policy: str
    aof_enabled: bool
    rdb_enabled: bool | None
    """None when CONFIG is disabled, as on some managed servers."""


async def check_server(client: redis.Redis) -> ServerFacts:
    """Read the server's facts and raise ConfigurationError for an evicting server.

    An evicting `maxmemory-policy` is rejected because an evicted stream entry is a lost visit.
    """
    try:
        info: dict[str, Any] = await translate_errors("reading Redis INFO", client.info)
    except redis_errors.ResponseError as error:
        raise ConfigurationError(
            f"Redis rejected the connection: {error}; check --redis-url"
        ) from error
    facts = ServerFacts(
        version=str(info.get("redis_version", "unknown")),
        maxmemory_policy=str(info.get("maxmemory_policy", "unknown")),
        aof_enabled=str(info.get("aof_enabled", "0")) == "1",
        rdb_enabled=await _rdb_enabled(client),
    )
    if facts.maxmemory_policy not in ("noeviction", "unknown"):
        raise ConfigurationError(
            f"Redis maxmemory-policy is {facts.maxmemory_policy!r}, which evicts keys and so "
            "can drop acknowledged visits: set `maxmemory-policy noeviction` and start again"
        )
    return facts


def log_server_facts(facts: ServerFacts, role: str) -> None:
    """Log the server's facts, with a warning when it keeps nothing on disk."""
    if not facts.aof_enabled and facts.rdb_enabled is False:
        logger.warning(
            'Redis has no persistence (appendonly no, save ""): acknowledged visits still in '
            "the stream are lost if Redis restarts; enable appendonly for durability"
        )
    logger.info(
        "%s on Redis %s (maxmemory-policy %s, aof %s, rdb %s)",
        role,
        facts.version,
        facts.maxmemory_policy,
        "on" if facts.aof_enabled else "off",
        {True: "on", False: "off", None: "unknown"}[facts.rdb_enabled],
    )


async def _rdb_enabled(client: redis.Redis) -> bool | None:
    try:
        config = await client.config_get("save")
    except redis_errors.ResponseError:
        return None  # CONFIG is disabled on some managed servers.
    value = config.get("save") or config.get(b"save") or ""  # type: ignore[call-overload]
    return bool(text(value).strip())


def text(value: Any) -> str:
    """Return a Redis reply value as str (replies are bytes unless decoded by the client)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_stream_id(entry_id: str) -> tuple[int, int]:
    """Split a stream entry id `<ms>-<seq>` into a comparable tuple."""
    millis, _, sequence = entry_id.partition("-")
    return int(millis), int(sequence or 0)
