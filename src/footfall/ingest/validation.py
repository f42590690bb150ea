"""Validation of a visit body: footfall's own shape and the prototype's capitalised shape.

Keys are matched in any letter case (`Timezone`, `TIMEZONE` and `timezone` are one field).
Unknown keys are ignored so that newer trackers keep working against older servers.
Every failing field is reported, not just the first.
"""

from __future__ import annotations

import math
import re
import zoneinfo
from dataclasses import dataclass
from typing import Any

SITE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
EVENT_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
EMAIL_PATTERN = re.compile(r"[^@\s]{1,64}@[^@\s.][^@\s]*\.[^@\s]+")

MAX_EMAIL_CHARS = 254
MAX_TIMEZONE_CHARS = 64
MAX_URL_CHARS = 2048
MAX_TITLE_CHARS = 512
"""Longer `url`, `referrer` and `title` values are cut to these many code points, not rejected."""

DEFAULT_SITE = "default"

# "localtime" and "posixrules" are files in the system zone folder, not IANA zone names.
_TIMEZONES = frozenset(zoneinfo.available_timezones()) - {"localtime", "posixrules"}
_FIELDS = (
    "timezone",
    "email",
    "latitude",
    "longitude",
    "url",
    "referrer",
    "title",
    "site",
    "event_id",
)


@dataclass(frozen=True, slots=True)
class FieldError:
    """One failing field of a request and the reason, as the 422 body lists it."""

    field: str
    message: str


@dataclass(frozen=True, slots=True)
class VisitInput:
    """The client-supplied part of a visit after validation; the server adds id, time and IP.

    `timezone` is None only for visits from other products' trackers, which send none;
    footfall's own `/api/events` requires it.
    """

    timezone: str | None
    email: str | None
    latitude: float | None
    longitude: float | None
    url: str | None
    referrer: str | None
    title: str | None
    site: str
    event_id: str | None


class VisitValidationError(Exception):
    """The body is well-formed JSON but one or more fields are invalid."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{error.field}: {error.message}" for error in errors))
        self.errors = errors


def validate_visit(body: Any) -> VisitInput:
    """Check a decoded JSON body and return its visit fields, or raise VisitValidationError."""
    if not isinstance(body, dict):
        raise VisitValidationError([FieldError("body", "must be a JSON object")])

    errors: list[FieldError] = []
    fields = _fold_keys(body, errors)

    timezone = _timezone(fields.get("timezone"), errors)
    email = _email(fields.get("email"), errors)
    latitude, longitude = _coordinates(fields.get("latitude"), fields.get("longitude"), errors)
    url = _text("url", fields.get("url"), MAX_URL_CHARS, errors)
    referrer = _text("referrer", fields.get("referrer"), MAX_URL_CHARS, errors)
    title = _text("title", fields.get("title"), MAX_TITLE_CHARS, errors)
    site = _site(fields.get("site"), errors)
    event_id = _event_id(fields.get("event_id"), errors)

    if errors or timezone is None:
        raise VisitValidationError(errors)
    return VisitInput(timezone, email, latitude, longitude, url, referrer, title, site, event_id)


def _fold_keys(body: dict[str, Any], errors: list[FieldError]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key, value in body.items():
        folded = key.lower()
        if folded not in _FIELDS:
            continue
        if folded in fields:
            errors.append(FieldError(folded, f"given twice in different letter case ({key!r})"))
            continue
        fields[folded] = value
    return fields


def _timezone(value: Any, errors: list[FieldError]) -> str | None:
    if value is None or value == "":
        errors.append(FieldError("timezone", "missing: send an IANA name such as Europe/Berlin"))
        return None
    if not isinstance(value, str):
        errors.append(FieldError("timezone", f"must be a string, got {json_type(value)}"))
        return None
    if len(value) > MAX_TIMEZONE_CHARS or value not in _TIMEZONES:
        quoted = value[:MAX_TIMEZONE_CHARS]
        errors.append(FieldError("timezone", f"unknown IANA time zone {quoted!r}"))
        return None
    return value


def _email(value: Any, errors: list[FieldError]) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        errors.append(FieldError("email", f"must be a string, got {json_type(value)}"))
        return None
    if len(value) > MAX_EMAIL_CHARS:
        errors.append(FieldError("email", f"longer than {MAX_EMAIL_CHARS} characters"))
        return None
    if not EMAIL_PATTERN.fullmatch(value):
        errors.append(FieldError("email", "invalid address: expected name@domain.tld"))
        return None
    return value


def _coordinates(
    latitude: Any, longitude: Any, errors: list[FieldError]
) -> tuple[float | None, float | None]:
    if latitude is None and longitude is None:
        return None, None
    if latitude is None or longitude is None:
        missing = "latitude" if latitude is None else "longitude"
        errors.append(FieldError(missing, "missing: send latitude and longitude together"))
        # The coordinate that was sent is still checked, so that every failing field is named.
        if latitude is not None:
            _coordinate("latitude", latitude, 90.0, errors)
        if longitude is not None:
            _coordinate("longitude", longitude, 180.0, errors)
        return None, None

    checked_latitude = _coordinate("latitude", latitude, 90.0, errors)
    checked_longitude = _coordinate("longitude", longitude, 180.0, errors)
    if checked_latitude is None or checked_longitude is None:
        return None, None
    return checked_latitude, checked_longitude


def _coordinate(name: str, value: Any, bound: float, errors: list[FieldError]) -> float | None:
    # bool is a subclass of int, so it is ruled out first.
    if isinstance(value, bool) or not isinstance(value, int | float):
        errors.append(FieldError(name, f"must be a number, got {json_type(value)}"))
        return None
    number = float(value)
    if not math.isfinite(number):
        errors.append(FieldError(name, "must be a finite number"))
        return None
    if not -bound <= number <= bound:
        errors.append(FieldError(name, f"{number} is out of range: must be within ±{bound:g}"))
        return None
    return number


def _text(name: str, value: Any, max_chars: int, errors: list[FieldError]) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        errors.append(FieldError(name, f"must be a string, got {json_type(value)}"))
        return None
    # A str is indexed by code point, so the cut never splits a character.
    return value[:max_chars]


def _site(value: Any, errors: list[FieldError]) -> str:
    if value is None or value == "":
        return DEFAULT_SITE
    if not isinstance(value, str) or not SITE_PATTERN.fullmatch(value):
        errors.append(
            FieldError(
                "site",
                "invalid: use 1 to 64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit",
            )
        )
        return DEFAULT_SITE
    return value


def _event_id(value: Any, errors: list[FieldError]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not EVENT_ID_PATTERN.fullmatch(value):
        errors.append(
            FieldError("event_id", "invalid: use 1 to 64 letters, digits, '_' or '-' (a UUID fits)")
        )
        return None
    return value


def json_type(value: Any) -> str:
    """Name the JSON type of a decoded value, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
