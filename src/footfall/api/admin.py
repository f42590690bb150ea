"""Admin endpoints: erasing one visitor (`POST /api/admin/erasures`)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request

from footfall.api.schemas import ErasureIn, ErasureOut, ErrorDetail, ValidationErrors
from footfall.log.redis_erasures import MaintenanceBusy
from footfall.stats.redis import RebuildFailed

router = APIRouter()

_ERRORS = {
    400: {"model": ValidationErrors | ErrorDetail},
    409: {"model": ErrorDetail, "description": "Another erasure or retention pass is running"},
    503: {"model": ErrorDetail},
}


@router.post(
    "/api/admin/erasures",
    response_model=ErasureOut,
    responses=_ERRORS,  # type: ignore[arg-type]
    # AUTH: add `dependencies=[Depends(require_admin)]` from footfall.api.auth here.
)
async def erase_visitor(request: Request, body: ErasureIn) -> ErasureOut:
    """Delete one visitor's visits from the event store, the stats and the event log.

    Every form the IP and e-mail modes may have stored is matched. Repeating the request
    deletes nothing more and returns 0. A visit that arrives afterwards counts as new.
    """
    try:
        deleted = await request.app.state.deployment.erase_visitor(body.ip, body.email)
    except MaintenanceBusy as error:
        raise HTTPException(409, str(error), headers={"retry-after": "5"}) from error
    except RebuildFailed as error:
        raise HTTPException(503, str(error), headers={"retry-after": "30"}) from error
    return ErasureOut(deleted_events=deleted)
