"""The read endpoints: `/api/stats` from the bounded stats store, `/api/events` from history.

Both need a reader (see api/auth.py). An anonymous reader of a `--public-dashboard`
installation gets IPs, e-mail addresses and coordinates masked (see api/masking.py).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from footfall.api.auth import ReaderDep
from footfall.api.masking import mask_stats, mask_visit
from footfall.api.schemas import ErrorDetail, EventPageOut, StatsOut, ValidationErrors, VisitOut
from footfall.ingest.validation import DEFAULT_SITE, SITE_PATTERN
from footfall.model import LATEST_VISITS_CAPACITY
from footfall.store.base import PageCursor

MAX_PAGE_SIZE = 1000

router = APIRouter()

SiteParam = Annotated[
    str,
    Query(pattern=f"^{SITE_PATTERN.pattern}$", description="The site, as the tracker sends it."),
]
_ERRORS = {
    400: {"model": ValidationErrors | ErrorDetail, "description": "Invalid query parameter"},
    401: {"model": ErrorDetail, "description": "Missing, invalid or revoked credentials"},
    503: {"model": ErrorDetail, "description": "Backend unavailable, retry later"},
}


@router.get("/api/stats", response_model=StatsOut, responses=_ERRORS)  # type: ignore[arg-type]
async def stats(
    request: Request,
    reader: ReaderDep,
    site: SiteParam = DEFAULT_SITE,
    limit: Annotated[int, Query(ge=1, le=LATEST_VISITS_CAPACITY)] = LATEST_VISITS_CAPACITY,
) -> StatsOut:
    """Return a site's totals, top visitors and latest visits, from bounded read models."""
    site_stats = await request.app.state.deployment.stats.site_stats(site, limit)
    stats = StatsOut.of(site_stats)
    return stats if reader.sees_personal_data else mask_stats(stats)


@router.get("/api/events", response_model=EventPageOut, responses=_ERRORS)  # type: ignore[arg-type]
async def events(
    request: Request,
    reader: ReaderDep,
    site: SiteParam = DEFAULT_SITE,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 100,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> EventPageOut:
    """Return one page of a site's visit history, newest first."""
    start = PageCursor.decode(cursor) if cursor else None
    page = await request.app.state.deployment.store.page(site, limit, start)
    visits = [VisitOut.of(visit) for visit in page.visits]
    return EventPageOut(
        events=visits if reader.sees_personal_data else [mask_visit(visit) for visit in visits],
        next_cursor=page.next_cursor.encode() if page.next_cursor else None,
    )


@router.get("/healthz", include_in_schema=False)
async def health() -> dict[str, str]:
    return {"status": "ok"}
