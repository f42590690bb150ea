"""Adds the collector routes, which bypass FastAPI, to the OpenAPI document FastAPI builds."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from footfall.api.openapi_collectors import COLLECTOR_MODELS, collector_operation
from footfall.api.schemas import Accepted, ErrorDetail, ValidationErrors, VisitBody
from footfall.ingest.endpoint import MAX_BODY_BYTES


def _ref(name: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}


def add_ingest_to_openapi(api: FastAPI, collectors: list[tuple[str, str]]) -> None:
    """Make `api.openapi()` describe the `POST` of each (path, kind) beside FastAPI's routes.

    `kind` is `footfall` for `/api/events`, else a kind that `collector_operation` supports.
    """

    def openapi() -> dict[str, Any]:
        if api.openapi_schema:
            return api.openapi_schema
        document = get_openapi(title=api.title, version=api.version, routes=api.routes)
        _drop_unused_validation_responses(document)
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for model in (VisitBody, Accepted, ValidationErrors, ErrorDetail, *COLLECTOR_MODELS):
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(schema.pop("$defs", {}))
            schemas[model.__name__] = schema

        for index, (path, kind) in enumerate(collectors):
            operation = _record_visit() if kind == "footfall" else collector_operation(kind, index)
            document["paths"].setdefault(path, {})["post"] = operation
        api.openapi_schema = document
        return document

    api.openapi = openapi  # type: ignore[method-assign]


def _record_visit() -> dict[str, Any]:
    body_schema = {"$ref": "#/components/schemas/VisitBody"}
    return {
        "summary": "Record one visit",
        "description": (
            "Validates, enriches and appends one visit to the event log, and answers 202 "
            f"only once it is durable. Bodies over {MAX_BODY_BYTES} bytes get 413."
        ),
        "operationId": "record_visit",
        "security": [],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": body_schema},
                "text/plain": {"schema": body_schema},
            },
        },
        "responses": {
            "202": {"description": "Stored durably", **_ref("Accepted")},
            "400": {"description": "Malformed JSON", **_ref("ErrorDetail")},
            "403": {
                "description": "The site or origin is not in the allowed list",
                **_ref("ErrorDetail"),
            },
            "413": {"description": "Body too large", **_ref("ErrorDetail")},
            "415": {"description": "Unsupported content type", **_ref("ErrorDetail")},
            "422": {"description": "Invalid fields", **_ref("ValidationErrors")},
            "429": {
                "description": "Too many visits from this client; retry after Retry-After",
                "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                **_ref("ErrorDetail"),
            },
            "503": {"description": "Log unavailable, retry later", **_ref("ErrorDetail")},
        },
    }


def _drop_unused_validation_responses(document: dict[str, Any]) -> None:
    """Remove the 422 that FastAPI documents for every route, because footfall rejects
    invalid query parameters with 400 instead (see the error handlers in api/app.py)."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
