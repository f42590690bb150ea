"""`GET /metrics` on both deployments."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families
from support.server import wait_for


def samples(http: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    values = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def test_metrics_count_ingest_and_batches(client: httpx.Client) -> None:
    for _ in range(2):
        assert client.post("/api/events", json={"timezone": "UTC"}).status_code == 202
    assert client.post("/api/events", json={"timezone": "Nowhere"}).status_code == 422
    bad_json = client.post("/api/events", content=b"{", headers={"content-type": "text/plain"})
    assert bad_json.status_code == 400
    wait_for(lambda: client.get("/api/stats").json()["total_visits"] == 2)

    def settled() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        # Distributed workers add their counters to Redis about once a second.
        values = samples(client)
        backlog = values.get(("footfall_backlog_entries", (("group", "stats"),)))
        batched = values.get(("footfall_batch_size_sum", (("group", "stats"),)))
        return values if backlog == 0 and batched == 2 else None

    values = wait_for(settled)

    assert values[("footfall_events_accepted_total", ())] == 2
    assert values[("footfall_events_rejected_total", (("reason", "invalid_fields"),))] == 1
    assert values[("footfall_events_rejected_total", (("reason", "invalid_json"),))] == 1
    assert values[("footfall_events_rejected_total", (("reason", "too_large"),))] == 0
    assert values[("footfall_pending_entries", (("group", "stats"),))] == 0
    assert values[("footfall_consumer_lag_seconds", (("group", "stats"),))] == 0
    assert values[("footfall_batch_size_count", (("group", "stats"),))] >= 1
    assert values[("footfall_batch_size_sum", (("group", "stats"),))] == 2
    assert ("footfall_dead_lettered_entries_total", (("group", "stats"),)) in values
