"""Test doubles for the pipeline: a scripted source, a scripted notifier, a settable clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import ClassVar

import httpx

from monitor.config_base import NotifierConfig, SourceConfig
from monitor.errors import FetchError
from monitor.identity import content_hash
from monitor.models import Item
from monitor.sources.base import Fetched, FetchState
from notifiers.base import Delivery, DeliveryResult, Outcome


class Clock:
    """A clock tests move by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def make_item(source: str, key: str, title: str, summary: str = "", **extra: object) -> Item:
    return Item(
        source=source,
        source_type="fake",
        key=key,
        content_hash=content_hash(title, summary, "", None, {}),
        title=title,
        url=f"https://example.org/{key}",
        summary_html=summary,
        **extra,  # type: ignore[arg-type]
    )


@dataclass
class FakeSource:
    """Serves whatever ``body``/``items`` the test sets; counts fetches and parses."""

    type: ClassVar[str] = "fake"
    config: SourceConfig
    items: list[Item] = field(default_factory=list)
    body: bytes = b"v1"
    etag: str | None = None
    status: int = 200
    fail: str | None = None
    retry_after: str | None = None
    fetches: int = 0
    parses: int = 0
    seen_states: list[FetchState] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.config.name

    async def fetch(self, client: httpx.AsyncClient, state: FetchState) -> Fetched:
        self.fetches += 1
        self.seen_states.append(state)
        if self.fail:
            raise FetchError(self.name, self.fail, retry_after=self.retry_after)
        return Fetched(url="https://example.org/feed", status=self.status, body=self.body,
                       etag=self.etag)  # fmt: skip

    def parse(self, fetched: Fetched) -> list[Item]:
        self.parses += 1
        return list(self.items)


class FakeSourceConfig(SourceConfig):
    url: str = "https://example.org/feed"

    def identity(self) -> str:
        return self.url


def source_config(name: str, url: str = "https://example.org/feed") -> SourceConfig:
    return FakeSourceConfig(name=name, type="fake", every=timedelta(minutes=15), url=url)


Script = Callable[[Delivery], DeliveryResult]


@dataclass
class FakeNotifier:
    """Records deliveries; ``script`` decides each outcome (default: delivered)."""

    type: ClassVar[str] = "fake"
    config: NotifierConfig
    script: Script = field(default=lambda d: DeliveryResult(Outcome.DELIVERED, status_code=200))
    received: list[Delivery] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.config.name

    async def send(
        self, client: httpx.AsyncClient, delivery: Delivery, now: datetime
    ) -> DeliveryResult:
        self.received.append(delivery)
        return self.script(delivery)


def notifier_config(name: str, rules: list[str] | None = None) -> NotifierConfig:
    return NotifierConfig(name=name, type="fake", rules=rules)
