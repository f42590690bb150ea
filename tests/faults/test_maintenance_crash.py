"""A retention pass or an erasure killed halfway, then run again, leaves the stats equal to
a recount of the events that remain, on both deployments.

Embedded, the kill lands inside the SQLite transaction, which rolls back. Distributed, it
lands after PostgreSQL committed the delete and before the Redis stats were rebuilt, so the
stats are stale until the rerun repairs them, even a rerun that has nothing left to delete.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.server import ServerProcess, WorkerProcess
from support.services import fresh_distributed_backends
from support.stack import (
    api_stats,
    append_visits,
    assert_stats_equal_recount,
    run_footfall,
    stored_visits,
    wait_until_counted,
)

from footfall.model import Visit

SITES = ("shop",)
DAY_MS = 24 * 60 * 60 * 1000
TARGET_IP = "192.0.2.1"


@pytest.fixture(params=["embedded", "distributed"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    if request.param == "embedded":
        server = ServerProcess(tmp_path / "footfall.db").start()
        try:
            yield server
        finally:
            server.stop()
        return

    with fresh_distributed_backends() as urls:
        server = ServerProcess(tmp_path / "footfall.db", urls.args())
        worker = WorkerProcess(urls.args(), tmp_path / "worker.log", "worker-1").start()
        server.workers.append(worker)
        try:
            server.start()
            yield server
        finally:
            server.stop()
            worker.stop()


def _history(now_ms: int) -> list[Visit]:
    """Return 80 visits, half of them older than 30 days, and 27 of them from TARGET_IP."""
    return [
        Visit(
            id=f"visit-{number}",
            site="shop",
            received_at_ms=now_ms - (40 if number % 2 else 3) * DAY_MS - number,
            ip=TARGET_IP if number % 3 == 0 else f"198.51.100.{number % 7}",
            timezone="Africa/Lagos",
        )
        for number in range(80)
    ]


def _crash_env(point: str) -> dict[str, str]:
    return {"FOOTFALL_CRASH_AT": f"{point}=1"}


def _crash_point(server: ServerProcess) -> str:
    # Embedded, only after_delete lies inside the transaction. Distributed, a kill between the
    # committed delete and the rebuild is the case where the rerun must repair the stats.
    distributed = "--database-url" in server.extra_args
    return "maintenance.before_rebuild" if distributed else "maintenance.after_delete"


@pytest.mark.slow
def test_killed_retention_rerun_recounts(stack: ServerProcess) -> None:
    visits = _history(int(time.time() * 1000))
    append_visits(stack, visits)
    with stack.client(timeout=60) as client:
        wait_until_counted(stack, client, SITES)
        point = _crash_point(stack)

        killed = run_footfall(
            stack, "retention", "run", "--retention-days", "30", env=_crash_env(point)
        )
        stored_after_kill = len(stored_visits(stack))
        stats_after_kill = api_stats(client, "shop")["total_visits"]
        rerun = run_footfall(stack, "retention", "run", "--retention-days", "30")
        wait_until_counted(stack, client, SITES)

        assert killed.returncode == -signal.SIGKILL, killed.stderr
        if point == "maintenance.after_delete":
            assert stored_after_kill == 80, "the killed transaction must roll back"
        else:
            assert stored_after_kill == 40
            assert stats_after_kill == 80, "the stats stay stale until the rerun"
        assert rerun.returncode == 0, rerun.stderr
        assert len(stored_visits(stack)) == 40
        assert api_stats(client, "shop")["total_visits"] == 40
        assert_stats_equal_recount(stack, client, SITES)


@pytest.mark.slow
def test_killed_erasure_rerun_recounts(stack: ServerProcess) -> None:
    visits = _history(int(time.time() * 1000))
    append_visits(stack, visits)
    with stack.client(timeout=60) as client:
        wait_until_counted(stack, client, SITES)

        killed = run_footfall(
            stack, "erase", "--ip", TARGET_IP, env=_crash_env("maintenance.after_delete")
        )
        rerun = run_footfall(stack, "erase", "--ip", TARGET_IP)
        wait_until_counted(stack, client, SITES)

        assert killed.returncode == -signal.SIGKILL, killed.stderr
        assert rerun.returncode == 0, rerun.stderr
        assert all(visit.ip != TARGET_IP for visit in stored_visits(stack))
        top = [visitor["ip"] for visitor in api_stats(client, "shop")["top_visitors"]]
        assert TARGET_IP not in top
        assert api_stats(client, "shop")["total_visits"] == 80 - 27
        assert_stats_equal_recount(stack, client, SITES)
