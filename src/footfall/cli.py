"""The `footfall` command: `serve`, `worker`, `db migrate`, `stats rebuild`, `retention run`,
`erase` and `token`."""

from __future__ import annotations

import argparse
import asyncio
import errno
import functools
import logging
import os
import signal
import socket
import sys
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from footfall import __version__
from footfall.config import (
    DEFAULT_DB_PATH,
    DEFAULT_HOST,
    DEFAULT_MAX_BACKLOG,
    DEFAULT_PORT,
    Settings,
)
from footfall.errors import ConfigurationError, FootfallError, InvalidInput
from footfall.ingest.client_ip import parse_trusted_proxies
from footfall.ingest.guards import DEFAULT_BURST, DEFAULT_RATE_PER_S
from footfall.ingest.validation import SITE_PATTERN
from footfall.log.base import STATS_GROUP, STORE_GROUP
from footfall.maintenance import (
    ADMIN_LOCK_WAIT_S,
    MAX_RETENTION_DAYS,
    canonical_erasure_ip,
    checked_erasure_email,
    retention_interval_s,
)
from footfall.privacy import EmailMode, IpMode

logger = logging.getLogger("footfall")

LOG_LEVELS = ["debug", "info", "warning", "error"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return the process exit status."""
    try:
        parser = _parser()
    except ConfigurationError as error:
        print(f"footfall: {error}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = _settings(args)
        if args.command == "serve":
            return _serve(settings)
        if args.command == "worker":
            return asyncio.run(_work(settings))
        if args.command == "db" and args.db_command == "migrate":
            return asyncio.run(_migrate(settings))
        if args.command == "stats" and args.stats_command == "rebuild":
            return asyncio.run(_rebuild(settings))
        if args.command == "token":
            from footfall.token_commands import run_token_command

            return asyncio.run(run_token_command(settings, args))
        if args.command == "retention" and args.retention_command == "run":
            return asyncio.run(_retention_run(settings))
        if args.command == "erase":
            ip, email = _erasure_target(args)
            return asyncio.run(_erase(settings, ip, email))
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
    parser.add_argument(
        "--log-level",
        default=_log_level_env(),
        choices=LOG_LEVELS,
        help="logging level (env FOOTFALL_LOG_LEVEL, default info)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = commands.add_parser(
        "serve",
        help="run the API and dashboard",
        description="Run the API and the dashboard. With --redis-url and --database-url it "
        "serves the distributed deployment; with neither, the embedded one on SQLite, "
        "including its stats consumer.",
    )
    _add_backend_options(serve)
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
    serve.add_argument(
        "--max-backlog",
        type=int,
        default=_int_env("FOOTFALL_MAX_BACKLOG", DEFAULT_MAX_BACKLOG),
        help="distributed only: reject visits with 503 while a consumer group has more than "
        "this many unacknowledged stream entries "
        f"(env FOOTFALL_MAX_BACKLOG, default {DEFAULT_MAX_BACKLOG})",
    )

    serve.add_argument(
        "--public-dashboard",
        action="store_true",
        default=_env_flag("FOOTFALL_PUBLIC_DASHBOARD"),
        help="let anyone read the dashboard and the read endpoints without credentials; "
        "they then see IPs, e-mail addresses and coordinates masked "
        "(env FOOTFALL_PUBLIC_DASHBOARD=1, default off)",
    )
    serve.add_argument(
        "--public-metrics",
        action="store_true",
        default=_env_flag("FOOTFALL_PUBLIC_METRICS"),
        help="serve /metrics without credentials (env FOOTFALL_PUBLIC_METRICS=1, default off: "
        "a scraper sends 'Authorization: Bearer <token>')",
    )
    serve.add_argument(
        "--secure-cookies",
        action=argparse.BooleanOptionalAction,
        default=_env_flag("FOOTFALL_SECURE_COOKIES", None),
        help="mark the dashboard session cookie Secure, so browsers send it over https only "
        "(env FOOTFALL_SECURE_COOKIES=1 or 0; default on unless --host is a loopback address)",
    )
    _add_guard_options(serve)
    _add_retention_option(serve)
    _add_collector_options(serve)

    worker = commands.add_parser(
        "worker",
        help="run the stats and store consumers (distributed deployment)",
        description="Run the consumer groups of the distributed deployment until SIGTERM.",
    )
    _add_backend_options(worker)
    worker.add_argument(
        "--group",
        action="append",
        choices=[STATS_GROUP, STORE_GROUP],
        default=None,
        help="consumer group to run; repeatable (default: both)",
    )
    worker.add_argument(
        "--consumer-name",
        default=os.environ.get("FOOTFALL_CONSUMER_NAME"),
        help="this worker's name in its groups (env FOOTFALL_CONSUMER_NAME, default host-pid)",
    )
    _add_retention_option(worker)

    database = commands.add_parser("db", help="manage the PostgreSQL schema or the MongoDB indexes")
    database_commands = database.add_subparsers(dest="db_command", metavar="COMMAND", required=True)
    _add_backend_options(
        database_commands.add_parser(
            "migrate",
            help="create or upgrade the PostgreSQL schema, or create the MongoDB indexes",
        )
    )

    stats = commands.add_parser("stats", help="maintain the stats read models")
    stats_commands = stats.add_subparsers(dest="stats_command", metavar="COMMAND", required=True)
    _add_backend_options(
        stats_commands.add_parser("rebuild", help="recompute all stats from the stored events")
    )

    from footfall.token_commands import add_token_parser

    add_token_parser(commands, _add_backend_options)
    retention = commands.add_parser("retention", help="delete old events")
    retention_commands = retention.add_subparsers(
        dest="retention_command", metavar="COMMAND", required=True
    )
    retention_run = retention_commands.add_parser(
        "run",
        help="delete events older than --retention-days once, then recount the stats",
        description="Run one retention pass now, as serve (embedded) or worker (distributed) "
        "do every hour when --retention-days is set.",
    )
    _add_backend_options(retention_run)
    _add_retention_option(retention_run)

    erase = commands.add_parser(
        "erase",
        help="delete one visitor's visits everywhere footfall keeps them",
        description="Delete every visit of one visitor from the event store, the stats and the "
        "visits still waiting in the event log, under every form the IP and e-mail modes "
        "store them (full, truncated, hashed). Give --ip, --email or both. Repeating it is "
        "harmless.",
    )
    _add_backend_options(erase)
    erase.add_argument("--ip", metavar="ADDR", help="the visitor's IPv4 or IPv6 address")
    erase.add_argument("--email", metavar="ADDR", help="the visitor's e-mail address")
    return parser


def _add_retention_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--retention-days",
        default=os.environ.get("FOOTFALL_RETENTION_DAYS"),
        metavar="N",
        help="delete events older than N days, at start-up and every hour (embedded: in "
        "serve; distributed: in the workers) (env FOOTFALL_RETENTION_DAYS, default: keep "
        "events forever)",
    )


def _add_guard_options(serve: argparse.ArgumentParser) -> None:
    guards = serve.add_argument_group("abuse and privacy guards of the ingest endpoint")
    guards.add_argument(
        "--rate-limit",
        type=float,
        default=_float_env("FOOTFALL_RATE_LIMIT", DEFAULT_RATE_PER_S),
        metavar="PER_SECOND",
        help="visits per second per client IP once the burst is spent; 0 turns the limit off "
        f"(env FOOTFALL_RATE_LIMIT, default {DEFAULT_RATE_PER_S:g})",
    )
    guards.add_argument(
        "--rate-burst",
        type=int,
        default=_int_env("FOOTFALL_RATE_BURST", DEFAULT_BURST),
        metavar="VISITS",
        help=f"visits one client IP may send at once (env FOOTFALL_RATE_BURST, default "
        f"{DEFAULT_BURST})",
    )
    guards.add_argument(
        "--allowed-site",
        action="append",
        default=None,
        metavar="SITE",
        help="accept visits only for these sites, 403 for others; repeatable "
        "(env FOOTFALL_ALLOWED_SITES, comma-separated; default any site)",
    )
    guards.add_argument(
        "--allowed-origin",
        action="append",
        default=None,
        metavar="ORIGIN",
        help="accept visits only from pages of these origins, such as https://example.com; "
        "repeatable (env FOOTFALL_ALLOWED_ORIGINS, comma-separated; default any origin)",
    )
    guards.add_argument(
        "--keep-bots",
        action="store_true",
        default=_env_flag("FOOTFALL_KEEP_BOTS"),
        help="store and count visits from crawlers, headless browsers and scripts too; by "
        "default they get 202 and are dropped (env FOOTFALL_KEEP_BOTS=1)",
    )
    guards.add_argument(
        "--respect-dnt",
        action="store_true",
        default=_env_flag("FOOTFALL_RESPECT_DNT"),
        help="respond 202 to visits with DNT: 1 or Sec-GPC: 1 but do not store them "
        "(env FOOTFALL_RESPECT_DNT=1)",
    )
    guards.add_argument(
        "--ip-mode",
        choices=[mode.value for mode in IpMode],
        default=os.environ.get("FOOTFALL_IP_MODE", IpMode.FULL.value),
        help="what is kept of the visitor's IP: the full address, its /24 or /48 network, "
        "or a hash with a daily key (env FOOTFALL_IP_MODE, default full)",
    )
    guards.add_argument(
        "--email-mode",
        choices=[mode.value for mode in EmailMode],
        default=os.environ.get("FOOTFALL_EMAIL_MODE", EmailMode.KEEP.value),
        help="what is kept of an e-mail address: keep, hash (daily key) or drop "
        "(env FOOTFALL_EMAIL_MODE, default keep)",
    )


def _add_collector_options(serve: argparse.ArgumentParser) -> None:
    collectors = serve.add_argument_group(
        "collectors for Plausible's and Umami's trackers (/api/event, /api/send)"
    )
    collectors.add_argument(
        "--plausible-path",
        action="append",
        default=None,
        metavar="PATH",
        help="also serve the Plausible collector of /api/event at PATH, such as /p/e; "
        "repeatable (env FOOTFALL_PLAUSIBLE_PATHS, comma-separated; default none)",
    )
    collectors.add_argument(
        "--umami-path",
        action="append",
        default=None,
        metavar="PATH",
        help="also serve the Umami collector of /api/send at PATH; repeatable "
        "(env FOOTFALL_UMAMI_PATHS, comma-separated; default none)",
    )
    collectors.add_argument(
        "--umami-site",
        action="append",
        default=None,
        metavar="WEBSITE_ID=SITE",
        help="store visits of this Umami website id under this site name; repeatable "
        "(env FOOTFALL_UMAMI_SITES, comma-separated; default: the website id is the site name)",
    )


def _log_level_env() -> str:
    value = os.environ.get("FOOTFALL_LOG_LEVEL", "info").lower()
    if value not in LOG_LEVELS:
        raise ConfigurationError(
            f"invalid FOOTFALL_LOG_LEVEL={value!r}: use {', '.join(LOG_LEVELS)}"
        )
    return value


def _int_env(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigurationError(f"invalid {name}={value!r}: expected a whole number") from None


def _float_env(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return float(value)
    except ValueError:
        raise ConfigurationError(f"invalid {name}={value!r}: expected a number") from None


def _env_list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def _env_flag(name: str, default: bool | None = False) -> bool | None:
    """Read a yes/no environment variable: 1, true, yes, on or 0, false, no, off."""
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"invalid {name}={value!r}: expected 1 or 0 (or true or false)")


def _add_backend_options(parser: argparse.ArgumentParser) -> None:
    # Also accepted after the command; SUPPRESS keeps the value given before it otherwise.
    parser.add_argument(
        "--log-level",
        default=argparse.SUPPRESS,
        choices=LOG_LEVELS,
        help="logging level (env FOOTFALL_LOG_LEVEL, default info)",
    )
    parser.add_argument(
        "--db",
        type=Path,
        default=Path(os.environ.get("FOOTFALL_DB", DEFAULT_DB_PATH)),
        help="embedded: SQLite database file, created if missing "
        f"(env FOOTFALL_DB, default {DEFAULT_DB_PATH})",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("FOOTFALL_REDIS_URL"),
        help="distributed: Redis URL such as redis://127.0.0.1:6379/0 (env FOOTFALL_REDIS_URL)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("FOOTFALL_DATABASE_URL"),
        help="distributed: the event store's URL, PostgreSQL such as "
        "postgresql://127.0.0.1:5432/footfall or MongoDB such as "
        "mongodb://127.0.0.1:27017/footfall (env FOOTFALL_DATABASE_URL)",
    )


def _settings(args: argparse.Namespace) -> Settings:
    common: dict[str, Any] = {
        "db_path": args.db,
        "log_level": args.log_level,
        "redis_url": args.redis_url or None,
        "database_url": args.database_url or None,
        "retention_days": _retention_days(getattr(args, "retention_days", None)),
    }
    if common["retention_days"] is not None:
        retention_interval_s()  # Fails here, before start-up, on an invalid interval.
    if args.command == "worker":
        groups = tuple(dict.fromkeys(args.group or [STATS_GROUP, STORE_GROUP]))
        return Settings(**common, groups=groups, consumer_name=args.consumer_name)
    if args.command != "serve":
        return Settings(**common)

    proxies = args.trusted_proxy
    if proxies is None:
        proxies = _env_list("FOOTFALL_TRUSTED_PROXIES")
    if args.port is not None and not 0 < args.port < 65536:
        raise ConfigurationError(f"invalid --port {args.port}: expected a port from 1 to 65535")
    if args.max_backlog < 1:
        raise ConfigurationError(
            f"invalid --max-backlog (FOOTFALL_MAX_BACKLOG) {args.max_backlog}: must be 1 or more"
        )
    if not args.rate_limit >= 0:
        raise ConfigurationError(
            f"invalid --rate-limit (FOOTFALL_RATE_LIMIT) {args.rate_limit:g}: use visits per "
            "second, or 0 for no limit"
        )
    if args.rate_burst < 1:
        raise ConfigurationError(
            f"invalid --rate-burst (FOOTFALL_RATE_BURST) {args.rate_burst}: must be 1 or more"
        )
    if args.ip_mode not in IpMode.__members__.values():
        raise ConfigurationError(
            f"invalid FOOTFALL_IP_MODE={args.ip_mode!r}: use full, truncated or hashed"
        )
    if args.email_mode not in EmailMode.__members__.values():
        raise ConfigurationError(
            f"invalid FOOTFALL_EMAIL_MODE={args.email_mode!r}: use keep, hash or drop"
        )
    sites = (
        args.allowed_site if args.allowed_site is not None else _env_list("FOOTFALL_ALLOWED_SITES")
    )
    origins = (
        args.allowed_origin
        if args.allowed_origin is not None
        else _env_list("FOOTFALL_ALLOWED_ORIGINS")
    )
    return Settings(
        **common,
        host=args.host,
        port=args.port if args.port is not None else _port_from_environment(),
        trusted_proxies=parse_trusted_proxies(proxies),
        max_backlog=args.max_backlog,
        ip_mode=IpMode(args.ip_mode),
        email_mode=EmailMode(args.email_mode),
        rate_limit_per_s=args.rate_limit,
        rate_burst=args.rate_burst,
        allowed_sites=tuple(_checked_sites(sites)),
        allowed_origins=tuple(_checked_origins(origins)),
        respect_dnt=args.respect_dnt,
        keep_bots=args.keep_bots,
        plausible_paths=_collector_paths(
            "--plausible-path", args.plausible_path, "FOOTFALL_PLAUSIBLE_PATHS"
        ),
        umami_paths=_collector_paths("--umami-path", args.umami_path, "FOOTFALL_UMAMI_PATHS"),
        umami_sites=_umami_sites(
            args.umami_site if args.umami_site is not None else _env_list("FOOTFALL_UMAMI_SITES")
        ),
        public_dashboard=args.public_dashboard,
        public_metrics=args.public_metrics,
        secure_cookies=args.secure_cookies,
    )


def _collector_paths(flag: str, given: list[str] | None, env_name: str) -> tuple[str, ...]:
    """Check the syntax of extra collector paths; app.py checks them against the routes."""
    paths = given if given is not None else _env_list(env_name)
    for path in paths:
        if not path.startswith("/") or any(char in path for char in "?# \t") or len(path) > 200:
            raise ConfigurationError(
                f"invalid {flag} {path!r}: use a path starting with '/', such as /p/event, "
                "without query, fragment or spaces, of at most 200 characters"
            )
    return tuple(dict.fromkeys(paths))


def _umami_sites(pairs: list[str]) -> tuple[tuple[str, str], ...]:
    sites: dict[str, str] = {}
    for pair in pairs:
        website_id, _, site = pair.partition("=")
        website_id, site = website_id.strip(), site.strip()
        if not website_id or not SITE_PATTERN.fullmatch(site):
            raise ConfigurationError(
                f"invalid --umami-site {pair!r}: use WEBSITE_ID=SITE, where SITE is 1 to 64 "
                "letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        if sites.get(website_id, site) != site:
            raise ConfigurationError(
                f"invalid --umami-site {pair!r}: website id {website_id!r} is already mapped "
                f"to site {sites[website_id]!r}"
            )
        sites[website_id] = site
    return tuple(sites.items())


def _retention_days(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if not value.strip().isdigit() or not 1 <= int(value) <= MAX_RETENTION_DAYS:
        raise ConfigurationError(
            f"invalid --retention-days {value!r} (or FOOTFALL_RETENTION_DAYS): expected a "
            f"whole number of days from 1 to {MAX_RETENTION_DAYS}, or leave it unset to keep "
            "events forever"
        )
    return int(value)


def _erasure_target(args: argparse.Namespace) -> tuple[str | None, str | None]:
    if args.ip is None and args.email is None:
        raise ConfigurationError("erase needs --ip ADDR, --email ADDR or both")
    ip = email = None
    try:
        if args.ip is not None:
            ip = canonical_erasure_ip(args.ip)
    except InvalidInput as error:
        raise ConfigurationError(f"--ip: {error}") from None
    try:
        if args.email is not None:
            email = checked_erasure_email(args.email)
    except InvalidInput as error:
        raise ConfigurationError(f"--email: {error}") from None
    return ip, email


def _checked_sites(sites: list[str]) -> list[str]:
    for site in sites:
        if not SITE_PATTERN.fullmatch(site):
            raise ConfigurationError(
                f"invalid --allowed-site {site!r}: use the site name the tracker sends "
                "(letters, digits, '.', '_' or '-')"
            )
    return sites


def _checked_origins(origins: list[str]) -> list[str]:
    for origin in origins:
        parsed = urllib.parse.urlsplit(origin)
        if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.path.strip("/"):
            raise ConfigurationError(
                f"invalid --allowed-origin {origin!r}: use scheme and host such as "
                "https://example.com (with :port when it is not the default)"
            )
    return origins


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

    # Binding before the app starts turns a busy port into one clear error, before any
    # backend is opened or a consumer starts.
    listener = _bind(settings.host, settings.port)
    if settings.distributed:
        asyncio.run(_check_distributed_backends(settings))
    app = create_app(settings)
    # footfall resolves client addresses itself, so uvicorn must not rewrite them.
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        proxy_headers=False,
        server_header=False,
        access_log=False,
        log_level=settings.log_level,
        log_config=None,
    )
    uvicorn.Server(config).run(sockets=[listener])
    return 0


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        if error.errno == errno.EADDRINUSE:
            raise ConfigurationError(
                f"port {port} on {host} is already in use: stop the other process or pass --port"
            ) from error
        raise ConfigurationError(f"cannot listen on {host}:{port}: {error.strerror}") from error
    listener.listen(2048)
    listener.set_inheritable(True)
    return listener


async def _check_distributed_backends(settings: Settings) -> None:
    """Reach Redis and the event store once before serving, so a wrong URL is one clear error.

    The app checks them again in its own event loop at start-up, and logs what it finds then.
    """
    from footfall.backends.redis_client import check_server, connect
    from footfall.store.distributed import migrate_event_store

    assert settings.redis_url and settings.database_url
    client = connect(settings.redis_url)
    try:
        await check_server(client)
    finally:
        await client.aclose()
    await migrate_event_store(settings.database_url)


async def _work(settings: Settings) -> int:
    from footfall.deployment import DistributedDeployment

    if not settings.distributed:
        raise ConfigurationError(
            "the worker runs the distributed consumers and needs --redis-url and "
            "--database-url (or FOOTFALL_REDIS_URL and FOOTFALL_DATABASE_URL); the embedded "
            "`footfall serve` runs its consumer itself"
        )
    deployment = DistributedDeployment(settings)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stopping.set)

    await deployment.start_worker()
    logger.info("worker running groups %s", ", ".join(settings.groups))
    await stopping.wait()
    logger.info("worker stopping: finishing the batches in progress")
    await deployment.close()
    logger.info("worker stopped")
    return 0


async def _migrate(settings: Settings) -> int:
    from footfall.store.distributed import migrate_event_store

    if not settings.database_url:
        raise ConfigurationError(
            "db migrate needs --database-url (or FOOTFALL_DATABASE_URL); the embedded "
            "SQLite file creates its schema by itself"
        )
    logger.info("%s", await migrate_event_store(settings.database_url))
    return 0


def _check_embedded_database(settings: Settings) -> None:
    if not settings.distributed and not settings.db_path.exists():
        raise ConfigurationError(
            f"SQLite database {settings.db_path} not found: pass the --db that footfall serve uses"
        )


async def _retention_run(settings: Settings) -> int:
    from footfall.deployment import create_deployment
    from footfall.maintenance import run_retention

    if settings.retention_days is None:
        raise ConfigurationError(
            "retention run needs --retention-days N (or FOOTFALL_RETENTION_DAYS)"
        )
    _check_embedded_database(settings)
    deployment = create_deployment(settings)
    await deployment.open_admin()
    try:
        deleted = await run_retention(
            functools.partial(deployment.delete_before, lock_wait_s=ADMIN_LOCK_WAIT_S),
            settings.retention_days,
        )
    finally:
        await deployment.close()
    print(f"retention: {deleted} events older than {settings.retention_days} days deleted")
    return 0


async def _erase(settings: Settings, ip: str | None, email: str | None) -> int:
    from footfall.deployment import create_deployment

    _check_embedded_database(settings)
    deployment = create_deployment(settings)
    await deployment.open_admin()
    try:
        deleted = await deployment.erase_visitor(ip, email, lock_wait_s=ADMIN_LOCK_WAIT_S)
    finally:
        await deployment.close()
    print(f"erased: {deleted} events deleted")
    return 0


async def _rebuild(settings: Settings) -> int:
    from footfall.deployment import DistributedDeployment, create_deployment

    _check_embedded_database(settings)
    deployment = create_deployment(settings)
    await deployment.open_admin()
    try:
        if isinstance(deployment, DistributedDeployment):
            counted = await deployment.maintenance.rebuild(lock_wait_s=ADMIN_LOCK_WAIT_S)
        else:
            counted = await deployment.stats.rebuild(deployment.store)
    finally:
        await deployment.close()
    logger.info("stats rebuilt from %d events (%s)", counted, deployment.name)
    return 0
