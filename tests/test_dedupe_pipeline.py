"""One alert per event, end to end: real sources over 127.0.0.1, the real store, restarts.

The regulator's listing page alerts first; the Google News copy, then a syndicated copy
from another feed (after a restart), attach to that alert as ``also_seen_in``; another
regulator's different fine of the same company alerts on its own.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import httpx
import pytest
from sqlmodel import Session, col, select

from monitor.alerts import NotifierRoute
from monitor.app import open_app
from monitor.cli import status_report
from monitor.config import parse_config
from monitor.dedupe import DedupePolicy
from monitor.dedupe.fingerprint import MIN_SHARED_BANDS
from monitor.matching import Matcher, compile_rule
from monitor.pipeline import PipelineContext, run_source
from monitor.sources.base import FetchLimits
from monitor.sources.html import HtmlSource, HtmlSourceConfig
from monitor.sources.rss import RssSource, RssSourceConfig
from monitor.sources.sam import SamSource, SamSourceConfig
from storage.db import create_db_engine
from storage.dedupe import DEDUPE_MERGE_ROWS, DEDUPE_MID_ROWS
from storage.requests import RequestCounter
from storage.store import Store
from storage.tables import (
    AlertRow,
    DedupeKey,
    DedupeMidKey,
    DedupeNewKey,
    DedupeSignature,
    Duplicate,
    ItemRow,
)
from tests.conftest import FIXED_NOW
from tests.support.fakes import Clock
from tests.support.feed_server import FeedServer
from tests.support.html_layouts import LAYOUTS

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

DATA = Path(__file__).parent / "data" / "html"
ICO_TITLE = "ICO fines facial recognition database company Clearview AI Inc more than £7.5m"
WIRE = (
    "The UK's data protection watchdog fined Clearview AI more than 7.5 million pounds on "
    "Monday and ordered the facial recognition company to delete the data of UK residents, "
    "the latest in a series of penalties imposed on the company by European regulators."
)
POLICY = DedupePolicy()
ROUTES = (NotifierRoute("newsroom", None), NotifierRoute("legal", frozenset({"fines"})))


def gnews_feed(site: str) -> bytes:
    item = (
        f"<item><title>{escape(ICO_TITLE)} - ICO</title>"
        "<link>https://news.google.com/rss/articles/CBMiWWh0dHBzOi8vaWNv?oc=5</link>"
        '<guid isPermaLink="false">CBMiWWh0dHBzOi8vaWNv</guid>'
        "<pubDate>Mon, 23 May 2022 09:00:00 GMT</pubDate>"
        f"<description>{escape(ICO_TITLE)} ICO</description>"
        f'<source url="{site}">ICO</source></item>'
    )
    return _rss(item)


def serve_ico_and_gnews(feed_server: FeedServer) -> None:
    """The ICO listing page, and a Google News feed carrying its Clearview release."""
    site = feed_server.url("/").rstrip("/")
    feed_server.serve("/ico", (DATA / "ico_news.html").read_bytes(), "text/html; charset=utf-8")
    feed_server.serve("/gnews", gnews_feed(site))


def wire_feed(*entries: tuple[str, str, str]) -> bytes:
    items = "".join(
        f"<item><title>{escape(t)}</title><link>{escape(link)}</link>"
        f"<description>{escape(d)}</description></item>"
        for t, link, d in entries
    )
    return _rss(items)


def _rss(items: str) -> bytes:
    head = '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>t</title>'
    return (head + items + "</channel></rss>").encode()


def rss_source(name: str, url: str) -> RssSource:
    config = RssSourceConfig.model_validate(
        {"name": name, "type": "rss", "every": "1h", "url": url}
    )
    return RssSource(config, FetchLimits())


def ico_source(url: str) -> HtmlSource:
    keys: dict[str, Any] = {**LAYOUTS["ico_news"]["config"], "url": url}
    config = HtmlSourceConfig.model_validate({"name": "ico", "type": "html", "every": "1h", **keys})
    return HtmlSource(config, FetchLimits())


def stored_keys(s: Session) -> list[tuple[int, int]]:
    """(item_id, key) of every dedupe key, in whichever of the three tables."""
    merged = s.exec(select(DedupeKey.item_id, DedupeKey.key)).all()
    middle = s.exec(select(DedupeMidKey.item_id, DedupeMidKey.key)).all()
    waiting = s.exec(select(DedupeNewKey.item_id, DedupeNewKey.key)).all()
    return [*merged, *middle, *waiting]


class World:
    def __init__(
        self,
        db_url: str,
        http: httpx.AsyncClient,
        merges: tuple[int, int] = (DEDUPE_MERGE_ROWS, DEDUPE_MID_ROWS),
    ) -> None:
        self.db_url = db_url
        self.http = http
        self.merges = merges
        self.clock = Clock(FIXED_NOW)
        self.store = self.open()

    def open(self) -> Store:
        new, mid = self.merges
        return Store(create_db_engine(self.db_url), dedupe_merge_rows=new, dedupe_mid_rows=mid)

    def restart(self) -> None:
        self.store.engine.dispose()
        self.store = self.open()

    def ctx(self, policy: DedupePolicy | None = POLICY) -> PipelineContext:
        rules = [
            compile_rule("fines", "clearview AND (fine* OR fined)"),
            compile_rule("any-clearview", "clearview"),
        ]
        matcher = Matcher(rules)
        return PipelineContext(
            self.store, self.http, matcher, ROUTES, self.clock, baseline=False, dedupe=policy
        )

    def alerts(self) -> list[AlertRow]:
        with Session(self.store.engine) as s:
            query = select(AlertRow).order_by(col(AlertRow.created_at), col(AlertRow.id))
            return list(s.exec(query).all())


@pytest.fixture
async def world(db_url: str, request: pytest.FixtureRequest) -> AsyncIterator[World]:
    merges = getattr(request, "param", (DEDUPE_MERGE_ROWS, DEDUPE_MID_ROWS))
    async with httpx.AsyncClient(follow_redirects=False) as http:
        world = World(db_url, http, merges)
        yield world
        world.store.engine.dispose()


# Keys waiting in dedupe_new_keys (the default, for so few), merged through the middle
# table into dedupe_keys by every commit that writes some, and merged every 40 rows into
# a middle table merged every 100: some items in each of the three tables.
@pytest.mark.parametrize(
    "world", [(DEDUPE_MERGE_ROWS, DEDUPE_MID_ROWS), (1, 1), (40, 100)], indirect=True
)
async def test_one_alert_per_event_across_sources_and_restarts(
    world: World, feed_server: FeedServer
) -> None:
    serve_ico_and_gnews(feed_server)
    wire_url = "https://www.reuters.com/technology/clearview-fined-uk-2022-05-23/"
    feed_server.serve(
        "/wire",
        wire_feed(
            (
                "Clearview AI fined more than 7.5 million pounds by UK privacy watchdog",
                wire_url,
                WIRE,
            )
        ),
    )

    ico = await run_source(ico_source(feed_server.url("/ico")), world.ctx())
    assert ico.counts.alerts == 2, ico.error  # newsroom and legal, for the Clearview release
    first = {a.notifier: a for a in world.alerts()}
    assert first["newsroom"].data["item"]["title"] == ICO_TITLE

    world.clock.advance(timedelta(hours=1))
    gnews = await run_source(rss_source("gnews", feed_server.url("/gnews")), world.ctx())
    assert (gnews.counts.new, gnews.counts.alerts) == (1, 0)

    world.restart()
    world.clock.advance(timedelta(days=2))
    syndicated = wire_url.replace("www.reuters.com", "www.usnews.com")
    feed_server.serve(
        "/wire2",
        wire_feed(("Clearview AI fined more than 7.5 million pounds by UK privacy watchdog",
                   syndicated, WIRE)),
    )  # fmt: skip
    await run_source(rss_source("wire", feed_server.url("/wire")), world.ctx())
    wire2 = await run_source(rss_source("wire2", feed_server.url("/wire2")), world.ctx())
    assert wire2.counts.alerts == 0

    alerts = world.alerts()
    by_source = {(a.data["item"]["source"], a.notifier) for a in alerts}
    # the wire story is a differently worded article: its own event, alerting once
    assert by_source == {
        ("ico", "newsroom"),
        ("ico", "legal"),
        ("wire", "newsroom"),
        ("wire", "legal"),
    }
    ico_alert = next(a for a in alerts if a.id == first["newsroom"].id)
    [copy] = ico_alert.data["also_seen_in"]
    assert copy["source"] == "gnews" and copy["match"] == "same_title"
    assert copy["seen_at"] == "2026-11-22T11:00:00Z"
    wire_alert = next(a for a in alerts if a.data["item"]["source"] == "wire")
    [near] = wire_alert.data["also_seen_in"]
    assert near["source"] == "wire2" and near["match"] == "near" and near["similarity"] >= 0.6

    with Session(world.store.engine) as s:
        links = s.exec(select(Duplicate)).all()
        keys = stored_keys(s)
        merged = s.exec(select(DedupeKey)).all()
        middle = s.exec(select(DedupeMidKey)).all()
    assert len(links) == 2 and {link.match for link in links} == {"same_title", "near"}
    assert len({item_id for item_id, _ in keys}) == 7  # every stored item is findable
    assert len(set(keys)) == len(keys)  # each key once, in one of the tables
    if world.merges == (1, 1):
        assert len(merged) == len(keys)
    elif world.merges[0] == DEDUPE_MERGE_ROWS:
        assert merged == middle == []
    else:
        assert merged and middle and len(merged) + len(middle) < len(keys)


async def test_another_regulators_fine_of_the_same_company_alerts(
    world: World, feed_server: FeedServer
) -> None:
    template = (
        "The {who} has imposed a fine of 20 million euros on Clearview AI for processing "
        "biometric data of people on its territory without a legal basis."
    )
    feed_server.serve(
        "/a", wire_feed(("CNIL fines Clearview AI 20 million euros", "https://cnil.fr/en/a",
                         template.format(who="CNIL"))),
    )  # fmt: skip
    feed_server.serve(
        "/b", wire_feed(("Hellenic DPA fines Clearview AI 20 million euros", "https://dpa.gr/en/b",
                         template.format(who="Hellenic DPA"))),
    )  # fmt: skip
    await run_source(rss_source("cnil", feed_server.url("/a")), world.ctx())
    await run_source(rss_source("dpa-gr", feed_server.url("/b")), world.ctx())
    sources = sorted(a.data["item"]["source"] for a in world.alerts() if a.notifier == "newsroom")
    assert sources == ["cnil", "dpa-gr"]
    assert all(a.data["also_seen_in"] == [] for a in world.alerts())


async def test_copies_outside_the_window_alert_again(world: World, feed_server: FeedServer) -> None:
    serve_ico_and_gnews(feed_server)
    policy = DedupePolicy(window=timedelta(days=7))
    await run_source(ico_source(feed_server.url("/ico")), world.ctx(policy))
    world.clock.advance(timedelta(days=8))
    run = await run_source(rss_source("gnews", feed_server.url("/gnews")), world.ctx(policy))
    assert run.counts.alerts == 2
    with Session(world.store.engine) as s:  # what left the window is gone from disk
        keys = stored_keys(s)
        signatures = s.exec(select(DedupeSignature)).all()
        gnews = set(s.exec(select(ItemRow.id).where(ItemRow.source == "gnews")).all())
    assert keys and {item_id for item_id, _ in keys} == gnews
    assert {sig.item_id for sig in signatures} == gnews


async def test_dedupe_off_alerts_every_copy(world: World, feed_server: FeedServer) -> None:
    serve_ico_and_gnews(feed_server)
    await run_source(ico_source(feed_server.url("/ico")), world.ctx(None))
    run = await run_source(rss_source("gnews", feed_server.url("/gnews")), world.ctx(None))
    assert run.counts.alerts == 2
    with Session(world.store.engine) as s:
        assert stored_keys(s) == []


async def test_a_notifier_that_missed_the_first_copy_hears_of_the_event_once(
    world: World, feed_server: FeedServer
) -> None:
    # The regulator's release matches no rule of "legal" ("fines" needs fine*/fined) ...
    release = (
        "Clearview AI: decision published today",
        "https://reg.example.org/en/clearview-decision",
        "The regulator publishes its decision on Clearview AI and the biometric data it holds "
        "on residents, following complaints from several associations.",
    )
    copy = (release[0], release[1] + "?utm_source=newsletter", release[2] + " Clearview was fined.")
    feed_server.serve("/reg", wire_feed(release))
    feed_server.serve("/news", wire_feed(copy))
    await run_source(rss_source("reg", feed_server.url("/reg")), world.ctx())
    assert [a.notifier for a in world.alerts()] == ["newsroom"]
    world.clock.advance(timedelta(minutes=5))
    await run_source(rss_source("news", feed_server.url("/news")), world.ctx())
    alerts = world.alerts()
    assert [a.notifier for a in alerts] == ["newsroom", "legal"]
    assert alerts[0].data["also_seen_in"][0]["source"] == "news"
    assert alerts[1].data["also_seen_in"][0]["source"] == "reg"


async def test_status_lists_events_seen_more_than_once(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    serve_ico_and_gnews(feed_server)
    keys = LAYOUTS["ico_news"]["config"]
    raw = {
        "monitor": {"database": f"sqlite:///{tmp_path / 'nw.db'}", "baseline": False},
        "sources": [
            {"name": "ico", "type": "html", "every": "1h", "url": feed_server.url("/ico"), **keys},
            {"name": "gnews", "type": "rss", "every": "1h", "url": feed_server.url("/gnews")},
        ],
        "rules": [{"name": "fines", "query": "clearview"}],
    }
    config = parse_config(raw, {}, path=tmp_path / "sources.toml")
    clock = Clock(FIXED_NOW)
    async with open_app(config, clock=clock) as app:
        await run_source(app.sources["ico"], app.pipeline)
        await run_source(app.sources["gnews"], app.pipeline)
        report = status_report(app)
    assert "EVENTS SEEN MORE THAN ONCE (last 7d)" in report
    assert f"  ico: {ICO_TITLE}" in report
    assert "    also seen in: gnews (1 later copies)" in report
    with Session(create_db_engine(f"sqlite:///{tmp_path / 'nw.db'}")) as s:
        assert len(s.exec(select(ItemRow)).all()) == 5


RELEASE = (
    "Clearview AI: decision published today",
    "https://reg.example.org/en/clearview-decision",
    "The regulator publishes its decision on Clearview AI and the biometric data it holds "
    "on residents, following complaints from several associations.",
)


async def test_an_amended_copy_does_not_alert_a_notifier_that_heard_of_the_event(
    world: World, feed_server: FeedServer
) -> None:
    copy = (RELEASE[0], RELEASE[1] + "?utm_source=newsletter", RELEASE[2])
    feed_server.serve("/reg", wire_feed(RELEASE))
    feed_server.serve("/news", wire_feed(copy))
    await run_source(rss_source("reg", feed_server.url("/reg")), world.ctx())
    world.clock.advance(timedelta(minutes=5))
    await run_source(rss_source("news", feed_server.url("/news")), world.ctx())
    assert [a.notifier for a in world.alerts()] == ["newsroom"]
    # the news site edits its copy: the item is amended, the event is the same one
    world.clock.advance(timedelta(hours=1))
    feed_server.serve("/news", wire_feed((copy[0], copy[1], copy[2] + " Updated at 11:00.")))
    run = await run_source(rss_source("news", feed_server.url("/news")), world.ctx())
    assert run.counts.updated == 1, run.error
    assert [a.notifier for a in world.alerts()] == ["newsroom"]


async def test_an_amended_original_does_not_alert_a_notifier_told_through_a_copy(
    world: World, feed_server: FeedServer
) -> None:
    copy = (RELEASE[0], RELEASE[1] + "?utm_source=newsletter", RELEASE[2] + " Clearview was fined.")
    feed_server.serve("/reg", wire_feed(RELEASE))
    feed_server.serve("/news", wire_feed(copy))
    await run_source(rss_source("reg", feed_server.url("/reg")), world.ctx())
    world.clock.advance(timedelta(minutes=5))
    await run_source(rss_source("news", feed_server.url("/news")), world.ctx())
    assert [a.notifier for a in world.alerts()] == ["newsroom", "legal"]
    # the regulator amends its release, which now matches "legal" too: legal already
    # heard of this event through the copy; newsroom hears of the amendment
    world.clock.advance(timedelta(hours=1))
    amended = (RELEASE[0], RELEASE[1], RELEASE[2] + " Clearview was fined.")
    feed_server.serve("/reg", wire_feed(amended))
    run = await run_source(rss_source("reg", feed_server.url("/reg")), world.ctx())
    assert run.counts.updated == 1, run.error
    alerts = world.alerts()
    assert [(a.notifier, a.event_type) for a in alerts] == [
        ("newsroom", "alert.created"),
        ("legal", "alert.created"),
        ("newsroom", "alert.updated"),
    ]
    # the amendment still says where else the event was seen
    [also] = alerts[2].data["also_seen_in"]
    assert also["source"] == "news"


async def test_a_copy_in_the_same_poll_as_its_original_attaches_to_the_earliest(
    world: World, feed_server: FeedServer
) -> None:
    # A news query feed lists newest first: the syndicated copy (11:00) comes before
    # the regulator's release it copies (09:00). The release is the first copy.
    release = "https://www.reuters.com/technology/clearview-fined-uk-2022-05-23/"
    title = "Clearview AI fined more than 7.5 million pounds by UK privacy watchdog"
    items = "".join(
        f"<item><title>{escape(title)}</title><link>{link}</link>"
        f"<pubDate>Mon, 23 May 2022 {hour}:00:00 GMT</pubDate>"
        f"<description>{escape(WIRE)}</description></item>"
        for link, hour in ((release.replace("reuters", "usnews"), "11"), (release, "09"))
    )
    feed_server.serve("/query", _rss(items))
    run = await run_source(rss_source("query", feed_server.url("/query")), world.ctx())
    assert (run.counts.new, run.counts.alerts) == (2, 2), run.error
    alerts = world.alerts()
    assert {a.data["item"]["url"] for a in alerts} == {release}
    for alert in alerts:
        [copy] = alert.data["also_seen_in"]
        assert copy["url"] == release.replace("reuters", "usnews") and copy["match"] == "near"
    with Session(world.store.engine) as s:
        [link] = s.exec(select(Duplicate)).all()
        original = s.get(ItemRow, link.original_id)
    assert original is not None and original.url == release


async def test_sam_notices_are_not_near_copy_candidates_through_their_summary_template(
    world: World, feed_server: FeedServer
) -> None:
    """SAM.gov summaries are one template ("Special Notice · agency · NAICS · deadline"):
    the notices are fingerprinted on title (and description) alone, so two notices of one
    search share no MinHash bands, and a store of thousands of them stays cheap to search."""
    template = {
        "type": "Special Notice",
        "fullParentPathName": "HOMELAND SECURITY, DEPARTMENT OF.US IMMIGRATION AND CUSTOMS "
        "ENFORCEMENT.ICE OFFICE OF ACQUISITION",
        "solicitationNumber": "70CMSD26R0001",
        "naicsCode": "541511",
        "responseDeadLine": "2026-12-01T16:00:00-05:00",
        "postedDate": "2026-11-20",
    }
    titles = [
        "Notice of intent to sole source facial recognition licences",
        "Body worn camera storage and redaction services",
        "Janitorial services for the Dallas field office",
        "Mobile biometric enrolment kits for border patrol",
    ]
    records = [
        {"noticeId": f"n{i}", "title": t, "uiLink": f"https://sam.gov/opp/n{i}/view", **template}
        for i, t in enumerate(titles)
    ]
    body = json.dumps({"totalRecords": len(records), "opportunitiesData": records}).encode()
    feed_server.serve("/opportunities/v2/search", body, "application/json")
    config = SamSourceConfig.model_validate(
        {"name": "sam-ice", "type": "sam", "every": "6h", "api_key": "k-test",
         "base_url": feed_server.url("/").rstrip("/")}
    )  # fmt: skip
    source = SamSource(config, FetchLimits())
    source.attach(RequestCounter(world.store), world.clock)
    run = await run_source(source, world.ctx())
    assert run.outcome == "ok" and run.items == len(titles), run
    with Session(world.store.engine) as s:
        keys = stored_keys(s)
    stored: dict[int, set[int]] = {}
    for item_id, key in keys:
        stored.setdefault(item_id, set()).add(key)
    assert len(stored) == len(titles)
    # the titles are long enough to be compared: a URL key, a title key and 32 band keys
    assert all(len(found) == 34 for found in stored.values())
    shared = [len(a & b) for i, a in stored.items() for j, b in stored.items() if i < j]
    assert max(shared) < MIN_SHARED_BANDS


async def test_a_poll_names_the_site_its_new_items_share_and_none_when_they_do_not(
    world: World, feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The site lets the history leave out same-site band candidates; a feed whose new
    items come from two sites (or are aggregator copies, of no site) names none."""
    serve_ico_and_gnews(feed_server)
    feed_server.serve(
        "/one",
        wire_feed(
            ("Clearview AI fined in the UK", "https://www.reuters.com/a", WIRE),
            ("Clearview AI told to delete data", "https://www.reuters.com/b", WIRE[::-1]),
        ),
    )
    feed_server.serve(
        "/two",
        wire_feed(
            ("Clearview AI fined by the ICO", "https://apnews.com/c", WIRE),
            ("Clearview AI must delete UK data", "https://www.usnews.com/d", WIRE[::-1]),
        ),
    )
    sites: list[str] = []
    history = world.store.dedupe_history

    def recording(*args: Any) -> Any:
        sites.append(args[3])
        # each new item asks by its URL key at least, and its bands (all four are long enough)
        assert all(len(query.exact) >= 1 and query.bands for query in args[0])
        return history(*args)

    monkeypatch.setattr(world.store, "dedupe_history", recording)
    for name in ("one", "two", "gnews"):
        await run_source(rss_source(name, feed_server.url(f"/{name}")), world.ctx())
    assert sites == ["reuters.com", "", ""]
