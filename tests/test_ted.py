"""The ted source: the real TED v3 response excerpt, language preference, the POST it
sends, paging, and a query-syntax 400 reported as a config problem of the source."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from monitor.alerts import NotifierRoute
from monitor.errors import FetchError, ParseError, SourceConfigError
from monitor.matching import Matcher
from monitor.pipeline import PipelineContext, run_source
from monitor.sources import SOURCE_TYPES
from monitor.sources.base import FetchLimits, FetchState
from monitor.sources.ted import TedSource, parse_notices, preferred_languages
from storage.db import create_db_engine
from storage.store import Store
from tests.conftest import FIXED_NOW
from tests.support.fakes import Clock

pytestmark = pytest.mark.anyio

REAL = Path(__file__).parent / "data" / "real"
SEARCH = (REAL / "ted_v3_search_response_excerpt_2026-09-24.json").read_bytes()
SYNTAX_ERROR = (REAL / "ted_v3_error_400_query_syntax.json").read_bytes()
QUERY = 'FT ~ ("facial recognition")'


def make_source(**extra: Any) -> TedSource:
    config = SOURCE_TYPES["ted"].config_model.model_validate(
        {"name": "ted-eu", "type": "ted", "query": QUERY, "every": "6h"} | extra
    )
    source = SOURCE_TYPES["ted"].build(config, FetchLimits())
    assert isinstance(source, TedSource)
    return source


def test_real_excerpt_prefers_english_by_default() -> None:
    (item,) = parse_notices(SEARCH, "ted-eu", preferred_languages(None))
    assert item.key == "id:412169-2016"
    assert item.title == "Software licences and support" and item.language == "en"
    assert item.url == "https://ted.europa.eu/en/notice/-/detail/412169-2016"
    assert item.fields == {
        "publication_number": "412169-2016",
        "notice_type": None,
        "buyer": "Achilles South Europe, S.L.U.",
        "country": None,
        "cpv": [],
        "value": None,
        "deadline": "2026-12-01",  # "2026-12-01+01:00": a date, offset dropped
    }
    assert item.published is not None and item.published.isoformat() == "2016-11-23T00:00:00+00:00"


def test_the_source_language_comes_first_then_english_then_any() -> None:
    (spanish,) = parse_notices(SEARCH, "ted-eu", preferred_languages("es"))
    assert spanish.title == "Licencias de software y soporte"
    assert spanish.url == "https://ted.europa.eu/es/notice/-/detail/412169-2016"
    assert spanish.language == "es"
    (fallback,) = parse_notices(SEARCH, "ted-eu", preferred_languages("de"))
    assert fallback.title == "Software licences and support"
    only_spanish = json.loads(SEARCH)
    only_spanish["notices"][0]["notice-title"] = {"spa": "Solo español"}
    (anything,) = parse_notices(json.dumps(only_spanish).encode(), "ted-eu", ("deu", "eng"))
    assert anything.title == "Solo español"


def test_versions_of_a_notice_are_one_item_and_the_latest_wins() -> None:
    notice = json.loads(SEARCH)["notices"][0]
    v1 = notice | {"notice-identifier": "abc-123", "publication-number": "412169-2016"}
    v2 = notice | {"notice-identifier": "abc-123", "publication-number": "9-2017"}
    body = json.dumps({"notices": [v2, v1]}).encode()
    (item,) = parse_notices(body, "ted-eu", ("eng",))
    assert item.key == "id:abc-123" and item.fields["publication_number"] == "9-2017"


def test_values_and_cpv_are_typed() -> None:
    notice = json.loads(SEARCH)["notices"][0] | {
        "classification-cpv": ["72000000", "72000000", "48000000"],
        "estimated-value-lot": ["1200000"],
        "estimated-value-cur-lot": ["EUR"],
        "buyer-country": ["ESP"],
        "notice-type": "cn-standard",
    }
    (item,) = parse_notices(json.dumps({"notices": [notice]}).encode(), "ted-eu", ("eng",))
    assert item.fields["cpv"] == ["72000000", "48000000"]
    assert item.fields["value"] == {"amount": 1200000.0, "currency": "EUR"}
    assert item.fields["country"] == "ESP" and item.fields["notice_type"] == "cn-standard"


async def test_post_carries_query_fields_and_pages() -> None:
    bodies: list[dict[str, Any]] = []
    notice = json.loads(SEARCH)["notices"][0]

    def handler(request: httpx.Request) -> httpx.Response:
        sent = json.loads(request.content)
        bodies.append(sent)
        number = f"{sent['page']}-2026"
        page = [notice | {"publication-number": number}]
        return httpx.Response(200, json={"notices": page, "totalNoticeCount": 3})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        fetched = await make_source(page_size=1).fetch(http, FetchState())
    assert [b["page"] for b in bodies] == [1, 2, 3]
    assert bodies[0]["query"] == QUERY and "publication-number" in bodies[0]["fields"]
    assert bodies[0]["limit"] == 1
    assert len(make_source().parse(fetched)) == 3


async def test_query_syntax_error_is_a_config_problem_naming_source_and_query() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, content=SYNTAX_ERROR)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        with pytest.raises(SourceConfigError) as e:
            await make_source().fetch(http, FetchState())
    text = str(e.value)
    assert text.startswith("config: source 'ted-eu': query: TED cannot parse the expert query")
    assert QUERY in text and "Syntax error in expert query at line 1, col 8" in text
    assert "fix 'query' in sources.toml" in text


async def test_a_bad_query_is_recorded_on_that_source_only(db_url: str, tmp_path: Path) -> None:
    store = Store(create_db_engine(db_url))

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, content=SYNTAX_ERROR)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        ctx = PipelineContext(store, http, Matcher([]), (NotifierRoute("n", None),),
                              Clock(FIXED_NOW))  # fmt: skip
        run = await run_source(make_source(), ctx)
    assert run.failed and run.error is not None and run.error.startswith("config: source 'ted-eu'")
    (state,) = store.source_states()
    assert state.last_error == run.error and state.consecutive_failures == 1
    store.engine.dispose()


async def test_429_pauses_with_retry_after() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "60"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        with pytest.raises(FetchError) as e:
            await make_source().fetch(http, FetchState())
    assert e.value.retry_after == "60"


async def test_malformed_answer_is_a_parse_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=SEARCH[:200])

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        with pytest.raises(ParseError, match="truncated JSON"):
            await make_source().fetch(http, FetchState())


def test_paging_past_teds_15000_notice_limit_is_a_config_error() -> None:
    """TED's page-number mode serves at most 15,000 notices per query: pages past it fail
    on every poll, so a config that would ask for them is refused up front."""
    make_source(page_size=150, max_pages=100)  # exactly 15,000: fine
    with pytest.raises(ValidationError, match="page_size x max_pages") as e:
        make_source(page_size=250, max_pages=61)
    assert "15,000" in str(e.value) and "15250" in str(e.value)


async def test_a_query_matching_more_than_max_pages_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    notice = json.loads(SEARCH)["notices"][0]

    def handler(request: httpx.Request) -> httpx.Response:
        page = json.loads(request.content)["page"]
        batch = [notice | {"publication-number": f"{page}-2026"}]
        return httpx.Response(200, json={"notices": batch, "totalNoticeCount": 40})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        fetched = await make_source(page_size=1, max_pages=2).fetch(http, FetchState())
    assert len(make_source().parse(fetched)) == 2
    assert "source=ted-eu query matched 40 notices, this poll read 2" in caplog.text
    assert "max_pages" in caplog.text


async def test_an_answer_without_a_notices_list_is_a_parse_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"totalNoticeCount": 3})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        with pytest.raises(ParseError, match=r"source 'ted-eu'.*page 1: no 'notices' list"):
            await make_source().fetch(http, FetchState())
