"""Amendments: a changed notice is an update of the same item, and ``alert.updated`` tells
the notifiers that heard of it what changed (unless the rule says ``on_update = false``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session, col, select

from monitor.alerts import (
    EVENT_UPDATED,
    NotifierRoute,
    changed_fields,
    plan_updates,
    update_id,
)
from monitor.config import parse_config
from monitor.identity import content_hash
from monitor.matching import Matcher, compile_rule
from monitor.models import Item
from monitor.pipeline import PipelineContext, run_source
from storage.db import create_db_engine
from storage.store import Store
from storage.tables import AlertRow
from tests.conftest import FIXED_NOW
from tests.support.fakes import Clock, FakeSource, source_config

pytestmark = pytest.mark.anyio

RULES = [
    compile_rule("sole-source", '"sole source"'),
    compile_rule("quiet", "clearview"),
]
ROUTES = (NotifierRoute("newsroom", None), NotifierRoute("legal", frozenset({"quiet"})))


def notice(title: str, **fields: Any) -> Item:
    return Item(
        source="sam-dhs",
        source_type="fake",
        key="id:n1",
        content_hash=content_hash(title, "", "", None, fields),
        title=title,
        fields=dict(fields),
    )


@dataclass
class Harness:
    ctx: PipelineContext
    store: Store
    source: FakeSource

    async def serve(self, *items: Item, body: bytes) -> tuple[int, int]:
        self.source.items, self.source.body = list(items), body
        run = await run_source(self.source, self.ctx)
        assert not run.failed, run.error
        return run.counts.updated, run.counts.alerts

    def alerts(self) -> list[AlertRow]:
        with Session(self.store.engine) as s:
            query = select(AlertRow).order_by(col(AlertRow.created_at), col(AlertRow.event_type))
            return list(s.exec(query).all())


@pytest.fixture
async def harness(db_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    store = Store(create_db_engine(db_url))
    async with httpx.AsyncClient() as http:
        ctx = PipelineContext(
            store, http, Matcher(RULES), ROUTES, Clock(FIXED_NOW), baseline=False,
            quiet_on_update=frozenset({"quiet"}),
        )  # fmt: skip
        yield Harness(ctx, store, FakeSource(source_config("sam-dhs")))
    store.engine.dispose()


async def test_an_amended_notice_that_still_matches_sends_alert_updated(harness: Harness) -> None:
    first = notice("Intent to award sole source", deadline="2026-12-01", awardee=None)
    assert await harness.serve(first, body=b"v1") == (0, 1)
    amended = notice("Intent to award sole source", deadline="2026-12-15", awardee="ACME")
    assert await harness.serve(amended, body=b"v2") == (1, 1)
    created, updated = harness.alerts()
    assert created.event_type == "alert.created" and updated.event_type == EVENT_UPDATED
    assert updated.notifier == "newsroom" and updated.item_id == created.item_id
    assert updated.data["changes"] == {
        "deadline": {"old": "2026-12-01", "new": "2026-12-15"},
        "awardee": {"old": None, "new": "ACME"},
    }
    assert updated.id == update_id("sam-dhs", "id:n1", "newsroom", 2)  # version 2 of the item
    assert updated.data["alert_id"] == updated.id and updated.id != created.id


async def test_an_unchanged_notice_served_a_thousand_times_alerts_once(harness: Harness) -> None:
    item = notice("Intent to award sole source", deadline="2026-12-01")
    for n in range(1000):  # a new body each time: the server re-serialises, nothing changed
        await harness.serve(item, body=f"page {n}".encode())
    (alert,) = harness.alerts()
    assert alert.event_type == "alert.created"


async def test_on_update_false_keeps_updates_quiet(harness: Harness) -> None:
    await harness.serve(notice("Clearview contract", deadline="1"), body=b"v1")
    assert await harness.serve(notice("Clearview contract", deadline="2"), body=b"v2") == (1, 0)
    assert sorted(a.notifier for a in harness.alerts()) == ["legal", "newsroom"]


async def test_a_notice_that_starts_matching_on_amendment_is_created(harness: Harness) -> None:
    assert await harness.serve(notice("Market research"), body=b"v1") == (0, 0)
    assert await harness.serve(notice("Market research: sole source"), body=b"v2") == (1, 1)
    (alert,) = harness.alerts()
    assert alert.event_type == "alert.created"


async def test_a_notice_that_stops_matching_sends_nothing(harness: Harness) -> None:
    await harness.serve(notice("Intent to award sole source"), body=b"v1")
    assert await harness.serve(notice("Cancelled"), body=b"v2") == (1, 0)


async def test_each_amendment_is_its_own_update(harness: Harness) -> None:
    for n, deadline in enumerate(["1", "2", "3", "2"]):
        await harness.serve(notice("sole source", deadline=deadline), body=str(n).encode())
    alerts = harness.alerts()
    events = [a.event_type for a in alerts]
    # back to an earlier version is news too: the reader was last told "3"
    assert events == ["alert.created", EVENT_UPDATED, EVENT_UPDATED, EVENT_UPDATED]
    assert alerts[-1].data["changes"] == {"deadline": {"old": "3", "new": "2"}}
    assert len({a.id for a in alerts}) == 4


def test_changed_fields_ignores_fields_the_new_version_lacks() -> None:
    before = notice("t", deadline="1", description="long text")
    after = notice("t", deadline="2")
    assert changed_fields(before, after) == {"deadline": {"old": "1", "new": "2"}}


def test_plan_updates_tells_what_changed_to_those_told_before() -> None:
    matcher = Matcher(RULES)
    before, after = notice("sole source", d="1"), notice("sole source", d="2")
    routes = (*ROUTES, NotifierRoute("late", None))  # added to the config after v1
    drafts = plan_updates(after, before, matcher.match(after), routes, frozenset({"newsroom"}))
    events = [(d.notifier, d.event_type) for d in drafts]
    assert events == [("newsroom", EVENT_UPDATED), ("late", "alert.created")]
    # "legal" listens to a rule this notice does not match: it hears nothing


async def test_an_amended_baseline_item_is_news(db_url: str, tmp_path: Path) -> None:
    store = Store(create_db_engine(db_url))
    async with httpx.AsyncClient() as http:
        ctx = PipelineContext(store, http, Matcher(RULES), ROUTES, Clock(FIXED_NOW))
        harness = Harness(ctx, store, FakeSource(source_config("sam-dhs")))
        assert await harness.serve(notice("sole source", d="1"), body=b"v1") == (0, 0)  # baseline
        assert await harness.serve(notice("sole source", d="2"), body=b"v2") == (1, 1)
    (alert,) = harness.alerts()
    assert alert.event_type == "alert.created"  # nobody was told about v1
    store.engine.dispose()


def test_on_update_is_a_rule_key(tmp_path: Path) -> None:
    raw = {
        "sources": [{"name": "s", "type": "rss", "url": "https://x.example/f", "every": "1h"}],
        "rules": [
            {"name": "a", "query": "x", "on_update": False},
            {"name": "b", "query": "y"},
        ],
    }
    config = parse_config(raw, {}, path=tmp_path / "sources.toml")
    assert config.quiet_on_update == frozenset({"a"})
