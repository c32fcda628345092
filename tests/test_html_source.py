"""The html source beyond parsing: config validation, detail pages (enrich), the pipeline.

Unit tests use httpx.MockTransport; the integration tests serve real bytes over 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session, select

from monitor.alerts import NotifierRoute
from monitor.config import parse_config
from monitor.errors import ConfigError
from monitor.matching import Matcher, compile_rule
from monitor.models import Item
from monitor.pipeline import PipelineContext, run_source
from monitor.sources.base import Fetched, FetchLimits
from monitor.sources.html import HtmlSource, HtmlSourceConfig
from monitor.sources.rss import RssSource, RssSourceConfig
from storage.db import create_db_engine
from storage.store import Store
from storage.tables import AlertRow, ItemRow, SourceState
from tests.conftest import FIXED_NOW
from tests.support.fakes import Clock
from tests.support.feed_server import FeedServer

pytestmark = pytest.mark.anyio

LISTING = b"""<html lang="en"><body><ul class="news">
  <li><a href="/n/1">Regulator fines Clearview AI</a><p>Short teaser one.</p></li>
  <li><a href="/n/2">Regulator publishes annual report</a><p>Short teaser two.</p></li>
  <li><a href="/n/3">Regulator opens consultation</a><p>Short teaser three.</p></li>
</ul></body></html>"""
DETAIL = b"""<html><body><nav>Menu Home Contact</nav><main><article>
  <h1>%s</h1><p>The full text names the fine of 20 million euro.</p>
  <script>alert('x')</script><p onclick="evil()">Second paragraph.</p>
</article></main><footer>Footer</footer></body></html>"""


def config(**keys: Any) -> HtmlSourceConfig:
    base = {
        "name": "reg",
        "type": "html",
        "every": "30m",
        "url": "https://reg.example.org/news",
        "item": "ul.news li",
        "title": "a",
        "summary": "p",
        "follow": True,
    }
    return HtmlSourceConfig.model_validate({**base, **keys})


def handler(
    routes: dict[str, Callable[[httpx.Request], httpx.Response]], seen: list[str]
) -> httpx.MockTransport:
    def respond(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        make = routes.get(request.url.path)
        return make(request) if make else httpx.Response(404)

    return httpx.MockTransport(respond)


def html(body: bytes) -> Callable[[httpx.Request], httpx.Response]:
    return lambda _: httpx.Response(200, content=body, headers={"content-type": "text/html"})


def listed(source: HtmlSource) -> list[Item]:
    return source.parse(Fetched("https://reg.example.org/news", 200, LISTING))


PDF_TYPE = "application/pdf"
WANTED = frozenset({"title", "summary", "content"})


# --- config -------------------------------------------------------------------------------


def doc(**keys: Any) -> dict[str, Any]:
    source = {"name": "reg", "type": "html", "every": "30m", "url": "https://reg.example.org/"}
    source.update(keys)
    return {"sources": [source]}


def problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, {}, path=Path("sources.toml"))
    return caught.value.problems


def test_config_requires_item_and_title() -> None:
    found = problems(doc())
    assert 'sources[0] "reg": item: required key is missing' in found
    assert 'sources[0] "reg": title: required key is missing' in found


def test_config_rejects_a_bad_css_selector_naming_the_key() -> None:
    [problem] = problems(doc(item="ul >> li", title="a"))
    assert problem.startswith('sources[0] "reg": item: ')
    assert "'ul >> li' is not a valid CSS selector" in problem


def test_config_rejects_detail_selector_without_follow() -> None:
    [problem] = problems(doc(item="li", title="a", detail_selector="main"))
    assert "detail_selector is only used with follow = true" in problem


def test_config_rejects_a_non_http_url_and_a_zero_follow_limit() -> None:
    found = problems(doc(item="li", title="a", url="ftp://x.org/", follow_limit=0))
    assert any("url: 'ftp://x.org/' is not an http" in p for p in found)
    assert any("follow_limit:" in p for p in found)


def test_config_accepts_attribute_selectors() -> None:
    cfg = parse_config(
        doc(item="li", title="h3", link="a@href", date="time@datetime", summary="@title"),
        {},
        path=Path("sources.toml"),
    )
    assert cfg.sources[0].type == "html"


# --- detail pages ---------------------------------------------------------------------------


async def test_follow_adds_the_detail_main_text_keeping_key_and_hash() -> None:
    seen: list[str] = []
    routes = {f"/n/{i}": html(DETAIL % f"Notice {i}".encode()) for i in (1, 2, 3)}
    source = HtmlSource(config(detail_selector="main article"), FetchLimits())
    items = listed(source)
    async with httpx.AsyncClient(transport=handler(routes, seen)) as client:
        enriched = await source.enrich(client, items, WANTED)
    assert sorted(seen) == ["/n/1", "/n/2", "/n/3"]
    assert [(i.key, i.content_hash) for i in enriched] == [(i.key, i.content_hash) for i in items]
    content = enriched[0].content
    assert "fine of 20 million euro" in content and "Second paragraph." in content
    assert "Menu" not in content and "Footer" not in content
    assert "alert" not in content and "evil" not in content


async def test_follow_is_bounded_per_poll() -> None:
    seen: list[str] = []
    routes = {f"/n/{i}": html(DETAIL % b"x") for i in (1, 2, 3)}
    source = HtmlSource(config(follow_limit=2), FetchLimits())
    async with httpx.AsyncClient(transport=handler(routes, seen)) as client:
        enriched = await source.enrich(client, listed(source), WANTED)
    assert sorted(seen) == ["/n/1", "/n/2"]
    assert [bool(i.content) for i in enriched] == [True, True, False]


@pytest.mark.parametrize(
    "link",
    [
        "http://169.254.169.254/latest/meta-data/iam/",
        "http://localhost:8080/admin",
        "http://127.1/",
        "http://[::1]/status",
        "http://10.0.0.7/internal",
    ],
)
async def test_a_public_listing_never_makes_us_fetch_an_internal_address(
    link: str, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []
    source = HtmlSource(config(), FetchLimits())
    page = LISTING.replace(b'href="/n/1"', f'href="{link}"'.encode())
    items = source.parse(Fetched("https://reg.example.org/news", 200, page))
    assert items[0].url is not None and items[0].url.startswith(link.rstrip("/"))
    async with httpx.AsyncClient(transport=handler({}, seen)) as client:
        enriched = await source.enrich(client, items[:1], WANTED)
    assert seen == [] and enriched == items[:1]  # kept as listed, nothing fetched
    assert "source=reg" in caplog.text and "not a public address" in caplog.text


async def test_a_listing_on_an_internal_host_may_follow_links_on_internal_hosts() -> None:
    seen: list[str] = []
    source = HtmlSource(config(url="http://10.0.0.8/news"), FetchLimits())
    page = LISTING.replace(b'href="/n/1"', b'href="http://10.0.0.7/n/1"')
    items = source.parse(Fetched("http://10.0.0.8/news", 200, page))
    routes = {"/n/1": html(DETAIL % b"Notice 1")}
    async with httpx.AsyncClient(transport=handler(routes, seen)) as client:
        enriched = await source.enrich(client, items[:1], WANTED)
    assert seen == ["/n/1"] and enriched[0].content


async def test_no_detail_fetch_when_no_rule_reads_content() -> None:
    seen: list[str] = []
    source = HtmlSource(config(), FetchLimits())
    async with httpx.AsyncClient(transport=handler({}, seen)) as client:
        await source.enrich(client, listed(source), frozenset({"title", "summary"}))
    assert seen == []


async def test_no_detail_fetch_without_follow() -> None:
    seen: list[str] = []
    source = HtmlSource(config(follow=False), FetchLimits())
    async with httpx.AsyncClient(transport=handler({}, seen)) as client:
        items = listed(source)
        assert await source.enrich(client, items, WANTED) == items
    assert seen == []


async def test_a_pdf_a_huge_page_or_an_error_degrades_only_that_item(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[str] = []
    pdf = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj"
    routes = {
        "/n/1": lambda _: httpx.Response(
            200, content=pdf, headers={"content-type": "application/pdf"}
        ),
        "/n/2": html(b"<html><body><main>" + b"x" * (50 * 1024 * 1024) + b"</main>"),
        "/n/3": html(DETAIL % b"fine"),
    }
    source = HtmlSource(config(), FetchLimits())
    items = listed(source)
    async with httpx.AsyncClient(transport=handler(routes, seen)) as client:
        enriched = await source.enrich(client, items, WANTED)
    assert enriched[:2] == items[:2]  # kept exactly as listed
    assert "fine of 20 million euro" in enriched[2].content
    log = caplog.text
    assert "application/pdf, not HTML" in log
    assert "body larger than the" in log


async def test_a_pdf_served_as_html_is_still_refused() -> None:
    source = HtmlSource(config(), FetchLimits())
    fetched = Fetched("https://reg.example.org/n/1", 200, b"%PDF-1.4 ...", content_type="text/html")
    with pytest.raises(Exception, match="is a PDF, not HTML"):
        source.detail_content(fetched)


async def test_a_detail_selector_that_matches_nothing_degrades_the_item(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[str] = []
    routes = {f"/n/{i}": html(DETAIL % b"x") for i in (1, 2, 3)}
    source = HtmlSource(config(detail_selector="div.article-body"), FetchLimits())
    items = listed(source)
    async with httpx.AsyncClient(transport=handler(routes, seen)) as client:
        assert await source.enrich(client, items, WANTED) == items
    assert "detail_selector 'div.article-body' matched nothing" in caplog.text


# --- through the pipeline, over loopback ------------------------------------------------------


@pytest.fixture
async def store(db_url: str, tmp_path: Path) -> AsyncIterator[Store]:
    store = Store(create_db_engine(db_url))
    yield store
    store.engine.dispose()


def loopback_source(server: FeedServer, **keys: Any) -> HtmlSource:
    return HtmlSource(config(url=server.url("/news"), **keys), FetchLimits())


def context(store: Store, http: httpx.AsyncClient, query: str) -> PipelineContext:
    rules = [compile_rule("fines", query)]
    routes = (NotifierRoute("newsroom", None),)
    return PipelineContext(store, http, Matcher(rules), routes, Clock(FIXED_NOW), baseline=False)


@pytest.mark.integration
async def test_loopback_follow_matches_on_the_detail_text_and_survives_a_huge_page(
    feed_server: FeedServer, store: Store
) -> None:
    feed_server.serve("/news", LISTING, content_type="text/html")
    feed_server.serve("/n/1", DETAIL % b"one", content_type="text/html; charset=utf-8")
    feed_server.fault("/n/2", "huge")
    feed_server.serve("/n/3", b"%PDF-1.5 binary", content_type="application/pdf")
    source = loopback_source(feed_server, max_bytes="1MiB", timeout="5s")
    async with httpx.AsyncClient(follow_redirects=False) as http:
        run = await run_source(source, context(store, http, '"20 million euro"'))
    assert run.outcome == "ok", run.error
    assert (run.items, run.counts.new, run.counts.alerts) == (3, 3, 1)
    with Session(store.engine) as s:
        [alert] = s.exec(select(AlertRow)).all()
        rows = {row.title: row for row in s.exec(select(ItemRow)).all()}
    assert alert.data["item"]["title"] == "Regulator fines Clearview AI"
    assert "<script" not in str(alert.data) and "onclick" not in str(alert.data)
    assert rows["Regulator publishes annual report"].content == ""


@pytest.mark.integration
async def test_loopback_layout_change_is_a_recorded_failure_naming_the_selector(
    feed_server: FeedServer, store: Store
) -> None:
    feed_server.serve("/news", LISTING.replace(b'class="news"', b'class="list"'), "text/html")
    async with httpx.AsyncClient(follow_redirects=False) as http:
        run = await run_source(loopback_source(feed_server), context(store, http, "fine"))
    assert run.failed
    assert "item selector 'ul.news li' matched nothing on the page" in (run.error or "")
    with Session(store.engine) as s:
        state = s.get(SourceState, "reg")
    assert state is not None and state.consecutive_failures == 1
    assert "ul.news li" in (state.last_error or "")


@pytest.mark.integration
async def test_loopback_a_broken_listing_leaves_other_sources_alone_and_loses_nothing(
    feed_server: FeedServer, store: Store
) -> None:
    broken = LISTING.replace(b'class="news"', b'class="list"')
    feed_server.serve("/news", broken, "text/html")
    feed_server.serve(
        "/feed.xml",
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>f</title><item>'
        b"<title>Clearview AI fined again</title><link>https://f.example.org/1</link>"
        b"</item></channel></rss>",
    )
    rss = RssSource(
        RssSourceConfig.model_validate(
            {"name": "feed", "type": "rss", "every": "1h", "url": feed_server.url("/feed.xml")}
        ),
        FetchLimits(),
    )
    html_source = loopback_source(feed_server, follow=False)
    async with httpx.AsyncClient(follow_redirects=False) as http:
        ctx = context(store, http, "clearview AND fine*")
        failed, ok = await run_source(html_source, ctx), await run_source(rss, ctx)
        assert failed.failed and not ok.failed and ok.counts.alerts == 1
        feed_server.serve("/news", LISTING, "text/html")  # the layout is back
        fixed = await run_source(html_source, ctx)
    assert (fixed.outcome, fixed.counts.new, fixed.counts.alerts) == ("ok", 3, 1)
    with Session(store.engine) as s:
        state = s.get(SourceState, "reg")
        titles = sorted(a.data["item"]["title"] for a in s.exec(select(AlertRow)).all())
    assert state is not None and state.consecutive_failures == 0
    assert titles == ["Clearview AI fined again", "Regulator fines Clearview AI"]


def fake_dns(answers: dict[str, list[str]], asked: list[str]) -> Any:
    """A resolver that knows only ``answers`` (no DNS query leaves the test)."""

    async def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        if host not in answers:
            raise OSError(f"unknown host {host}")
        return answers[host]

    return resolve


async def test_a_public_listing_never_follows_a_name_that_resolves_inside(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[str] = []
    asked: list[str] = []
    dns = fake_dns({"intranet.example.org": ["10.0.0.5"], "cdn.example.net": ["93.184.215.14"]},
                   asked)  # fmt: skip
    source = HtmlSource(config(), FetchLimits(), resolver=dns)
    page = LISTING.replace(b'href="/n/1"', b'href="http://intranet.example.org/n/1"')
    page = page.replace(b'href="/n/2"', b'href="https://cdn.example.net/n/2"')
    items = source.parse(Fetched("https://reg.example.org/news", 200, page))
    routes = {"/n/2": html(DETAIL % b"two"), "/n/3": html(DETAIL % b"three")}
    async with httpx.AsyncClient(transport=handler(routes, seen)) as client:
        enriched = await source.enrich(client, items, WANTED)
    assert sorted(seen) == ["/n/2", "/n/3"]  # the intranet page was never requested
    assert [bool(i.content) for i in enriched] == [False, True, True]
    assert asked == ["intranet.example.org", "cdn.example.net"]  # reg.example.org: not asked
    assert "intranet.example.org resolves to 10.0.0.5, a private address" in caplog.text


async def test_a_public_listing_never_follows_a_redirect_inside(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[str] = []
    dns = fake_dns({"meta.example.org": ["169.254.169.254"]}, [])
    source = HtmlSource(config(follow_limit=1), FetchLimits(), resolver=dns)
    redirect = httpx.Response(302, headers={"location": "http://meta.example.org/latest/"})
    async with httpx.AsyncClient(transport=handler({"/n/1": lambda _: redirect}, seen)) as client:
        enriched = await source.enrich(client, listed(source), WANTED)
    assert seen == ["/n/1"]  # the redirect target was refused before any request
    assert not enriched[0].content
    assert "refused: meta.example.org resolves to 169.254.169.254" in caplog.text
