"""A SAM.gov source waiting for its quota: paused, said so, never polled early, and not a
failure (no ``source.failing`` for a source that is merely waiting for tomorrow's quota)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlmodel import Session, select

from monitor.alerts import NotifierRoute
from monitor.matching import Matcher, compile_rule
from monitor.pipeline import PipelineContext, SourceRun, run_source
from monitor.quota import key_id, utc_day
from monitor.sources import SOURCE_TYPES
from monitor.sources.base import FetchLimits
from monitor.sources.sam import SamSource, SamSourceConfig
from monitor.system import HealthPolicy
from storage.db import create_db_engine
from storage.requests import RequestCounter
from storage.store import Store
from storage.tables import AlertRow, SourceState
from tests.conftest import FIXED_NOW
from tests.support.fakes import Clock
from tests.support.sam_server import throttle_body

pytestmark = pytest.mark.anyio

KEY = "SAMKEY-pause-0123456789"
ROUTES = (NotifierRoute("ops", frozenset({"source_health"})),)
THROTTLE = json.dumps(
    {"code": "900804", "message": "Message throttled out",
     "nextAccessTime": "2026-Nov-23 00:00:00+0000 UTC"}  # the next UTC midnight after FIXED_NOW
).encode()  # fmt: skip
MIDNIGHT = datetime(2026, 11, 23, tzinfo=UTC)


def notices(count: int) -> list[dict[str, str]]:
    return [{"noticeId": f"n{i}", "title": f"Notice {i}", "type": "Special Notice"}
            for i in range(count)]  # fmt: skip


@dataclass
class World:
    store: Store
    clock: Clock
    source: SamSource
    ctx: PipelineContext
    answer: Callable[[httpx.Request], httpx.Response]
    requests: list[dict[str, str]] = field(default_factory=list)

    def at(self, moment: datetime) -> None:
        self.clock.advance(moment - self.clock())

    async def poll(self) -> SourceRun:
        return await run_source(self.source, self.ctx)

    def state(self) -> SourceState:
        with Session(self.store.engine) as s:
            row = s.get(SourceState, "sam-dhs")
        assert row is not None
        return row

    def health_messages(self) -> list[str]:
        with Session(self.store.engine) as s:
            rows = s.exec(select(AlertRow).where(AlertRow.item_id == None)).all()  # noqa: E711
        return [r.event_type for r in rows]


def paging(records: list[dict[str, str]]) -> Callable[[httpx.Request], httpx.Response]:
    def answer(request: httpx.Request) -> httpx.Response:
        q = {k: v[-1] for k, v in parse_qs(urlsplit(str(request.url)).query).items()}
        offset, limit = int(q["offset"]), int(q["limit"])
        body = {"totalRecords": len(records), "opportunitiesData": records[offset : offset + limit]}
        return httpx.Response(200, json=body)

    return answer


@pytest.fixture
async def world(db_url: str, tmp_path: Path) -> AsyncIterator[World]:
    store = Store(create_db_engine(db_url))
    clock = Clock(FIXED_NOW)
    config = SamSourceConfig.model_validate(
        {"name": "sam-dhs", "type": "sam", "api_key": KEY, "every": "6h",
         "daily_quota": 3, "page_size": 1}
    )  # fmt: skip
    source = SOURCE_TYPES["sam"].build(config, FetchLimits())
    assert isinstance(source, SamSource)
    source.attach(RequestCounter(store), clock)
    world: World

    def handler(request: httpx.Request) -> httpx.Response:
        world.requests.append({k: v[-1] for k, v in parse_qs(request.url.query.decode()).items()})
        return world.answer(request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        matcher = Matcher([compile_rule("all", "notice")])
        ctx = PipelineContext(store, http, matcher, ROUTES, clock, baseline=False,
                              health=HealthPolicy(ROUTES, failing_after=2))  # fmt: skip
        world = World(store, clock, source, ctx, paging(notices(7)))
        yield world
    store.engine.dispose()


async def test_a_window_cut_short_by_the_quota_pauses_the_source_until_it_is_back(
    world: World,
) -> None:
    first = await world.poll()
    assert first.outcome == "ok" and first.counts.new == 3 and len(world.requests) == 3
    assert world.state().paused_until == MIDNIGHT
    world.clock.advance(timedelta(hours=6))  # the next scheduled poll, same UTC day
    waiting = await world.poll()
    assert waiting.outcome == "paused" and not waiting.failed
    assert len(world.requests) == 3  # nothing sent, the ledger not even asked
    world.at(MIDNIGHT + timedelta(hours=1))
    resumed = await world.poll()
    assert resumed.counts.new == 3 and [r["offset"] for r in world.requests[3:]] == ["3", "4", "5"]


async def test_sam_throttle_mid_window_is_not_retried_before_next_access_time(
    world: World,
) -> None:
    records = notices(7)

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.params["offset"] == "0":
            return paging(records)(request)
        return httpx.Response(429, content=THROTTLE)

    world.answer = answer
    assert (await world.poll()).counts.new == 1
    world.clock.advance(timedelta(hours=6))
    assert (await world.poll()).outcome == "paused"
    assert len(world.requests) == 2  # page 0, the throttled page 1; nothing after the 429


async def test_waiting_for_the_quota_is_not_a_failure(world: World) -> None:
    """Our own daily_quota and SAM.gov's 429 pause the source and say why; they do not
    count as failures, so ``source.failing`` never goes out for a source that is only
    waiting for its quota, and a source failing for real still counts."""
    world.answer = lambda request: httpx.Response(429, json=throttle_body(world.clock()))
    for day in range(4):  # throttled every day: SAM.gov keeps refusing the key's quota
        world.at(FIXED_NOW + timedelta(days=day))
        run = await world.poll()
        assert run.outcome == "paused" and not run.failed
        assert run.error is not None and "throttled this API key" in run.error
        state = world.state()
        assert state.consecutive_failures == 0 and state.failures == 0
        assert state.last_outcome == "paused" and state.paused_until is not None
        assert state.last_error is not None and "throttled" in state.last_error
    world.answer = paging(notices(7))
    world.at(FIXED_NOW + timedelta(days=5))
    ledger, day = RequestCounter(world.store), utc_day(world.clock())
    while ledger.spend_request(key_id("sam", KEY), day, 3):  # another process spent today's
        pass
    own = await world.poll()
    assert own.outcome == "paused" and own.error is not None and "daily_quota of 3" in own.error
    assert world.state().consecutive_failures == 0 and len(world.requests) == 4
    assert world.health_messages() == []
    # a real failure still counts, and two in a row is source.failing
    world.answer = lambda request: httpx.Response(503, text="down")
    world.at(FIXED_NOW + timedelta(days=9))
    for _ in range(2):
        assert (await world.poll()).failed
        world.clock.advance(timedelta(hours=6))
    assert world.state().consecutive_failures == 2
    assert world.health_messages() == ["source.failing"]
