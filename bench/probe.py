"""Probes that run beside the load: visit visibility in the stats, and `/metrics` scrapes.

While the load runs, one thread POSTs a visit with a unique URL to the probe site every
`interval_s` and notes when the 202 arrived. A second thread reads
`GET /api/stats?site=<probe site>` every `poll_interval_s` and, for each probe visit that
is newly listed in `latest_visits`, records the time from its 202 to the end of that read.
The lag therefore includes the read's own response time and up to one poll interval.
The two threads take turns over the API processes.

A third thread scrapes `GET /metrics` once a second, as a Prometheus server would, and
counts the responses that were not 200.
"""

from __future__ import annotations

import itertools
import statistics
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import httpx

from footfall.model import LATEST_VISITS_CAPACITY

from harness import BROWSER_HEADERS

PROBE_SITE = "probe"
REQUEST_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ProbeResult:
    """Counts and lags of one probe run, with lags in milliseconds."""

    sent: int
    accepted: int
    """Probe visits that returned 202."""
    failed: int
    """Probe POSTs that returned another status, failed to connect or timed out."""
    lags_ms: list[float]
    """One lag per accepted probe visit that showed up in `/api/stats`, in send order."""
    stats_reads: int
    stats_read_errors: int
    stats_read_p50_ms: float | None

    @property
    def missing(self) -> int:
        """Accepted probe visits that never showed up before `finish` gave up."""
        return self.accepted - len(self.lags_ms)

    def lag_percentile_ms(self, percent: int) -> float | None:
        """Return a percentile of the lags (inclusive method), or None with fewer than 2."""
        if len(self.lags_ms) < 2:
            return None
        return statistics.quantiles(self.lags_ms, n=100, method="inclusive")[percent - 1]


class VisibilityProbe:
    """Sends marked visits and times their arrival in the stats, on two threads."""

    def __init__(
        self,
        base_urls: Sequence[str],
        headers: Mapping[str, str],
        interval_s: float = 0.2,
        poll_interval_s: float = 0.02,
    ) -> None:
        self._base_urls = list(base_urls)
        self._headers = dict(headers)
        self._interval_s = interval_s
        self._poll_interval_s = poll_interval_s
        self._lock = threading.Lock()
        self._stop_sending = threading.Event()
        self._stop_polling = threading.Event()
        self._waiting: dict[str, tuple[int, float]] = {}
        """Visit id to (send number, time of its 202) for visits not yet seen."""
        self._lags: dict[int, float] = {}
        self._sent = 0
        self._accepted = 0
        self._failed = 0
        self._read_ms: list[float] = []
        self._read_errors = 0
        self._threads = [
            threading.Thread(target=self._send_loop, name="probe-sender", daemon=True),
            threading.Thread(target=self._poll_loop, name="probe-poller", daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop_sending(self) -> None:
        self._stop_sending.set()

    def finish(self, timeout_s: float) -> ProbeResult:
        """Stop sending, wait up to `timeout_s` for the probe visits still unseen, and
        return the result. Visits still unseen then count as missing."""
        self._stop_sending.set()
        self._threads[0].join()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if not self._waiting:
                    break
            time.sleep(self._poll_interval_s)
        self._stop_polling.set()
        self._threads[1].join()

        with self._lock:
            return ProbeResult(
                sent=self._sent,
                accepted=self._accepted,
                failed=self._failed,
                lags_ms=[self._lags[number] for number in sorted(self._lags)],
                stats_reads=len(self._read_ms),
                stats_read_errors=self._read_errors,
                stats_read_p50_ms=statistics.median(self._read_ms) if self._read_ms else None,
            )

    def _send_loop(self) -> None:
        started = time.perf_counter()
        urls = itertools.cycle(self._base_urls)
        with httpx.Client(timeout=REQUEST_TIMEOUT_S, headers=BROWSER_HEADERS) as client:
            for number in itertools.count():
                # Sends keep a fixed schedule, so a slow 202 delays only its own probe.
                pause_s = started + number * self._interval_s - time.perf_counter()
                if self._stop_sending.wait(max(0.0, pause_s)):
                    return
                self._send_one(client, next(urls), number)

    def _send_one(self, client: httpx.Client, base_url: str, number: int) -> None:
        body = {
            "timezone": "Europe/Berlin",
            "url": f"https://example.com/probe/{number}",
            "title": "probe",
            "site": PROBE_SITE,
        }
        try:
            response = client.post(f"{base_url}/api/events", json=body)
        except httpx.TransportError:
            response = None
        accepted_at = time.perf_counter()
        with self._lock:
            self._sent += 1
            if response is not None and response.status_code == 202:
                self._accepted += 1
                self._waiting[response.json()["id"]] = (number, accepted_at)
            else:
                self._failed += 1

    def _poll_loop(self) -> None:
        urls = itertools.cycle(self._base_urls)
        params = {"site": PROBE_SITE, "limit": LATEST_VISITS_CAPACITY}
        with httpx.Client(timeout=REQUEST_TIMEOUT_S, headers=self._headers) as client:
            while not self._stop_polling.is_set():
                started = time.perf_counter()
                try:
                    response = client.get(f"{next(urls)}/api/stats", params=params)
                except httpx.TransportError:
                    response = None
                read_at = time.perf_counter()
                if response is None or response.status_code != 200:
                    with self._lock:
                        self._read_errors += 1
                else:
                    seen = {visit["id"] for visit in response.json()["latest_visits"]}
                    self._record_seen(seen, started, read_at)
                self._stop_polling.wait(self._poll_interval_s)

    def _record_seen(self, seen: set[str], started: float, read_at: float) -> None:
        with self._lock:
            self._read_ms.append((read_at - started) * 1000)
            for visit_id in seen & self._waiting.keys():
                number, accepted_at = self._waiting.pop(visit_id)
                self._lags[number] = (read_at - accepted_at) * 1000


class MetricsScraper:
    """Scrapes `GET /metrics` of each API process in turn every `interval_s` on a thread."""

    def __init__(
        self, base_urls: Sequence[str], headers: Mapping[str, str], interval_s: float = 1.0
    ) -> None:
        self._base_urls = list(base_urls)
        self._headers = dict(headers)
        self._interval_s = interval_s
        self._stopping = threading.Event()
        self.scrapes = 0
        self.failures: list[str] = []
        """The status and start of the body of each scrape that did not return 200."""
        self._thread = threading.Thread(target=self._loop, name="metrics-scraper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()

    def _loop(self) -> None:
        urls = itertools.cycle(self._base_urls)
        with httpx.Client(timeout=REQUEST_TIMEOUT_S, headers=self._headers) as client:
            while not self._stopping.wait(self._interval_s):
                self.scrapes += 1
                try:
                    response = client.get(f"{next(urls)}/metrics")
                except httpx.TransportError as error:
                    self.failures.append(f"transport error: {error}")
                    continue
                if response.status_code != 200:
                    self.failures.append(f"{response.status_code} {response.text[:80]}")
