"""`POST /api/events`: the hot path, written as a plain ASGI app to keep it lean.

No framework routing, dependency injection or pydantic runs per request: the body is read
with a size cap, decoded with orjson and checked by `validation`. The route still appears
in the OpenAPI document (see `api.openapi`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from footfall.errors import BackendUnavailable
from footfall.ingest.client_ip import ClientIpResolver
from footfall.ingest.validation import VisitValidationError, validate_visit
from footfall.log.base import EventLog
from footfall.metrics import IngestCounters
from footfall.model import Visit

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
"""Larger bodies get 413, decided while reading; the rest of the body is never buffered."""

RETRY_AFTER_S = 1
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
    503: "unavailable",
}


class _BodyTooLarge(Exception):
    pass


class IngestEndpoint:
    """ASGI app for `POST` and `OPTIONS` on `/api/events`."""

    def __init__(
        self,
        log: EventLog,
        resolver: ClientIpResolver,
        counters: IngestCounters,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self._log = log
        self._resolver = resolver
        self._counters = counters
        self._clock_ms = clock_ms or _wall_clock_ms

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "OPTIONS":
            await _send_preflight(scope, send)
            return

        status, payload, extra_headers = await self._handle_post(scope, receive)
        if status == 202:
            self._counters.accepted += 1
        else:
            self._counters.rejected[_REJECT_REASONS[status]] += 1
        await _send_json(send, status, payload, extra_headers)

    async def _handle_post(
        self, scope: Scope, receive: Receive
    ) -> tuple[int, dict[str, Any], list[tuple[bytes, bytes]]]:
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        media_type = _header(headers, b"content-type").split(b";", 1)[0].strip().lower()
        if media_type not in ACCEPTED_MEDIA_TYPES:
            received = media_type.decode("latin-1")
            if received:
                detail = f"unsupported content type {received!r}: "
            else:
                detail = "missing Content-Type header: "
            detail += "send application/json or text/plain"
            return 415, {"detail": detail}, []

        try:
            raw = await _read_body(headers, receive)
        except _BodyTooLarge:
            detail = f"body larger than {MAX_BODY_BYTES} bytes: send one visit per request"
            return 413, {"detail": detail}, [(b"connection", b"close")]

        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            return 400, {"detail": f"invalid JSON: {error}"}, []

        try:
            fields = validate_visit(body)
        except VisitValidationError as error:
            errors = [{"field": item.field, "message": item.message} for item in error.errors]
            return 422, {"errors": errors}, []

        client = scope.get("client")
        visit = Visit(
            id=fields.event_id or os.urandom(16).hex(),
            site=fields.site,
            received_at_ms=self._clock_ms(),
            ip=self._resolver.resolve(client[0] if client else None, headers),
            timezone=fields.timezone,
            email=fields.email,
            latitude=fields.latitude,
            longitude=fields.longitude,
            url=fields.url,
            referrer=fields.referrer,
            title=fields.title,
        )
        try:
            await self._log.append(visit, deduplicate=fields.event_id is not None)
        except BackendUnavailable as error:
            logger.warning("rejected visit %s with 503, client may retry: %s", visit.id, error)
            retry = [(b"retry-after", str(RETRY_AFTER_S).encode())]
            return 503, {"detail": "the event log is unavailable, retry later"}, retry
        return 202, {"id": visit.id}, []


async def _read_body(headers: list[tuple[bytes, bytes]], receive: Receive) -> bytes:
    declared = _header(headers, b"content-length")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _BodyTooLarge

    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes:
    for key, value in headers:
        if key == name:
            return value
    return b""


async def _send_preflight(scope: Scope, send: Send) -> None:
    requested = _header(scope["headers"], b"access-control-request-headers")
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


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000
