"""Settings from command-line flags and `FOOTFALL_*` environment variables.

A flag wins over its environment variable, which wins over the embedded default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from footfall.errors import ConfigurationError
from footfall.ingest.client_ip import IPNetwork
from footfall.ingest.guards import DEFAULT_BURST, DEFAULT_RATE_PER_S
from footfall.log.base import STATS_GROUP, STORE_GROUP
from footfall.privacy import EmailMode, IpMode

DEFAULT_DB_PATH = Path("footfall.db")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_MAX_BACKLOG = 1_000_000
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
MONGODB_SCHEMES = ("mongodb://", "mongodb+srv://")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Settings:
    """Everything `footfall serve`, `worker` and the admin commands need to start.

    With `redis_url` and `database_url` set, footfall runs distributed (Redis Streams,
    Redis stats, and PostgreSQL or MongoDB events, by the scheme of `database_url`); with
    neither, embedded on the SQLite file `db_path`.
    """

    db_path: Path = DEFAULT_DB_PATH
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    trusted_proxies: tuple[IPNetwork, ...] = field(default_factory=tuple)
    log_level: str = "info"
    redis_url: str | None = None
    database_url: str | None = None
    max_backlog: int = DEFAULT_MAX_BACKLOG
    groups: tuple[str, ...] = (STATS_GROUP, STORE_GROUP)
    consumer_name: str | None = None
    ip_mode: IpMode = IpMode.FULL
    email_mode: EmailMode = EmailMode.KEEP
    rate_limit_per_s: float = DEFAULT_RATE_PER_S
    """Visits per second per client IP after the burst; 0 turns the rate limit off."""
    rate_burst: int = DEFAULT_BURST
    allowed_sites: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    respect_dnt: bool = False
    keep_bots: bool = False
    retention_days: int | None = None
    plausible_paths: tuple[str, ...] = ()
    """Extra paths of the Plausible collector, beside `/api/event`."""
    umami_paths: tuple[str, ...] = ()
    """Extra paths of Umami's `/api/send` collector."""
    umami_sites: tuple[tuple[str, str], ...] = ()
    """(website id, site name) pairs; an Umami website id not listed here is the site name."""
    public_dashboard: bool = False
    public_metrics: bool = False
    secure_cookies: bool | None = None

    @property
    def session_cookie_secure(self) -> bool:
        """Return whether the session cookie gets the Secure attribute.

        Unless set, it is on for every host but a loopback one: a browser sends a Secure
        cookie only over https, and a server on 127.0.0.1 is usually reached over plain http
        on the same machine. Behind a TLS proxy on loopback, set `--secure-cookies`.
        """
        if self.secure_cookies is not None:
            return self.secure_cookies
        return self.host not in LOOPBACK_HOSTS

    @property
    def distributed(self) -> bool:
        """Return True for the distributed deployment, raising on half a setup."""
        if bool(self.redis_url) != bool(self.database_url):
            missing = "--database-url" if self.redis_url else "--redis-url"
            raise ConfigurationError(
                f"the distributed deployment needs both --redis-url and --database-url: "
                f"add {missing} (or FOOTFALL_{missing[2:].upper().replace('-', '_')})"
            )
        if self.redis_url and not self.redis_url.startswith(REDIS_SCHEMES):
            raise ConfigurationError(
                f"invalid --redis-url {self.redis_url!r}: expected redis://HOST:PORT/DB "
                "(or rediss:// or unix://)"
            )
        if self.database_url:
            is_mongodb_url(self.database_url)
        return bool(self.redis_url)


def is_mongodb_url(database_url: str) -> bool:
    """Return True when `--database-url` names MongoDB, False when it names PostgreSQL, and
    raise ConfigurationError when it names neither."""
    if database_url.startswith(MONGODB_SCHEMES):
        return True
    if database_url.startswith(POSTGRES_SCHEMES):
        return False
    raise ConfigurationError(
        "invalid --database-url: expected postgresql://USER@HOST:PORT/DATABASE or "
        "mongodb://HOST:PORT/DATABASE"
    )
