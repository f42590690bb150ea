"""The distributed deployment's credentials, in Redis (keys in backends/redis_keys.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from footfall.backends import redis_keys as keys
from footfall.backends.redis_client import translate_errors
from footfall.credentials.base import CredentialStore, Role, TokenRecord, now_ms

T = TypeVar("T")

# KEYS[1] = the set of token ids, KEYS[2] = the new token's hash; ARGV = its id, then
# field/value pairs. Stores the token only while the set is empty, so that of several API
# processes starting at once exactly one creates the first admin token.
INSERT_FIRST_TOKEN = """
if redis.call('SCARD', KEYS[1]) > 0 then
    return 0
end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], unpack(ARGV, 2))
return 1
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _record(token_id: str, fields: dict[Any, Any]) -> TokenRecord | None:
    if not fields:
        return None
    values = {_text(name): _text(value) for name, value in fields.items()}
    revoked = values.get("revoked_at_ms")
    return TokenRecord(
        token_id,
        values["name"],
        Role(values["role"]),
        values["secret_hash"],
        int(values["created_at_ms"]),
        int(revoked) if revoked is not None else None,
    )


def _expiring_value(value: bytes | str | None) -> tuple[str, int] | None:
    if value is None:
        return None
    token_id, expires_at_ms = _text(value).split(" ")
    return token_id, int(expires_at_ms)


class RedisCredentialStore(CredentialStore):
    """Credentials in the deployment's Redis. Sessions and codes expire with a Redis TTL."""

    def __init__(self, client: Any, clock_ms: Callable[[], int] = now_ms) -> None:
        super().__init__(clock_ms)
        self.client = client
        self._insert_first = client.register_script(INSERT_FIRST_TOKEN)

    async def _call(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        return await translate_errors(f"Redis credentials: {operation}", call)

    async def _insert_token(self, record: TokenRecord, *, only_if_none: bool) -> bool:
        fields = {
            "name": record.name,
            "role": record.role.value,
            "secret_hash": record.secret_hash,
            "created_at_ms": str(record.created_at_ms),
        }
        if only_if_none:
            flat = [item for pair in fields.items() for item in pair]
            script_keys = [keys.AUTH_TOKEN_IDS, keys.auth_token(record.id)]
            created = await self._call(
                "insert", lambda: self._insert_first(keys=script_keys, args=[record.id, *flat])
            )
            return bool(created)

        async def insert() -> None:
            pipeline = self.client.pipeline(transaction=True)
            pipeline.hset(keys.auth_token(record.id), mapping=fields)
            pipeline.sadd(keys.AUTH_TOKEN_IDS, record.id)
            await pipeline.execute()

        await self._call("insert", insert)
        return True

    async def _get_token(self, token_id: str) -> TokenRecord | None:
        fields = await self._call("get", lambda: self.client.hgetall(keys.auth_token(token_id)))
        return _record(token_id, fields)

    async def _all_tokens(self) -> list[TokenRecord]:
        async def fetch() -> list[TokenRecord]:
            token_ids = sorted(
                _text(member) for member in await self.client.smembers(keys.AUTH_TOKEN_IDS)
            )
            pipeline = self.client.pipeline(transaction=False)
            for token_id in token_ids:
                pipeline.hgetall(keys.auth_token(token_id))
            rows = await pipeline.execute()
            records = [
                _record(token_id, row) for token_id, row in zip(token_ids, rows, strict=True)
            ]
            return [record for record in records if record is not None]

        return await self._call("list", fetch)

    async def _mark_revoked(self, token_id: str, revoked_at_ms: int) -> None:
        # HSETNX keeps the first revocation time when two operators revoke at once.
        await self._call(
            "revoke",
            lambda: self.client.hsetnx(keys.auth_token(token_id), "revoked_at_ms", revoked_at_ms),
        )

    async def _put_session(self, session_hash: str, token_id: str, expires_at_ms: int) -> None:
        await self._put_expiring(keys.auth_session(session_hash), token_id, expires_at_ms)

    async def _get_session(self, session_hash: str) -> tuple[str, int] | None:
        value = await self._call(
            "session", lambda: self.client.get(keys.auth_session(session_hash))
        )
        return _expiring_value(value)

    async def _delete_session(self, session_hash: str) -> None:
        await self._call("logout", lambda: self.client.delete(keys.auth_session(session_hash)))

    async def _put_login_code(self, code_hash: str, token_id: str, expires_at_ms: int) -> None:
        await self._put_expiring(keys.auth_login_code(code_hash), token_id, expires_at_ms)

    async def _take_login_code(self, code_hash: str) -> tuple[str, int] | None:
        value = await self._call(
            "login code", lambda: self.client.getdel(keys.auth_login_code(code_hash))
        )
        return _expiring_value(value)

    async def _put_expiring(self, key: str, token_id: str, expires_at_ms: int) -> None:
        ttl_ms = max(expires_at_ms - self.clock_ms(), 1)
        value = f"{token_id} {expires_at_ms}"
        await self._call("store", lambda: self.client.set(key, value, px=ttl_ms))
