"""Settings from command-line flags and `FOOTFALL_*` environment variables.

A flag wins over its environment variable, which wins over the embedded default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from footfall.ingest.client_ip import IPNetwork

DEFAULT_DB_PATH = Path("footfall.db")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


@dataclass(frozen=True)
class Settings:
    """Everything `footfall serve` needs to start."""

    db_path: Path = DEFAULT_DB_PATH
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    trusted_proxies: tuple[IPNetwork, ...] = field(default_factory=tuple)
    log_level: str = "info"
