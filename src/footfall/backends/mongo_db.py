"""MongoDB connections, the indexes of the events collection and the server's start-up facts.

`footfall db migrate` creates the indexes, and `serve` and `worker` create them at start-up
too. Creating an index that exists with the same keys and options does nothing, so
processes starting together do not race.

Writes use the write concern `{w: "majority", j: true}` unless the URL sets `w` or
`journal` itself: a batch counts as stored, and its stream entries are acknowledged, only
once a majority of the replica set has it in its on-disk journal. With `w: 1` a failover
can roll back a batch whose entries are already acknowledged, and those visits are lost.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel
from pymongo import errors as mongo_errors
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from footfall.errors import BackendUnavailable, ConfigurationError

logger = logging.getLogger(__name__)

Document = dict[str, Any]
MongoClient = AsyncMongoClient[Document]
Collection = AsyncCollection[Document]

DEFAULT_DATABASE = "footfall"
"""The database used when the URL names none."""
EVENTS_COLLECTION = "events"

DEFAULT_OPTIONS: dict[str, Any] = {
    "w": "majority",
    "journal": True,
    "serverSelectionTimeoutMS": 10_000,
    "connectTimeoutMS": 10_000,
    "appName": "footfall",
}
"""Client options footfall sets unless the URL sets the same option (names match in any case)."""

EVENT_INDEXES = (
    # Pages of one site, newest first, ties broken by id (see EventStore.page).
    IndexModel(
        [("site", ASCENDING), ("received_at_ms", DESCENDING), ("_id", DESCENDING)],
        name="site_time",
    ),
    # Retention: deleting every visit older than a cutoff.
    IndexModel([("received_at_ms", ASCENDING)], name="received_at"),
    # Erasure by visitor address or e-mail; visits without an e-mail store no `email` field.
    IndexModel([("ip", ASCENDING)], name="ip"),
    IndexModel([("email", ASCENDING)], name="email", sparse=True),
)
"""The secondary indexes of `events`. The visit id is `_id`, whose unique index rejects a
second copy of a visit."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ServerFacts:
    """The facts of a MongoDB server and of the client's settings, for the start-up log."""

    version: str
    secantus_version: str | None
    """Set when the server is SecantusDB, a MongoDB-compatible server used in footfall's CI."""
    database: str
    write_concern: dict[str, Any]

    def describe(self) -> str:
        server = f"MongoDB {self.version}"
        if self.secantus_version:
            server += f" (SecantusDB {self.secantus_version})"
        return (
            f"{server} database {self.database}, "
            f"write concern {describe_write_concern(self.write_concern)}"
        )


def client_options(url: str) -> dict[str, Any]:
    """Return the DEFAULT_OPTIONS that the URL leaves out, to pass to a client beside it."""
    in_url = {name.lower() for name, _ in parse_qsl(urlsplit(url).query)}
    return {name: value for name, value in DEFAULT_OPTIONS.items() if name.lower() not in in_url}


def connect(url: str) -> MongoClient:
    """Create a client with footfall's defaults for the options the URL leaves out.

    No connection is made until the first operation.
    """
    try:
        return AsyncMongoClient(url, **client_options(url))
    except (mongo_errors.ConfigurationError, ValueError) as error:
        raise ConfigurationError(
            f"invalid --database-url: {error}; expected mongodb://HOST:PORT/DATABASE"
        ) from error


def events_database(client: MongoClient) -> AsyncDatabase[Document]:
    """Return the database the URL names, or DEFAULT_DATABASE."""
    return client.get_default_database(DEFAULT_DATABASE)


def events_collection(client: MongoClient) -> Collection:
    return events_database(client)[EVENTS_COLLECTION]


async def open_client(url: str) -> MongoClient:
    """Connect and check that the server replies to `ping`, else raise BackendUnavailable."""
    client = connect(url)
    try:
        await client.admin.command("ping")
    except mongo_errors.PyMongoError as error:
        await client.close()
        raise BackendUnavailable(
            f"cannot connect to MongoDB: {error}; check --database-url"
        ) from error
    return client


async def migrate(client: MongoClient) -> list[str]:
    """Create the indexes of the events collection that do not exist yet; return all names."""
    collection = events_collection(client)
    return await translate_errors(
        "creating the MongoDB indexes", lambda: collection.create_indexes(list(EVENT_INDEXES))
    )


async def server_facts(client: MongoClient) -> ServerFacts:
    info = await translate_errors("reading the MongoDB server version", client.server_info)
    return ServerFacts(
        version=str(info.get("version", "unknown")),
        secantus_version=info.get("secantusVersion"),
        database=events_database(client).name,
        write_concern=client.write_concern.document,
    )


def log_server_facts(facts: ServerFacts, role: str) -> None:
    """Log the server and the write concern, with a warning when the write concern is weaker
    than a journaled majority."""
    if not _is_durable(facts.write_concern):
        logger.warning(
            "MongoDB write concern %s is weaker than {w: 'majority', j: true}: a stored batch "
            "whose stream entries are acknowledged can be lost in a failover or a crash; "
            "remove w and journal from --database-url to use footfall's default",
            describe_write_concern(facts.write_concern),
        )
    logger.info("%s on %s", role, facts.describe())


def describe_write_concern(write_concern: dict[str, Any]) -> str:
    """Return a write concern document as `w: majority, j: true`."""
    parts = [
        f"{name}: {str(value).lower() if isinstance(value, bool) else value}"
        for name, value in sorted(write_concern.items(), key=_write_concern_order)
    ]
    return ", ".join(parts) or "the server's default"


def _is_durable(write_concern: dict[str, Any]) -> bool:
    return write_concern.get("w") == "majority" and write_concern.get("j") is True


def _write_concern_order(item: tuple[str, Any]) -> int:
    order = ("w", "j", "wtimeout")
    return order.index(item[0]) if item[0] in order else len(order)


async def translate_errors(operation: str, call: Callable[[], Awaitable[T]]) -> T:
    """Await `call`, turning errors that a retry can cure into BackendUnavailable.

    Those are a server that cannot be reached, a write concern that was not satisfied, a
    timeout and an error the server labels retryable (a primary stepping down, a shutdown).
    """
    try:
        return await call()
    except (mongo_errors.ConnectionFailure, mongo_errors.ExecutionTimeout) as error:
        raise BackendUnavailable(f"{operation} failed: MongoDB unavailable: {error}") from error
    except mongo_errors.WriteConcernError as error:
        raise BackendUnavailable(
            f"{operation} failed: MongoDB did not satisfy the write concern: {error}"
        ) from error
    except mongo_errors.OperationFailure as error:
        if error.has_error_label("RetryableWriteError"):
            raise BackendUnavailable(f"{operation} failed: {error}") from error
        raise
