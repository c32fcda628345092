"""A running Service without sockets: real config files, an httpx.MockTransport for the
feeds and webhooks, and the test clock. Shared by the reload and HTTP API tests."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import update
from sqlmodel import Session, col

from monitor.app import open_app
from monitor.config import load_config
from monitor.reload import ConfigWatcher
from monitor.scheduler import Service
from storage.tables import SourceLease
from tests.conftest import FIXED_NOW
from tests.support.fakes import Clock
from tests.support.webhook_receiver import WEBHOOK_SECRET

ENV = {"SECRET": WEBHOOK_SECRET}
FEED = "https://feeds.example.org/{name}.xml"
HOOK = "https://hooks.example.org/newsroom"


def source_toml(name: str, every: str = "15m") -> str:
    url = FEED.format(name=name)
    return f'[[sources]]\nname = "{name}"\ntype = "rss"\nurl = "{url}"\nevery = "{every}"\n'


def config_text(db: Path, *parts: str, rules: str = "clearview") -> str:
    head = textwrap.dedent(
        f"""
        [monitor]
        database = "sqlite:///{db}"
        http_port = 0

        [[rules]]
        name = "cv"
        query = "{rules}"

        [[notifiers]]
        name = "newsroom"
        type = "webhook"
        url = "{HOOK}"
        secret = "${{SECRET}}"
        """
    )
    return head + "\n".join(parts)


@dataclass
class Web:
    """What the mock network serves and what it was sent."""

    feeds: dict[str, bytes] = field(default_factory=dict)
    sent: list[httpx.Request] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)
    status: int = 200

    def handler(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        if request.method == "GET":
            self.fetched.append(url)
            body = self.feeds.get(url)
            return httpx.Response(200, content=body) if body else httpx.Response(404)
        self.sent.append(request)
        return httpx.Response(self.status)


async def fire(service: Service, name: str) -> None:
    """The source's timer fires in a new interval, without moving the clock: a source
    is fetched once per interval (``storage/leases.py``), so its recorded due time is
    cleared first, as if the interval had passed."""
    with Session(service.app.store.engine) as s:
        s.execute(update(SourceLease).where(col(SourceLease.name) == name).values(next_due_at=None))
        s.commit()
    await service._source(name)


@asynccontextmanager
async def running(
    path: Path,
    web: Web,
    clock: Clock | None = None,
    on_secrets: Callable[[list[str]], None] | None = None,
    own_secrets: Sequence[str] = (),
) -> AsyncIterator[Service]:
    """A Service on ``path`` with a paused scheduler: jobs exist, tests run them by hand."""
    clock = clock or Clock(FIXED_NOW)
    config = load_config(path, ENV)
    async with open_app(config, clock=clock, transport=httpx.MockTransport(web.handler)) as app:
        service = Service(app, ConfigWatcher(path, ENV, clock), on_secrets, own_secrets)
        service._schedule()
        service.scheduler.start(paused=True)
        try:
            yield service
        finally:
            service.scheduler.shutdown(wait=False)
