"""The visitor's IP address: the connection's peer, or a proxy header from a trusted proxy.

This is the one place footfall resolves client addresses. The ASGI server's own
proxy-header handling must stay off (`proxy_headers=False`), or it would rewrite the peer
before footfall reads it.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
from collections.abc import Iterable, Sequence

from footfall.errors import ConfigurationError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

logger = logging.getLogger(__name__)

MAX_WARNED_PEERS = 64
_PROXY_HEADERS = frozenset((b"forwarded", b"x-forwarded-for"))

UNKNOWN_IP = "unknown"
"""Stored when the connection has no peer address (a Unix socket with no trusted proxy)."""


@functools.lru_cache(maxsize=4096)
def canonical_ip(text: str) -> str | None:
    """Return an address in footfall's one stored form, or None when `text` is not an IP.

    Brackets and ports are removed, IPv4-mapped IPv6 becomes IPv4 and IPv6 is compressed
    lower case: `[::ffff:192.0.2.10]:443` and `192.0.2.10:443` both give `192.0.2.10`.
    """
    host = text.strip().strip('"')
    if host.startswith("["):
        end = host.find("]")
        if end == -1:
            return None
        host = host[1:end]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]

    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def parse_trusted_proxies(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Parse `--trusted-proxy` values (an address or a CIDR each), raising ConfigurationError."""
    networks: list[IPNetwork] = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError as error:
            raise ConfigurationError(
                f"invalid trusted proxy {value!r}: expected an address or a CIDR such as "
                "10.0.0.0/8 or 2001:db8::/32"
            ) from error
    return tuple(networks)


class ClientIpResolver:
    """Resolves the visitor's address from the peer address and the proxy headers."""

    def __init__(self, trusted_proxies: Sequence[IPNetwork]) -> None:
        self._trusted = tuple(trusted_proxies)
        self._warned_peers: set[str] = set()

    def resolve(self, peer: str | None, headers: Sequence[tuple[bytes, bytes]]) -> str:
        """Return the canonical client address for one request.

        Proxy headers count only when the peer is a trusted proxy. The chain is walked from
        the right, skipping trusted hops, and the first untrusted address wins. A hop that is
        not an IP stops the walk, because everything left of it was written by an unknown
        party. The nearest valid hop is then used.
        """
        client = canonical_ip(peer) if peer else None
        if client is None:
            return UNKNOWN_IP
        if not self._trusted or not self._is_trusted(client):
            self._warn_if_unconfigured_proxy(client, headers)
            return client

        for hop in reversed(_forwarded_chain(headers)):
            address = canonical_ip(hop)
            if address is None:
                break
            client = address
            if not self._is_trusted(address):
                break
        return client

    def _warn_if_unconfigured_proxy(
        self, peer: str, headers: Sequence[tuple[bytes, bytes]]
    ) -> None:
        """Log once per peer when a private-network peer sends proxy headers that are ignored.

        That is almost always a reverse proxy missing from --trusted-proxy: every visitor then
        shares the proxy's address, in the stats and in the rate limit.
        """
        if peer in self._warned_peers or len(self._warned_peers) >= MAX_WARNED_PEERS:
            return
        if not any(name in _PROXY_HEADERS for name, _ in headers):
            return
        address = ipaddress.ip_address(peer)
        if not (address.is_private or address.is_loopback):
            return
        self._warned_peers.add(peer)
        logger.warning(
            "ignoring proxy headers from %s, which is not a trusted proxy: if it is your reverse "
            "proxy, pass --trusted-proxy %s, or every visitor behind it counts as one",
            peer,
            peer,
        )

    def _is_trusted(self, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return any(ip in network for network in self._trusted)


def _forwarded_chain(headers: Sequence[tuple[bytes, bytes]]) -> list[str]:
    """Return the hops of `Forwarded` (RFC 7239) if present, else of `X-Forwarded-For`."""
    forwarded: list[str] = []
    x_forwarded_for: list[str] = []
    for name, value in headers:
        if name == b"forwarded":
            forwarded.extend(_forwarded_for_values(value.decode("latin-1")))
        elif name == b"x-forwarded-for":
            x_forwarded_for.extend(hop.strip() for hop in value.decode("latin-1").split(","))
    return forwarded or x_forwarded_for


def _forwarded_for_values(header: str) -> list[str]:
    hops: list[str] = []
    for element in header.split(","):
        for pair in element.split(";"):
            key, _, value = pair.partition("=")
            if key.strip().lower() == "for":
                hops.append(value.strip())
    return hops
