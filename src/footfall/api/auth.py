"""Access control: bearer tokens for API clients, a session cookie for the dashboard.

`require_reader` and `require_admin` are FastAPI dependencies. An `admin` token may do
everything; a `read` token may read. Without `--public-dashboard`, the dashboard, the read
endpoints, `/metrics` (unless `--public-metrics`) and every admin endpoint need one of:

- `Authorization: Bearer ff.<id>.<secret>`, for API clients and Prometheus scrapers;
- the `footfall_session` cookie that `/login` sets, for the dashboard.

Public without credentials: `POST /api/events` (the ingest, which never reaches FastAPI's
dependencies), `/tracker.js`, `/static/...` (code, no data), `/login`, `/healthz` and
`/openapi.json`.

Cross-site request forgery: the session cookie is SameSite=Strict, so a browser does not send
it with a request that another site starts. In addition, a state-changing request (not GET,
HEAD or OPTIONS) authenticated by the cookie must carry an `Origin` whose host equals the
`Host` header, or it gets 403. Bearer tokens are never sent by a browser on its own, so
requests that carry one need no such check.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from footfall.config import Settings
from footfall.credentials.base import CredentialStore, Role, TokenRecord

logger = logging.getLogger(__name__)

SESSION_COOKIE = "footfall_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="footfall"'}

bearer_scheme = HTTPBearer(
    scheme_name="apiToken", auto_error=False, description="An API token: ff.<id>.<secret>"
)
cookie_scheme = APIKeyCookie(
    name=SESSION_COOKIE,
    scheme_name="sessionCookie",
    auto_error=False,
    description="The dashboard session that /login sets.",
)
BearerCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]
SessionCookie = Annotated[str | None, Depends(cookie_scheme)]


@dataclass(frozen=True, slots=True)
class Reader:
    """The maker of a request: a token (directly or through a session), or the public.

    `token` is None only for an anonymous reader of a `--public-dashboard` installation, who
    gets IPs and e-mail addresses masked.
    """

    token: TokenRecord | None
    via_session: bool = False

    @property
    def sees_personal_data(self) -> bool:
        return self.token is not None


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def credentials_of(request: Request) -> CredentialStore:
    store: CredentialStore = request.app.state.deployment.credentials
    return store


def unauthorized(message: str) -> HTTPException:
    return HTTPException(status_code=401, detail=message, headers=CHALLENGE)


async def authenticate(
    request: Request, bearer: HTTPAuthorizationCredentials | None, session_id: str | None
) -> Reader | None:
    """Return the request's reader from its token or session, or None when it has neither.

    Raises 401 for a bearer token that is invalid or revoked: a client that sends one wants
    its token's rights, not the public view. A stale session cookie counts as no cookie, so
    a public dashboard still opens after the session ended.
    """
    store = credentials_of(request)
    if request.headers.get("authorization") is not None:
        if bearer is None:
            raise unauthorized("invalid Authorization header: expected 'Bearer <token>'")
        record = await store.authenticate_token(bearer.credentials)
        if record is None:
            raise unauthorized("invalid or revoked token: create one with `footfall token create`")
        return Reader(record)

    if session_id:
        record = await store.authenticate_session(session_id)
        if record is not None:
            reader = Reader(record, via_session=True)
            check_same_origin(request, reader)
            return reader
    return None


def check_same_origin(request: Request, reader: Reader) -> None:
    """Reject a cookie-authenticated state-changing request from another origin with 403."""
    if not reader.via_session or request.method in SAFE_METHODS:
        return
    if not is_same_origin(request):
        raise HTTPException(
            status_code=403,
            detail="cross-site request rejected: the Origin header must match this server",
        )


def is_same_origin(request: Request) -> bool:
    """Return whether the request's `Origin` names the host it was sent to.

    Only the host and port are compared, because behind a TLS proxy the browser's scheme
    (https) differs from the one footfall receives (http). The proxy must pass `Host` through.
    """
    origin = request.headers.get("origin")
    host = request.headers.get("host")
    if not origin or not host or origin == "null":
        return False
    return urlsplit(origin).netloc.lower() == host.lower()


async def require_reader(
    request: Request, bearer: BearerCredentials, session_id: SessionCookie
) -> Reader:
    """Let a `read` or `admin` token through; the public too under `--public-dashboard`."""
    reader = await authenticate(request, bearer, session_id)
    if reader is not None:
        return reader
    if settings_of(request).public_dashboard:
        return Reader(None)
    raise unauthorized("authentication required: send 'Authorization: Bearer <token>' or log in")


async def require_metrics_reader(
    request: Request, bearer: BearerCredentials, session_id: SessionCookie
) -> Reader:
    """Let `/metrics` through for a reader, or for anyone under `--public-metrics`.

    The metrics hold counts only, no personal data, but they still tell traffic volumes, so
    they need a token unless the operator opts out.
    """
    reader = await authenticate(request, bearer, session_id)
    if reader is not None:
        return reader
    if settings_of(request).public_metrics:
        return Reader(None)
    raise unauthorized("authentication required: send 'Authorization: Bearer <token>'")


async def require_admin(
    request: Request, bearer: BearerCredentials, session_id: SessionCookie
) -> Reader:
    """Let only an `admin` token (or its session) through: 401 without one, 403 for `read`."""
    reader = await authenticate(request, bearer, session_id)
    if reader is None or reader.token is None:
        raise unauthorized("authentication required: send an admin token")
    if reader.token.role is not Role.ADMIN:
        raise HTTPException(status_code=403, detail="this endpoint needs an admin token")
    return reader


ReaderDep = Annotated[Reader, Depends(require_reader)]
AdminDep = Annotated[Reader, Depends(require_admin)]
