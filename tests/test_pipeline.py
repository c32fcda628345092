"""run_source(): baseline, new / updated / seen, the outbox, failures and crash safety."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, select

from monitor.alerts import NotifierRoute
from monitor.errors import StorageError
from monitor.matching import Matcher, compile_rule
from monitor.models import Item
from monitor.pipeline import PipelineContext, run_source
from storage.db import create_db_engine
from storage.store import Store
from storage.tables import AlertRow, ItemRow
from tests.conftest import FIXED_NOW
from tests.support.fakes import Clock, FakeSource, make_item, source_config

pytestmark = pytest.mark.anyio

RULES = [
    compile_rule("clearview-fines", "clearview AND (fine* OR boete OR amende)"),
    compile_rule("sole-source", '"intent to award"', sources=["sam-like"]),
]
ROUTES = (
    NotifierRoute("newsroom", None),
    NotifierRoute("legal", frozenset({"sole-source"})),
)


@dataclass
class Harness:
    ctx: PipelineContext
    store: Store
    clock: Clock

    def alerts(self) -> list[AlertRow]:
        with Session(self.store.engine) as s:
            return list(s.exec(select(AlertRow).order_by(AlertRow.created_at)).all())

    def items(self) -> list[ItemRow]:
        with Session(self.store.engine) as s:
            return list(s.exec(select(ItemRow)).all())


@pytest.fixture
async def harness(db_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    store = Store(create_db_engine(db_url))
    clock = Clock(FIXED_NOW)
    async with httpx.AsyncClient() as http:
        ctx = PipelineContext(store, http, Matcher(RULES), ROUTES, clock, baseline=True)
        yield Harness(ctx, store, clock)
    store.engine.dispose()


def fine(key: str = "a") -> object:
    return make_item("ap-nl", key, "AP beboet Clearview AI", "Boete van 30,5 miljoen euro")


async def test_first_fetch_is_a_baseline_then_new_items_alert(harness: Harness) -> None:
    source = FakeSource(source_config("ap-nl"), items=[fine("a")])
    first = await run_source(source, harness.ctx)
    assert first.outcome == "baseline" and first.counts.new == 1 and first.counts.alerts == 0
    assert harness.alerts() == []

    source.items = [fine("a"), make_item("ap-nl", "b", "CNIL amende Clearview", "20 M€")]
    source.body = b"v2"
    second = await run_source(source, harness.ctx)
    assert (second.counts.new, second.counts.seen, second.counts.alerts) == (1, 1, 1)
    (alert,) = harness.alerts()
    assert alert.notifier == "newsroom"  # "legal" only hears sole-source
    assert alert.rules == ["clearview-fines"]
    data = alert.data
    assert data["alert_id"] == alert.id
    assert data["item"]["title"] == "CNIL amende Clearview"
    assert data["item"]["source"] == "ap-nl"
    assert {m["text"] for m in data["matches"]} >= {"Clearview", "amende"}
    assert all(m["rule"] == "clearview-fines" for m in data["matches"])


async def test_baseline_off_alerts_on_first_fetch(harness: Harness) -> None:
    ctx = PipelineContext(
        harness.store, harness.ctx.http, harness.ctx.matcher, ROUTES, harness.clock, baseline=False
    )
    run = await run_source(FakeSource(source_config("ap-nl"), items=[fine()]), ctx)
    assert run.outcome == "ok" and run.counts.alerts == 1


async def test_identical_body_is_not_parsed_again(harness: Harness) -> None:
    source = FakeSource(source_config("ap-nl"), items=[fine()])
    await run_source(source, harness.ctx)
    run = await run_source(source, harness.ctx)
    assert run.outcome == "unchanged"
    assert source.parses == 1 and source.fetches == 2


async def test_not_modified_keeps_validators(harness: Harness) -> None:
    source = FakeSource(source_config("ap-nl"), items=[fine()], etag='"e1"')
    await run_source(source, harness.ctx)
    source.status, source.etag = 304, None
    run = await run_source(source, harness.ctx)
    assert run.outcome == "not_modified"
    await run_source(source, harness.ctx)
    assert source.seen_states[-1].etag == '"e1"'


async def test_reserved_item_with_new_date_is_seen_not_alerted(harness: Harness) -> None:
    source = FakeSource(source_config("ap-nl"), items=[])
    await run_source(source, harness.ctx)  # baseline on an empty feed
    source.items, source.body = [fine()], b"v2"
    assert (await run_source(source, harness.ctx)).counts.alerts == 1
    moved = make_item(
        "ap-nl", "a", "AP beboet Clearview AI", "Boete van 30,5 miljoen euro",
        published=FIXED_NOW + timedelta(days=1),
    )  # fmt: skip
    source.items, source.body = [moved], b"v3"
    run = await run_source(source, harness.ctx)
    assert (run.counts.new, run.counts.updated, run.counts.seen, run.counts.alerts) == (0, 0, 1, 0)
    assert len(harness.alerts()) == 1


async def test_updated_item_alerts_created_once_then_updated(harness: Harness) -> None:
    source = FakeSource(source_config("ap-nl"), items=[])
    await run_source(source, harness.ctx)
    source.items, source.body = [make_item("ap-nl", "a", "Weekly update", "nothing yet")], b"v2"
    assert (await run_source(source, harness.ctx)).counts.alerts == 0
    source.items = [make_item("ap-nl", "a", "Weekly update", "Clearview fined")]
    source.body = b"v3"
    run = await run_source(source, harness.ctx)
    assert (run.counts.updated, run.counts.alerts) == (1, 1)
    source.items = [make_item("ap-nl", "a", "Weekly update", "Clearview fined again")]
    source.body = b"v4"
    run = await run_source(source, harness.ctx)
    assert (run.counts.updated, run.counts.alerts) == (1, 1)  # matched before, still does
    (item,) = harness.items()
    assert item.version == 3 and item.summary == "Clearview fined again"
    created, updated = harness.alerts()
    assert (created.event_type, updated.event_type) == ("alert.created", "alert.updated")
    change = {"old": "Clearview fined", "new": "Clearview fined again"}
    assert updated.data["changes"] == {"summary": change}


async def test_failure_is_recorded_and_validators_do_not_move(harness: Harness) -> None:
    source = FakeSource(source_config("ap-nl"), items=[fine()], etag='"e1"')
    await run_source(source, harness.ctx)
    source.fail = "HTTP 500 Internal Server Error"
    for expected in (1, 2):
        run = await run_source(source, harness.ctx)
        assert run.failed and "source 'ap-nl'" in (run.error or "")
        (state,) = harness.store.source_states()
        assert state.consecutive_failures == expected and state.etag == '"e1"'
        assert "HTTP 500" in (state.last_error or "")
    source.fail = None
    await run_source(source, harness.ctx)
    (state,) = harness.store.source_states()
    assert state.consecutive_failures == 0 and state.last_error is None


async def test_parser_bug_is_contained(harness: Harness) -> None:
    class Broken(FakeSource):
        def parse(self, fetched: object) -> list[object]:  # type: ignore[override]
            raise KeyError("boom")

    run = await run_source(Broken(source_config("ap-nl")), harness.ctx)
    assert run.failed and "internal error: KeyError" in (run.error or "")


async def test_crash_between_fetch_and_commit_loses_nothing(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = FakeSource(source_config("ap-nl"), items=[], etag='"e0"')
    await run_source(source, harness.ctx)
    source.items, source.body, source.etag = [fine()], b"v2", '"e1"'

    def crash(*args: object, **kwargs: object) -> None:
        raise StorageError("storage: disk I/O error")

    with monkeypatch.context() as patched:
        patched.setattr(harness.store, "commit_batch", crash)
        assert (await run_source(source, harness.ctx)).failed
    assert harness.alerts() == []
    assert harness.store.snapshot("ap-nl", source.config.identity()).fetch.etag == '"e0"'
    run = await run_source(source, harness.ctx)
    assert run.counts.alerts == 1
    await run_source(source, harness.ctx)
    assert len(harness.alerts()) == 1


async def test_rule_sources_and_notifier_rules_route_alerts(harness: Harness) -> None:
    sam = FakeSource(source_config("sam-like"), items=[])
    await run_source(sam, harness.ctx)
    sam.items = [make_item("sam-like", "n1", "Notice of intent to award sole source", "Clearview")]
    sam.body = b"v2"
    await run_source(sam, harness.ctx)
    assert sorted(a.notifier for a in harness.alerts()) == ["legal", "newsroom"]
    ap = FakeSource(source_config("ap-nl"), items=[])
    await run_source(ap, harness.ctx)
    ap.items = [make_item("ap-nl", "x", "Notice of intent to award", "")]
    ap.body = b"v2"
    assert (await run_source(ap, harness.ctx)).counts.alerts == 0  # sole-source is sam-only


async def test_dry_run_writes_nothing(harness: Harness) -> None:
    ctx = PipelineContext(
        harness.store, harness.ctx.http, harness.ctx.matcher, ROUTES, harness.clock, baseline=False
    )
    source = FakeSource(source_config("ap-nl"), items=[fine()])
    run = await run_source(source, ctx, dry_run=True)
    assert [d.notifier for d in run.drafts] == ["newsroom"]
    assert harness.items() == [] and harness.store.source_states() == []


async def test_alert_ids_are_stable_per_item_and_notifier(harness: Harness) -> None:
    from monitor.alerts import alert_id

    assert alert_id("ap-nl", "id:1", "newsroom") == alert_id("ap-nl", "id:1", "newsroom")
    assert alert_id("ap-nl", "id:1", "newsroom") != alert_id("ap-nl", "id:1", "legal")
    assert alert_id("ap-nl", "id:1", "newsroom").startswith("msg_")


async def test_a_feed_of_several_thousand_items_commits_in_chunks(harness: Harness) -> None:
    source = FakeSource(source_config("ap-nl"), items=[])
    await run_source(source, harness.ctx)
    source.items = [make_item("ap-nl", f"k{i}", f"Clearview fine {i}") for i in range(2500)]
    source.body = b"big"
    run = await run_source(source, harness.ctx)
    assert (run.counts.new, run.counts.alerts) == (2500, 2500)
    assert len(harness.alerts()) == 2500


async def test_pointing_a_source_at_another_feed_starts_a_new_baseline(harness: Harness) -> None:
    source = FakeSource(source_config("ap-nl", "https://a.example/feed"), [fine("a")], etag='"a1"')
    await run_source(source, harness.ctx)  # baseline of feed A
    source.config = source_config("ap-nl", "https://b.example/feed")
    source.items, source.body = [fine("a"), fine("b"), fine("c")], b"feed-b"
    run = await run_source(source, harness.ctx)
    assert run.outcome == "baseline" and run.counts.alerts == 0
    assert source.seen_states[-1].etag is None  # feed A's validators are not sent to B
    source.items, source.body = [fine("a"), fine("b"), fine("c"), fine("d")], b"feed-b2"
    assert (await run_source(source, harness.ctx)).counts.alerts == 1


@pytest.mark.parametrize(
    ("retry_after", "pause"),
    [
        ("120", timedelta(seconds=120)),
        ("Sun, 22 Nov 2026 10:30:00 GMT", timedelta(minutes=30)),
        ("999999999", timedelta(days=1)),  # capped
    ],
)
async def test_retry_after_pauses_the_source_until_then(
    harness: Harness, retry_after: str, pause: timedelta
) -> None:
    source = FakeSource(source_config("ap-nl"), items=[fine()])
    source.fail, source.retry_after = "HTTP 429 Too Many Requests", retry_after
    run = await run_source(source, harness.ctx)
    assert run.failed and run.paused_until == FIXED_NOW + pause
    source.fail = None
    harness.clock.advance(pause - timedelta(seconds=1))
    paused = await run_source(source, harness.ctx)
    assert paused.outcome == "paused" and not paused.failed
    assert source.fetches == 1  # not asked again before the time it named
    harness.clock.advance(timedelta(seconds=1))
    assert (await run_source(source, harness.ctx)).outcome == "baseline"
    assert source.fetches == 2
    (state,) = harness.store.source_states()
    assert state.paused_until is None


async def test_garbage_retry_after_does_not_pause(harness: Harness) -> None:
    source = FakeSource(source_config("ap-nl"), items=[fine()])
    source.fail, source.retry_after = "HTTP 503 Service Unavailable", "soon-ish"
    assert (await run_source(source, harness.ctx)).paused_until is None
    source.fail = None
    assert (await run_source(source, harness.ctx)).outcome == "baseline"


async def test_a_new_url_that_fails_first_still_gets_its_baseline(harness: Harness) -> None:
    source = FakeSource(source_config("ap-nl", "https://a.example/feed"), [fine("a")])
    await run_source(source, harness.ctx)
    source.config = source_config("ap-nl", "https://b.example/feed")
    source.fail = "HTTP 500 Internal Server Error"
    assert (await run_source(source, harness.ctx)).failed
    source.fail = None
    source.items, source.body = [fine("x"), fine("y")], b"feed-b"
    run = await run_source(source, harness.ctx)
    assert run.outcome == "baseline" and run.counts.alerts == 0


@dataclass
class EnrichingSource(FakeSource):
    """Adds a detail text to each item it is asked about, recording what it was given."""

    asked: list[tuple[list[str], frozenset[str]]] = field(default_factory=list)

    async def enrich(
        self, client: httpx.AsyncClient, items: Sequence[Item], wanted: frozenset[str]
    ) -> list[Item]:
        self.asked.append(([item.key for item in items], wanted))
        return [replace(item, content_html="<p>Clearview boete</p>") for item in items]


async def test_enrich_sees_only_changed_items_and_its_text_is_matched(harness: Harness) -> None:
    quiet = make_item("ap-nl", "q", "Jaarverslag")
    source = EnrichingSource(source_config("ap-nl"), items=[quiet])
    await run_source(source, harness.ctx)  # the baseline is enriched too: it is stored
    source.items = [quiet, make_item("ap-nl", "n", "Nieuw besluit")]
    source.body = b"v2"
    run = await run_source(source, harness.ctx)

    assert [keys for keys, _ in source.asked] == [["q"], ["n"]]
    assert source.asked[-1][1] == frozenset({"title", "summary", "content"})
    assert run.counts.alerts == 1  # only the enriched content says "Clearview boete"
    stored = {row.item_key: row for row in harness.items()}
    assert stored["n"].content_hash == make_item("ap-nl", "n", "Nieuw besluit").content_hash


def test_matcher_fields_names_what_rules_search_per_source() -> None:
    matcher = Matcher(
        [
            compile_rule("a", "clearview NOT agency:army", fields=frozenset({"agency"})),
            compile_rule("b", "title:x", sources=["sam"]),
        ]
    )
    assert matcher.fields("ap-nl") == {"title", "summary", "content", "agency"}
    assert matcher.fields("sam") == {"title", "summary", "content", "agency"}
    assert Matcher([RULES[1]]).fields("ap-nl") == frozenset()


async def test_amounts_in_the_text_are_stored_and_alerted(harness: Harness) -> None:
    source = FakeSource(source_config("ap-nl"), items=[])
    await run_source(source, harness.ctx)  # baseline
    source.items = [fine("a")]
    source.body = b"v2"
    await run_source(source, harness.ctx)
    (row,) = harness.items()
    expected = [
        {"amount": 30_500_000.0, "currency": "EUR", "text": "30,5 miljoen euro", "field": "summary"}
    ]
    assert row.fields["amounts"] == expected
    (alert,) = harness.alerts()
    assert alert.data["item"]["fields"]["amounts"] == expected


async def test_relative_dates_are_measured_from_the_pipeline_clock(
    db_url: str, tmp_path: Path
) -> None:
    store = Store(create_db_engine(db_url))
    clock = Clock(FIXED_NOW)
    fields = frozenset({"title", "summary", "content", "response_deadline"})
    rule = compile_rule("soon", "clearview response_deadline<30d", fields=fields)
    deadline = (FIXED_NOW + timedelta(days=20)).isoformat()
    item = make_item("ap-nl", "a", "Clearview tender", fields={"response_deadline": deadline})
    async with httpx.AsyncClient() as http:
        ctx = PipelineContext(
            store, http, Matcher([rule], clock=clock), ROUTES, clock, baseline=False
        )
        first = await run_source(FakeSource(source_config("ap-nl"), items=[item]), ctx)
        assert first.counts.alerts == 1
        clock.advance(timedelta(days=-20))  # now 40 days before the deadline: too far off
        changed = replace(item, content_hash="h2")
        source = FakeSource(source_config("ap-nl"), items=[changed], body=b"v2")
        second = await run_source(source, ctx)
        assert (second.counts.updated, second.counts.alerts) == (1, 0)
    store.engine.dispose()
