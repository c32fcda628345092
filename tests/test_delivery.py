"""The delivery worker with a fixed clock: backoff, Retry-After, dead letters, 410, isolation."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select

from monitor.alerts import NotifierRoute
from monitor.delivery import Deliverer, RetryPolicy
from monitor.matching import Matcher, compile_rule
from monitor.pipeline import PipelineContext, run_source
from notifiers.base import Delivery, DeliveryResult, Outcome
from storage.db import create_db_engine
from storage.store import Store
from storage.tables import AlertRow, DeliveryAttempt
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
DOWN = DeliveryResult(Outcome.RETRY, error="could not connect: connection refused")


@dataclass
class World:
    store: Store
    clock: Clock
    http: httpx.AsyncClient
    notifiers: dict[str, FakeNotifier]

    def deliverer(self, policy: RetryPolicy | None = None) -> Deliverer:
        return Deliverer(
            self.store, self.notifiers, self.http, self.clock, policy or RetryPolicy(),
            random.Random(7),
        )  # fmt: skip

    async def queue(self, count: int) -> None:
        """Put ``count`` matching items through the real pipeline into the outbox."""
        routes = tuple(NotifierRoute(n, None) for n in self.notifiers)
        matcher = Matcher([compile_rule("cv", "clearview")])
        ctx = PipelineContext(self.store, self.http, matcher, routes, self.clock, baseline=False)
        items = [make_item("ap-nl", f"k{i}", f"Clearview story {i}") for i in range(count)]
        await run_source(FakeSource(source_config("ap-nl"), items=items), ctx)

    def alerts(self, notifier: str) -> list[AlertRow]:
        with Session(self.store.engine) as s:
            query = select(AlertRow).where(AlertRow.notifier == notifier)
            return list(s.exec(query).all())


@pytest.fixture
async def world(db_url: str, tmp_path: Path) -> AsyncIterator[World]:
    store = Store(create_db_engine(db_url))
    async with httpx.AsyncClient() as http:
        notifiers = {n: FakeNotifier(notifier_config(n)) for n in ("hook", "other")}
        yield World(store, Clock(FIXED_NOW), http, notifiers)
    store.engine.dispose()


def scripted(*results: DeliveryResult) -> Callable[[Delivery], DeliveryResult]:
    queue = list(results)
    return lambda d: queue.pop(0) if queue else OK


async def test_delivers_each_alert_once(world: World) -> None:
    await world.queue(3)
    rounds = await world.deliverer().deliver_all()
    assert rounds["hook"].delivered == 3 and rounds["other"].delivered == 3
    assert (await world.deliverer().deliver_all())["hook"].delivered == 0
    ids = [d.delivery_id for d in world.notifiers["hook"].received]
    assert len(set(ids)) == 3
    assert all(a.status == "delivered" and a.attempts == 1 for a in world.alerts("hook"))


async def test_receiver_down_for_hours_gets_everything_with_stable_ids(world: World) -> None:
    await world.queue(5)
    hook = world.notifiers["hook"]
    hook.script = scripted(DOWN, DOWN, DOWN, DOWN)
    deliverer = world.deliverer()
    for _ in range(4):
        counts = await deliverer.deliver_due("hook")
        assert counts.delivered == 0 and counts.retried == 1
        # Only the probe alert was tried; the rest were held, not hammered.
        next_due = world.store.next_due("hook")
        assert next_due is not None and next_due > world.clock()
        world.clock.now = next_due
    counts = await deliverer.deliver_due("hook")
    assert counts.delivered == 5
    delivered = [d.delivery_id for d in hook.received if d is not None]
    assert len(delivered) == 9  # 4 failed tries of the probe, then 5 deliveries
    assert len(set(delivered)) == 5
    probe = hook.received[0].delivery_id
    assert [d.delivery_id for d in hook.received[:5]] == [probe] * 5
    assert [d.attempt for d in hook.received[:5]] == [1, 2, 3, 4, 5]
    assert world.clock() - FIXED_NOW > timedelta(minutes=15)  # 30s + 1.5m + 4.5m + 13.5m, jittered


async def test_backoff_schedule_spans_about_three_days() -> None:
    policy = RetryPolicy(jitter=0)
    waits = [policy.delay(n, random.Random(1)) for n in range(1, policy.max_attempts)]
    assert waits[0] == timedelta(seconds=30)
    assert all(a < b for a, b in itertools.pairwise(waits) if b < policy.cap)
    total = sum(waits, timedelta())
    assert timedelta(days=2) < total < timedelta(days=4), total


async def test_jitter_stays_within_ten_percent() -> None:
    policy = RetryPolicy()
    rng = random.Random(3)
    for attempt in range(1, 9):
        plain = RetryPolicy(jitter=0).delay(attempt, rng)
        wait = policy.delay(attempt, rng)
        assert 0.9 * plain <= wait <= 1.1 * plain


async def test_dead_after_max_attempts(world: World) -> None:
    await world.queue(1)
    world.notifiers["hook"].script = lambda d: DOWN
    deliverer = world.deliverer(RetryPolicy(max_attempts=3))
    for _ in range(3):
        await deliverer.deliver_due("hook")
        due = world.store.next_due("hook")
        if due:
            world.clock.now = due
    (alert,) = world.alerts("hook")
    assert alert.status == "dead" and alert.attempts == 3
    assert "connection refused" in (alert.last_error or "")
    with Session(world.store.engine) as s:
        attempts = s.exec(select(DeliveryAttempt).where(DeliveryAttempt.alert_id == alert.id))
        assert [a.attempt for a in attempts] == [1, 2, 3]


async def test_retry_after_is_honoured(world: World) -> None:
    await world.queue(1)
    world.notifiers["hook"].script = scripted(
        DeliveryResult(Outcome.RETRY, status_code=429, retry_after=timedelta(minutes=7))
    )
    await world.deliverer().deliver_due("hook")
    assert world.store.next_due("hook") == FIXED_NOW + timedelta(minutes=7)
    world.clock.advance(timedelta(minutes=6))
    assert (await world.deliverer().deliver_due("hook")).delivered == 0
    world.clock.advance(timedelta(minutes=1))
    assert (await world.deliverer().deliver_due("hook")).delivered == 1


async def test_gone_disables_the_endpoint_until_its_config_changes(world: World) -> None:
    await world.queue(2)
    hook = world.notifiers["hook"]
    hook.script = lambda d: DeliveryResult(Outcome.GONE, status_code=410)
    await world.deliverer().deliver_due("hook")
    assert "410" in world.store.disabled_notifiers()["hook"]
    hook.script = lambda d: OK
    assert (await world.deliverer().deliver_due("hook")).delivered == 0  # still disabled
    assert all(a.status == "pending" for a in world.alerts("hook"))  # nothing lost
    hook.config = notifier_config("hook", rules=["cv"])  # the user edits the notifier
    assert (await world.deliverer().deliver_due("hook")).delivered == 2
    assert "hook" not in world.store.disabled_notifiers()


async def test_a_slow_endpoint_does_not_delay_the_others(world: World) -> None:
    await world.queue(2)
    release = asyncio.Event()
    slow = world.notifiers["hook"]
    fast = world.notifiers["other"]

    async def stuck(client: object, delivery: Delivery, now: object) -> DeliveryResult:
        slow.received.append(delivery)
        await release.wait()
        return OK

    slow.send = stuck  # type: ignore[method-assign]
    deliverer = world.deliverer()
    slow_round = asyncio.create_task(deliverer.deliver_due("hook"))
    fast_round = await deliverer.deliver_due("other")
    assert fast_round.delivered == 2 and len(fast.received) == 2
    assert not slow_round.done()
    release.set()
    assert (await slow_round).delivered == 2


async def test_stop_lets_the_request_in_flight_finish(world: World) -> None:
    await world.queue(3)
    stop = asyncio.Event()
    hook = world.notifiers["hook"]

    def stop_after_first(delivery: Delivery) -> DeliveryResult:
        stop.set()
        return OK

    hook.script = stop_after_first
    counts = await world.deliverer().deliver_due("hook", stop)
    assert counts.delivered == 1
    statuses = sorted(a.status for a in world.alerts("hook"))
    assert statuses == ["delivered", "pending", "pending"]


async def test_a_notifier_bug_costs_a_retry_not_the_alert(world: World) -> None:
    await world.queue(1)

    def broken(delivery: Delivery) -> DeliveryResult:
        raise KeyError("bug")

    world.notifiers["hook"].script = broken
    counts = await world.deliverer().deliver_due("hook")
    assert counts.retried == 1
    (alert,) = world.alerts("hook")
    assert alert.status == "pending" and alert.last_error == "internal error: KeyError"
