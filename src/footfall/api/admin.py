"""Admin endpoints: they need an `admin` token (see `require_admin` in api/auth.py).

`GET /api/tokens` lists the API tokens; `POST /api/admin/erasures` erases one visitor.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request

from footfall.api.auth import AdminDep, credentials_of
from footfall.api.schemas import ErasureIn, ErasureOut, ErrorDetail, TokenOut, ValidationErrors
from footfall.log.redis_erasures import MaintenanceBusy
from footfall.stats.redis import RebuildFailed

router = APIRouter()

ADMIN_ERRORS = {
    401: {"model": ErrorDetail, "description": "Missing, invalid or revoked credentials"},
    403: {"model": ErrorDetail, "description": "The token is not an admin token"},
    503: {"model": ErrorDetail, "description": "Backend unavailable, retry later"},
}
_ERASURE_ERRORS = {
    **ADMIN_ERRORS,
    400: {"model": ValidationErrors | ErrorDetail},
    409: {"model": ErrorDetail, "description": "Another erasure or retention pass is running"},
}


@router.get("/api/tokens", response_model=list[TokenOut], responses=ADMIN_ERRORS)  # type: ignore[arg-type]
async def list_tokens(request: Request, _: AdminDep) -> list[TokenOut]:
    """Return every API token, revoked ones included, without secrets or hashes."""
    records = await credentials_of(request).list_tokens()
    return [TokenOut.of(record) for record in records]


@router.post(
    "/api/admin/erasures",
    response_model=ErasureOut,
    responses=_ERASURE_ERRORS,  # type: ignore[arg-type]
)
async def erase_visitor(request: Request, body: ErasureIn, _: AdminDep) -> ErasureOut:
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
