"""Every Redis key footfall uses, built in this one place. The `footfall` below is PREFIX.

Keys that one Lua script touches together share a hash tag (the part in braces), so that
Redis Cluster keeps them on one shard:

- `footfall:{log}:events` (stream): the event log. Field `v` of each entry is the visit
  as JSON.
- `footfall:{log}:dead` (stream): entries that failed `max_deliveries` times, with their
  original entry id and group.
- `footfall:{log}:seen:<event_id>` (string): marks a client event id as appended, so that
  a retry is not appended twice. Expires after the dedup window.
- `footfall:{log}:metrics` (hash): counters that API and worker processes add to.
- `footfall:{log}:rebuild` (string): exists while `footfall stats rebuild` runs. The stats
  script then applies nothing and the stats workers wait.
- `footfall:{log}:erased` (hash): field = a stored form of an erased IP or e-mail address,
  value = the id of the last stream entry the erasure covers. Consumers skip entries of that
  form up to that id. A mark is deleted once the stream is trimmed past it.
- `footfall:{log}:maintenance` (string): lock held by the process that runs a retention
  pass or an erasure, with an expiry, so that only one runs at a time.
- `footfall:{log}:stats_stale` (string): set before a retention pass or an erasure deletes
  events, deleted after the stats rebuild that follows. A rerun rebuilds while it exists.
- `footfall:privacy:hash_keys` (hash): field = day number since the Unix epoch (UTC),
  value = that day's random key for `--ip-mode hashed` and `--email-mode hash`. Keys two
  days old are deleted (see `footfall.privacy`).
- `footfall:stats:sites` (set): every site that has stats.
- `footfall:stats:{<site>}:visitors` (sorted set): member = visitor IP, score = minus its
  visit count, so ZRANGE lists the most visits first and ties by IP ascending.
- `footfall:stats:{<site>}:last_visit` (hash): visitor IP to the time of its latest visit
  in ms.
- `footfall:stats:{<site>}:latest` (sorted set): member = the visit as JSON (it starts with
  the id), score = time in ms. Trimmed to the newest 100.
- `footfall:stats:{<site>}:totals` (hash): field `visits` is the site's visit count.

- `footfall:auth:token_ids` (set): the id of every API token, revoked ones included.
- `footfall:auth:token:<id>` (hash): one token: `name`, `role`, `secret_hash` (SHA-256 of
  the secret, never the secret), `created_at_ms` and, once revoked, `revoked_at_ms`.
- `footfall:auth:session:<sha256 of the session id>` (string): `<token id> <expiry in ms>`
  of one dashboard session. Expires with the session.
- `footfall:auth:login_code:<sha256 of the code>` (string): `<token id> <expiry in ms>` of
  one one-time login code. Expires with the code and is deleted when used.

Credentials live in Redis, not in the event store, because the distributed event store may
be PostgreSQL or another database while Redis is always part of this deployment.

The distinct visitor count of a site is ZCARD of its `visitors` key.
Rebuilt stats are written under `footfall:rebuild:stats:{<site>}:...` and renamed into place.

NOTE: the stats script touches the log's keys and the keys of each site in its batch, which
lie in different hash slots, so on Redis Cluster the stream would have to be split per
site first. footfall runs on a single Redis primary today.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from footfall.errors import ConfigurationError

PREFIX = os.environ.get("FOOTFALL_REDIS_PREFIX", "footfall")
"""The first part of every key, so that several footfall installations can share one Redis
(env FOOTFALL_REDIS_PREFIX). It must not contain braces, which would change the hash tags."""


def check_prefix() -> None:
    """Raise ConfigurationError for a prefix that would break the hash tags.

    Checked when a Redis client is created, not at import, so that a bad value stops only the
    commands that use Redis, with a message instead of a traceback.
    """
    if not PREFIX or "{" in PREFIX or "}" in PREFIX:
        raise ConfigurationError(
            f"invalid FOOTFALL_REDIS_PREFIX={PREFIX!r}: use a non-empty name without braces"
        )


STREAM = f"{PREFIX}:{{log}}:events"
DEAD_LETTER_STREAM = f"{PREFIX}:{{log}}:dead"
METRICS = f"{PREFIX}:{{log}}:metrics"
REBUILD_FLAG = f"{PREFIX}:{{log}}:rebuild"
ERASED = f"{PREFIX}:{{log}}:erased"
MAINTENANCE_LOCK = f"{PREFIX}:{{log}}:maintenance"
STATS_STALE = f"{PREFIX}:{{log}}:stats_stale"
SITES = f"{PREFIX}:stats:sites"
HASH_KEYS = f"{PREFIX}:privacy:hash_keys"
AUTH_TOKEN_IDS = f"{PREFIX}:auth:token_ids"


def seen_event(event_id: str) -> str:
    """Return the key that marks a client event id as already appended."""
    return f"{PREFIX}:{{log}}:seen:{event_id}"


def auth_token(token_id: str) -> str:
    return f"{PREFIX}:auth:token:{token_id}"


def auth_session(session_hash: str) -> str:
    return f"{PREFIX}:auth:session:{session_hash}"


def auth_login_code(code_hash: str) -> str:
    return f"{PREFIX}:auth:login_code:{code_hash}"


@dataclass(frozen=True, slots=True)
class SiteKeys:
    """The stats keys of one site."""

    visitors: str
    last_visit: str
    latest: str
    totals: str

    @classmethod
    def of(cls, site: str, *, rebuild: bool = False) -> SiteKeys:
        """Return the live keys of `site`, or the keys a rebuild fills before the swap."""
        base = f"{PREFIX}:rebuild:stats:{{{site}}}" if rebuild else f"{PREFIX}:stats:{{{site}}}"
        return cls(f"{base}:visitors", f"{base}:last_visit", f"{base}:latest", f"{base}:totals")

    def all(self) -> tuple[str, str, str, str]:
        return (self.visitors, self.last_visit, self.latest, self.totals)
