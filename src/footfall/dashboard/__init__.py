"""The dashboard page, its static files and the tracker script, served by the app itself."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(str(resources.files("footfall.dashboard") / "static"))
TRACKER_PATH = Path(str(resources.files("footfall.ingest") / "tracker.js"))

TRACKER_MAX_AGE_S = 300


def mount_dashboard(app: FastAPI) -> None:
    """Add `/`, `/static/...` and `/tracker.js` to the app."""

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
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
