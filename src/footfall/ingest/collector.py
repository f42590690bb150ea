"""Shared parts of the collectors that speak other products' protocols (Plausible, Umami).

They read a body the way `/api/events` does (same media types, same size cap), turn the
other product's fields into a `VisitInput`, and hand it to the same `Admission`. Every
response, success or error, carries CORS headers, because those trackers post from the page's
own origin.
"""

from __future__ import annotations

from typing import Any

import orjson

from footfall.ingest.admission import Admission, Refused, header
from footfall.ingest.endpoint import (
    ACCEPTED_MEDIA_TYPES,
    MAX_BODY_BYTES,
    BodyTooLarge,
    Receive,
    Scope,
    Send,
    read_body,
)
from footfall.ingest.validation import MAX_TITLE_CHARS, MAX_URL_CHARS, SITE_PATTERN

Headers = list[tuple[bytes, bytes]]

EVENT_TITLE_PREFIX = "event: "
"""A custom event is stored as a visit of its page whose title is this prefix and its name."""

# Umami's tracker sends its last response body back in `x-umami-cache`, so a cross-origin page
# posts nothing until the preflight allows that header.
ALLOWED_REQUEST_HEADERS = b"content-type, x-umami-cache"
CORS_HEADERS: Headers = [(b"access-control-allow-origin", b"*")]
_PREFLIGHT_HEADERS: Headers = [
    *CORS_HEADERS,
    (b"access-control-allow-methods", b"POST, OPTIONS"),
    (b"access-control-max-age", b"86400"),
]


class InvalidBody(Exception):
    """A request body the collector cannot use, rejected with `status` and `detail`.

    `reason` is the label of footfall_events_rejected (see `metrics.REJECT_REASONS`).
    """

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail

    @classmethod
    def field(cls, name: str, message: str) -> InvalidBody:
        """Build the 400 for one invalid field, named as the other product names it."""
        return cls(400, "invalid_fields", f"{name}: {message}")


async def read_json(scope: Scope, receive: Receive) -> Any:
    """Read and decode a JSON body, or raise InvalidBody (415, 413 or 400)."""
    headers: Headers = scope["headers"]
    media_type = header(headers, b"content-type").split(b";", 1)[0].strip().lower()
    if media_type not in ACCEPTED_MEDIA_TYPES:
        received = media_type.decode("latin-1")
        shown = f"unsupported content type {received!r}" if received else "missing Content-Type"
        raise InvalidBody(
            415, "unsupported_media_type", f"{shown}: send application/json or text/plain"
        )

    try:
        raw = await read_body(headers, receive)
    except BodyTooLarge:
        raise InvalidBody(413, "too_large", f"body larger than {MAX_BODY_BYTES} bytes") from None

    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise InvalidBody(400, "invalid_json", f"invalid JSON: {error}") from None


def reject_body(admission: Admission, error: InvalidBody) -> Refused:
    """Count a malformed body as rejected and return the response to send."""
    admission.count_refusal(error.reason)
    extra = [(b"connection", b"close")] if error.status == 413 else []
    return Refused(error.status, error.reason, error.detail, extra)


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


def json_type(value: Any) -> str:
    """Name the JSON type of a decoded value, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


async def send_preflight(scope: Scope, send: Send) -> None:
    """Respond to a CORS preflight: any origin, POST, the headers both trackers send."""
    requested = header(scope["headers"], b"access-control-request-headers").lower()
    names = [name.strip() for name in (ALLOWED_REQUEST_HEADERS + b"," + requested).split(b",")]
    allowed = b", ".join(dict.fromkeys(name for name in names if name))
    headers = [*_PREFLIGHT_HEADERS, (b"access-control-allow-headers", allowed)]
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


async def send_response(
    send: Send, status: int, body: bytes, content_type: bytes, extra_headers: Headers
) -> None:
    """Send a complete response with CORS headers."""
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        *CORS_HEADERS,
        *extra_headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_rejection(send: Send, rejection: Refused) -> None:
    """Send a rejection as `{"detail": ...}` JSON with its status and extra headers."""
    body = orjson.dumps({"detail": rejection.detail})
    await send_response(send, rejection.status, body, b"application/json", rejection.headers)
