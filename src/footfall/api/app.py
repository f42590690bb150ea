"""Builds the ASGI application: the ingest hot path beside a FastAPI app for everything else."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from footfall import __version__
from footfall.api.admin import router as admin_router
from footfall.api.auth import require_metrics_reader
from footfall.api.collectors import CollectorRoute, Handler, collector_routes
from footfall.api.first_run import create_first_admin
from footfall.api.headers import SecurityHeaders
from footfall.api.login import router as login_router
from footfall.api.openapi import add_ingest_to_openapi
from footfall.api.reads import router as reads_router
from footfall.config import Settings
from footfall.dashboard import mount_dashboard
from footfall.deployment import Deployment, create_deployment
from footfall.errors import BackendUnavailable, InvalidInput
from footfall.ingest.admission import Admission, IngestPolicy
from footfall.ingest.client_ip import ClientIpResolver
from footfall.ingest.endpoint import Receive, Scope, Send
from footfall.ingest.guards import BotFilter, RateLimiter, SiteFilter
from footfall.metrics import render
from footfall.privacy import Pseudonymizer

logger = logging.getLogger(__name__)

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class FootfallApp:
    """Sends the collector routes straight to their lean handlers and the rest to FastAPI.

    Only the FastAPI side gets the security headers and the credential checks: the collector
    routes are public and keep their short CORS responses.
    """

    def __init__(
        self, collectors: list[CollectorRoute], api: FastAPI, deployment: Deployment
    ) -> None:
        self.collectors: dict[str, Handler] = {route.path: route.handler for route in collectors}
        self.api = api
        self.guarded_api = SecurityHeaders(api)
        self.deployment = deployment

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("POST", "OPTIONS"):
            handler = self.collectors.get(scope["path"])
            if handler is not None:
                await handler(scope, receive, send)
                return
        await self.guarded_api(scope, receive, send)


def create_app(settings: Settings) -> FootfallApp:
    """Build the app and its deployment; backends start and stop with the ASGI lifespan."""
    deployment = create_deployment(settings)
    admission = create_admission(settings, deployment)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await deployment.start_api()
        await create_first_admin(deployment.credentials, settings)
        _log_access_settings(settings)
        logger.info(
            "footfall %s serving the dashboard at http://%s:%d/ on %s",
            __version__,
            settings.host,
            settings.port,
            deployment.description,
        )
        yield
        logger.info("footfall shutting down: no new requests, draining the backends")
        await deployment.close()
        logger.info("footfall stopped")

    # The interactive /docs and /redoc pages load their scripts from a CDN, which an offline
    # install cannot reach, so only the OpenAPI document itself is served.
    api = FastAPI(
        title="footfall", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None
    )
    api.state.deployment = deployment
    api.state.settings = settings
    api.include_router(reads_router)
    api.include_router(admin_router)
    api.include_router(login_router)
    mount_dashboard(api)
    _add_metrics_route(api, deployment)
    _add_error_handlers(api)
    collectors = collector_routes(settings, admission, api)
    add_ingest_to_openapi(api, [(route.path, route.kind) for route in collectors])
    return FootfallApp(collectors, api, deployment)


def create_admission(settings: Settings, deployment: Deployment) -> Admission:
    """Build the one admission path that every collector endpoint hands its visits to."""
    limiter = None
    if settings.rate_limit_per_s > 0:
        limiter = RateLimiter(settings.rate_limit_per_s, settings.rate_burst)
    policy = IngestPolicy(
        rate_limiter=limiter,
        bots=None if settings.keep_bots else BotFilter(),
        sites=SiteFilter(settings.allowed_sites, settings.allowed_origins),
        respect_dnt=settings.respect_dnt,
    )
    pseudonymizer = Pseudonymizer(settings.ip_mode, settings.email_mode, deployment.hash_keys)
    return Admission(
        deployment.log,
        ClientIpResolver(settings.trusted_proxies),
        deployment.counters,
        pseudonymizer,
        policy,
    )


def _log_access_settings(settings: Settings) -> None:
    if settings.public_dashboard:
        logger.info("public dashboard: readers without a token see IPs and e-mails masked")
    if settings.public_metrics:
        logger.info("public metrics: /metrics is served without a token")
    if settings.session_cookie_secure:
        logger.info(
            "dashboard session cookies are Secure, so browsers keep them over https only; "
            "pass --no-secure-cookies to log in over plain http"
        )


def _add_metrics_route(api: FastAPI, deployment: Deployment) -> None:
    # Left out of the OpenAPI document, because it returns the Prometheus text format.
    @api.get("/metrics", include_in_schema=False, dependencies=[Depends(require_metrics_reader)])
    async def metrics() -> Response:
        snapshot = await deployment.metrics_snapshot()
        return Response(render(snapshot), media_type=PROMETHEUS_CONTENT_TYPE)


def _add_error_handlers(api: FastAPI) -> None:
    @api.exception_handler(RequestValidationError)
    async def invalid_query(_: Request, error: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _field_name(item), "message": _message(item)} for item in error.errors()
        ]
        return JSONResponse({"errors": errors}, status_code=400)

    @api.exception_handler(InvalidInput)
    async def invalid_input(_: Request, error: InvalidInput) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=400)

    @api.exception_handler(BackendUnavailable)
    async def unavailable(_: Request, error: BackendUnavailable) -> JSONResponse:
        logger.warning("read failed with 503: %s", error)
        return JSONResponse({"detail": str(error)}, status_code=503, headers={"retry-after": "1"})


def _field_name(item: dict[str, Any]) -> str:
    location = item.get("loc", ())
    # A JSON syntax error is located at ("body", character offset): name the body.
    if item.get("type") == "json_invalid" or not location:
        return "body"
    if location == ("body",):
        return "body"
    return str(location[-1])


def _message(item: dict[str, Any]) -> str:
    kind = item.get("type")
    if kind == "json_invalid":
        return "invalid JSON: send a JSON object with Content-Type: application/json"
    if kind in ("model_attributes_type", "dict_type"):
        return "must be a JSON object"
    message = str(item.get("msg", "invalid"))
    # pydantic puts "Value error, " before the message of a ValueError raised by a validator.
    return message.removeprefix("Value error, ")
