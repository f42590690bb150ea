"""The collector routes: footfall's own `/api/events` and those for other products' trackers.

Each route is a lean ASGI handler that `FootfallApp` calls for `POST` and `OPTIONS`, before
FastAPI. All of them share one `Admission`, so every guard applies to every collector.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import FastAPI
from starlette.routing import BaseRoute, Match

from footfall.config import Settings
from footfall.errors import ConfigurationError
from footfall.ingest import plausible, umami
from footfall.ingest.admission import Admission
from footfall.ingest.endpoint import IngestEndpoint, Receive, Scope, Send

INGEST_PATH = "/api/events"

Handler = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class CollectorRoute:
    """A path, the protocol it speaks (`kind`) and the handler that serves it."""

    path: str
    kind: str
    handler: Handler


def collector_routes(
    settings: Settings, admission: Admission, api: FastAPI
) -> list[CollectorRoute]:
    """Build every collector route, raising ConfigurationError for a clashing extra path."""
    own = IngestEndpoint(admission)
    plausible_endpoint = plausible.PlausibleEndpoint(admission)
    sites = dict(settings.umami_sites)
    send = umami.UmamiEndpoint(admission, sites, batch=False)
    batch = umami.UmamiEndpoint(admission, sites, batch=True)

    routes = [
        CollectorRoute(INGEST_PATH, "footfall", own),
        CollectorRoute(plausible.DEFAULT_PATH, "plausible", plausible_endpoint),
        CollectorRoute(umami.SEND_PATH, "umami", send),
        CollectorRoute(umami.BATCH_PATH, "umami_batch", batch),
        CollectorRoute(umami.COLLECT_PATH, "umami", send),
    ]
    extra: list[tuple[str, str, str, Handler]] = [
        ("--plausible-path", path, "plausible", plausible_endpoint)
        for path in settings.plausible_paths
    ]
    extra += [("--umami-path", path, "umami", send) for path in settings.umami_paths]

    taken = {route.path for route in routes}
    for flag, path, kind, handler in extra:
        clash = _clashing_route(path, api.routes)
        if path in taken:
            clash = path
        if clash is not None:
            raise ConfigurationError(
                f"invalid {flag} {path!r}: footfall already serves {clash} there, "
                "choose another path"
            )
        taken.add(path)
        routes.append(CollectorRoute(path, kind, handler))
    return routes


def _clashing_route(path: str, api_routes: list[BaseRoute]) -> str | None:
    # Asking each route whether it matches also covers mounts and included routers.
    for method in ("GET", "POST"):
        scope = {"type": "http", "path": path, "root_path": "", "method": method}
        for route in api_routes:
            match, _ = route.matches(scope)
            if match is not Match.NONE:
                return path
    return None
