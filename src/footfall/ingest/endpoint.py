"""`POST /api/events`: the hot path, written as a plain ASGI app to keep it lean.

No framework routing, dependency injection or pydantic runs per request: the body is read
with a size cap, decoded with orjson and checked by `validation`. The route still appears
in the OpenAPI document (see `api.openapi`).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from footfall.ingest.admission import Accepted, Admission, Headers, Ignored, header
from footfall.ingest.validation import VisitValidationError, validate_visit

MAX_BODY_BYTES = 64 * 1024
"""Larger bodies get 413, decided while reading; the rest of the body is never buffered."""

ACCEPTED_MEDIA_TYPES = (b"application/json", b"text/plain")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

CORS_HEADERS: Headers = [(b"access-control-allow-origin", b"*")]
PREFLIGHT_HEADERS: Headers = [
    *CORS_HEADERS,
    (b"access-control-allow-methods", b"POST, OPTIONS"),
    (b"access-control-max-age", b"86400"),
]


class BodyTooLarge(Exception):
    """The body passed MAX_BODY_BYTES; the rest of it was not read."""


class InvalidBody(Exception):
    """A request body a collector cannot use, rejected with `status` and `detail`.

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


class IngestEndpoint:
    """ASGI app for `POST` and `OPTIONS` on `/api/events`."""

    def __init__(self, admission: Admission) -> None:
        self._admission = admission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "OPTIONS":
            await _send_preflight(scope, send)
            return
        status, payload, extra_headers = await self._handle_post(scope, receive)
        await _send_json(send, status, payload, extra_headers)

    async def _handle_post(
        self, scope: Scope, receive: Receive
    ) -> tuple[int, dict[str, Any], Headers]:
        headers: Headers = scope["headers"]
        try:
            body = await read_json(scope, receive)
        except InvalidBody as error:
            self._admission.count_rejection(error.reason)
            if error.status == 413:
                detail = f"{error.detail}: send one visit per request"
                return 413, {"detail": detail}, [(b"connection", b"close")]
            return error.status, {"detail": error.detail}, []

        try:
            fields = validate_visit(body)
        except VisitValidationError as error:
            self._admission.count_rejection("invalid_fields")
            errors = [{"field": item.field, "message": item.message} for item in error.errors]
            return 422, {"errors": errors}, []

        client = scope.get("client")
        outcome = await self._admission.admit(client[0] if client else None, headers, fields)
        if isinstance(outcome, Accepted):
            return 202, {"id": outcome.id}, []
        if isinstance(outcome, Ignored):
            # The same response as for a stored visit, so that a bot learns nothing.
            return 202, {"id": os.urandom(16).hex()}, []
        return outcome.status, {"detail": outcome.detail}, outcome.headers


async def read_json(scope: Scope, receive: Receive) -> Any:
    """Read and decode a JSON body, or raise InvalidBody (415, 413 or 400)."""
    headers: Headers = scope["headers"]
    media_type = header(headers, b"content-type").split(b";", 1)[0].strip().lower()
    if media_type not in ACCEPTED_MEDIA_TYPES:
        received = media_type.decode("latin-1")
        shown = (
            f"unsupported content type {received!r}" if received else "missing Content-Type header"
        )
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


async def read_body(headers: Headers, receive: Receive) -> bytes:
    declared = header(headers, b"content-length")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BodyTooLarge

    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _send_preflight(scope: Scope, send: Send) -> None:
    requested = header(scope["headers"], b"access-control-request-headers")
    headers = [*PREFLIGHT_HEADERS, (b"access-control-allow-headers", requested or b"content-type")]
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


async def _send_json(
    send: Send, status: int, payload: dict[str, Any], extra_headers: Headers
) -> None:
    await send_response(send, status, orjson.dumps(payload), b"application/json", extra_headers)


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
