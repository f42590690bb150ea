"""Pydantic models of the HTTP API, used for the OpenAPI document and the read responses."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from footfall.credentials.base import TokenRecord
from footfall.errors import InvalidInput
from footfall.ingest.validation import MAX_EMAIL_CHARS, MAX_TITLE_CHARS, MAX_URL_CHARS
from footfall.maintenance import canonical_erasure_ip, checked_erasure_email
from footfall.model import SiteStats, Visit, VisitorCount, iso_from_ms


class VisitBody(BaseModel):
    """The body of `POST /api/events`. Keys match in any letter case, so the prototype's
    `{"Email", "Timezone", "Latitude", "Longitude"}` is accepted too; unknown keys are ignored."""

    model_config = ConfigDict(title="VisitBody")

    timezone: str = Field(description="IANA time zone name, for example Europe/Berlin.")
    email: str | None = Field(None, max_length=MAX_EMAIL_CHARS)
    latitude: float | None = Field(None, ge=-90, le=90, description="Send with longitude.")
    longitude: float | None = Field(None, ge=-180, le=180, description="Send with latitude.")
    url: str | None = Field(None, description=f"Cut to {MAX_URL_CHARS} code points.")
    referrer: str | None = Field(None, description=f"Cut to {MAX_URL_CHARS} code points.")
    title: str | None = Field(None, description=f"Cut to {MAX_TITLE_CHARS} code points.")
    site: str = Field("default", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    event_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="Client key: a retried request with the same id is stored once.",
    )


class Accepted(BaseModel):
    """The response to an accepted visit: the id of the durably stored event."""

    id: str


class FieldErrorOut(BaseModel):
    field: str
    message: str


class ValidationErrors(BaseModel):
    """Every failing field of a request and the reason."""

    errors: list[FieldErrorOut]


class ErrorDetail(BaseModel):
    detail: str


class VisitorOut(BaseModel):
    ip: str
    visits: int
    last_visit_at: str

    @classmethod
    def of(cls, visitor: VisitorCount) -> VisitorOut:
        last_visit_at = iso_from_ms(visitor.last_visit_at_ms)
        return cls(ip=visitor.ip, visits=visitor.visits, last_visit_at=last_visit_at)


class VisitOut(BaseModel):
    id: str
    site: str
    ip: str
    visited_at: str
    timezone: str | None
    email: str | None
    latitude: float | None
    longitude: float | None
    url: str | None
    referrer: str | None
    title: str | None

    @classmethod
    def of(cls, visit: Visit) -> VisitOut:
        return cls(
            id=visit.id,
            site=visit.site,
            ip=visit.ip,
            visited_at=iso_from_ms(visit.received_at_ms),
            timezone=visit.timezone,
            email=visit.email,
            latitude=visit.latitude,
            longitude=visit.longitude,
            url=visit.url,
            referrer=visit.referrer,
            title=visit.title,
        )


class StatsOut(BaseModel):
    """A site's totals, most frequent visitors and latest visits (newest first)."""

    site: str
    total_visits: int
    distinct_visitors: int
    top_visitors: list[VisitorOut]
    latest_visits: list[VisitOut]

    @classmethod
    def of(cls, stats: SiteStats) -> StatsOut:
        return cls(
            site=stats.site,
            total_visits=stats.total_visits,
            distinct_visitors=stats.distinct_visitors,
            top_visitors=[VisitorOut.of(visitor) for visitor in stats.top_visitors],
            latest_visits=[VisitOut.of(visit) for visit in stats.latest_visits],
        )


class EventPageOut(BaseModel):
    """One page of the visit history, newest first; pass `next_cursor` to get the next."""

    events: list[VisitOut]
    next_cursor: str | None


class TokenOut(BaseModel):
    """An API token as `GET /api/tokens` lists it, without its secret or the hash of the secret."""

    id: str
    name: str
    role: Literal["admin", "read"]
    created_at: str
    revoked_at: str | None

    @classmethod
    def of(cls, record: TokenRecord) -> TokenOut:
        revoked = record.revoked_at_ms
        return cls(
            id=record.id,
            name=record.name,
            role=record.role.value,
            created_at=iso_from_ms(record.created_at_ms),
            revoked_at=iso_from_ms(revoked) if revoked is not None else None,
        )


class ErasureIn(BaseModel):
    """The visitor to erase: its IP address, its e-mail address, or both."""

    model_config = ConfigDict(extra="forbid", title="ErasureIn")

    ip: str | None = Field(
        None, max_length=64, description="IPv4 or IPv6 address, as the visitor connected."
    )
    email: str | None = Field(None, min_length=1, max_length=MAX_EMAIL_CHARS)

    @field_validator("ip")
    @classmethod
    def _canonical_ip(cls, value: str | None) -> str | None:
        # InvalidInput is not a ValueError, so its message is passed on as one.
        try:
            return canonical_erasure_ip(value) if value is not None else None
        except InvalidInput as error:
            raise ValueError(str(error)) from None

    @field_validator("email")
    @classmethod
    def _checked_email(cls, value: str | None) -> str | None:
        try:
            return checked_erasure_email(value) if value is not None else None
        except InvalidInput as error:
            raise ValueError(str(error)) from None

    @model_validator(mode="after")
    def _ip_or_email(self) -> ErasureIn:
        if self.ip is None and self.email is None:
            raise ValueError("missing ip and email: give ip, email or both")
        return self


class ErasureOut(BaseModel):
    """The result of an erasure: how many stored events were deleted (0 on a repeat)."""

    deleted_events: int
