"""Security headers on every response of the FastAPI side: dashboard, login, reads, admin.

The ingest route bypasses this wrapper (see FootfallApp), so the hot path keeps its own
short responses with `Access-Control-Allow-Origin: *`, which any site's tracker needs.

The Content-Security-Policy allows scripts, styles, images and fetches from footfall's own
origin only. The dashboard needs nothing else: it loads its vendored htm/Preact module and
its style sheet from `/static`, and has no inline script or style.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from footfall.ingest.endpoint import Message, Receive, Scope, Send

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)

SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    # same-origin keeps the dashboard's URLs out of the Referer header of links to other
    # sites. no-referrer would be stricter, but Chromium then sends `Origin: null` with the
    # login form's same-origin POST, which the cross-site check must reject.
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
SECURITY_HEADER_NAMES = frozenset(name for name, _ in SECURITY_HEADERS)


class SecurityHeaders:
    """ASGI wrapper that adds SECURITY_HEADERS to each HTTP response of the wrapped app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    header
                    for header in message.get("headers", [])
                    if bytes(header[0]).lower() not in SECURITY_HEADER_NAMES
                ]
                message = {**message, "headers": [*headers, *SECURITY_HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
