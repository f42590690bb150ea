"""Builds the ASGI application: the ingest hot path beside a FastAPI app for everything else."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from footfall import __version__
from footfall.api.openapi import add_ingest_to_openapi
from footfall.api.reads import router as reads_router
from footfall.backends.sqlite_db import SqliteDatabase
from footfall.config import Settings
from footfall.dashboard import mount_dashboard
from footfall.errors import BackendUnavailable, InvalidInput
from footfall.ingest.client_ip import ClientIpResolver
from footfall.ingest.endpoint import IngestEndpoint, Receive, Scope, Send
from footfall.log.sqlite import SqliteEventLog
from footfall.stats.consumer import StatsConsumer
from footfall.stats.sqlite import SqliteStatsStore
from footfall.store.sqlite import SqliteEventStore

logger = logging.getLogger(__name__)

INGEST_PATH = "/api/events"


@dataclass
class Backends:
    """The embedded deployment's log, stores and in-process stats consumer."""

    database: SqliteDatabase
    log: SqliteEventLog
    store: SqliteEventStore
    stats: SqliteStatsStore
    consumer: StatsConsumer

    @classmethod
    def embedded(cls, settings: Settings) -> Backends:
        database = SqliteDatabase(settings.db_path)
        log = SqliteEventLog(database)
        stats = SqliteStatsStore(database)
        consumer = StatsConsumer(log, stats, consumer_name="serve")
        return cls(database, log, SqliteEventStore(database), stats, consumer)


class FootfallApp:
    """Sends the ingest route straight to its lean handler and the rest to FastAPI."""

    def __init__(self, ingest: IngestEndpoint, api: FastAPI, backends: Backends) -> None:
        self.ingest = ingest
        self.api = api
        self.backends = backends

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] == INGEST_PATH
            and scope["method"] in ("POST", "OPTIONS")
        ):
            await self.ingest(scope, receive, send)
            return
        await self.api(scope, receive, send)


def create_app(settings: Settings) -> FootfallApp:
    """Build the app and its backends; they start and stop with the ASGI lifespan."""
    backends = Backends.embedded(settings)
    ingest = IngestEndpoint(backends.log, ClientIpResolver(settings.trusted_proxies))

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        backends.log.start()
        consumer_task = asyncio.create_task(backends.consumer.run(), name="stats-consumer")
        logger.info(
            "footfall %s on SQLite %s (sqlite %s), dashboard at http://%s:%d/",
            __version__,
            settings.db_path.resolve(),
            sqlite3.sqlite_version,
            settings.host,
            settings.port,
        )
        yield
        await _shut_down(backends, ingest, consumer_task)

    api = FastAPI(title="footfall", version=__version__, lifespan=lifespan)
    api.state.backends = backends
    api.include_router(reads_router)
    mount_dashboard(api)
    _add_error_handlers(api)
    add_ingest_to_openapi(api, INGEST_PATH)
    return FootfallApp(ingest, api, backends)


async def _shut_down(
    backends: Backends, ingest: IngestEndpoint, consumer_task: asyncio.Task[None]
) -> None:
    """Stop taking visits, commit the queued ones, let the consumer catch up, then close."""
    await backends.log.close()
    backends.consumer.stop()
    await consumer_task
    await backends.consumer.drain()
    await backends.stats.close()
    await backends.store.close()
    backends.database.close()
    logger.info(
        "footfall stopped: %d visits accepted, %d rejected, %d committed in %d groups, "
        "%d applied to stats",
        ingest.accepted,
        sum(ingest.rejected.values()),
        backends.log.committed_visits,
        backends.log.committed_batches,
        backends.consumer.applied_visits,
    )


def _add_error_handlers(api: FastAPI) -> None:
    @api.exception_handler(RequestValidationError)
    async def invalid_query(_: Request, error: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _field_name(item), "message": str(item.get("msg", "invalid"))}
            for item in error.errors()
        ]
        return JSONResponse({"errors": errors}, status_code=400)

    @api.exception_handler(InvalidInput)
    async def invalid_input(_: Request, error: InvalidInput) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=400)

    @api.exception_handler(BackendUnavailable)
    async def unavailable(_: Request, error: BackendUnavailable) -> JSONResponse:
        logger.warning("read failed with 503: %s", error)
        return JSONResponse({"detail": str(error)}, status_code=503, headers={"retry-after": "1"})


def _field_name(item: dict[str, Any]) -> str:
    location = item.get("loc", ())
    return str(location[-1]) if location else "request"
