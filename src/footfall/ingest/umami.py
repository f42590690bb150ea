"""Umami's collector: `POST /api/send`, `/api/batch` and the older `/api/collect`.

A body is `{"type": ..., "payload": {...}}`, or for `/api/batch` a JSON array of them. The
types are `event` (a pageview, or a custom event when the payload has a `name`), `identify`
(session data, which footfall does not keep) and the older `pageview`. Success is 200 with a
text body, which Umami's tracker sends back in `x-umami-cache` on its next request; footfall
does not read it.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from footfall.ingest.admission import Accepted, Admission, Rejected, header
from footfall.ingest.collector import (
    checked_site,
    event_title,
    optional_text,
    reject_body,
    required_text,
    send_preflight,
    send_rejection,
)
from footfall.ingest.endpoint import InvalidBody, Receive, Scope, Send, read_json, send_response
from footfall.ingest.validation import MAX_TITLE_CHARS, MAX_URL_CHARS, VisitInput, json_type

SEND_PATH = "/api/send"
BATCH_PATH = "/api/batch"
COLLECT_PATH = "/api/collect"
"""The collector path of Umami 1.x, whose trackers send `pageview` and `event` types."""

TYPES = ("event", "identify", "pageview")
_ABSOLUTE_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_TEXT_TYPE = b"text/plain; charset=utf-8"


@dataclass(frozen=True, slots=True)
class UmamiEvent:
    """One item of an Umami body; `visit` is None for an `identify`, which stores nothing."""

    visit: VisitInput | None


def parse_body(
    body: Any, *, batch: bool, sites: Mapping[str, str], origin: str
) -> list[UmamiEvent]:
    """Check a decoded body and return its events, or raise InvalidBody (400) naming the field.

    `sites` maps Umami website ids to footfall site names, and `origin` is the request's
    `Origin` header, used to complete the path that Umami's tracker sends as `url`.
    """
    if not batch:
        return [_parse_item(body, "", sites, origin)]
    if not isinstance(body, list):
        raise InvalidBody.field("body", f"must be a JSON array, got {json_type(body)}")
    if not body:
        raise InvalidBody.field("body", "empty array: send at least one event")
    return [_parse_item(item, f"[{index}].", sites, origin) for index, item in enumerate(body)]


def _parse_item(item: Any, prefix: str, sites: Mapping[str, str], origin: str) -> UmamiEvent:
    if not isinstance(item, dict):
        raise InvalidBody.field(prefix + "body", f"must be a JSON object, got {json_type(item)}")
    kind = item.get("type")
    if kind not in TYPES:
        shown = repr(kind) if isinstance(kind, str) else json_type(kind)
        raise InvalidBody.field(prefix + "type", f"{shown} is not one of event, identify, pageview")
    payload = item.get("payload")
    if not isinstance(payload, dict):
        raise InvalidBody.field(prefix + "payload", f"must be an object, got {json_type(payload)}")

    field = f"{prefix}payload."
    site = _site(field + "website", payload.get("website"), sites)
    _check_data(field, payload)
    if kind == "identify":
        return UmamiEvent(None)

    path = required_text(field + "url", payload.get("url"), "send the page path or URL")
    hostname = optional_text(field + "hostname", payload.get("hostname"))
    referrer = optional_text(field + "referrer", payload.get("referrer"))
    title = optional_text(field + "title", payload.get("title"))
    # Umami 1.x named a custom event `event_name`.
    name = optional_text(field + "name", payload.get("name", payload.get("event_name")))

    if name is not None:
        title = event_title(name)
    elif title is not None:
        # Umami's tracker sends the title through encodeURIComponent.
        title = urllib.parse.unquote(title)[:MAX_TITLE_CHARS]
    visit = VisitInput(
        timezone=None,
        email=None,
        latitude=None,
        longitude=None,
        url=_page_url(path, hostname, origin),
        referrer=referrer,
        title=title,
        site=site,
        event_id=None,
    )
    return UmamiEvent(visit)


def _site(field: str, website: Any, sites: Mapping[str, str]) -> str:
    website_id = required_text(field, website, "send the Umami website id")
    mapped = sites.get(website_id)
    if mapped is not None:
        return mapped
    if len(website_id) > 64:
        raise InvalidBody.field(
            field, "longer than 64 characters: name its site with --umami-site ID=SITE"
        )
    return checked_site(field, website_id)


def _check_data(field: str, payload: dict[str, Any]) -> None:
    # Custom event data has no column in footfall, so it is checked and dropped.
    data = payload.get("data", payload.get("event_data"))
    if data is not None and not isinstance(data, dict):
        raise InvalidBody.field(field + "data", f"must be an object, got {json_type(data)}")


def _page_url(path: str, hostname: str | None, origin: str) -> str:
    """Return an absolute URL for the page, or as close to one as the payload allows.

    Umami's tracker sends the path and query as `url` and the host apart. With a browser's
    `Origin` for that host, the result is the full URL; otherwise it is a scheme-relative
    `//host/path`, since the scheme is unknown.
    """
    if _ABSOLUTE_URL.match(path) or path.startswith("//") or hostname is None:
        return path
    if not path.startswith("/"):
        path = "/" + path
    base = "//" + hostname
    if origin and (urllib.parse.urlsplit(origin).hostname or "") == hostname.lower():
        base = origin.rstrip("/")
    return (base + path)[:MAX_URL_CHARS]


class UmamiEndpoint:
    """ASGI app for `POST` and `OPTIONS` on one Umami collector path.

    `batch` selects the body form: one object, or an array of them.
    """

    def __init__(self, admission: Admission, sites: Mapping[str, str], *, batch: bool) -> None:
        self._admission = admission
        self._sites = dict(sites)
        self._batch = batch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "OPTIONS":
            await send_preflight(scope, send)
            return
        result = await self._handle_post(scope, receive)
        if isinstance(result, Rejected):
            await send_rejection(send, result)
            return
        await send_response(send, 200, result.encode(), _TEXT_TYPE, [])

    async def _handle_post(self, scope: Scope, receive: Receive) -> Rejected | str:
        headers = scope["headers"]
        origin = header(headers, b"origin").decode("latin-1")
        try:
            body = await read_json(scope, receive)
            events = parse_body(body, batch=self._batch, sites=self._sites, origin=origin)
        except InvalidBody as error:
            return reject_body(self._admission, error)

        client = scope.get("client")
        peer = client[0] if client else None
        # The response body for an identify, a bot or a batch is a token of the same form as a
        # stored event's id, so that a bot cannot tell that it was dropped.
        token = os.urandom(16).hex()
        for index, event in enumerate(events):
            if event.visit is None:
                continue
            outcome = await self._admission.admit(peer, headers, event.visit)
            if isinstance(outcome, Rejected):
                return _in_batch(outcome, index) if self._batch else outcome
            if isinstance(outcome, Accepted) and not self._batch:
                token = outcome.id
        return token


def _in_batch(rejection: Rejected, index: int) -> Rejected:
    detail = f"event [{index}] of the batch: {rejection.detail} (the events before it are stored)"
    return Rejected(rejection.status, rejection.reason, detail, rejection.headers)
