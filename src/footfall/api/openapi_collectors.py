"""OpenAPI descriptions of the collectors for Plausible's and Umami's trackers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from footfall.ingest.endpoint import MAX_BODY_BYTES


class PlausibleEventBody(BaseModel):
    """A Plausible event, with short keys (as the trackers send) or long keys (as the API
    documents them), not both for one field. `url`, `name` and `domain` are required in one
    of the two forms. Keys not listed here are accepted and ignored."""

    model_config = ConfigDict(title="PlausibleEventBody", populate_by_name=True)

    n: str | None = Field(None, description="Event name: pageview, engagement or a custom name.")
    name: str | None = Field(None, description="Long form of n.")
    u: str | None = Field(None, description="Page URL.")
    url: str | None = Field(None, description="Long form of u.")
    d: str | None = Field(None, description="Domain: the footfall site name, lower-cased.")
    domain: str | None = Field(None, description="Long form of d.")
    r: str | None = Field(None, description="Referrer.")
    referrer: str | None = Field(None, description="Long form of r.")
    p: dict[str, Any] | str | None = Field(
        None, description="Custom properties: an object or a JSON-encoded object. Not stored."
    )
    props: dict[str, Any] | str | None = Field(None, description="Long form of p.")


class UmamiPayload(BaseModel):
    """The payload of an Umami event. Keys not listed here are accepted and ignored."""

    model_config = ConfigDict(title="UmamiPayload")

    website: str = Field(description="Umami website id: the site name, or mapped by --umami-site.")
    url: str | None = Field(None, description="Page path (or URL); required for events.")
    hostname: str | None = None
    referrer: str | None = None
    title: str | None = Field(None, description="Percent-encoded page title.")
    name: str | None = Field(None, description="Custom event name; absent for a pageview.")
    data: dict[str, Any] | None = Field(None, description="Custom event data. Not stored.")
    language: str | None = None
    screen: str | None = None


class UmamiBody(BaseModel):
    """One Umami event: a pageview or custom event, or an identify (stores nothing)."""

    model_config = ConfigDict(title="UmamiBody")

    type: Literal["event", "identify", "pageview"]
    payload: UmamiPayload


COLLECTOR_MODELS = (PlausibleEventBody, UmamiPayload, UmamiBody)


def _json(name: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}


def _text(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}}


def _errors() -> dict[str, Any]:
    return {
        "400": {"description": "Malformed JSON or an invalid field", **_json("ErrorDetail")},
        "403": {"description": "Site or origin not allowed", **_json("ErrorDetail")},
        "413": {"description": "Body too large", **_json("ErrorDetail")},
        "415": {"description": "Unsupported content type", **_json("ErrorDetail")},
        "429": {
            "description": "Too many visits from this client; retry after Retry-After",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
            **_json("ErrorDetail"),
        },
        "503": {"description": "Log unavailable, retry later", **_json("ErrorDetail")},
    }


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/json": {"schema": schema}, "text/plain": {"schema": schema}},
    }


def collector_operation(kind: str, index: int) -> dict[str, Any]:
    """Describe the `POST` of a collector of `kind`; `index` keeps operation ids unique."""
    size = f"Bodies over {MAX_BODY_BYTES} bytes get 413."
    if kind == "plausible":
        return {
            "summary": "Record one event from a Plausible tracker",
            "description": "Plausible's Events API. A pageview or custom event is stored as a "
            f"visit without time zone; an engagement event is answered and not stored. {size}",
            "operationId": f"record_plausible_event_{index}",
            "security": [],
            "requestBody": _body({"$ref": "#/components/schemas/PlausibleEventBody"}),
            "responses": {"202": _text("Stored durably, or dropped as a bot"), **_errors()},
        }
    batch = kind == "umami_batch"
    item = {"$ref": "#/components/schemas/UmamiBody"}
    return {
        "summary": f"Record {'a batch of events' if batch else 'one event'} from Umami's tracker",
        "description": "Umami's collector. The text answer is a token that Umami's tracker "
        f"sends back in x-umami-cache; footfall does not read it. {size}",
        "operationId": f"record_umami_{'batch' if batch else 'event'}_{index}",
        "security": [],
        "requestBody": _body({"type": "array", "items": item, "minItems": 1} if batch else item),
        "responses": {"200": _text("Stored durably, or dropped as a bot"), **_errors()},
    }
