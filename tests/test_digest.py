"""Digests, driven by the injected clock: schedules, grouping, retries, never twice."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlmodel import Session, select

from monitor.alerts import NotifierRoute
from monitor.config_base import NotifierConfig
from monitor.dedupe.plan import DedupePolicy
from monitor.delivery import Deliverer, RetryPolicy
from monitor.digest import MAX_DIGEST_ALERTS, Schedule, digest_id, latest_slot, parse_schedule
from monitor.matching import Matcher, compile_rule
from monitor.pipeline import PipelineContext, run_source
from monitor.system import HealthPolicy
from notifiers.base import DeliveryResult, Outcome
from notifiers.mail import EmailConfig
from notifiers.mail import build as build_email
from notifiers.webhook import WebhookConfig
from notifiers.webhook import build as build_webhook
from storage.db import create_db_engine
from storage.store import Store
from storage.tables import AlertRow
from tests.conftest import FIXED_NOW
from tests.support.fakes import Clock, FakeNotifier, FakeSource, make_item, source_config
from tests.support.smtp_server import SmtpServer
from tests.support.webhook_receiver import WebhookReceiver

AMS = ZoneInfo("Europe/Amsterdam")
DOWN = DeliveryResult(Outcome.RETRY, error="connection refused")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("immediate", Schedule()),
        ("hourly", Schedule("hourly")),
        ("daily 08:00", Schedule("daily", time(8, 0))),
        ("Daily  23:59", Schedule("daily", time(23, 59))),
    ],
)
def test_parse_schedule(text: str, expected: Schedule) -> None:
    assert parse_schedule(text) == expected


@pytest.mark.parametrize("text", ["weekly", "daily", "daily 8:00", "daily 24:00", "every 1h", ""])
def test_bad_schedules_say_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match='use "immediate", "hourly" or "daily HH:MM"'):
        parse_schedule(text)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("schedule", "now", "slot"),
    [
        ("hourly", utc(2026, 11, 22, 10, 59, 59), utc(2026, 11, 22, 10)),
        ("daily 08:00", utc(2026, 11, 22, 7, 0), utc(2026, 11, 22, 7, 0)),  # CET = UTC+1
        ("daily 08:00", utc(2026, 11, 22, 6, 59), utc(2026, 11, 21, 7, 0)),
        ("daily 08:00", utc(2026, 7, 1, 6, 30), utc(2026, 7, 1, 6, 0)),  # CEST = UTC+2
        # 02:30 does not exist on 2026-03-29 in Amsterdam (02:00 CET jumps to 03:00 CEST):
        # that day's digest goes at 03:30 CEST, 24 hours after the day before's; the day
        # is never skipped.
        ("daily 02:30", utc(2026, 3, 29, 12, 0), utc(2026, 3, 29, 1, 30)),
        ("daily 02:30", utc(2026, 3, 29, 1, 29), utc(2026, 3, 28, 1, 30)),
        ("daily 02:30", utc(2026, 3, 30, 0, 30), utc(2026, 3, 30, 0, 30)),
        # 02:30 happens twice on 2026-10-25: the first one counts, and during the
        # repeated hour the latest digest time is still today's, not yesterday's.
        ("daily 02:30", utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 0, 30)),
        ("daily 02:30", utc(2026, 10, 25, 1, 15), utc(2026, 10, 25, 0, 30)),
        ("daily 02:30", utc(2026, 10, 25, 0, 29), utc(2026, 10, 24, 0, 30)),
    ],
)
def test_latest_slot_in_the_monitor_timezone(schedule: str, now: datetime, slot: datetime) -> None:
    assert latest_slot(parse_schedule(schedule), now, AMS) == slot


@pytest.mark.parametrize(
    ("zone", "now", "slot"),
    [
        # India is UTC+05:30: the start of each local hour is half past, in UTC.
        ("Asia/Kolkata", utc(2026, 11, 22, 10, 29), utc(2026, 11, 22, 9, 30)),
        ("Asia/Kolkata", utc(2026, 11, 22, 10, 30), utc(2026, 11, 22, 10, 30)),
        ("Australia/Eucla", utc(2026, 11, 22, 10, 44), utc(2026, 11, 22, 10, 15)),  # +08:45
        ("Europe/Amsterdam", utc(2026, 10, 25, 1, 10), utc(2026, 10, 25, 1, 0)),  # repeated hour
    ],
)
def test_hourly_digests_come_at_the_start_of_each_local_hour(
    zone: str, now: datetime, slot: datetime
) -> None:
    assert latest_slot(parse_schedule("hourly"), now, ZoneInfo(zone)) == slot


@dataclass
class World:
    store: Store
    clock: Clock
    http: httpx.AsyncClient
    ctx: PipelineContext
    count: int = 0

    async def alert(self, *titles: str) -> None:
        """Queue one alert per title through the real pipeline (rule by first word)."""
        items = []
        for title in titles:
            self.count += 1
            items.append(make_item("ap-nl", f"k{self.count}", title))
        await run_source(FakeSource(source_config("ap-nl"), items=items, body=title.encode()),
                         self.ctx)  # fmt: skip

    def deliverer(self, notifiers: dict[str, Any], zone: Any = UTC) -> Deliverer:
        return Deliverer(
            self.store, notifiers, self.http, self.clock,
            RetryPolicy(jitter=0), random.Random(1), zone=zone,
        )  # fmt: skip

    def rows(self) -> list[AlertRow]:
        with Session(self.store.engine) as s:
            return list(s.exec(select(AlertRow)).all())


@pytest.fixture
async def world(db_url: str, tmp_path: Path) -> AsyncIterator[World]:
    store = Store(create_db_engine(db_url))
    clock = Clock(FIXED_NOW)
    async with httpx.AsyncClient() as http:
        matcher = Matcher([compile_rule("cv", "clearview"), compile_rule("fr", "cnil")])
        routes = (NotifierRoute("mail", None),)
        ctx = PipelineContext(store, http, matcher, routes, clock, baseline=False)
        yield World(store, clock, http, ctx)
    store.engine.dispose()


def fake(digest: str) -> FakeNotifier:
    return FakeNotifier(NotifierConfig(name="mail", type="fake", digest=digest))


@pytest.mark.anyio
async def test_hourly_digest_gathers_everything_once_grouped_newest_first(world: World) -> None:
    notifier = fake("hourly")
    deliverer = world.deliverer({"mail": notifier})
    await deliverer.deliver_all()  # the first digest time only starts the clock
    world.clock.advance(timedelta(minutes=5))
    await world.alert("Clearview one")
    world.clock.advance(timedelta(minutes=5))
    await world.alert("CNIL and Clearview", "Clearview two")
    world.clock.advance(timedelta(minutes=5))
    await world.alert("CNIL only")
    await deliverer.deliver_all()
    assert notifier.received == []  # waiting for the digest
    world.clock.advance(timedelta(minutes=45))  # 11:00
    await deliverer.deliver_all()
    [digest] = notifier.received
    assert digest.event_type == "alert.digest"
    data = digest.data
    assert data["count"] == 4
    assert data["since"] == "2026-11-22T10:00:00Z" and data["until"] == "2026-11-22T11:00:00Z"
    assert [g["rule"] for g in data["groups"]] == ["fr", "cv"]
    titles = [[a["item"]["title"] for a in g["alerts"]] for g in data["groups"]]
    assert titles[0] == ["CNIL only"]
    # Newest first; an alert matching both rules is listed once, under its first rule.
    assert set(titles[1][:2]) == {"CNIL and Clearview", "Clearview two"}
    assert titles[1][2] == "Clearview one"
    # Nothing more: not the same alerts again, and no empty digest next hour.
    world.clock.advance(timedelta(hours=1))
    await deliverer.deliver_all()
    assert len(notifier.received) == 1
    statuses = sorted(r.status for r in world.rows())
    assert statuses == ["delivered", "digested", "digested", "digested", "digested"]


@pytest.mark.anyio
async def test_a_failed_digest_is_retried_with_the_same_id_and_new_alerts_wait(
    world: World,
) -> None:
    notifier = fake("hourly")
    results = iter([DOWN, DOWN])
    notifier.script = lambda d: next(results, DeliveryResult(Outcome.DELIVERED))
    deliverer = world.deliverer({"mail": notifier})
    await deliverer.deliver_all()
    await world.alert("Clearview one")
    world.clock.advance(timedelta(hours=1))
    await deliverer.deliver_all()
    world.clock.advance(timedelta(minutes=1))
    await world.alert("Clearview two")  # after the digest was made: the next one
    due = world.store.next_due("mail")
    assert due is not None
    world.clock.now = due
    await deliverer.deliver_all()
    world.clock.now = world.store.next_due("mail") or world.clock.now
    await deliverer.deliver_all()
    ids = [d.delivery_id for d in notifier.received]
    assert len(ids) == 3 and len(set(ids)) == 1  # two failures, then delivered
    assert notifier.received[-1].data["count"] == 1
    world.clock.now = FIXED_NOW + timedelta(hours=2)
    await deliverer.deliver_all()
    assert notifier.received[-1].data["count"] == 1
    assert notifier.received[-1].data["groups"][0]["alerts"][0]["item"]["title"] == "Clearview two"
    digested = {r.digest_id for r in world.rows() if r.status == "digested"}
    assert len(digested) == 2


@pytest.mark.anyio
async def test_daily_digest_at_local_time(world: World) -> None:
    notifier = fake("daily 08:00")
    deliverer = world.deliverer({"mail": notifier}, zone=AMS)
    await deliverer.deliver_all()  # 10:00Z = 11:00 local: starts the clock at today's 08:00
    await world.alert("Clearview")
    world.clock.now = utc(2026, 11, 23, 6, 59)
    await deliverer.deliver_all()
    assert notifier.received == []
    world.clock.now = utc(2026, 11, 23, 7, 0)  # 08:00 in Amsterdam
    await deliverer.deliver_all()
    [digest] = notifier.received
    assert digest.data["until"] == "2026-11-23T07:00:00Z"


@pytest.mark.anyio
async def test_health_messages_are_not_held_for_a_digest(world: World) -> None:
    notifier = fake("daily 08:00")
    health = HealthPolicy((NotifierRoute("mail", frozenset({"source_health"})),), 1)
    ctx = PipelineContext(world.store, world.http, world.ctx.matcher, (), world.clock,
                          baseline=False, health=health)  # fmt: skip
    source = FakeSource(source_config("ap-nl"), fail="HTTP 500")
    await run_source(source, ctx)
    await world.deliverer({"mail": notifier}).deliver_all()
    assert [d.event_type for d in notifier.received] == ["source.failing"]


@pytest.mark.integration
@pytest.mark.anyio
async def test_digest_as_one_signed_webhook(
    world: World, webhook_receiver: WebhookReceiver
) -> None:
    config = WebhookConfig.model_validate(
        {"name": "mail", "type": "webhook", "url": webhook_receiver.url,
         "secret": webhook_receiver.secret, "allow_private": True, "digest": "hourly"}
    )  # fmt: skip
    deliverer = world.deliverer({"mail": build_webhook(config)})
    # The receiver checks signatures' timestamps against the real clock, so the digest
    # is sent at the real time, an hour boundary after the alerts.
    this_hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    world.clock.now = this_hour - timedelta(minutes=30)
    await deliverer.deliver_all()
    await world.alert("Clearview one", "CNIL two")
    world.clock.now = datetime.now(UTC)
    await deliverer.deliver_all()
    [request] = webhook_receiver.deliveries
    assert request.payload["type"] == "alert.digest"
    assert request.payload["data"]["count"] == 2
    assert isinstance(request.payload["data"]["groups"], list)
    assert request.webhook_id == request.payload["data"]["digest_id"]


@pytest.mark.integration
@pytest.mark.anyio
async def test_digest_as_one_email(world: World, tmp_path: Path) -> None:
    with SmtpServer(tmp_path, "starttls") as server:
        config = EmailConfig.model_validate(
            {"name": "mail", "type": "email", "to": ["team@example.org"],
             "from": "nw@example.org", "smtp_host": "127.0.0.1", "smtp_port": server.port,
             "ca_file": str(server.ca_file), "digest": "hourly"}
        )  # fmt: skip
        deliverer = world.deliverer({"mail": build_email(config)})
        await deliverer.deliver_all()
        await world.alert("Clearview one", "Clearview two", "CNIL three")
        await deliverer.deliver_all()
        assert server.envelopes == []
        world.clock.advance(timedelta(hours=1))
        await deliverer.deliver_all()
        [message] = server.messages
    assert message["Subject"] == "[noticewatch] 3 alerts since 2026-11-22T10:00:00Z"
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "== cv (2) ==" in text and "== fr (1) ==" in text


@pytest.mark.anyio
async def test_a_copy_seen_after_the_digest_was_made_still_reaches_it(world: World) -> None:
    """also_seen_in added to a digested alert while its digest waits for a retry is sent."""
    notifier = fake("hourly")
    results = iter([DOWN])
    notifier.script = lambda d: next(results, DeliveryResult(Outcome.DELIVERED))
    ctx = replace(world.ctx, dedupe=DedupePolicy())
    deliverer = world.deliverer({"mail": notifier})
    await deliverer.deliver_all()
    first = make_item("ap-nl", "k1", "Clearview fined by the Dutch DPA")
    await run_source(FakeSource(source_config("ap-nl"), items=[first]), ctx)
    world.clock.advance(timedelta(hours=1))
    await deliverer.deliver_all()  # the digest is made; its first attempt fails
    copy = make_item("news", "k1", "Clearview fined by the Dutch DPA")  # same URL
    await run_source(FakeSource(source_config("news", "https://example.org/news"),
                                items=[copy]), ctx)  # fmt: skip
    [alert] = [r for r in world.rows() if r.status == "digested"]
    assert [e["source"] for e in alert.data["also_seen_in"]] == ["news"]
    world.clock.now = world.store.next_due("mail") or world.clock.now
    await deliverer.deliver_all()
    failed, delivered = notifier.received
    assert failed.delivery_id == delivered.delivery_id
    [sent] = delivered.data["groups"][0]["alerts"]
    assert [e["source"] for e in sent["also_seen_in"]] == ["news"]
    assert delivered.data["count"] == 1


@pytest.mark.anyio
async def test_a_daily_digest_is_sent_on_the_day_clocks_skip_its_time(world: World) -> None:
    notifier = fake("daily 02:30")
    deliverer = world.deliverer({"mail": notifier}, zone=AMS)
    world.clock.now = utc(2026, 3, 28, 12, 0)
    await deliverer.deliver_all()  # starts the clock at 2026-03-28 02:30 CET
    await world.alert("Clearview")
    world.clock.now = utc(2026, 3, 29, 2, 0)  # 04:00 CEST on the day 02:30 does not exist
    await deliverer.deliver_all()
    [digest] = notifier.received
    assert digest.data["until"] == "2026-03-29T01:30:00Z"


@pytest.mark.anyio
async def test_a_large_digest_goes_out_in_parts_that_lose_and_repeat_nothing(
    world: World,
) -> None:
    notifier = fake("hourly")
    deliverer = world.deliverer({"mail": notifier})
    await deliverer.deliver_all()
    await world.alert(*(f"Clearview notice {i}" for i in range(MAX_DIGEST_ALERTS + 50)))
    world.clock.advance(timedelta(minutes=5))
    await world.alert(*(f"Clearview later {i}" for i in range(MAX_DIGEST_ALERTS)))
    world.clock.advance(timedelta(hours=1))
    await deliverer.deliver_all()
    parts = notifier.received
    assert [d.data["count"] for d in parts] == [MAX_DIGEST_ALERTS, MAX_DIGEST_ALERTS, 50]
    assert [(d.data["part"], d.data["parts"]) for d in parts] == [(1, 3), (2, 3), (3, 3)]
    assert len({d.delivery_id for d in parts}) == 3
    sent = [a["alert_id"] for d in parts for g in d.data["groups"] for a in g["alerts"]]
    assert len(sent) == len(set(sent)) == MAX_DIGEST_ALERTS * 2 + 50
    # Newest first across the parts too: the first part is the later poll.
    first = [a["item"]["title"] for g in parts[0].data["groups"] for a in g["alerts"]]
    assert all(title.startswith("Clearview later") for title in first)
    # The first part keeps the id a digest of one part has.
    assert parts[0].delivery_id == digest_id("mail", utc(2026, 11, 22, 11))
    world.clock.advance(timedelta(hours=1))
    await deliverer.deliver_all()
    assert len(notifier.received) == 3


@pytest.mark.anyio
async def test_a_digest_notifier_disabled_and_enabled_loses_and_repeats_nothing(
    world: World,
) -> None:
    notifier = fake("hourly")
    notifier.script = lambda d: DOWN
    deliverer = world.deliverer({"mail": notifier})
    deliverer.policy = RetryPolicy(max_attempts=100, cap=timedelta(hours=12), jitter=0)
    await deliverer.deliver_all()
    await world.alert("Clearview one")
    world.clock.advance(timedelta(hours=1))
    for _ in range(100):  # the digest fails for five days
        await deliverer.deliver_all()
        if world.store.disabled_notifiers():
            break
        world.clock.now = max(world.store.next_due("mail") or world.clock.now, world.clock.now)
    assert world.store.disabled_notifiers()
    first = notifier.received[0].delivery_id
    assert {d.delivery_id for d in notifier.received} == {first}
    await world.alert("Clearview two", "CNIL three")  # they wait while it is off
    world.clock.advance(timedelta(hours=3))
    await deliverer.deliver_all()
    tries = len(notifier.received)
    notifier.script = lambda d: DeliveryResult(Outcome.DELIVERED)
    assert world.store.enable_notifier("mail", world.clock())
    await deliverer.deliver_all()
    sent = notifier.received[tries:]
    assert len(sent) == 2 and sent[0].delivery_id == first
    titles = sorted(a["item"]["title"] for d in sent for g in d.data["groups"] for a in g["alerts"])
    assert titles == ["CNIL three", "Clearview one", "Clearview two"]
    assert sorted(r.status for r in world.rows()) == ["delivered"] * 2 + ["digested"] * 3
