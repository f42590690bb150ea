"""Admin endpoints: they need an `admin` token (see `require_admin` in api/auth.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from footfall.api.auth import AdminDep, credentials_of
from footfall.api.schemas import ErrorDetail, TokenOut

router = APIRouter()

ADMIN_ERRORS = {
    401: {"model": ErrorDetail, "description": "Missing, invalid or revoked credentials"},
    403: {"model": ErrorDetail, "description": "The token is not an admin token"},
    503: {"model": ErrorDetail, "description": "Backend unavailable, retry later"},
}


@router.get("/api/tokens", response_model=list[TokenOut], responses=ADMIN_ERRORS)  # type: ignore[arg-type]
async def list_tokens(request: Request, _: AdminDep) -> list[TokenOut]:
    """Return every API token, revoked ones included, without secrets or hashes."""
    records = await credentials_of(request).list_tokens()
    return [TokenOut.of(record) for record in records]
