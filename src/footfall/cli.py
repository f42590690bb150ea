"""The `footfall` command: `serve` and `stats rebuild`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from footfall import __version__
from footfall.config import DEFAULT_DB_PATH, DEFAULT_HOST, DEFAULT_PORT, Settings
from footfall.errors import ConfigurationError, FootfallError
from footfall.ingest.client_ip import parse_trusted_proxies

logger = logging.getLogger("footfall")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the process exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = _settings(args)
        if args.command == "serve":
            return _serve(settings)
        if args.command == "stats" and args.stats_command == "rebuild":
            return _rebuild(settings)
    except FootfallError as error:
        print(f"footfall: {error}", file=sys.stderr)
        return 2
    parser.print_help()
    return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="footfall", description="Self-hosted, real-time visitor tracker."
    )
    parser.add_argument("--version", action="version", version=f"footfall {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser(
        "serve", help="run the API, dashboard and stats consumer in one process"
    )
    _add_db_option(serve)
    serve.add_argument(
        "--host",
        default=os.environ.get("FOOTFALL_HOST", DEFAULT_HOST),
        help=f"address to listen on (env FOOTFALL_HOST, default {DEFAULT_HOST})",
    )
    serve.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"TCP port (env FOOTFALL_PORT or PORT, default {DEFAULT_PORT})",
    )
    serve.add_argument(
        "--trusted-proxy",
        action="append",
        metavar="CIDR",
        default=None,
        help="proxy whose X-Forwarded-For/Forwarded headers are believed; repeatable "
        "(env FOOTFALL_TRUSTED_PROXIES, comma-separated; default none)",
    )
    _add_log_option(serve)

    stats = commands.add_parser("stats", help="maintain the stats read models")
    stats_commands = stats.add_subparsers(dest="stats_command", metavar="COMMAND")
    rebuild = stats_commands.add_parser(
        "rebuild", help="recompute all stats from the stored events"
    )
    _add_db_option(rebuild)
    _add_log_option(rebuild)
    _add_log_option(stats)
    return parser


def _add_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        type=Path,
        default=Path(os.environ.get("FOOTFALL_DB", DEFAULT_DB_PATH)),
        help="SQLite database file, created if missing "
        f"(env FOOTFALL_DB, default {DEFAULT_DB_PATH})",
    )


def _add_log_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        default=os.environ.get("FOOTFALL_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
        help="logging level (default info)",
    )


def _settings(args: argparse.Namespace) -> Settings:
    if args.command != "serve":
        return Settings(db_path=args.db, log_level=args.log_level)

    proxies = args.trusted_proxy
    if proxies is None:
        proxies = [p for p in os.environ.get("FOOTFALL_TRUSTED_PROXIES", "").split(",") if p]
    return Settings(
        db_path=args.db,
        host=args.host,
        port=args.port if args.port is not None else _port_from_environment(),
        trusted_proxies=parse_trusted_proxies(proxies),
        log_level=args.log_level,
    )


def _port_from_environment() -> int:
    for name in ("FOOTFALL_PORT", "PORT"):
        value = os.environ.get(name)
        if value is None:
            continue
        if not value.isdigit() or not 0 < int(value) < 65536:
            raise ConfigurationError(f"invalid {name}={value!r}: expected a port from 1 to 65535")
        return int(value)
    return DEFAULT_PORT


def _serve(settings: Settings) -> int:
    import uvicorn

    from footfall.api.app import create_app

    app = create_app(settings)
    # footfall resolves client addresses itself, so uvicorn must not rewrite them.
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        proxy_headers=False,
        server_header=False,
        access_log=False,
        log_level=settings.log_level,
        log_config=None,
    )
    uvicorn.Server(config).run()
    return 0


def _rebuild(settings: Settings) -> int:
    from footfall.backends.sqlite_db import SqliteDatabase
    from footfall.stats.sqlite import SqliteStatsStore
    from footfall.store.sqlite import SqliteEventStore

    database = SqliteDatabase(settings.db_path)
    try:
        counted = asyncio.run(SqliteStatsStore(database).rebuild(SqliteEventStore(database)))
    finally:
        database.close()
    logger.info("stats rebuilt from %d events in %s", counted, settings.db_path)
    return 0
