"""Child processes of the benchmark: the servers under test and the commands it runs.

Every server listens on 127.0.0.1 on a free port and writes its log to a file, so that a
server that fails can be shown by the last lines of its log.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 60.0
"""`footfall serve` drains its stats consumer before it exits, so stopping may take a while."""


class BenchmarkError(Exception):
    """The benchmark could not run: a tool is missing, or a server or command failed."""


@dataclass(frozen=True)
class Server:
    """A running server under test."""

    name: str
    base_url: str
    log_path: Path
    pid: int
    headers: dict[str, str] = field(default_factory=dict)
    """The Authorization header that footfall's read endpoints and /metrics need."""


def create_read_token(backend_args: Sequence[str]) -> str:
    """Create a read token with `footfall token create` in the store of `backend_args`."""
    command = [sys.executable, "-m", "footfall", "token", "create", "--name", "bench"]
    result = subprocess.run(
        [*command, *backend_args],
        cwd=REPO_ROOT,
        env=_clean_environment(),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise BenchmarkError(f"footfall token create failed: {result.stderr.strip()}")
    return result.stdout.strip()


BROWSER_HEADERS = {
    "user-agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
}
"""Sent with every benchmark visit, which footfall would otherwise drop as a bot's."""

UNLIMITED = ("--rate-limit", "0")
"""All benchmark load comes from 127.0.0.1, which the per-IP rate limit would reject. The bot
filter stays on: the load sends a browser's User-Agent, so each request pays for the check."""


def footfall_command(db_path: Path) -> Callable[[int], list[str]]:
    """Return the `footfall serve` command line for a given port."""

    def command(port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "footfall",
            "serve",
            "--db",
            str(db_path),
            "--host",
            HOST,
            "--port",
            str(port),
            *UNLIMITED,
        ]

    return command


def bare_app_command(port: int) -> list[str]:
    """Return the uvicorn command line for `bench.bare_app` with footfall's server settings.

    `footfall serve` runs one uvicorn worker with uvloop and httptools. It turns off the
    access log, proxy headers and the `server` header, and these flags do the same.
    """
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.bare_app:app",
        "--host",
        HOST,
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--no-proxy-headers",
        "--no-server-header",
        "--log-level",
        "warning",
    ]


def footfall_distributed_command(redis_url: str, database_url: str) -> Callable[[int], list[str]]:
    """Return the `footfall serve` command line of the distributed deployment for a port."""

    def command(port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "footfall",
            "serve",
            "--redis-url",
            redis_url,
            "--database-url",
            database_url,
            "--host",
            HOST,
            "--port",
            str(port),
            *UNLIMITED,
        ]

    return command


def footfall_worker_command(
    redis_url: str, database_url: str, groups: Sequence[str] = ()
) -> list[str]:
    """Return the `footfall worker` command line for the given groups (no groups: both)."""
    command = [
        sys.executable,
        "-m",
        "footfall",
        "worker",
        "--redis-url",
        redis_url,
        "--database-url",
        database_url,
    ]
    for group in groups:
        command += ["--group", group]
    return command


@contextlib.contextmanager
def running_server(
    name: str,
    command_for_port: Callable[[int], list[str]],
    log_path: Path,
    token: str | None = None,
) -> Iterator[Server]:
    """Start a server, wait until `GET /healthz` returns 200, and stop it on exit.

    Raises BenchmarkError when the server exits before it is ready, is not ready within
    READY_TIMEOUT_S, or has exited by the time the block ends.
    """
    port = free_port()
    with running_process(name, command_for_port(port), log_path) as process:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        server = Server(name, f"http://{HOST}:{port}", log_path, process.pid, headers)
        _wait_until_ready(server, process)
        yield server


@contextlib.contextmanager
def running_process(
    name: str, command: Sequence[str], log_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a long-running command with its output in `log_path`, and stop it on exit.

    Raises BenchmarkError when the process has exited by the time the block ends.
    """
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=_clean_environment(),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
        ensure_running(name, process, log_path)
    finally:
        _stop(process)


def ensure_running(name: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    """Raise BenchmarkError with the end of the log if the process has exited."""
    if process.poll() is not None:
        raise BenchmarkError(
            f"{name} exited with status {process.returncode} during the run. "
            f"Last lines of {log_path}:\n{log_tail(log_path)}"
        )


def run_command(command: Sequence[str], description: str, timeout_s: float) -> str:
    """Run a command to completion and return its standard output, or raise BenchmarkError."""
    try:
        completed = subprocess.run(
            command,
            cwd=REPO_ROOT,
            env=_clean_environment(),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except FileNotFoundError as error:
        raise BenchmarkError(f"{description} failed: {command[0]} not found") from error
    except subprocess.TimeoutExpired as error:
        raise BenchmarkError(f"{description} timed out after {timeout_s:.0f} s") from error

    if completed.returncode != 0:
        output = (completed.stderr or completed.stdout).strip()
        raise BenchmarkError(
            f"{description} failed with exit status {completed.returncode}:\n{output}"
        )
    return completed.stdout


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 now (another process may take it later)."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def process_cpu_s(pid: int) -> float | None:
    """Return the user plus system CPU seconds of a process and all its threads so far.

    Reads /proc/PID/stat, so it returns None where that file does not exist (not Linux).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The fields after the parenthesised command name start with the state, so utime and
    # stime (fields 14 and 15 in proc(5)) are at indexes 11 and 12 here.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_ticks() -> tuple[int, int] | None:
    """Return the machine's total and idle (idle plus iowait) CPU ticks from /proc/stat."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(value) for value in stat.readline().split()[1:]]
    except OSError:
        return None
    return sum(fields), fields[3] + fields[4]


def busy_cpu_s(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """Return the CPU seconds, summed over all cores, that were not idle between two
    machine_cpu_ticks()."""
    if before is None or after is None:
        return None
    return ((after[0] - before[0]) - (after[1] - before[1])) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """Return the CPU seconds of this process and of its children that have exited."""
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(item.ru_utime + item.ru_stime for item in usage)


def busy_fraction(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """Return the fraction of CPU time that was not idle between two machine_cpu_ticks()."""
    if before is None or after is None or after[0] == before[0]:
        return None
    return 1 - (after[1] - before[1]) / (after[0] - before[0])


def log_problems(path: Path) -> list[str]:
    """Return the lines of a footfall log at level WARNING or ERROR, and traceback headers."""
    text = path.read_text(errors="replace") if path.exists() else ""
    markers = (" WARNING ", " ERROR ", " CRITICAL ", "Traceback (most recent call last)")
    return [line for line in text.splitlines() if any(marker in line for marker in markers)]


def log_tail(path: Path, lines: int = 20) -> str:
    """Return the last lines of a server log."""
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _wait_until_ready(server: Server, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchmarkError(
                f"{server.name} exited with status {process.returncode} before it was ready. "
                f"Last lines of {server.log_path}:\n{log_tail(server.log_path)}"
            )
        try:
            if httpx.get(f"{server.base_url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)

    raise BenchmarkError(
        f"{server.name} was not ready within {READY_TIMEOUT_S:.0f} s. "
        f"Last lines of {server.log_path}:\n{log_tail(server.log_path)}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    # uvicorn shuts down gracefully on SIGTERM, which runs footfall's lifespan shutdown.
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _clean_environment() -> dict[str, str]:
    # FOOTFALL_* settings of the user's shell would change what is measured, so they are
    # dropped and only the log level is set.
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("FOOTFALL_")
    }
    environment["FOOTFALL_LOG_LEVEL"] = "info"
    environment["PYTHONUNBUFFERED"] = "1"
    return environment
