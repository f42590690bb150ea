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

from footfall.ingest.admission import Accepted, Admission, Ignored, header
from footfall.ingest.validation import VisitValidationError, validate_visit

MAX_BODY_BYTES = 64 * 1024
"""Larger bodies get 413, decided while reading; the rest of the body is never buffered."""

ACCEPTED_MEDIA_TYPES = (b"application/json", b"text/plain")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_CORS_HEADERS = [(b"access-control-allow-origin", b"*")]
_PREFLIGHT_HEADERS = [
    *_CORS_HEADERS,
    (b"access-control-allow-methods", b"POST, OPTIONS"),
    (b"access-control-max-age", b"86400"),
]


_REJECT_REASONS = {
    400: "invalid_json",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_fields",
}


class BodyTooLarge(Exception):
    """The body passed MAX_BODY_BYTES; the rest of it was not read."""


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
    ) -> tuple[int, dict[str, Any], list[tuple[bytes, bytes]]]:
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        media_type = header(headers, b"content-type").split(b";", 1)[0].strip().lower()
        if media_type not in ACCEPTED_MEDIA_TYPES:
            received = media_type.decode("latin-1")
            if received:
                detail = f"unsupported content type {received!r}: "
            else:
                detail = "missing Content-Type header: "
            detail += "send application/json or text/plain"
            return self._refuse(415, {"detail": detail})

        try:
            raw = await read_body(headers, receive)
        except BodyTooLarge:
            detail = f"body larger than {MAX_BODY_BYTES} bytes: send one visit per request"
            return self._refuse(413, {"detail": detail}, [(b"connection", b"close")])

        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            return self._refuse(400, {"detail": f"invalid JSON: {error}"})

        try:
            fields = validate_visit(body)
        except VisitValidationError as error:
            errors = [{"field": item.field, "message": item.message} for item in error.errors]
            return self._refuse(422, {"errors": errors})

        client = scope.get("client")
        outcome = await self._admission.admit(client[0] if client else None, headers, fields)
        if isinstance(outcome, Accepted):
            return 202, {"id": outcome.id}, []
        if isinstance(outcome, Ignored):
            # The same answer as for a stored visit, so that a bot learns nothing.
            return 202, {"id": os.urandom(16).hex()}, []
        return outcome.status, {"detail": outcome.detail}, outcome.headers

    def _refuse(
        self, status: int, payload: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
    ) -> tuple[int, dict[str, Any], list[tuple[bytes, bytes]]]:
        self._admission.count_refusal(_REJECT_REASONS[status])
        return status, payload, headers or []


async def read_body(headers: list[tuple[bytes, bytes]], receive: Receive) -> bytes:
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
    headers = [*_PREFLIGHT_HEADERS, (b"access-control-allow-headers", requested or b"content-type")]
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


async def _send_json(
    send: Send, status: int, payload: dict[str, Any], extra_headers: list[tuple[bytes, bytes]]
) -> None:
    body = orjson.dumps(payload)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *_CORS_HEADERS,
        *extra_headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
