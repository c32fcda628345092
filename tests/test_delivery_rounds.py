"""A delivery round's bookkeeping: one write per delivery, and a failing notifier's
``failing_since`` still cleared by the next success (fixed clock, fake notifier)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session

from monitor.alerts import NotifierRoute
from monitor.delivery import Deliverer, RetryPolicy
from monitor.matching import Matcher, compile_rule
from monitor.pipeline import PipelineContext, run_source
from notifiers.base import DeliveryResult, Outcome
from storage.db import create_db_engine
from storage.store import Store
from storage.tables import NotifierState
from tests.conftest import FIXED_NOW
from tests.support.fakes import Clock, FakeNotifier, FakeSource, make_item, notifier_config
from tests.support.fakes import source_config as fake_source

pytestmark = pytest.mark.anyio

OK = DeliveryResult(Outcome.DELIVERED, status_code=200)
DOWN = DeliveryResult(Outcome.RETRY, error="could not connect: connection refused")


class CountingStore(Store):
    """Counts the write transactions of a round that clear ``failing_since``."""

    cleared = 0

    def notifier_succeeded(self, name: str) -> None:
        self.cleared += 1
        super().notifier_succeeded(name)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[CountingStore]:
    store = CountingStore(create_db_engine(f"sqlite:///{tmp_path / 'nw.db'}"))
    yield store
    store.engine.dispose()


async def queue(store: Store, clock: Clock, http: httpx.AsyncClient, count: int) -> None:
    matcher = Matcher([compile_rule("cv", "clearview")])
    routes = (NotifierRoute("hook", None),)
    ctx = PipelineContext(store, http, matcher, routes, clock, baseline=False)
    items = [make_item("ap-nl", f"k{i}", f"Clearview story {i}") for i in range(count)]
    await run_source(FakeSource(fake_source("ap-nl"), items=items), ctx)


def failing_since(store: Store) -> object:
    with Session(store.engine) as s:
        row = s.get(NotifierState, "hook")
        return row.failing_since if row else None


async def test_a_round_of_successes_clears_failing_since_once_not_per_delivery(
    store: CountingStore,
) -> None:
    clock = Clock(FIXED_NOW)
    hook = FakeNotifier(notifier_config("hook"))
    async with httpx.AsyncClient() as http:
        await queue(store, clock, http, 50)
        deliverer = Deliverer(store, {"hook": hook}, http, clock, RetryPolicy(), random.Random(1))
        counts = await deliverer.deliver_due("hook")
    assert counts.delivered == 50
    assert store.cleared == 1


async def test_a_success_after_a_dead_letter_in_the_same_round_clears_failing_since(
    store: CountingStore,
) -> None:
    clock = Clock(FIXED_NOW)
    # OK, then a failure that is the alert's last attempt (dead: the round goes on),
    # then OK again: the notifier is not failing any more.
    script = iter([OK, DOWN, OK])
    hook = FakeNotifier(notifier_config("hook"), script=lambda d: next(script))
    async with httpx.AsyncClient() as http:
        await queue(store, clock, http, 3)
        policy = RetryPolicy(max_attempts=1)
        deliverer = Deliverer(store, {"hook": hook}, http, clock, policy, random.Random(1))
        counts = await deliverer.deliver_due("hook")
    assert (counts.delivered, counts.dead) == (2, 1)
    assert failing_since(store) is None
