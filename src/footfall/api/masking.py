"""The public view of personal data, for readers without credentials (`--public-dashboard`).

- IPv4 addresses become their /24 network (`203.0.113.7` → `203.0.113.0/24`) and IPv6
  addresses their /48 (`2001:db8:1:2::7` → `2001:db8:1::/48`), the same networks that
  `--ip-mode truncated` stores.
- E-mail addresses keep the first character of the local part and the domain
  (`jane@example.com` → `j***@example.com`), so a visitor stays recognisable to the operator
  but not identifiable to the public.
- Values that `--ip-mode` or `--email-mode` already pseudonymised (a network, a keyed hash)
  are shown as stored: they identify no one. Any other value in the IP field becomes `hidden`.
- Coordinates are rounded to one decimal place, about 11 km.
"""

from __future__ import annotations

import ipaddress

from footfall.api.schemas import StatsOut, VisitorOut, VisitOut
from footfall.privacy import HASH_PREFIX

HIDDEN = "hidden"
IPV4_PUBLIC_PREFIX = 24
IPV6_PUBLIC_PREFIX = 48
COORDINATE_DECIMALS = 1


def mask_ip(value: str) -> str:
    """Return the /24 (IPv4) or /48 (IPv6) network of an address, or `hidden`."""
    if value.startswith(HASH_PREFIX):
        return value
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return _stored_network(value)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = IPV4_PUBLIC_PREFIX if address.version == 4 else IPV6_PUBLIC_PREFIX
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def _stored_network(value: str) -> str:
    """Return a network that `--ip-mode truncated` stored, if it is no narrower than public."""
    try:
        network = ipaddress.ip_network(value)
    except ValueError:
        return HIDDEN
    public = IPV4_PUBLIC_PREFIX if network.version == 4 else IPV6_PUBLIC_PREFIX
    return str(network) if network.prefixlen <= public else HIDDEN


def mask_email(value: str | None) -> str | None:
    """Return `j***@example.com` for `jane@example.com`; None stays None."""
    if not value or value.startswith(HASH_PREFIX):
        return value
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain:
        return HIDDEN
    return f"{local[0]}***@{domain}"


def round_coordinate(value: float | None) -> float | None:
    return None if value is None else round(value, COORDINATE_DECIMALS)


def mask_visit(visit: VisitOut) -> VisitOut:
    return visit.model_copy(
        update={
            "ip": mask_ip(visit.ip),
            "email": mask_email(visit.email),
            "latitude": round_coordinate(visit.latitude),
            "longitude": round_coordinate(visit.longitude),
        }
    )


def mask_visitor(visitor: VisitorOut) -> VisitorOut:
    return visitor.model_copy(update={"ip": mask_ip(visitor.ip)})


def mask_stats(stats: StatsOut) -> StatsOut:
    """Return the public view of the stats: every IP, e-mail and position masked."""
    return stats.model_copy(
        update={
            "top_visitors": [mask_visitor(visitor) for visitor in stats.top_visitors],
            "latest_visits": [mask_visit(visit) for visit in stats.latest_visits],
        }
    )
