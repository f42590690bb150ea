"""Shared parts of the collectors that speak other products' protocols (Plausible, Umami).

They read a body the way `/api/events` does (same media types, same size cap), turn the
other product's fields into a `VisitInput`, and hand it to the same `Admission`. Every
response, success or error, carries CORS headers, because those trackers post from the page's
own origin.
"""

from __future__ import annotations

from typing import Any

import orjson

from footfall.ingest.admission import Admission, Rejected, header
from footfall.ingest.endpoint import (
    PREFLIGHT_HEADERS,
    InvalidBody,
    Scope,
    Send,
    send_response,
)
from footfall.ingest.validation import MAX_TITLE_CHARS, MAX_URL_CHARS, SITE_PATTERN, json_type

EVENT_TITLE_PREFIX = "event: "
"""A custom event is stored as a visit of its page whose title is this prefix and its name."""

# Umami's tracker sends its last response body back in `x-umami-cache`, so a cross-origin page
# posts nothing until the preflight allows that header.
ALLOWED_REQUEST_HEADERS = b"content-type, x-umami-cache"


def reject_body(admission: Admission, error: InvalidBody) -> Rejected:
    """Count a malformed body as rejected and return the response to send."""
    admission.count_rejection(error.reason)
    extra = [(b"connection", b"close")] if error.status == 413 else []
    return Rejected(error.status, error.reason, error.detail, extra)


def optional_text(name: str, value: Any, max_chars: int = MAX_URL_CHARS) -> str | None:
    """Return a string field cut to `max_chars` code points; None for null, absent or ''."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidBody.field(name, f"must be a string, got {json_type(value)}")
    return value[:max_chars]


def required_text(name: str, value: Any, fix: str) -> str:
    """Return a string field that must be present and non-empty, cut to MAX_URL_CHARS."""
    text = optional_text(name, value)
    if text is None:
        raise InvalidBody.field(name, f"missing: {fix}")
    return text


def checked_site(name: str, value: str) -> str:
    """Return `value` when it is a valid footfall site name, else raise for field `name`."""
    if not SITE_PATTERN.fullmatch(value):
        raise InvalidBody.field(
            name,
            f"{value[:100]!r} is not a valid footfall site name: use 1 to 64 letters, digits, "
            "'.', '_' or '-', starting with a letter or digit",
        )
    return value


def event_title(name: str) -> str:
    """Return the title a custom event is stored with."""
    return (EVENT_TITLE_PREFIX + name)[:MAX_TITLE_CHARS]


async def send_preflight(scope: Scope, send: Send) -> None:
    """Respond to a CORS preflight: any origin, POST, the headers both trackers send."""
    requested = header(scope["headers"], b"access-control-request-headers").lower()
    names = [name.strip() for name in (ALLOWED_REQUEST_HEADERS + b"," + requested).split(b",")]
    allowed = b", ".join(dict.fromkeys(name for name in names if name))
    headers = [*PREFLIGHT_HEADERS, (b"access-control-allow-headers", allowed)]
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


async def send_rejection(send: Send, rejection: Rejected) -> None:
    """Send a rejection as `{"detail": ...}` JSON with its status and extra headers."""
    body = orjson.dumps({"detail": rejection.detail})
    await send_response(send, rejection.status, body, b"application/json", rejection.headers)
