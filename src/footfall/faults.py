"""Crash points for fault tests: a process can be made to SIGKILL itself at a named step.

`FOOTFALL_CRASH_AT="store.after_commit=0.05,stats.before_apply=0.02"` kills the process
with the given probability each time it passes that point. Unset (the default), every
crash point is a dictionary lookup and nothing else.
"""

from __future__ import annotations

import os
import random
import signal

CRASH_POINTS = (
    "stats.before_apply",
    "stats.after_apply",
    "store.before_commit",
    "store.after_commit",
)
"""The consumers' crash points, which the worker-kill test arms."""

MAINTENANCE_CRASH_POINTS = (
    "maintenance.after_delete",
    "maintenance.before_rebuild",
)
"""Crash points of a retention pass or an erasure. At `after_delete` the delete is done but
not committed (SQLite) or the stats are not rebuilt yet (distributed). `before_rebuild` is
distributed only: right before the stats rebuild."""


def _parse(value: str) -> dict[str, float]:
    points: dict[str, float] = {}
    for item in value.split(","):
        name, _, probability = item.strip().partition("=")
        if name in CRASH_POINTS or name in MAINTENANCE_CRASH_POINTS:
            points[name] = float(probability or 1)
    return points


_points = _parse(os.environ.get("FOOTFALL_CRASH_AT", ""))


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL if the crash point `name` is armed.

    Each pass kills with the probability the point was armed with.
    """
    probability = _points.get(name)
    if probability is not None and random.random() < probability:
        os.kill(os.getpid(), signal.SIGKILL)
