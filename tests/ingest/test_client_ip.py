from __future__ import annotations

import pytest

from footfall.errors import ConfigurationError
from footfall.ingest.client_ip import (
    UNKNOWN_IP,
    ClientIpResolver,
    canonical_ip,
    parse_trusted_proxies,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("203.0.113.7:51234", "203.0.113.7"),
        ("::ffff:192.0.2.10", "192.0.2.10"),
        ("[::ffff:192.0.2.10]:443", "192.0.2.10"),
        ("2001:DB8:85A3:0:0:8A2E:370:7334", "2001:db8:85a3::8a2e:370:7334"),
        ("[2001:db8::1]:8080", "2001:db8::1"),
        ('"[2001:db8::1]:4711"', "2001:db8::1"),
        (" 198.51.100.1 ", "198.51.100.1"),
    ],
)
def test_canonical_ip_forms(text: str, expected: str) -> None:
    assert canonical_ip(text) == expected


@pytest.mark.parametrize("text", ["unknown", "_hidden", "", "example.com", "[2001:db8::1", "1.2.3"])
def test_canonical_ip_rejects_non_addresses(text: str) -> None:
    assert canonical_ip(text) is None


def headers(**values: str) -> list[tuple[bytes, bytes]]:
    return [(name.replace("_", "-").encode(), value.encode()) for name, value in values.items()]


def test_untrusted_peer_headers_ignored() -> None:
    resolver = ClientIpResolver(parse_trusted_proxies(["10.0.0.0/8"]))

    ip = resolver.resolve("198.51.100.9", headers(x_forwarded_for="203.0.113.7"))

    assert ip == "198.51.100.9"


def test_no_trusted_proxies_ignores_headers() -> None:
    resolver = ClientIpResolver(())

    assert resolver.resolve("10.0.0.1", headers(x_forwarded_for="203.0.113.7")) == "10.0.0.1"


def test_chain_walked_from_right_skipping_trusted() -> None:
    resolver = ClientIpResolver(parse_trusted_proxies(["10.0.0.0/8"]))
    chain = "198.51.100.66, 203.0.113.7, 10.1.1.1"

    assert resolver.resolve("10.0.0.1", headers(x_forwarded_for=chain)) == "203.0.113.7"


def test_all_trusted_chain_takes_leftmost() -> None:
    resolver = ClientIpResolver(parse_trusted_proxies(["10.0.0.0/8"]))

    assert resolver.resolve("10.0.0.1", headers(x_forwarded_for="10.2.2.2, 10.1.1.1")) == "10.2.2.2"


def test_invalid_hop_stops_walk() -> None:
    resolver = ClientIpResolver(parse_trusted_proxies(["10.0.0.0/8"]))
    chain = "203.0.113.7, not-an-ip, 10.1.1.1"

    assert resolver.resolve("10.0.0.1", headers(x_forwarded_for=chain)) == "10.1.1.1"


def test_forwarded_header_preferred() -> None:
    resolver = ClientIpResolver(parse_trusted_proxies(["10.0.0.0/8"]))
    request_headers = headers(
        forwarded='for="[2001:db8:85a3::8a2e:370:7334]:4711";proto=https, for=10.1.1.1',
        x_forwarded_for="198.51.100.1",
    )

    assert resolver.resolve("10.0.0.1", request_headers) == "2001:db8:85a3::8a2e:370:7334"


def test_multiple_header_lines_joined() -> None:
    resolver = ClientIpResolver(parse_trusted_proxies(["10.0.0.0/8"]))
    request_headers = [(b"x-forwarded-for", b"203.0.113.7"), (b"x-forwarded-for", b"10.9.9.9")]

    assert resolver.resolve("10.0.0.1", request_headers) == "203.0.113.7"


def test_mapped_peer_canonical() -> None:
    assert ClientIpResolver(()).resolve("::ffff:192.0.2.10", []) == "192.0.2.10"


def test_missing_peer_unknown() -> None:
    assert ClientIpResolver(()).resolve(None, []) == UNKNOWN_IP


def test_invalid_trusted_proxy_named() -> None:
    with pytest.raises(ConfigurationError, match="not-a-cidr"):
        parse_trusted_proxies(["not-a-cidr"])


def test_untrusted_private_proxy_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    resolver = ClientIpResolver(())
    headers = [(b"x-forwarded-for", b"203.0.113.9")]

    for _ in range(3):
        assert resolver.resolve("10.0.0.5", headers) == "10.0.0.5"

    warnings = [r for r in caplog.records if "--trusted-proxy 10.0.0.5" in r.getMessage()]
    assert len(warnings) == 1


def test_public_peer_with_proxy_headers_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    resolver = ClientIpResolver(())

    # Documentation ranges such as 198.51.100.0/24 count as private in ipaddress.
    resolver.resolve("8.8.4.4", [(b"x-forwarded-for", b"203.0.113.9")])
    resolver.resolve("10.0.0.5", [(b"user-agent", b"curl/8.5.0")])

    assert not [r for r in caplog.records if "trusted proxy" in r.getMessage()]
