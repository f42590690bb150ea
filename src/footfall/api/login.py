"""The dashboard login: a token form, the first run's one-time link, and the logout.

A successful login sets the `footfall_session` cookie: HttpOnly, SameSite=Strict, Path=/,
Secure as `Settings.session_cookie_secure` (or the request's own scheme) decides, and valid
for SESSION_TTL_S. The server keeps the session under the SHA-256 of its id and ends it at
logout, at expiry, or when its token is revoked.

These routes are browser pages and form posts, not API endpoints, so they are left out of
the OpenAPI document.
"""

from __future__ import annotations

import logging
from html import escape
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from footfall.api.auth import SESSION_COOKIE, credentials_of, is_same_origin, settings_of
from footfall.credentials.base import SESSION_TTL_S, TokenRecord
from footfall.dashboard import STATIC_DIR

logger = logging.getLogger(__name__)

LOGIN_PATH = "/login"
LOGIN_LINK_PATH = "/login/link"
MAX_FORM_BYTES = 4096
MESSAGE_MARK = "<!-- message -->"

router = APIRouter(include_in_schema=False)


def login_page(message: str | None = None, status_code: int = 200) -> HTMLResponse:
    """Return the login page, with `message` shown above the form."""
    page = (STATIC_DIR / "login.html").read_text()
    if message:
        page = page.replace(MESSAGE_MARK, f'<p class="error" role="alert">{escape(message)}</p>')
    return HTMLResponse(page, status_code=status_code, headers={"cache-control": "no-store"})


@router.get(LOGIN_PATH)
async def show_login() -> HTMLResponse:
    return login_page()


@router.post(LOGIN_PATH)
async def log_in(request: Request) -> Response:
    """Check the posted token and start a session, or show the form again with 401."""
    # A login form posted from another site would log the browser into the attacker's
    # account, so a login needs a same-origin Origin header like every cookie-changing post.
    if not is_same_origin(request):
        return login_page("Cross-site login rejected: open this page from the server.", 403)
    body = await read_form_body(request)
    if body is None:
        return login_page("The form is too large.", 413)
    form = parse_qs(body.decode(errors="replace"))
    token = (form.get("token") or [""])[0].strip()

    record = await credentials_of(request).authenticate_token(token) if token else None
    if record is None:
        return login_page("Invalid or revoked token.", 401)
    return await start_session(request, record)


@router.get(LOGIN_LINK_PATH)
async def log_in_with_link(request: Request, code: str = "") -> Response:
    """Redeem a first-run login code once and start a session."""
    record = await credentials_of(request).redeem_login_code(code) if code else None
    if record is None:
        return login_page(
            "This login link is invalid, used or expired. Log in with your token.", 401
        )
    return await start_session(request, record)


@router.post("/logout")
async def log_out(request: Request) -> Response:
    """End the session and clear the cookie; a cross-site logout gets 403."""
    if not is_same_origin(request):
        return login_page("Cross-site logout rejected.", 403)
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        await credentials_of(request).end_session(session_id)
    response = RedirectResponse(LOGIN_PATH, status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


async def read_form_body(request: Request) -> bytes | None:
    """Return the request body, or None once it grows past MAX_FORM_BYTES (not buffered)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    return bytes(body)


async def start_session(request: Request, record: TokenRecord) -> Response:
    session_id = await credentials_of(request).create_session(record.id)
    logger.info("dashboard login with token %s (%s)", record.id, record.name)
    secure = settings_of(request).session_cookie_secure or request.url.scheme == "https"
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=SESSION_TTL_S,
        path="/",
        secure=secure,
        httponly=True,
        samesite="strict",
    )
    return response
