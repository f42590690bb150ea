"""The dashboard page, its static files and the tracker script, served by the app itself."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from footfall.api.auth import BearerCredentials, SessionCookie, authenticate, settings_of

STATIC_DIR = Path(str(resources.files("footfall.dashboard") / "static"))
TRACKER_PATH = Path(str(resources.files("footfall.ingest") / "tracker.js"))

TRACKER_MAX_AGE_S = 300


def mount_dashboard(app: FastAPI) -> None:
    """Add `/`, `/static/...` and `/tracker.js` to the app.

    `/` sends a browser without a valid session (or token) to `/login` with 303, unless the
    dashboard is public. The page itself contains no data, but sending the browser to the login
    at once beats a page whose every poll fails with 401.
    """

    @app.get("/", include_in_schema=False)
    async def index(
        request: Request, bearer: BearerCredentials, session_id: SessionCookie
    ) -> Response:
        reader = await authenticate(request, bearer, session_id)
        if reader is None and not settings_of(request).public_dashboard:
            return RedirectResponse("/login", status_code=303)
        return FileResponse(STATIC_DIR / "index.html", headers={"cache-control": "no-cache"})

    @app.get("/tracker.js", include_in_schema=False)
    async def tracker() -> FileResponse:
        # Any site embeds the tracker, so any origin may load it.
        headers = {
            "access-control-allow-origin": "*",
            "cache-control": f"public, max-age={TRACKER_MAX_AGE_S}",
        }
        return FileResponse(TRACKER_PATH, media_type="text/javascript", headers=headers)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
