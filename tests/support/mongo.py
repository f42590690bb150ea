"""A SecantusDB server for the MongoDB tests, and a fresh database on it for each test.

SecantusDB is a MongoDB-compatible server written in Python, installed by the test extra
(`pip install -e '.[test]'`), so the MongoDB tests need no other service. It is not MongoDB
itself: see the README for what that leaves untested.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pymongo

from support.server import free_port, wait_for

STARTUP_TIMEOUT_S = 30.0


class SecantusServer:
    """`secantusd-py` on a free port of 127.0.0.1 with its data in memory, logging to a file."""

    def __init__(self, log_path: Path) -> None:
        self.binary = Path(sys.executable).with_name("secantusd-py")
        if not self.binary.exists():
            raise RuntimeError(
                f"{self.binary} is missing: install the test extra with "
                "`pip install -e '.[test]'`, which brings SecantusDB"
            )
        self.log_path = log_path
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, database: str) -> str:
        return f"mongodb://{self.host}/{database}?directConnection=true"

    def start(self) -> SecantusServer:
        """Start the server and wait until it replies to `ping`."""
        command = [str(self.binary), "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--storage-path", ":memory:"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
            self.url("admin"), serverSelectionTimeoutMS=500
        )
        try:
            wait_for(lambda: self._replies_to_ping(client), timeout_s=STARTUP_TIMEOUT_S)
        finally:
            client.close()
        return self

    def stop(self) -> int:
        """End the server with SIGTERM, which removes its in-memory data folder."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _replies_to_ping(self, client: pymongo.MongoClient[dict[str, object]]) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(
                f"secantusd-py exited with status {self.process.returncode}:\n{self.log_text()}"
            )
        try:
            client.admin.command("ping")
        except pymongo.errors.ConnectionFailure:
            return False  # Not listening yet.
        return True


@contextmanager
def fresh_mongodb_database(server: SecantusServer) -> Iterator[str]:
    """Yield the URL of a database no other test uses, and drop it afterwards."""
    name = f"footfall_test_{uuid.uuid4().hex[:12]}"
    try:
        yield server.url(name)
    finally:
        with pymongo.MongoClient(server.url("admin")) as client:
            client.drop_database(name)
