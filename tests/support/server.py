"""A real `footfall serve` process on a free port, for tests that go through HTTP."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from support.auth import bearer, provision_admin_token, run_token_command

if TYPE_CHECKING:
    from support.mongo import SecantusServer

STARTUP_TIMEOUT_S = 20.0
WORKER_RUNNING_LINE = b"worker running groups"
"""What `footfall worker` logs once its signal handlers are set and its consumers run."""

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class FootfallProcess:
    """A `python -m footfall` subprocess whose output goes to a log file."""

    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def _launch(self, command: list[str], env: dict[str, str]) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """End the process with SIGKILL: no shutdown code runs."""
        if self.running():
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> int:
        """End the process with SIGTERM and return its exit status."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


class ServerProcess(FootfallProcess):
    """Runs `python -m footfall serve` against one database file, restartable.

    With `--redis-url` and `--database-url` in `extra_args` it serves the distributed
    deployment, and `workers` (a list of WorkerProcess) run its consumers.

    Before its first start it creates an admin token in its store (unless `token` is given,
    or `provision_token` is False for a first-run test). `client()` and `auth_headers` send
    that token, so the read endpoints return 200.
    """

    def __init__(
        self,
        db_path: Path,
        extra_args: Sequence[str] = (),
        log_path: Path | None = None,
        *,
        token: str | None = None,
        provision_token: bool = True,
    ):
        self.db_path = db_path
        self.port = free_port()
        self.extra_args = list(extra_args)
        self.log_path = log_path or db_path.with_suffix(".log")
        self.process: subprocess.Popen[bytes] | None = None
        self.workers: list[WorkerProcess] = []
        self.token = token
        self.provision_token = provision_token

    @property
    def auth_headers(self) -> dict[str, str]:
        """The Authorization header with this server's admin token."""
        if self.token is None:
            raise RuntimeError("this server has no provisioned token (provision_token=False)")
        return bearer(self.token)

    def client(self, **options: Any) -> httpx.Client:
        """Return an httpx client for this server that sends its admin token."""
        headers = {**self.auth_headers, **options.pop("headers", {})}
        options.setdefault("timeout", 10)
        return httpx.Client(base_url=self.base_url, headers=headers, **options)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def token_command(self, *command: str) -> subprocess.CompletedProcess[str]:
        """Run `footfall token COMMAND...` against this server's store."""
        return run_token_command(self.db_path, self.extra_args, *command)

    def start(self) -> ServerProcess:
        if self.token is None and self.provision_token:
            self.token = provision_admin_token(self.db_path, self.extra_args)
        command = [
            sys.executable,
            "-m",
            "footfall",
            "serve",
            "--db",
            str(self.db_path),
            "--port",
            str(self.port),
            *self.extra_args,
        ]
        self._launch(command, {**os.environ, "PYTHONUNBUFFERED": "1"})
        self._wait_ready()
        return self

    def log_text(self) -> str:
        text = self.log_path.read_text(errors="replace")
        for worker in self.workers:
            text += f"\n--- worker {worker.name} ---\n" + worker.log_text()
        return text

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"footfall serve exited early:\n{self.log_text()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"footfall serve not ready in {STARTUP_TIMEOUT_S} s:\n{self.log_text()}")


StartServer = Callable[..., ServerProcess]
"""The `start_server` fixture: start a server with extra `serve` flags (see conftest.py)."""


def wait_for(probe: Callable[[], T | None], timeout_s: float = 10.0, interval_s: float = 0.05) -> T:
    """Call `probe` until it returns something other than None or False, and return that."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = probe()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(interval_s)


class WorkerProcess(FootfallProcess):
    """Runs `python -m footfall worker` with the given backend arguments, restartable."""

    def __init__(
        self,
        backend_args: Sequence[str],
        log_path: Path,
        name: str,
        groups: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ):
        self.backend_args = list(backend_args)
        self.log_path = log_path
        self.name = name
        self.groups = list(groups)
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    def start(self) -> WorkerProcess:
        command = [sys.executable, "-m", "footfall", "worker", *self.backend_args]
        command += ["--consumer-name", self.name]
        for group in self.groups:
            command += ["--group", group]
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._launch(command, {**os.environ, "PYTHONUNBUFFERED": "1", **self.env})
        return self

    def started(self) -> bool:
        """Return whether this start has logged that its consumers run.

        Before that, SIGTERM meets Python's default handler and ends the process with -15.
        """
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset)
            return WORKER_RUNNING_LINE in log.read()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextlib.contextmanager
def running_stack(
    directory: Path,
    deployment: str,
    serve_args: Sequence[str] = (),
    *,
    worker_args: Sequence[str] = (),
    provision_token: bool = True,
    mongodb: SecantusServer | None = None,
) -> Iterator[ServerProcess]:
    """Run `footfall serve` on one deployment, with one worker when it is distributed.

    `embedded` serves a fresh SQLite file in `directory`. `distributed` gets a fresh Redis
    key prefix and PostgreSQL database, and a worker started with `worker_args` as well.
    `mongodb` is the same with a fresh database on the SecantusDB server `mongodb` instead
    of PostgreSQL.
    """
    from support.services import fresh_distributed_backends

    if deployment == "embedded":
        server = ServerProcess(
            directory / "footfall.db", serve_args, provision_token=provision_token
        ).start()
        try:
            yield server
        finally:
            server.stop()
        return

    if (deployment == "mongodb") != (mongodb is not None):
        raise ValueError("pass the SecantusDB server for the mongodb deployment, and only then")
    with fresh_distributed_backends(mongodb) as urls:
        server = ServerProcess(
            directory / "footfall.db",
            [*urls.args(), *serve_args],
            provision_token=provision_token,
        )
        worker = WorkerProcess(
            [*urls.args(), *worker_args], directory / "worker.log", "worker-1"
        ).start()
        server.workers.append(worker)
        try:
            server.start()
            yield server
        finally:
            server.stop()
            worker.stop()
