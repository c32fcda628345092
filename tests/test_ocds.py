"""The ocds source: real Contracts Finder releases (golden), notice identity across
release versions, links.next paging, 429 Retry-After, 403 backoff and bad packages."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session, select

from monitor.alerts import NotifierRoute
from monitor.errors import FetchError, ParseError
from monitor.matching import Matcher, compile_rule
from monitor.pipeline import PipelineContext, run_source
from monitor.sources import SOURCE_TYPES
from monitor.sources.base import FetchLimits, FetchState
from monitor.sources.ocds import OcdsSource, parse_releases
from storage.db import create_db_engine
from storage.store import Store
from storage.tables import AlertRow
from tests.conftest import FIXED_NOW
from tests.support.fakes import Clock

pytestmark = pytest.mark.anyio

DATA = Path(__file__).parent / "data"
RELEASES = json.loads(
    (DATA / "real" / "contractsfinder_ocds_releases_2025_selection.json").read_bytes()
)
UPDATE = os.environ.get("NOTICEWATCH_UPDATE_GOLDEN") == "1"
URL = "https://www.contractsfinder.service.gov.uk/Published/Notices/OCDS/Search"


def package(releases: list[Any], next_url: str | None = None) -> bytes:
    body: dict[str, Any] = {"uri": URL, "releases": releases}
    if next_url:
        body["links"] = {"next": next_url}
    return json.dumps(body).encode()


def make_source(**extra: Any) -> OcdsSource:
    config = SOURCE_TYPES["ocds"].config_model.model_validate(
        {"name": "contracts-finder", "type": "ocds", "url": URL, "every": "1h"} | extra
    )
    source = SOURCE_TYPES["ocds"].build(config, FetchLimits())
    assert isinstance(source, OcdsSource)
    return source


def test_real_releases_match_golden() -> None:
    items = [
        {"key": i.key, "title": i.title, "url": i.url, "summary": i.summary,
         "published": i.published.isoformat() if i.published else None, "fields": i.fields}
        for i in parse_releases(package(RELEASES), "contracts-finder")
    ]  # fmt: skip
    path = DATA / "ocds" / "contractsfinder.expected.json"
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(items, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert items == json.loads(path.read_text(encoding="utf-8"))


def test_amendment_and_award_update_are_the_same_notice() -> None:
    items = parse_releases(package(RELEASES), "contracts-finder")
    assert len(items) == 7  # 9 releases: one tenderAmendment and one awardUpdate fold in
    by_ocid: dict[str, list[str]] = {}
    for item in items:
        by_ocid.setdefault(item.fields["ocid"], []).append(item.fields["tag"][0])
    assert by_ocid["ocds-b5fd17-4c20859e-a305-4461-84c9-31ee8b43f2d0"] == ["tenderAmendment"]
    assert by_ocid["ocds-b5fd17-299e8fcb-19ae-4baf-9bf6-0676f602a94a"] == ["awardUpdate"]
    # tender and award notices of one ocid are two notices
    assert sorted(by_ocid["ocds-b5fd17-0cb08240-82a6-4be3-b63a-1ba819a00d18"]) == [
        "award",
        "tender",
    ]


def test_the_amended_tender_has_a_new_content_hash_the_award_update_too() -> None:
    tender, amendment = (parse_releases(package([r]), "cf")[0] for r in RELEASES[:2])
    assert tender.key == amendment.key and tender.content_hash != amendment.content_hash
    assert "2019" in tender.title and "2025" in amendment.title


def test_fields_are_typed() -> None:
    items = {i.fields["release_id"]: i for i in parse_releases(package(RELEASES), "cf")}
    award = items["beb37fb4-925c-47ea-8f8a-ce406ef559c8-819886"].fields
    assert award["value"] == {"amount": 75000.0, "currency": "GBP"}
    assert award["suppliers"] == ["OpenView Security Solutions Limited"]
    assert award["buyer"] == "Bath and North East Somerset Council"
    tender = items["8f124d5d-fa11-457c-a0ed-431674a867c1-819916"].fields
    assert tender["deadline"] == "2025-03-31T09:00:00+00:00"
    assert tender["cpv"] == ["31500000", "50232000", "51000000", "92000000"]
    assert tender["status"] == "active" and tender["tag"] == ["tenderAmendment"]


def test_a_release_without_ocid_is_skipped_and_named(caplog: pytest.LogCaptureFixture) -> None:
    broken = {k: v for k, v in RELEASES[0].items() if k != "ocid"}
    with caplog.at_level(logging.WARNING):
        items = parse_releases(package([broken, RELEASES[4]]), "contracts-finder")
    assert [i.fields["ocid"] for i in items] == [RELEASES[4]["ocid"]]
    assert "source=contracts-finder skipped 1 releases without an 'ocid'" in caplog.text
    assert RELEASES[0]["id"] in caplog.text


def test_only_releases_without_ocid_is_a_parse_error() -> None:
    broken = {k: v for k, v in RELEASES[0].items() if k != "ocid"}
    with pytest.raises(ParseError, match="source 'contracts-finder': no release has an 'ocid'"):
        parse_releases(package([broken]), "contracts-finder")


def test_not_a_release_package_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="no 'releases' list"):
        parse_releases(b'{"records": []}', "contracts-finder")


async def test_links_next_is_followed_and_loops_are_cut() -> None:
    pages = {
        URL: package(RELEASES[:3], URL + "?page=2"),
        URL + "?page=2": package(RELEASES[3:6], URL + "?page=3"),
        URL + "?page=3": package(RELEASES[6:], URL),  # points back at the first page
    }
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, content=pages[str(request.url)])

    source = make_source(max_pages=10)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        fetched = await source.fetch(http, FetchState())
    assert seen == list(pages)
    assert len(source.parse(fetched)) == 7


async def test_max_pages_bounds_a_poll() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        n = int(request.url.params.get("page", "1"))
        return httpx.Response(200, content=package(RELEASES[n : n + 1], f"{URL}?page={n + 1}"))

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        fetched = await make_source(max_pages=2).fetch(http, FetchState())
    assert len(json.loads(fetched.body)["releases"]) == 2


async def test_429_honours_retry_after() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "120"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        with pytest.raises(FetchError) as e:
            await make_source().fetch(http, FetchState())
    assert e.value.retry_after == "120"


async def test_403_backs_off() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, text="Forbidden")

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        with pytest.raises(FetchError, match="backing off for 15m") as e:
            await make_source(backoff="15m").fetch(http, FetchState())
    assert e.value.retry_after == "900"


@pytest.fixture
async def pipeline(db_url: str, tmp_path: Path) -> AsyncIterator[PipelineContext]:
    store = Store(create_db_engine(db_url))
    async with httpx.AsyncClient(transport=httpx.MockTransport(_serve)) as http:
        yield PipelineContext(
            store, http, Matcher([compile_rule("lights", "christmas")]),
            (NotifierRoute("newsroom", None),), Clock(FIXED_NOW), baseline=False,
        )  # fmt: skip
    store.engine.dispose()


_SERVED: list[bytes] = []


def _serve(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=_SERVED[-1])


async def test_a_real_tender_amendment_sends_alert_updated(pipeline: PipelineContext) -> None:
    source = make_source()
    _SERVED.append(package(RELEASES[:1]))
    await run_source(source, pipeline)
    _SERVED.append(package(RELEASES[:2]))  # the tender, then its amendment
    run = await run_source(source, pipeline)
    assert (run.counts.new, run.counts.updated, run.counts.alerts) == (0, 1, 1)
    with Session(pipeline.store.engine) as s:
        created, updated = sorted(s.exec(select(AlertRow)).all(), key=lambda a: a.event_type)
    assert (created.event_type, updated.event_type) == ("alert.created", "alert.updated")
    assert set(updated.data["changes"]) == {"title", "tag", "release_id"}
    assert "2025" in updated.data["changes"]["title"]["new"]


async def test_stopping_at_max_pages_with_more_to_read_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        n = int(request.url.params.get("page", "1"))
        return httpx.Response(200, content=package(RELEASES[n : n + 1], f"{URL}?page={n + 1}"))

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        await make_source(max_pages=2).fetch(http, FetchState())
    assert "stopped after max_pages=2 pages" in caplog.text and "links.next" in caplog.text
    caplog.clear()

    def last_page(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=package(RELEASES[:1]))

    async with httpx.AsyncClient(transport=httpx.MockTransport(last_page)) as http:
        await make_source(max_pages=1).fetch(http, FetchState())
    assert "max_pages" not in caplog.text  # the only page: nothing left unread


async def test_a_throttle_after_the_first_page_keeps_the_pages_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Contracts Finder throttles (403, or 429 + Retry-After) part-way through the pages:
    the newest pages already read are kept and alert, the source waits as asked, and
    the first page's validators are not kept (the next poll must read past page 1)."""
    for status, headers, wait in [(403, {}, "900"), (429, {"Retry-After": "120"}, "120")]:

        def handler(request: httpx.Request, status: int = status, headers: Any = headers) -> Any:
            if request.url.params.get("page") == "2":
                return httpx.Response(status, headers=headers, text="slow down")
            return httpx.Response(
                200, headers={"ETag": '"p1"'}, content=package(RELEASES[:2], f"{URL}?page=2")
            )

        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
            fetched = await make_source(backoff="15m").fetch(http, FetchState())
        assert len(json.loads(fetched.body)["releases"]) == 2
        assert fetched.retry_after == wait and fetched.etag is None
    assert "kept the 2 releases of 1 pages read" in caplog.text


async def test_an_error_on_the_first_page_is_still_an_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, text="Forbidden")

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        with pytest.raises(FetchError, match="HTTP 403"):
            await make_source().fetch(http, FetchState())
