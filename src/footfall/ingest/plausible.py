"""`POST /api/event`: Plausible's Events API, so that Plausible's trackers send to footfall.

Both key forms are read: the short keys Plausible's trackers send (`n`, `u`, `d`, `r`, `p`)
and the long keys of Plausible's documented API (`name`, `url`, `domain`, `referrer`,
`props`). The other keys (`h`, `i`, `v`, `$`, `sd`, `e`, `w`, ...) are accepted and ignored,
because a visit has no field for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from footfall.ingest.admission import Admission, Rejected
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
from footfall.ingest.validation import VisitInput, json_type

DEFAULT_PATH = "/api/event"
PAGEVIEW = "pageview"
ENGAGEMENT = "engagement"
"""Sent by `@plausible-analytics/tracker` when the visitor leaves a page, with the time spent
(`e`) and scroll depth (`sd`). It updates a pageview, so footfall stores nothing of it."""

_LONG_TO_SHORT = {"name": "n", "url": "u", "domain": "d", "referrer": "r", "props": "p"}


@dataclass(frozen=True, slots=True)
class PlausibleEvent:
    """The fields of a Plausible event that footfall uses."""

    name: str
    url: str
    site: str
    referrer: str | None

    def visit(self) -> VisitInput:
        """Return the visit to store: a custom event keeps its name in the title."""
        title = None if self.name == PAGEVIEW else event_title(self.name)
        return VisitInput(
            timezone=None,
            email=None,
            latitude=None,
            longitude=None,
            url=self.url,
            referrer=self.referrer,
            title=title,
            site=self.site,
            event_id=None,
        )


def parse_event(body: Any) -> PlausibleEvent:
    """Check a decoded Plausible event body, or raise InvalidBody (400) naming the field."""
    if not isinstance(body, dict):
        raise InvalidBody.field("body", f"must be a JSON object, got {json_type(body)}")
    fields = _short_keys(body)

    name = required_text("name", fields.get("n"), "send the event name, such as pageview")
    url = required_text("url", fields.get("u"), "send the page URL")
    domain = required_text("domain", fields.get("d"), "send the site's domain")
    referrer = optional_text("referrer", fields.get("r"))
    _check_props(fields.get("p"))

    # A comma-separated list sends the event to several Plausible sites at once. footfall
    # stores one visit, so the first domain names the site.
    # NOTE: the other domains of such a list get nothing.
    first_domain = domain.split(",", 1)[0].strip().lower()
    site = checked_site("domain", first_domain)
    return PlausibleEvent(name, url, site, referrer)


def _short_keys(body: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key, value in body.items():
        short = _LONG_TO_SHORT.get(key, key)
        if short in fields:
            long = next(name for name, letter in _LONG_TO_SHORT.items() if letter == short)
            raise InvalidBody.field(long, f"given twice (as {short!r} and {long!r}): send one")
        fields[short] = value
    return fields


def _check_props(props: Any) -> None:
    # The older `plausible-tracker` sends props as a JSON-encoded string, the newer trackers
    # as an object. footfall has no column for them, so they are checked and dropped.
    if props is None or isinstance(props, dict):
        return
    if not isinstance(props, str):
        raise InvalidBody.field("props", f"must be an object, got {json_type(props)}")
    try:
        decoded = orjson.loads(props)
    except orjson.JSONDecodeError as error:
        raise InvalidBody.field("props", f"invalid JSON in the string: {error}") from None
    if decoded is not None and not isinstance(decoded, dict):
        raise InvalidBody.field(
            "props", f"the string must encode a JSON object, got {json_type(decoded)}"
        )


class PlausibleEndpoint:
    """ASGI app for `POST` and `OPTIONS` on `/api/event` and the operator's extra paths.

    Success is 202 with the text `ok`; Plausible's trackers read only the status.
    """

    def __init__(self, admission: Admission) -> None:
        self._admission = admission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "OPTIONS":
            await send_preflight(scope, send)
            return
        rejection = await self._handle_post(scope, receive)
        if rejection is not None:
            await send_rejection(send, rejection)
            return
        await send_response(send, 202, b"ok", b"text/plain; charset=utf-8", [])

    async def _handle_post(self, scope: Scope, receive: Receive) -> Rejected | None:
        try:
            event = parse_event(await read_json(scope, receive))
        except InvalidBody as error:
            return reject_body(self._admission, error)
        if event.name == ENGAGEMENT:
            return None

        client = scope.get("client")
        peer = client[0] if client else None
        outcome = await self._admission.admit(peer, scope["headers"], event.visit())
        return outcome if isinstance(outcome, Rejected) else None
