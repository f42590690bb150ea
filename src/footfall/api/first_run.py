"""The first run: with no API token in the store, `footfall serve` creates an admin token.

It prints the token and a one-time login link for the dashboard to standard output, once.
They are printed, not logged, so they do not end up in a log collector. The token is never
shown again, because only the hash of its secret is stored. The link's code works once,
within LOGIN_CODE_TTL_S. A store that has any token, even a revoked one, gets none: then
`footfall token create --role admin` makes a new one.

In the distributed deployment several API processes may start at once on one Redis. The
store's `create_first_admin` lets exactly one of them create the token and print it.
"""

from __future__ import annotations

import logging
import sys

from footfall.config import Settings
from footfall.credentials.base import LOGIN_CODE_TTL_S, CredentialStore

logger = logging.getLogger(__name__)

WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}


def login_link_base(settings: Settings) -> str:
    """Return `http://HOST:PORT` for the link, with a wildcard address made reachable."""
    host = WILDCARD_HOSTS.get(settings.host, settings.host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


async def create_first_admin(store: CredentialStore, settings: Settings) -> bool:
    """Create and print the first admin token and login link; return whether it did."""
    issued = await store.create_first_admin()
    if issued is None:
        return False
    code = await store.create_login_code(issued.record.id)
    link = f"{login_link_base(settings)}/login/link?code={code}"
    hours = LOGIN_CODE_TTL_S // 3600
    print(
        "\nfootfall: no API token existed, so this admin token was created. Store it now: "
        f"it is not shown again.\n\n    {issued.token}\n\n"
        f"Open the dashboard with this one-time login link (valid for {hours} hours):\n\n"
        f"    {link}\n",
        file=sys.stdout,
        flush=True,
    )
    logger.info("first run: created admin token %s and printed its login link", issued.record.id)
    return True
