"""System messages through the outbox: source.failing / source.recovered / notifier.disabled."""

from __future__ import annotations

import random
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select

from monitor.alerts import NotifierRoute
from monitor.config import parse_config
from monitor.delivery import Deliverer, RetryPolicy
from monitor.errors import ConfigError
from monitor.matching import Matcher, compile_rule
from monitor.pipeline import PipelineContext, run_source
from monitor.system import HealthPolicy
from notifiers.base import DeliveryResult, Outcome
from storage.db import create_db_engine
from storage.store import Store
from storage.tables import AlertRow
from tests.conftest import FIXED_NOW
from tests.support.fakes import (
    Clock,
    FakeNotifier,
    FakeSource,
    make_item,
    notifier_config,
    source_config,
)

pytestmark = pytest.mark.anyio

OK = DeliveryResult(Outcome.DELIVERED, status_code=200)
DOWN = DeliveryResult(Outcome.RETRY, error="connection refused")
ROUTES = (
    NotifierRoute("ops", frozenset({"source_health"})),
    NotifierRoute("pager", frozenset({"source_health", "cv"})),
    NotifierRoute("news", None),  # every rule, but not subscribed to health
)


@dataclass
class World:
    store: Store
    clock: Clock
    http: httpx.AsyncClient
    source: FakeSource
    ctx: PipelineContext

    def messages(self, notifier: str | None = None) -> list[AlertRow]:
        with Session(self.store.engine) as s:
            query = select(AlertRow).where(AlertRow.item_id == None)  # noqa: E711
            rows = [r for r in s.exec(query).all() if notifier in (None, r.notifier)]
        return sorted(rows, key=lambda r: (r.created_at, r.notifier))

    async def poll(self, times: int = 1) -> None:
        for _ in range(times):
            await run_source(self.source, self.ctx)
            self.clock.advance(timedelta(minutes=15))


@pytest.fixture
async def world(db_url: str, tmp_path: Path) -> AsyncIterator[World]:
    store = Store(create_db_engine(db_url))
    clock = Clock(FIXED_NOW)
    async with httpx.AsyncClient() as http:
        matcher = Matcher([compile_rule("cv", "clearview")])
        ctx = PipelineContext(
            store, http, matcher, ROUTES, clock, baseline=False, health=HealthPolicy(ROUTES, 3)
        )
        source = FakeSource(source_config("ap-nl"), items=[make_item("ap-nl", "k1", "Clearview")])
        yield World(store, clock, http, source, ctx)
    store.engine.dispose()


async def test_one_failing_message_after_three_failures_never_one_per_poll(world: World) -> None:
    world.source.fail = "HTTP 503 Service Unavailable"
    await world.poll(2)
    assert world.messages() == []
    await world.poll(1)
    failing = world.messages()
    assert [(m.notifier, m.event_type) for m in failing] == [
        ("ops", "source.failing"),
        ("pager", "source.failing"),
    ]
    data = failing[0].data
    assert data["source"] == "ap-nl" and data["consecutive_failures"] == 3
    assert data["rules"] == ["source_health"] and "503" in data["last_error"]
    assert data["alert_id"] == failing[0].id
    await world.poll(10)
    assert len(world.messages()) == 2  # still failing: nothing more


async def test_one_recovered_message_when_it_works_again(world: World) -> None:
    world.source.fail = "timed out"
    await world.poll(4)
    world.source.fail = None
    await world.poll(3)
    recovered = [m for m in world.messages() if m.event_type == "source.recovered"]
    assert [m.notifier for m in recovered] == ["ops", "pager"]
    assert recovered[0].data["consecutive_failures"] == 4
    assert recovered[0].data["recovered_at"] == "2026-11-22T11:00:00Z"
    # A second episode gets its own messages, with new ids.
    world.source.fail = "timed out"
    await world.poll(3)
    failing = [m for m in world.messages() if m.event_type == "source.failing"]
    assert len(failing) == 4 and len({m.id for m in failing}) == 4


async def test_a_not_modified_fetch_also_counts_as_recovery(world: World) -> None:
    await world.poll(1)  # stores the body hash
    world.source.fail = "boom"
    await world.poll(3)
    world.source.fail = None  # same body again: "unchanged", no parse
    await world.poll(1)
    assert [m.event_type for m in world.messages("ops")] == ["source.failing", "source.recovered"]


async def test_recovery_before_the_threshold_sends_nothing(world: World) -> None:
    world.source.fail = "boom"
    await world.poll(2)
    world.source.fail = None
    await world.poll(1)
    world.source.fail = "boom"
    await world.poll(2)
    assert world.messages() == []


async def test_health_messages_are_delivered_like_alerts(world: World) -> None:
    world.source.fail = "boom"
    await world.poll(3)
    notifiers = {n: FakeNotifier(notifier_config(n)) for n in ("ops", "pager", "news")}
    deliverer = Deliverer(
        world.store, notifiers, world.http, world.clock, RetryPolicy(), random.Random(1)
    )
    await deliverer.deliver_all()
    (delivery,) = notifiers["ops"].received
    assert delivery.event_type == "source.failing" and delivery.data["source"] == "ap-nl"
    assert notifiers["news"].received == []


async def test_failing_for_five_days_disables_and_tells_the_other_subscribers(
    world: World,
) -> None:
    await world.poll(1)  # one alert for pager and news
    notifiers = {n: FakeNotifier(notifier_config(n)) for n in ("ops", "pager", "news")}
    notifiers["pager"].script = lambda d: DOWN
    deliverer = Deliverer(
        world.store, notifiers, world.http, world.clock,
        RetryPolicy(max_attempts=100, cap=timedelta(hours=12)), random.Random(1),
        health=HealthPolicy(ROUTES, 3), disable_after=timedelta(days=5),
    )  # fmt: skip
    while not world.store.disabled_notifiers():
        await deliverer.deliver_all()
        due = world.store.next_due("pager")
        assert due is not None
        world.clock.now = max(due, world.clock.now)
    assert world.clock.now - FIXED_NOW >= timedelta(days=5)
    assert world.clock.now - FIXED_NOW < timedelta(days=5, hours=13)
    assert (
        "failing continuously since 2026-11-22 10:15Z" in world.store.disabled_notifiers()["pager"]
    )
    [disabled] = world.messages()
    assert disabled.notifier == "ops" and disabled.event_type == "notifier.disabled"
    assert disabled.data["notifier"] == "pager"
    await deliverer.deliver_all()
    assert [d.event_type for d in notifiers["ops"].received] == ["notifier.disabled"]
    # Disabled: no more attempts, nothing lost; enable turns it back on.
    attempts = len(notifiers["pager"].received)
    world.clock.advance(timedelta(days=1))
    await deliverer.deliver_due("pager")
    assert len(notifiers["pager"].received) == attempts
    notifiers["pager"].script = lambda d: OK
    assert world.store.enable_notifier("pager", world.clock())
    assert (await deliverer.deliver_due("pager")).delivered == 1


async def test_a_success_resets_the_five_day_clock(world: World) -> None:
    notifiers = {n: FakeNotifier(notifier_config(n)) for n in ("ops", "pager", "news")}
    results = iter([DOWN] * 3 + [OK] + [DOWN] * 100)
    notifiers["pager"].script = lambda d: next(results)
    deliverer = Deliverer(
        world.store, notifiers, world.http, world.clock,
        RetryPolicy(max_attempts=100, first=timedelta(days=1), cap=timedelta(days=1), jitter=0),
        random.Random(1), disable_after=timedelta(days=5),
    )  # fmt: skip
    for i in range(6):
        world.source.items = [make_item("ap-nl", f"k{i}", "Clearview")]
        await world.poll(1)
        await deliverer.deliver_due("pager")
        world.clock.advance(timedelta(days=1))
    assert world.store.disabled_notifiers() == {}  # 3 days down, 1 ok, 2 days down


def health_config(extra: str) -> dict[str, object]:
    return tomllib.loads(
        """
        [[sources]]
        name = "a"
        type = "rss"
        url = "https://example.org/feed"
        every = "15m"
        [[rules]]
        name = "cv"
        query = "clearview"
        [[notifiers]]
        name = "ops"
        type = "webhook"
        url = "https://hooks.example.org/x"
        secret = "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="
        rules = ["source_health", "cv"]
        """
        + extra
    )


def test_source_health_needs_no_rule_entry() -> None:
    config = parse_config(health_config(""), {}, path=Path("x.toml"))
    assert config.notifiers[0].rules == ["source_health", "cv"]
    assert config.monitor.failing_after == 3


def test_source_health_is_reserved_as_a_rule_name() -> None:
    extra = '[[rules]]\nname = "source_health"\nquery = "x"\n'
    with pytest.raises(ConfigError) as e:
        parse_config(health_config(extra), {}, path=Path("x.toml"))
    assert any("'source_health' is reserved" in p for p in e.value.problems)


@pytest.mark.parametrize(
    ("monitor", "message"),
    [
        ("failing_after = 0", "monitor: failing_after: Input should be greater than or equal to 1"),
        ('disable_after = "5 days"', "monitor: disable_after:"),
        ('timezone = "Mars/Olympus"', "'Mars/Olympus' is not a known time zone"),
    ],
)
def test_bad_monitor_health_keys_are_named(monitor: str, message: str) -> None:
    raw = health_config("")
    raw["monitor"] = tomllib.loads(monitor)
    with pytest.raises(ConfigError) as e:
        parse_config(raw, {}, path=Path("x.toml"))
    assert any(message in p for p in e.value.problems), e.value.problems


async def test_a_gone_endpoint_announces_itself_disabled_to_the_others(world: World) -> None:
    await world.poll(1)
    notifiers = {n: FakeNotifier(notifier_config(n)) for n in ("ops", "pager", "news")}
    notifiers["pager"].script = lambda d: DeliveryResult(Outcome.GONE, status_code=410)
    deliverer = Deliverer(
        world.store, notifiers, world.http, world.clock, RetryPolicy(), random.Random(1),
        health=HealthPolicy(ROUTES, 3),
    )  # fmt: skip
    await deliverer.deliver_due("pager")
    await deliverer.deliver_due("ops")
    [message] = notifiers["ops"].received
    assert message.event_type == "notifier.disabled"
    assert "HTTP 410 Gone" in message.data["reason"]
    assert message.data["hint"] == "fix the endpoint, then run: noticewatch enable pager"


async def test_editing_a_disabled_notifier_restarts_its_five_day_clock(world: World) -> None:
    """The README: editing its config turns it back on, like ``enable`` does."""
    await world.poll(1)
    pager = FakeNotifier(notifier_config("pager"), script=lambda d: DOWN)
    deliverer = Deliverer(
        world.store, {"pager": pager}, world.http, world.clock,
        RetryPolicy(max_attempts=100, cap=timedelta(hours=12), jitter=0), random.Random(1),
        health=HealthPolicy(ROUTES, 3), disable_after=timedelta(days=5),
    )  # fmt: skip
    while not world.store.disabled_notifiers():
        await deliverer.deliver_all()
        world.clock.now = max(world.store.next_due("pager") or world.clock.now, world.clock.now)
    world.clock.advance(timedelta(hours=1))
    # The user fixes the endpoint in sources.toml; it is still down for a moment.
    edited = FakeNotifier(notifier_config("pager", ["cv", "source_health"]), script=lambda d: DOWN)
    deliverer.notifiers = {"pager": edited}
    counts = await deliverer.deliver_due("pager")
    assert len(edited.received) == 1, "the edit re-enables it and held alerts are due at once"
    assert counts.retried == 1
    assert world.store.disabled_notifiers() == {}, "one failure after an edit is not 5 days"


async def test_one_failure_after_a_quiet_week_does_not_disable(world: World) -> None:
    """Failing continuously means every attempt failed *and* attempts kept coming.

    Three days down until the alert is a dead letter, then nothing to send for a week:
    the 5-day clock must not still run from the first failure, or the next alert's first
    hiccup would disable the notifier on the spot.
    """
    await world.poll(1)
    pager = FakeNotifier(notifier_config("pager"), script=lambda d: DOWN)
    deliverer = Deliverer(
        world.store, {"pager": pager}, world.http, world.clock,
        RetryPolicy(max_attempts=6, first=timedelta(hours=12), factor=1, jitter=0),
        random.Random(1), health=HealthPolicy(ROUTES, 3), disable_after=timedelta(days=5),
    )  # fmt: skip
    while (due := world.store.next_due("pager")) is not None:
        world.clock.now = max(due, world.clock.now)
        await deliverer.deliver_all()
    assert world.store.deliveries(dead=True, notifier="pager")  # ~2.5 days of failures
    world.clock.advance(timedelta(days=7))
    world.source.items = [make_item("ap-nl", "k2", "Clearview again")]
    world.source.body = b"v2"
    await world.poll(1)
    counts = await deliverer.deliver_due("pager")
    assert len(pager.received) == 7 and counts.retried == 1
    assert world.store.disabled_notifiers() == {}
