from __future__ import annotations

from typing import Any

import pytest

from footfall.ingest.validation import (
    DEFAULT_SITE,
    MAX_TITLE_CHARS,
    MAX_URL_CHARS,
    VisitValidationError,
    validate_visit,
)


def failing_fields(body: Any) -> dict[str, str]:
    with pytest.raises(VisitValidationError) as caught:
        validate_visit(body)
    return {error.field: error.message for error in caught.value.errors}


def test_minimal_visit_gets_defaults() -> None:
    visit = validate_visit({"timezone": "Europe/Berlin"})

    assert visit.timezone == "Europe/Berlin"
    assert visit.site == DEFAULT_SITE
    assert visit.email is None
    assert visit.latitude is None
    assert visit.event_id is None


@pytest.mark.parametrize(
    "body",
    [
        {
            "Email": "ada@example.com",
            "Timezone": "Asia/Tokyo",
            "Latitude": 35.7,
            "Longitude": 139.7,
        },
        {
            "EMAIL": "ada@example.com",
            "TIMEZONE": "Asia/Tokyo",
            "LATITUDE": 35.7,
            "LONGITUDE": 139.7,
        },
        {
            "eMaIl": "ada@example.com",
            "timeZone": "Asia/Tokyo",
            "latitude": 35.7,
            "longitude": 139.7,
        },
    ],
)
def test_prototype_shape_any_letter_case(body: dict[str, Any]) -> None:
    visit = validate_visit(body)

    assert visit.email == "ada@example.com"
    assert visit.timezone == "Asia/Tokyo"
    assert visit.latitude == 35.7
    assert visit.longitude == 139.7


def test_same_key_in_two_cases_rejected() -> None:
    errors = failing_fields({"timezone": "UTC", "Timezone": "UTC"})

    assert "given twice" in errors["timezone"]


@pytest.mark.parametrize(
    ("timezone", "reason"),
    [
        (None, "missing"),
        ("", "missing"),
        ("Mars/Olympus_Mons", "unknown IANA time zone"),
        ("localtime", "unknown IANA time zone"),
        ("../../etc/passwd", "unknown IANA time zone"),
        ("x" * 5000, "unknown IANA time zone"),
        (7, "must be a string"),
    ],
)
def test_timezone_rejected(timezone: Any, reason: str) -> None:
    assert reason in failing_fields({"timezone": timezone})["timezone"]


def test_missing_timezone_named() -> None:
    assert "missing" in failing_fields({"email": "ada@example.com"})["timezone"]


@pytest.mark.parametrize(
    ("latitude", "longitude", "field", "reason"),
    [
        (98.23, 10.0, "latitude", "out of range"),
        (-90.5, 10.0, "latitude", "out of range"),
        (10.0, 180.01, "longitude", "out of range"),
        ("52.5", 13.4, "latitude", "must be a number"),
        (True, 13.4, "latitude", "must be a number"),
        (52.5, False, "longitude", "must be a number"),
        (52.5, None, "longitude", "missing"),
        (None, 13.4, "latitude", "missing"),
        (float("nan"), 13.4, "latitude", "finite"),
        (52.5, float("inf"), "longitude", "finite"),
        ([52.5], 13.4, "latitude", "must be a number"),
    ],
)
def test_coordinates_rejected(latitude: Any, longitude: Any, field: str, reason: str) -> None:
    errors = failing_fields({"timezone": "UTC", "latitude": latitude, "longitude": longitude})

    assert reason in errors[field]


def test_lone_invalid_coordinate_named_twice() -> None:
    errors = failing_fields({"timezone": "UTC", "latitude": 200})

    assert "missing" in errors["longitude"]
    assert "out of range" in errors["latitude"]


@pytest.mark.parametrize(("latitude", "longitude"), [(90, -180), (-90, 180), (0, 0)])
def test_coordinate_bounds_accepted(latitude: int, longitude: int) -> None:
    visit = validate_visit({"timezone": "UTC", "latitude": latitude, "longitude": longitude})

    assert visit.latitude == float(latitude)
    assert visit.longitude == float(longitude)


def test_every_failing_field_reported() -> None:
    errors = failing_fields(
        {"timezone": "Nowhere/Town", "latitude": 98.23, "longitude": 0, "email": "not-an-address"}
    )

    assert set(errors) == {"timezone", "latitude", "email"}


@pytest.mark.parametrize(
    "email", ["no-at-sign", "two@@example.com", "spaces in@example.com", "ada@localhost", 42]
)
def test_email_rejected(email: Any) -> None:
    assert "email" in failing_fields({"timezone": "UTC", "email": email})


def test_overlong_email_rejected() -> None:
    email = "a" * 60 + "@" + "b" * 200 + ".com"

    assert "longer than" in failing_fields({"timezone": "UTC", "email": email})["email"]


def test_empty_email_means_none() -> None:
    assert validate_visit({"timezone": "UTC", "email": ""}).email is None


def test_long_texts_cut_on_code_points() -> None:
    url = "https://example.com/" + "🦶" * MAX_URL_CHARS
    title = "é" * (MAX_TITLE_CHARS + 10)

    visit = validate_visit({"timezone": "UTC", "url": url, "referrer": url, "title": title})

    assert visit.url == url[:MAX_URL_CHARS]
    assert visit.referrer == url[:MAX_URL_CHARS]
    assert visit.title == "é" * MAX_TITLE_CHARS


@pytest.mark.parametrize("field", ["url", "referrer", "title"])
def test_non_string_text_rejected(field: str) -> None:
    assert "must be a string" in failing_fields({"timezone": "UTC", field: {"a": 1}})[field]


@pytest.mark.parametrize("site", ["has space", "-leading-dash", "x" * 65, "ünïcode", 3])
def test_invalid_site_rejected(site: Any) -> None:
    assert "site" in failing_fields({"timezone": "UTC", "site": site})


@pytest.mark.parametrize("event_id", ["", "has space", "x" * 65, 12345, "semi;colon"])
def test_invalid_event_id_rejected(event_id: Any) -> None:
    assert "event_id" in failing_fields({"timezone": "UTC", "event_id": event_id})


@pytest.mark.parametrize("body", [[], "visit", 3, None, [{"timezone": "UTC"}]])
def test_body_not_object_rejected(body: Any) -> None:
    assert "body" in failing_fields(body)


def test_unknown_keys_ignored() -> None:
    visit = validate_visit({"timezone": "UTC", "screen": "1920x1080", "nested": {"a": [1, 2]}})

    assert visit.timezone == "UTC"
