"""Prometheus metrics: counters kept in memory on the hot path, rendered at scrape time.

Per-request work is one dictionary increment. In the distributed deployment every process
adds its counters to one Redis hash about once a second (`flush_to_redis`), so a scrape of
any API replica reports the totals of all processes.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from footfall.consumers.loop import BATCH_SIZE_BUCKETS, BatchConsumer, ConsumerMetrics
from footfall.ingest.guards import IGNORE_REASONS

REJECT_REASONS = (
    "unsupported_media_type",
    "too_large",
    "invalid_json",
    "invalid_fields",
    "rate_limited",
    "forbidden_site",
    "unavailable",
)


@dataclass
class IngestCounters:
    """Visits accepted, rejected and ignored (by reason) by this process since the last flush."""

    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    ignored: Counter[str] = field(default_factory=Counter)

    def take(self) -> tuple[int, Counter[str], Counter[str]]:
        """Return the counts and reset them to zero."""
        taken = self.accepted, self.rejected, self.ignored
        self.accepted, self.rejected, self.ignored = 0, Counter(), Counter()
        return taken


@dataclass
class GroupFacts:
    """One consumer group's state at scrape time."""

    backlog: int
    pending: int
    lag_s: float
    dead_lettered: int = 0


@dataclass
class BatchHistogram:
    """Cumulative batch-size histogram of one group."""

    bucket_counts: dict[float, int] = field(default_factory=dict)
    total: int = 0

    def add(self, metrics: ConsumerMetrics) -> None:
        for bound, count in metrics.batch_sizes.items():
            self.bucket_counts[bound] = self.bucket_counts.get(bound, 0) + count
        self.total += metrics.batch_size_sum


@dataclass
class Snapshot:
    """Everything `/metrics` reports."""

    accepted: int
    rejected: dict[str, int]
    groups: dict[str, GroupFacts]
    batches: dict[str, BatchHistogram]
    ignored: dict[str, int] = field(default_factory=dict)


class _SnapshotCollector:
    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snapshot = self._snapshot
        yield CounterMetricFamily(
            "footfall_events_accepted", "Visits answered with 202.", value=snapshot.accepted
        )
        rejected = CounterMetricFamily(
            "footfall_events_rejected", "Visits rejected, by reason.", labels=["reason"]
        )
        for reason in REJECT_REASONS:
            rejected.add_metric([reason], snapshot.rejected.get(reason, 0))
        yield rejected
        ignored = CounterMetricFamily(
            "footfall_events_ignored",
            "Visits answered with 202 but not stored (bots, Do Not Track), by reason.",
            labels=["reason"],
        )
        for reason in IGNORE_REASONS:
            ignored.add_metric([reason], snapshot.ignored.get(reason, 0))
        yield ignored

        yield from _group_gauges(snapshot.groups)

        dead = CounterMetricFamily(
            "footfall_dead_lettered_entries",
            "Entries moved to the dead-letter stream.",
            labels=["group"],
        )
        for group, facts in snapshot.groups.items():
            dead.add_metric([group], facts.dead_lettered)
        yield dead

        sizes = HistogramMetricFamily(
            "footfall_batch_size", "Entries per handled batch.", labels=["group"]
        )
        for group, histogram in snapshot.batches.items():
            sizes.add_metric([group], _cumulative(histogram), sum_value=histogram.total)
        yield sizes


def _group_gauges(groups: dict[str, GroupFacts]) -> Iterable[Metric]:
    backlog = GaugeMetricFamily(
        "footfall_backlog_entries", "Entries not yet acknowledged by the group.", labels=["group"]
    )
    pending = GaugeMetricFamily(
        "footfall_pending_entries", "Entries delivered but not acknowledged.", labels=["group"]
    )
    lag = GaugeMetricFamily(
        "footfall_consumer_lag_seconds",
        "Age of the oldest unacknowledged entry.",
        labels=["group"],
    )
    for group, facts in groups.items():
        backlog.add_metric([group], facts.backlog)
        pending.add_metric([group], facts.pending)
        lag.add_metric([group], facts.lag_s)
    return (backlog, pending, lag)


def _cumulative(histogram: BatchHistogram) -> list[tuple[str, float]]:
    buckets: list[tuple[str, float]] = []
    running = 0
    for bound in (*BATCH_SIZE_BUCKETS, float("inf")):
        running += histogram.bucket_counts.get(bound, 0)
        buckets.append(("+Inf" if bound == float("inf") else str(bound), running))
    return buckets


def render(snapshot: Snapshot) -> bytes:
    """Return the snapshot in the Prometheus text exposition format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot))
    return generate_latest(registry)


def lag_seconds(oldest_ms: int | None, now_ms: int | None = None) -> float:
    """Return the age of the oldest unacknowledged entry, 0 when there is none."""
    if oldest_ms is None:
        return 0.0
    now = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    return max(0.0, (now - oldest_ms) / 1000)


def redis_fields(counters: IngestCounters, consumers: Iterable[BatchConsumer]) -> dict[str, int]:
    """Return the metrics-hash increments for this process's counters, and reset them."""
    accepted, rejected, ignored = counters.take()
    fields: dict[str, int] = {"accepted": accepted}
    for reason, count in rejected.items():
        fields[f"rejected:{reason}"] = count
    for reason, count in ignored.items():
        fields[f"ignored:{reason}"] = count
    for consumer in consumers:
        delta = consumer.metrics.take_delta()
        for bound, count in delta.batch_sizes.items():
            fields[f"batch:{consumer.group}:le:{bound}"] = count
        fields[f"batch:{consumer.group}:sum"] = delta.batch_size_sum
        fields[f"batch:{consumer.group}:count"] = delta.handled_batches
    return {name: value for name, value in fields.items() if value}


def histograms_from_redis(fields: dict[str, int]) -> dict[str, BatchHistogram]:
    """Rebuild the per-group batch-size histograms from the metrics hash."""
    histograms: dict[str, BatchHistogram] = {}
    for name, value in fields.items():
        parts = name.split(":")
        if parts[0] != "batch" or len(parts) < 3:
            continue
        histogram = histograms.setdefault(parts[1], BatchHistogram())
        if parts[2] == "sum":
            histogram.total = value
        elif parts[2] == "le" and len(parts) == 4:
            histogram.bucket_counts[float(parts[3])] = value
    return histograms
