"""The composition root: builds every part from a Config, and nothing else does."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from pydantic import SecretStr

from monitor.alerts import NotifierRoute
from monitor.config import Config
from monitor.delivery import Deliverer, RetryPolicy
from monitor.matching import Matcher
from monitor.pipeline import PipelineContext
from monitor.sources import SOURCE_TYPES
from monitor.sources.base import FetchLimits, Source
from notifiers import NOTIFIER_TYPES
from notifiers.base import Notifier
from storage.db import create_db_engine
from storage.store import Store

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class App:
    config: Config
    store: Store
    http: httpx.AsyncClient
    sources: dict[str, Source]
    notifiers: dict[str, Notifier]
    pipeline: PipelineContext
    deliverer: Deliverer
    clock: Clock


def build_sources(config: Config) -> dict[str, Source]:
    limits = FetchLimits()
    return {s.name: SOURCE_TYPES[s.type].build(s, limits) for s in config.sources if s.enabled}


def build_notifiers(config: Config) -> dict[str, Notifier]:
    return {n.name: NOTIFIER_TYPES[n.type].build(n) for n in config.notifiers}


def config_secrets(config: Config) -> list[str]:
    """Every secret value in the config, for log scrubbing."""
    found: list[str] = []
    for model in (*config.sources, *config.notifiers):
        for name in type(model).model_fields:
            value = getattr(model, name)
            if isinstance(value, SecretStr):
                found.append(value.get_secret_value())
    return found


@asynccontextmanager
async def open_app(
    config: Config,
    *,
    clock: Clock = utcnow,
    transport: httpx.AsyncBaseTransport | None = None,
    rng: random.Random | None = None,
) -> AsyncIterator[App]:
    """Open the database and HTTP client; close them on exit."""
    store = Store(create_db_engine(config.monitor.database))
    notifiers = build_notifiers(config)
    http = httpx.AsyncClient(
        headers={"User-Agent": config.monitor.user_agent},
        follow_redirects=False,
        transport=transport,
    )
    try:
        routes = tuple(
            NotifierRoute(n.name, frozenset(n.rules) if n.rules is not None else None)
            for n in config.notifiers
        )
        pipeline = PipelineContext(
            store=store,
            http=http,
            matcher=Matcher(config.rules, clock=clock),
            routes=routes,
            clock=clock,
            baseline=config.monitor.baseline,
        )
        deliverer = Deliverer(
            store,
            notifiers,
            http,
            clock,
            RetryPolicy(max_attempts=config.monitor.max_attempts),
            rng or random.Random(),
        )
        yield App(
            config=config,
            store=store,
            http=http,
            sources=build_sources(config),
            notifiers=notifiers,
            pipeline=pipeline,
            deliverer=deliverer,
            clock=clock,
        )
    finally:
        await http.aclose()
        store.engine.dispose()
