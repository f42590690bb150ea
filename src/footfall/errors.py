"""The project's exception hierarchy, split by whether retrying can help.

Driver errors (sqlite3, redis, psycopg) are translated into these at the backend boundary,
with the original exception chained as the cause.
"""


class FootfallError(Exception):
    """Base of every error footfall raises on purpose."""


class ConfigurationError(FootfallError):
    """A setting is invalid. Retrying does not help: fix the flag or environment variable."""


class InvalidInput(FootfallError):
    """A request or command carries a value footfall cannot accept. Retrying does not help."""


class BackendUnavailable(FootfallError):
    """A backend (database, log) cannot take the operation right now. Retrying later can help.

    The ingest API responds to it with 503 and Retry-After, never with a 202.
    """


class BackendPaused(BackendUnavailable):
    """A backend refuses work for a planned while (a stats rebuild). Retry without alarm."""
