"""The public view's masking functions."""

from __future__ import annotations

import pytest

from footfall.api.masking import mask_email, mask_ip, round_coordinate


@pytest.mark.parametrize(
    ("address", "masked"),
    [
        ("203.0.113.7", "203.0.113.0/24"),
        ("203.0.113.255", "203.0.113.0/24"),
        ("10.1.2.3", "10.1.2.0/24"),
        ("2001:db8:1:2::7", "2001:db8:1::/48"),
        ("2001:db8:abcd:ffff:1:2:3:4", "2001:db8:abcd::/48"),
        ("::1", "::/48"),
        ("::ffff:198.51.100.9", "198.51.100.0/24"),
        ("1f3c9a0e77b2", "hidden"),
        ("", "hidden"),
        ("h:5d41402abc4b2a76b9719d91", "h:5d41402abc4b2a76b9719d91"),
        ("203.0.113.0/24", "203.0.113.0/24"),
        ("2001:db8:1::/48", "2001:db8:1::/48"),
        ("203.0.113.7/32", "hidden"),
    ],
)
def test_mask_ip(address: str, masked: str) -> None:
    assert mask_ip(address) == masked


@pytest.mark.parametrize(
    ("email", "masked"),
    [
        ("jane@example.com", "j***@example.com"),
        ("j@example.com", "j***@example.com"),
        ('"a@b"@example.com', '"***@example.com'),
        ("not-an-address", "hidden"),
        ("@example.com", "hidden"),
        ("jane@", "hidden"),
        (None, None),
        ("", ""),
        ("h:5d41402abc4b2a76b9719d91", "h:5d41402abc4b2a76b9719d91"),
    ],
)
def test_mask_email(email: str | None, masked: str | None) -> None:
    assert mask_email(email) == masked


def test_masked_email_hides_local_part() -> None:
    masked = mask_email("jane.doe+tag@example.com")

    assert masked is not None
    assert "jane" not in masked
    assert "doe" not in masked


def test_round_coordinate() -> None:
    assert round_coordinate(52.520008) == 52.5
    assert round_coordinate(-13.404954) == -13.4
    assert round_coordinate(None) is None
