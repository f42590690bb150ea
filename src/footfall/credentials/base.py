"""Tokens, sessions and login codes, and the store interface both deployments implement.

A token reads `ff.<id>.<secret>`. The store keeps the id in the clear and only the SHA-256 of
the secret. A plain hash is enough here, and a slow password hash would add nothing: the
secret is 256 random bits from `secrets`, so no guess or dictionary attack can find it. The
id lets the store fetch one record and compare the hashes with `hmac.compare_digest`, so the
comparison takes the same time however many leading bytes match.

Session ids and login codes are random secrets too. They are stored under the SHA-256 of the
value and looked up by that hash. A lookup leaks at most how much of a hash matched, which
reveals nothing about the value behind it.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from footfall.errors import InvalidInput

TOKEN_PREFIX = "ff"
SECRET_BYTES = 32
ID_BYTES = 6
MAX_NAME_CHARS = 64

SESSION_TTL_S = 12 * 3600
"""A dashboard session ends 12 hours after the login, whatever the activity."""
LOGIN_CODE_TTL_S = 24 * 3600
"""The one-time login link of the first run works once, for 24 hours."""


class Role(enum.StrEnum):
    """The rights of a token: `admin` reads and administers, `read` only reads."""

    ADMIN = "admin"
    READ = "read"


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A token as stored, without its secret. `revoked_at_ms` is None while it is valid."""

    id: str
    name: str
    role: Role
    secret_hash: str
    created_at_ms: int
    revoked_at_ms: int | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at_ms is None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A new token's record and the full token, which is shown to the operator once."""

    record: TokenRecord
    token: str


def hash_secret(secret: str) -> str:
    """Return the hex SHA-256 of a high-entropy random secret (see the module docstring)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def parse_token(token: str) -> tuple[str, str] | None:
    """Split `ff.<id>.<secret>` into id and secret, or return None for anything else."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def check_name(name: str) -> str:
    """Return a valid token name, or raise InvalidInput naming the rule."""
    name = name.strip()
    if not name or len(name) > MAX_NAME_CHARS or not name.isprintable():
        raise InvalidInput(
            f"invalid token name {name!r}: use 1 to {MAX_NAME_CHARS} printable characters"
        )
    return name


class CredentialStore(ABC):
    """Tokens, sessions and login codes of one footfall installation.

    Every method may raise BackendUnavailable when the backend cannot be reached. A revoked
    token authenticates nothing: neither itself, nor its sessions, nor its login codes.
    Subclasses implement the storage primitives below; the checks live here once.
    """

    def __init__(self, clock_ms: Callable[[], int] = now_ms) -> None:
        self.clock_ms = clock_ms

    async def create_token(self, name: str, role: Role) -> IssuedToken:
        """Create a token and return it; its secret is not stored and cannot be shown again."""
        issued = self._new_token(check_name(name), role)
        await self._insert_token(issued.record, only_if_none=False)
        return issued

    async def create_first_admin(self, name: str = "first-run admin") -> IssuedToken | None:
        """Create an admin token only when the store has no token at all, even a revoked one.

        Atomic: when several API processes start together on one store, exactly one of them
        gets the token and the others get None.
        """
        issued = self._new_token(name, Role.ADMIN)
        created = await self._insert_token(issued.record, only_if_none=True)
        return issued if created else None

    async def list_tokens(self) -> list[TokenRecord]:
        """Return every token, revoked ones included, oldest first."""
        records = await self._all_tokens()
        return sorted(records, key=lambda record: (record.created_at_ms, record.id))

    async def revoke_token(self, token_id: str) -> TokenRecord | None:
        """Revoke a token, which also ends its sessions and login codes.

        Returns the record, or None when no token has this id. Revoking twice keeps the
        first revocation time.
        """
        record = await self._get_token(token_id)
        if record is None:
            return None
        if record.active:
            await self._mark_revoked(token_id, self.clock_ms())
            record = await self._get_token(token_id)
        return record

    async def authenticate_token(self, token: str) -> TokenRecord | None:
        """Return the active token that `token` is, or None."""
        parsed = parse_token(token)
        if parsed is None:
            return None
        token_id, secret = parsed
        record = await self._get_token(token_id)
        if record is None or not record.active:
            return None
        if not hmac.compare_digest(hash_secret(secret), record.secret_hash):
            return None
        return record

    async def create_session(self, token_id: str, ttl_s: int = SESSION_TTL_S) -> str:
        """Start a dashboard session for a token and return the session id for the cookie."""
        session_id = secrets.token_urlsafe(SECRET_BYTES)
        expires_at_ms = self.clock_ms() + ttl_s * 1000
        await self._put_session(hash_secret(session_id), token_id, expires_at_ms)
        return session_id

    async def authenticate_session(self, session_id: str) -> TokenRecord | None:
        """Return the active token behind an unexpired session, or None."""
        found = await self._get_session(hash_secret(session_id))
        if found is None:
            return None
        token_id, expires_at_ms = found
        if expires_at_ms <= self.clock_ms():
            return None
        record = await self._get_token(token_id)
        return record if record is not None and record.active else None

    async def end_session(self, session_id: str) -> None:
        """Delete a session; ending an unknown or expired one is harmless."""
        await self._delete_session(hash_secret(session_id))

    async def create_login_code(self, token_id: str, ttl_s: int = LOGIN_CODE_TTL_S) -> str:
        """Create a code that starts one session for a token, once, within `ttl_s`."""
        code = secrets.token_urlsafe(SECRET_BYTES)
        await self._put_login_code(hash_secret(code), token_id, self.clock_ms() + ttl_s * 1000)
        return code

    async def redeem_login_code(self, code: str) -> TokenRecord | None:
        """Consume a login code and return its active token, or None if used or expired.

        The code is deleted atomically as it is read, so two requests with one code cannot
        both succeed.
        """
        found = await self._take_login_code(hash_secret(code))
        if found is None:
            return None
        token_id, expires_at_ms = found
        if expires_at_ms <= self.clock_ms():
            return None
        record = await self._get_token(token_id)
        return record if record is not None and record.active else None

    async def close(self) -> None:
        return None

    def _new_token(self, name: str, role: Role) -> IssuedToken:
        token_id = secrets.token_hex(ID_BYTES)
        secret = secrets.token_urlsafe(SECRET_BYTES)
        record = TokenRecord(token_id, name, role, hash_secret(secret), self.clock_ms())
        return IssuedToken(record, f"{TOKEN_PREFIX}.{token_id}.{secret}")

    @abstractmethod
    async def _insert_token(self, record: TokenRecord, *, only_if_none: bool) -> bool:
        """Store a token; with `only_if_none`, only if no token exists. Return if stored."""

    @abstractmethod
    async def _get_token(self, token_id: str) -> TokenRecord | None: ...

    @abstractmethod
    async def _all_tokens(self) -> list[TokenRecord]: ...

    @abstractmethod
    async def _mark_revoked(self, token_id: str, revoked_at_ms: int) -> None:
        """Set the revocation time. Lookups reject the token's sessions and codes from then on,
        so deleting them too is only tidying."""

    @abstractmethod
    async def _put_session(self, session_hash: str, token_id: str, expires_at_ms: int) -> None: ...

    @abstractmethod
    async def _get_session(self, session_hash: str) -> tuple[str, int] | None:
        """Return the token id and expiry of a session, expired ones possibly included."""

    @abstractmethod
    async def _delete_session(self, session_hash: str) -> None: ...

    @abstractmethod
    async def _put_login_code(self, code_hash: str, token_id: str, expires_at_ms: int) -> None: ...

    @abstractmethod
    async def _take_login_code(self, code_hash: str) -> tuple[str, int] | None:
        """Delete a login code and return its token id and expiry, atomically."""
