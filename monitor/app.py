"""The composition root: builds every part from a Config, and nothing else does.

``open_app`` opens what lives as long as the process (database, HTTP client, metrics);
``assemble`` builds what a configuration decides (sources, rules, notifiers), so that a
reload or a new API subscription builds a fresh App around the same long-lived parts.
"""

from __future__ import annotations

import logging
import os
import random
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from pydantic import SecretStr

from monitor.alerts import NotifierRoute
from monitor.config import Config
from monitor.dedupe import DedupePolicy
from monitor.delivery import Deliverer, RetryPolicy
from monitor.matching import Matcher
from monitor.metrics import Metrics
from monitor.netguard import DeliveryTransport
from monitor.parsepool import ParsePool
from monitor.pipeline import PipelineContext
from monitor.quota import Metered
from monitor.replicas import Replica
from monitor.replicas import replica_id as make_replica_id
from monitor.sources import SOURCE_TYPES
from monitor.sources.base import FetchLimits, Source
from monitor.subscriptions import notifier_config
from monitor.system import HealthPolicy
from notifiers import NOTIFIER_TYPES
from notifiers.base import Notifier
from storage.db import create_db_engine
from storage.requests import RequestCounter
from storage.store import Store
from storage.tables import Subscription

Clock = Callable[[], datetime]

log = logging.getLogger("noticewatch.app")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class App:
    config: Config
    store: Store
    http: httpx.AsyncClient
    notify_http: httpx.AsyncClient  # refuses private addresses unless a notifier allows them
    sources: dict[str, Source]
    notifiers: dict[str, Notifier]
    pipeline: PipelineContext
    deliverer: Deliverer
    clock: Clock
    metrics: Metrics
    rng: random.Random = field(default_factory=random.Random)
    subscriptions: tuple[Subscription, ...] = ()
    replica: Replica = field(default_factory=Replica)
    parser: ParsePool | None = None


def build_sources(config: Config) -> dict[str, Source]:
    limits = FetchLimits()
    return {s.name: SOURCE_TYPES[s.type].build(s, limits) for s in config.sources if s.enabled}


def dedupe_policy(config: Config) -> DedupePolicy | None:
    settings = config.monitor
    if not settings.dedupe:
        return None
    return DedupePolicy(threshold=settings.dedupe_threshold, window=settings.dedupe_window)


def build_notifiers(
    config: Config, subscriptions: Sequence[Subscription] = ()
) -> dict[str, Notifier]:
    """The config's notifiers, then the API subscriptions (built as webhook notifiers)."""
    built = {n.name: NOTIFIER_TYPES[n.type].build(n) for n in config.notifiers}
    allow = config.monitor.subscriptions_allow_private
    for sub in subscriptions:
        if sub.id in built:  # a config notifier of the same name wins
            continue
        try:
            webhook = notifier_config(sub, allow_private=allow)
        except ValueError as e:
            # E.g. a private URL accepted while subscriptions_allow_private was on: one
            # stored row must not stop the service (or a reload) from starting.
            detail = str(e).split("Value error, ", 1)[-1].splitlines()[0]
            log.error(
                "notifier=%s outcome=skipped the subscription cannot be used (%s); it gets "
                "no alerts until [monitor] subscriptions_allow_private = true is set again, "
                "or DELETE /api/subscriptions/%s",
                sub.id, detail, sub.id,
            )  # fmt: skip
            continue
        built[sub.id] = NOTIFIER_TYPES["webhook"].build(webhook)
    return built


def config_secrets(config: Config) -> list[str]:
    """Every secret value in the config, for log scrubbing."""
    found: list[str] = []
    for model in (*config.sources, *config.notifiers):
        for name in type(model).model_fields:
            value = getattr(model, name)
            if isinstance(value, SecretStr):
                found.append(value.get_secret_value())
    return found


def assemble(
    config: Config,
    *,
    store: Store,
    http: httpx.AsyncClient,
    notify_http: httpx.AsyncClient,
    clock: Clock,
    metrics: Metrics,
    rng: random.Random,
    subscriptions: Sequence[Subscription] = (),
    replica: Replica | None = None,
    parser: ParsePool | None = None,
) -> App:
    """Everything a configuration (plus the stored subscriptions) decides."""
    replica = replica or Replica()
    notifiers = build_notifiers(config, subscriptions)
    routes = tuple(
        NotifierRoute(n.config.name, None if n.config.rules is None else frozenset(n.config.rules))
        for n in notifiers.values()
    )
    health = HealthPolicy(routes, config.monitor.failing_after)
    pipeline = PipelineContext(
        store=store,
        http=http,
        matcher=Matcher(config.rules, clock=clock),
        routes=routes,
        clock=clock,
        baseline=config.monitor.baseline,
        health=health,
        quiet_on_update=config.quiet_on_update,
        dedupe=dedupe_policy(config),
        on_match=metrics.observe_match,
        parser=parser,
    )
    deliverer = Deliverer(
        store,
        notifiers,
        notify_http,
        clock,
        RetryPolicy(max_attempts=config.monitor.max_attempts),
        rng,
        health=health,
        disable_after=config.monitor.disable_after,
        zone=config.monitor.zone,
        replica=replica.id,
    )
    sources = build_sources(config)
    for source in sources.values():
        if isinstance(source, Metered):  # requests counted per key per day, in the db
            source.attach(RequestCounter(store), clock)
    metrics.track_sources(sources)
    return App(
        config=config,
        store=store,
        http=http,
        notify_http=notify_http,
        sources=sources,
        notifiers=notifiers,
        pipeline=pipeline,
        deliverer=deliverer,
        clock=clock,
        metrics=metrics,
        rng=rng,
        subscriptions=tuple(subscriptions),
        replica=replica,
        parser=parser,
    )


def reconfigure(app: App, config: Config | None = None) -> App:
    """A new App for ``config`` (default: the current one) and the stored subscriptions,
    around the same database, HTTP client and metrics."""
    return assemble(
        config or app.config,
        store=app.store,
        http=app.http,
        notify_http=app.notify_http,
        clock=app.clock,
        metrics=app.metrics,
        rng=app.rng,
        subscriptions=app.store.subscriptions(),
        replica=app.replica,
        parser=app.parser,
    )


# An idle pooled connection is dropped before 5 s: Apache's default idle timeout, and the
# test feed server's. At httpx's default (also 5 s) a fetch could reuse a connection the
# server was closing that instant, and fail with "Server disconnected without sending a
# response" (seen once in tests/test_replicas.py).
KEEPALIVE_SECONDS = 4.0


@asynccontextmanager
async def open_app(
    config: Config,
    *,
    clock: Clock = utcnow,
    transport: httpx.AsyncBaseTransport | None = None,
    rng: random.Random | None = None,
    replica_id: str | None = None,
    parse_workers: int = 0,
) -> AsyncIterator[App]:
    """Open the database and HTTP client; close them on exit.

    ``replica_id`` names this process in the leases it takes (default: one made up
    from the host name and process id, unique per process).

    ``parse_workers`` > 0 parses large bodies in that many worker processes (a ``poll``
    uses the cores the event loop does not); 0 parses in a thread, as ``run`` does: its
    polls are spread over time, and idle workers would hold memory for nothing.
    """
    replica = replica_id or make_replica_id({}, socket.gethostname(), os.getpid())
    store = Store(create_db_engine(config.monitor.database))
    http = httpx.AsyncClient(
        headers={"User-Agent": config.monitor.user_agent},
        follow_redirects=False,
        transport=transport,
        limits=httpx.Limits(keepalive_expiry=KEEPALIVE_SECONDS),
    )
    # Notifiers get their own client: its transport refuses private addresses unless a
    # notifier allows them (sources may legitimately poll an intranet feed).
    notify_http = httpx.AsyncClient(
        headers={"User-Agent": config.monitor.user_agent},
        follow_redirects=False,
        transport=transport or DeliveryTransport(),
    )
    parser = ParsePool(parse_workers)
    try:
        yield assemble(
            config,
            store=store,
            http=http,
            notify_http=notify_http,
            clock=clock,
            metrics=Metrics(store, clock),
            rng=rng or random.Random(),
            subscriptions=store.subscriptions(),
            replica=Replica(replica),
            parser=parser,
        )
    finally:
        parser.close()
        await http.aclose()
        await notify_http.aclose()
        store.engine.dispose()
