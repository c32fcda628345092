"""Prometheus metrics: one CollectorRegistry per app, never the process-wide default.

Counters and the fetch histogram are fed by the service as runs finish; the gauges
that describe what is stored (outbox backlog, oldest pending alert, consecutive
failures) are read from the database at scrape time, so they are right even just
after a restart and cannot drift from ``noticewatch status``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from monitor.errors import StorageError
from storage.store import Store

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
FETCH_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class Metrics:
    """Every series noticewatch exports (names are listed in the README)."""

    def __init__(self, store: Store, clock: Callable[[], datetime]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.fetches = Counter(
            "noticewatch_fetches", "Source runs by outcome.", ["source", "outcome"], registry=r
        )
        self.fetch_seconds = Histogram(
            "noticewatch_fetch_duration_seconds",
            "Time to fetch, parse and store one source.",
            ["source"],
            buckets=FETCH_BUCKETS,
            registry=r,
        )
        self.items = Counter(
            "noticewatch_items",
            "Items by what a fetch found them to be: new, updated or seen before.",
            ["source", "kind"],
            registry=r,
        )
        self.matches = Counter(
            "noticewatch_matches", "New or updated items a rule matched.", ["rule"], registry=r
        )
        self.deliveries = Counter(
            "noticewatch_deliveries",
            "Delivery attempts by notifier and outcome (delivered, retry, dead).",
            ["notifier", "outcome"],
            registry=r,
        )
        self.reloads = Counter(
            "noticewatch_config_reloads",
            "Configuration reloads by outcome (applied, refused).",
            ["outcome"],
            registry=r,
        )
        self.state = StoredState(store, clock)
        r.register(self.state)

    def track_sources(self, names: Iterable[str]) -> None:
        """The sources running now (at start and after each reload): the series of a
        removed source go, so that e.g. its last failure count does not alert forever."""
        keep = frozenset(names)
        self.state.sources = keep
        per_source = (
            (self.fetches, ("source", "outcome")),
            (self.items, ("source", "kind")),
            (self.fetch_seconds, ("source",)),
        )
        for metric, labelnames in per_source:
            gone = {
                tuple(sample.labels[n] for n in labelnames)
                for family in metric.collect()
                for sample in family.samples
                if sample.labels.get("source") not in keep
            }
            for values in gone:
                metric.remove(*values)

    def observe_run(
        self, source: str, outcome: str, duration: float, new: int, updated: int, seen: int
    ) -> None:
        self.fetches.labels(source, outcome).inc()
        if outcome != "paused":  # a paused source did not fetch at all
            self.fetch_seconds.labels(source).observe(duration)
        for kind, count in (("new", new), ("updated", updated), ("seen", seen)):
            if count:
                self.items.labels(source, kind).inc(count)

    def observe_match(self, rule: str) -> None:
        self.matches.labels(rule).inc()

    def observe_deliveries(self, notifier: str, delivered: int, retried: int, dead: int) -> None:
        for outcome, count in (("delivered", delivered), ("retry", retried), ("dead", dead)):
            if count:
                self.deliveries.labels(notifier, outcome).inc(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class StoredState(Collector):
    """Gauges computed from the database at each scrape."""

    def __init__(self, store: Store, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.clock = clock
        self.sources: frozenset[str] | None = None  # None: every source with stored state

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        try:
            families = list(self._families())
            self._fill(families)
        except StorageError:
            return []  # /readyz reports the database; a scrape still gets the counters
        return families

    @staticmethod
    def _families() -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "noticewatch_outbox_pending", "Alerts waiting for delivery.", labels=["notifier"]
        )
        yield GaugeMetricFamily(
            "noticewatch_oldest_pending_alert_age_seconds",
            "Age of the oldest alert still waiting for delivery.",
            labels=["notifier"],
        )
        yield GaugeMetricFamily(
            "noticewatch_source_consecutive_failures",
            "Failed runs in a row, per source (0 after a success).",
            labels=["source"],
        )

    def _fill(self, families: list[GaugeMetricFamily]) -> None:
        pending, oldest, failures = families
        now = self.clock()
        for (notifier, status), count in sorted(self.store.alert_counts().items()):
            if status == "pending":
                pending.add_metric([notifier], count)
        for notifier, created in sorted(self.store.oldest_pending().items()):
            oldest.add_metric([notifier], max(0.0, (now - created).total_seconds()))
        for state in self.store.source_states():
            if self.sources is not None and state.name not in self.sources:
                continue  # removed from the config: no longer fetched, nothing to alert on
            failures.add_metric([state.name], state.consecutive_failures)
