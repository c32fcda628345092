"""The sam source: golden SAM.gov responses, paging, windows, the daily quota, throttling,
descriptions, and the API key staying out of every message, log line and row.

Golden files: ``tests/data/sam/<case>.expected.json``; regenerate deliberately with
``NOTICEWATCH_UPDATE_GOLDEN=1`` and read the diff (a golden file records what is right).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import ValidationError

from monitor.config import load_config
from monitor.errors import FetchError, ParseError
from monitor.matching import Matcher
from monitor.models import Item
from monitor.quota import next_access_time, spare_requests
from monitor.sources import SOURCE_TYPES
from monitor.sources.base import FetchLimits, FetchState
from monitor.sources.sam import (
    SamSource,
    SamSourceConfig,
    cursor,
    plan_window,
    resume_from,
    resume_point,
)
from monitor.sources.sam_records import parse_sam
from tests.conftest import FIXED_NOW

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).parent.parent
DATA = Path(__file__).parent / "data"
REAL = DATA / "real"
UPDATE = os.environ.get("NOTICEWATCH_UPDATE_GOLDEN") == "1"
KEY = "SAMKEY-abcdef0123456789"
LIMIT10 = REAL / "samgov_v2_search_2026-02-02_limit10.json"
DOC1 = REAL / "samgov_v2_search_docs_example1_award_notice.json"
DOC2 = REAL / "samgov_v2_docs_example2_single_record_award.json"
THROTTLE = REAL / "samgov_429_quota_exceeded_body.json"


@dataclass
class MemoryLedger:
    """The RequestLedger contract in memory (the Store's is tested in test_sam_server)."""

    counts: dict[tuple[str, date], int] = field(default_factory=dict)

    def spend_request(self, key: str, day: date, limit: int) -> bool:
        if self.counts.get((key, day), 0) >= limit:
            return False
        self.counts[(key, day)] = self.counts.get((key, day), 0) + 1
        return True

    def requests_spent(self, key: str, day: date) -> int:
        return self.counts.get((key, day), 0)

    def exhaust(self, key: str, day: date, limit: int) -> None:
        self.counts[(key, day)] = max(self.counts.get((key, day), 0), limit)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def make_source(ledger: MemoryLedger | None = None, **extra: Any) -> SamSource:
    config = SamSourceConfig.model_validate(
        {"name": "sam-dhs", "type": "sam", "api_key": KEY, "every": "6h"} | extra
    )
    source = SOURCE_TYPES["sam"].build(config, FetchLimits())
    assert isinstance(source, SamSource)
    source.attach(ledger if ledger is not None else MemoryLedger(), lambda: FIXED_NOW)
    return source


def page(records: list[dict[str, Any]], total: int | None = None) -> bytes:
    body = {"totalRecords": len(records) if total is None else total, "opportunitiesData": records}
    return json.dumps(body).encode()


def rec(notice_id: str, **extra: Any) -> dict[str, Any]:
    return {"noticeId": notice_id, "title": f"T {notice_id}", "type": "Special Notice", **extra}


Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def query(request: httpx.Request) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlsplit(str(request.url)).query).items()}


def golden(item: Item) -> dict[str, Any]:
    return {
        "key": item.key,
        "title": item.title,
        "url": item.url,
        "published": item.published.isoformat() if item.published else None,
        "summary": item.summary,
        "fields": item.fields,
        "content_hash": item.content_hash,
    }


# --- parse: golden files ------------------------------------------------------------------


def _doc2_as_response() -> bytes:
    return page([json.loads(DOC2.read_bytes())])


@pytest.mark.parametrize(
    ("case", "body"),
    [
        ("limit10", lambda: LIMIT10.read_bytes()),
        ("docs_example1", lambda: DOC1.read_bytes()),
        ("docs_example2", _doc2_as_response),
    ],
)
def test_parse_matches_golden(case: str, body: Callable[[], bytes]) -> None:
    items = [golden(i) for i in parse_sam(body(), "sam-dhs")]
    expected_path = DATA / "sam" / f"{case}.expected.json"
    if UPDATE:
        expected_path.parent.mkdir(exist_ok=True)
        text = json.dumps(items, indent=2, ensure_ascii=False) + "\n"
        expected_path.write_text(text, encoding="utf-8")
    assert items == json.loads(expected_path.read_text(encoding="utf-8"))


def test_real_response_is_normalised() -> None:
    items = {i.fields["notice_id"]: i for i in parse_sam(LIMIT10.read_bytes(), "sam-dhs")}
    award = items["f90fba9ebf6243ed8290c4ed4603c182"].fields
    assert award["award_amount"] == 5000000.0 and isinstance(award["award_amount"], float)
    assert award["award_date"] == "2026-01-29"
    assert award["awardee"] == "CANCER CAREPOINT ASSOCIATES, LLC"
    assert award["awardee_uei"] == "LPZ2UE7MLNL5"
    special = items["ff9642d70c15414a85940230450bda32"]
    assert special.fields["response_deadline"] == "2026-03-02T21:00:00+00:00"  # -05:00 to UTC
    assert special.fields["posted"] == "2026-02-02"  # a date stays a date
    assert special.published == datetime(2026, 2, 2, tzinfo=UTC)
    assert special.fields["active"] is True
    # "NONE" (the code for no set-aside) and "" read as no set-aside; "SBA" is kept
    set_asides = {i.fields["notice_id"][:4]: i.fields["set_aside"] for i in items.values()}
    assert set_asides["fa64"] is None and set_asides["f95f"] is None
    assert set_asides["fd05"] is not None


def test_null_strings_are_no_value() -> None:
    (item,) = parse_sam(_doc2_as_response(), "sam-dhs")
    assert item.url is None  # uiLink "null"
    assert item.fields["ui_link"] is None and item.fields["description_url"] is None
    assert item.fields["naics"] is None and item.fields["awardee"] is None
    assert item.fields["award_amount"] == 350567.0


def test_solicitation_number_is_stripped_and_old_shape_gives_an_agency() -> None:
    (item,) = parse_sam(DOC1.read_bytes(), "sam-dhs")
    assert item.fields["solicitation_number"] == "47PF0018R0023"
    assert (
        item.fields["agency"] == "GENERAL SERVICES ADMINISTRATION.PUBLIC BUILDINGS SERVICE.PBS R5"
    )
    assert item.fields["office"] == "PBS R5"


def test_every_field_is_declared_with_the_kind_its_values_have() -> None:
    declared = SOURCE_TYPES["sam"].fields
    by_kind: dict[str, tuple[type, ...]] = {
        "text": (str, list),
        "date": (str,),  # ISO 8601
        "number": (int, float),
        "money": (int, float, dict),
        "bool": (bool,),
    }
    for item in parse_sam(LIMIT10.read_bytes(), "sam-dhs"):
        assert set(item.fields) <= set(declared)
        for name, value in item.fields.items():
            assert value is None or isinstance(value, by_kind[declared[name]]), (name, value)


def test_empty_opportunities_data_is_no_items_not_an_error() -> None:
    assert parse_sam(page([]), "sam-dhs") == []
    assert parse_sam(b'{"totalRecords": 0, "opportunitiesData": null}', "sam-dhs") == []


def test_malformed_json_names_the_source() -> None:
    with pytest.raises(ParseError, match=r"source 'sam-dhs'.*malformed JSON"):
        parse_sam(b'{"totalRecords": 1, "opportunitiesData": [}', "sam-dhs")


def test_truncated_body_says_truncated() -> None:
    body = LIMIT10.read_bytes()[:5000]
    with pytest.raises(ParseError, match=r"source 'sam-dhs'.*truncated JSON"):
        parse_sam(body, "sam-dhs")


def test_parse_keeps_first_of_repeated_ids() -> None:
    items = parse_sam(page([rec("a"), rec("a", title="other"), rec("b")]), "sam-dhs")
    assert [i.title for i in items] == ["T a", "T b"]


# --- config -------------------------------------------------------------------------------


def test_config_rejects_unknown_notice_types_and_long_lookback() -> None:
    with pytest.raises(ValidationError) as e:
        SamSourceConfig.model_validate(
            {"name": "s", "type": "sam", "api_key": KEY, "every": "6h",
             "notice_types": ["s", "x"], "lookback": "400d", "page_size": 5000}
        )  # fmt: skip
    text = str(e.value)
    assert "notice_types" in text and "lookback" in text and "page_size" in text
    assert KEY not in text


def test_identity_never_holds_the_key() -> None:
    assert KEY not in make_source().config.identity()


# --- windows --------------------------------------------------------------------------------


def test_first_window_reaches_back_lookback_then_from_last_success() -> None:
    week = timedelta(days=7)
    assert resume_from(FetchState()) is None
    assert plan_window(FIXED_NOW, None, week) == (date(2026, 11, 15), FIXED_NOW.date())
    last = datetime(2026, 11, 21, 23, 0, tzinfo=UTC)
    start = resume_from(FetchState(last_success=last))
    assert plan_window(FIXED_NOW, start, week) == (date(2026, 11, 20), FIXED_NOW.date())
    # a poll cut short by the quota left a cursor: it wins over the last success
    cut_short = FetchState(etag=cursor(date(2026, 11, 10)), last_success=last)
    assert resume_from(cut_short) == date(2026, 11, 10)
    assert resume_from(FetchState(etag='"sam-from:garbage"', last_success=last)) == date(
        2026, 11, 20
    )
    resumed = FetchState(etag=cursor(date(2026, 11, 10), date(2026, 11, 21), 2000))
    assert resume_point(resumed) == (date(2026, 11, 10), date(2026, 11, 21), 2000)
    broken = FetchState(etag='"sam-from:2026-11-10;to=x;offset=2"', last_success=last)
    assert resume_point(broken) == (date(2026, 11, 20), None, 0)


def test_window_is_at_most_a_year() -> None:
    long_ago = (FIXED_NOW - timedelta(days=900)).date()
    start, end = plan_window(FIXED_NOW, long_ago, timedelta(days=7))
    assert (end - start).days == 364


async def test_request_carries_mm_dd_yyyy_window_filters_and_key() -> None:
    seen: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(query(request))
        return httpx.Response(200, content=page([]))

    source = make_source(notice_types=["s", "u", "a"], organization="HOMELAND SECURITY",
                         naics="541511", title="facial")  # fmt: skip
    async with client(handler) as http:
        fetched = await source.fetch(http, FetchState())
    (q,) = seen
    assert q["postedFrom"] == "11/15/2026" and q["postedTo"] == "11/22/2026"
    assert q["ptype"] == "s,u,a" and q["organizationName"] == "HOMELAND SECURITY"
    assert q["ncode"] == "541511" and q["title"] == "facial"
    assert q["api_key"] == KEY and q["limit"] == "1000" and q["offset"] == "0"
    assert KEY not in fetched.url and KEY.encode() not in fetched.body


# --- paging ---------------------------------------------------------------------------------


async def test_pages_until_total_records_is_covered() -> None:
    records = [rec(f"n{i}") for i in range(5)]

    def handler(request: httpx.Request) -> httpx.Response:
        q = query(request)
        offset, limit = int(q["offset"]), int(q["limit"])
        return httpx.Response(200, content=page(records[offset : offset + limit], total=5))

    ledger = MemoryLedger()
    source = make_source(ledger, page_size=2)
    async with client(handler) as http:
        fetched = await source.fetch(http, FetchState())
    assert [i.fields["notice_id"] for i in source.parse(fetched)] == [
        r["noticeId"] for r in records
    ]
    assert ledger.total == 3


async def test_a_page_that_repeats_ids_stops_the_paging(caplog: pytest.LogCaptureFixture) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(200, content=page([rec("a"), rec("b")], total=1000))

    source = make_source(page_size=2)
    async with client(handler) as http:
        fetched = await source.fetch(http, FetchState())
    assert calls == 2
    assert [i.key for i in source.parse(fetched)] == ["id:a", "id:b"]
    assert "repeated only known notice ids" in caplog.text


# --- quota and throttling ---------------------------------------------------------------------


async def test_daily_quota_is_never_exceeded() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(200, content=page([rec(f"n{calls}")], total=10))

    ledger = MemoryLedger()
    source = make_source(ledger, page_size=1, daily_quota=3)
    async with client(handler) as http:
        partial = await source.fetch(http, FetchState())
        assert calls == 3
        with pytest.raises(FetchError, match="daily_quota of 3 requests") as e:
            await source.fetch(http, FetchState(etag=partial.etag))
    assert calls == 3  # the second poll sent nothing
    assert e.value.retry_after == "Mon, 23 Nov 2026 00:00:00 GMT"  # next UTC midnight
    # the three pages the quota paid for are kept; the next poll resumes at the fourth
    assert [i.key for i in source.parse(partial)] == ["id:n1", "id:n2", "id:n3"]
    assert partial.etag == cursor(date(2026, 11, 15), date(2026, 11, 22), 3)
    assert partial.retry_after == "Mon, 23 Nov 2026 00:00:00 GMT"  # paused till the quota is back
    assert source.quota_status() == "requests today (UTC): 3 of daily_quota 3"


async def test_a_complete_window_moves_the_cursor_to_yesterday() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=page([rec("a")]))

    async with client(handler) as http:
        fetched = await make_source().fetch(http, FetchState())
    assert fetched.etag == cursor(date(2026, 11, 21))


async def test_a_429_mid_paging_keeps_the_pages_already_paid_for() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if query(request)["offset"] == "0":
            return httpx.Response(200, content=page([rec("a")], total=5))
        return httpx.Response(429, content=THROTTLE.read_bytes())

    async with client(handler) as http:
        fetched = await make_source(page_size=1).fetch(http, FetchState())
    assert [i.key for i in parse_sam(fetched.body, "sam-dhs")] == ["id:a"]
    assert fetched.etag == cursor(date(2026, 11, 15), date(2026, 11, 22), 1)
    # no request before SAM.gov's nextAccessTime: the pipeline pauses the source until then
    assert fetched.retry_after == "Sat, 23 May 2026 00:00:00 GMT"


async def test_429_throttle_body_pauses_until_next_access_time() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, content=THROTTLE.read_bytes())

    source = make_source()
    async with client(handler) as http:
        with pytest.raises(FetchError) as e:
            await source.fetch(http, FetchState())
    assert e.value.retry_after == "Sat, 23 May 2026 00:00:00 GMT"
    assert "throttled this API key (code 900804)" in str(e.value)
    assert "no request before 2026-05-23 00:00:00Z" in str(e.value)
    assert KEY not in str(e.value) and "api_key=***" in str(e.value)


def test_next_access_time_formats() -> None:
    assert next_access_time(json.loads(THROTTLE.read_bytes())) == datetime(2026, 5, 23, tzinfo=UTC)
    shifted = {"nextAccessTime": "2026-May-23 02:00:00+0200 UTC"}
    assert next_access_time(shifted) == datetime(2026, 5, 23, tzinfo=UTC)
    assert next_access_time({"nextAccessTime": "tomorrow"}) is None
    assert next_access_time("not a dict") is None


async def test_429_without_a_readable_time_pauses_until_midnight() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, text="<html>slow down</html>")

    async with client(handler) as http:
        with pytest.raises(FetchError) as e:
            await make_source().fetch(http, FetchState())
    assert e.value.retry_after == "Mon, 23 Nov 2026 00:00:00 GMT"


@pytest.mark.parametrize("status", [401, 403])
async def test_bad_key_is_a_clear_error_that_never_echoes_the_key(status: int) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"error": {"code": "API_KEY_INVALID", "message": f"bad key {KEY} supplied"}}
        return httpx.Response(status, json=body)

    async with client(handler) as http:
        with pytest.raises(FetchError) as e:
            await make_source().fetch(http, FetchState())
    text = str(e.value)
    assert f"HTTP {status}: SAM.gov refused the API key" in text and "check api_key" in text
    assert KEY not in text and "bad key *** supplied" in text


async def test_truncated_page_is_a_parse_error_naming_the_page() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=LIMIT10.read_bytes()[:3000])

    async with client(handler) as http:
        with pytest.raises(ParseError, match="page at offset 0: truncated JSON"):
            await make_source().fetch(http, FetchState())


def test_spare_requests_keep_one_per_remaining_poll() -> None:
    # 14h left in the day at 10:00 UTC, polling every 6h: 3 polls still need a request.
    assert spare_requests(2, 10, FIXED_NOW, timedelta(hours=6)) == 5
    assert spare_requests(8, 10, FIXED_NOW, timedelta(hours=6)) == 0


# --- descriptions ---------------------------------------------------------------------------


def _described(notice_id: str, host: str = "https://api.sam.gov") -> Item:
    url = f"{host}/prod/opportunities/v1/noticedesc?noticeid={notice_id}"
    (item,) = parse_sam(page([rec(notice_id, description=url)]), "sam-dhs")
    return item


async def test_description_is_fetched_only_when_a_rule_reads_it() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, json={"description": "<p>Intent to award <b>sole source</b></p>"}
        )

    ledger = MemoryLedger()
    source = make_source(ledger, daily_quota=100)
    item = _described("n1")
    async with client(handler) as http:
        assert await source.enrich(http, [item], frozenset({"title", "summary"})) == [item]
        assert seen == []
        (enriched,) = await source.enrich(http, [item], frozenset({"title", "description"}))
    assert enriched.fields["description"] == "Intent to award sole source"
    assert enriched.key == item.key and enriched.content_hash == item.content_hash
    assert query(seen[0])["api_key"] == KEY and ledger.total == 1
    assert KEY not in json.dumps(enriched.fields)


async def test_description_waits_when_the_quota_has_no_spare() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request may be sent")

    source = make_source(MemoryLedger(), daily_quota=3)  # 3 polls still due today
    async with client(handler) as http:
        (same,) = await source.enrich(http, [_described("n1")], frozenset({"description"}))
    assert "description" not in same.fields


async def test_the_key_is_never_sent_to_another_host() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"sent to {request.url.host}")

    source = make_source(MemoryLedger(), daily_quota=100)
    item = _described("n1", host="https://evil.example.org")
    async with client(handler) as http:
        (same,) = await source.enrich(http, [item], frozenset({"description"}))
    assert "description" not in same.fields


async def test_a_failed_description_degrades_that_item_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if query(request)["noticeid"] == "bad":
            return httpx.Response(500, text=f"boom {KEY}")
        return httpx.Response(200, json={"description": "fine"})

    source = make_source(MemoryLedger(), daily_quota=100)
    with caplog.at_level(logging.INFO):
        async with client(handler) as http:
            bad, good = await source.enrich(
                http, [_described("bad"), _described("good")], frozenset({"description"})
            )
    assert "description" not in bad.fields and good.fields["description"] == "fine"
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("noticewatch"))
    assert "description not fetched" in ours and KEY not in ours


async def test_an_empty_key_sends_nothing_and_says_what_to_set() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request may be sent")

    ledger = MemoryLedger()
    source = make_source(ledger, api_key="")
    async with client(handler) as http:
        with pytest.raises(FetchError, match="api_key is empty: no request sent") as e:
            await source.fetch(http, FetchState())
    assert "SAM_API_KEY" in str(e.value) and ledger.total == 0


def test_the_shipped_seed_rule_catches_the_seed_example() -> None:
    # SYNTHETIC record (no real SAM.gov record of the ICE/Clearview notice was found):
    # the shape of the real responses, the words of the seed example.
    env = {
        "NOTICEWATCH_WEBHOOK_URL": "https://hooks.example.org/x",
        "NOTICEWATCH_WEBHOOK_SECRET": "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=",
    }
    config = load_config(ROOT / "sources.toml", env)
    matcher = Matcher(config.rules)
    seed = rec(
        "synthetic01",
        title="Notice of Intent to Sole Source: Clearview AI facial recognition licenses",
        fullParentPathName="HOMELAND SECURITY, DEPARTMENT OF.US IMMIGRATION AND CUSTOMS "
        "ENFORCEMENT.ICE PROCUREMENT",
    )
    justification = rec("synthetic02", type="Justification",
                        title="J&A FAR 6.302-1: facial recognition software")  # fmt: skip
    award = rec("synthetic03", type="Award Notice", title="Sole source facial recognition award")
    items = parse_sam(page([seed, justification, award]), "sam-dhs")
    fired = {i.fields["notice_id"]: {m.rule for m in matcher.match(i)} for i in items}
    assert "sam-sole-source" in fired["synthetic01"]
    assert "sam-sole-source" in fired["synthetic02"]
    assert "sam-sole-source" not in fired["synthetic03"]


# --- a window larger than a day's quota -------------------------------------------------------


async def test_a_window_larger_than_a_days_quota_completes_over_the_following_days() -> None:
    """The cursor keeps the page reached: each day's quota pays for new pages, never the
    same first pages again (before, a window over (daily_quota - 1) x page_size notices
    restarted at offset 0 every day and never completed)."""
    records = [rec(f"n{i}") for i in range(7)]
    asked: list[tuple[str, str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        q = query(request)
        asked.append((q["postedFrom"], q["postedTo"], q["offset"]))
        offset, limit = int(q["offset"]), int(q["limit"])
        return httpx.Response(200, content=page(records[offset : offset + limit], total=7))

    now = FIXED_NOW
    source = make_source(page_size=1, daily_quota=3)
    source.attach(MemoryLedger(), lambda: now)
    state, keys = FetchState(), []
    async with client(handler) as http:
        for _ in range(3):
            fetched = await source.fetch(http, state)
            keys += [i.key for i in source.parse(fetched)]
            state = FetchState(etag=fetched.etag, last_success=now)
            now += timedelta(days=1)
    assert keys == [f"id:n{i}" for i in range(7)]  # every notice once
    window = ("11/15/2026", "11/22/2026")  # the first window, kept while it is resumed
    assert asked == [(*window, str(offset)) for offset in range(7)]
    # complete: the next window starts the day before the completed window's end
    assert resume_from(state) == date(2026, 11, 21)


async def test_a_throttled_description_stops_every_request_until_the_quota_is_back() -> None:
    """After SAM.gov's 429 no request goes out before nextAccessTime: not the next
    descriptions of this poll, and not the next poll's search (the day is marked spent)."""
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        return httpx.Response(429, content=THROTTLE.read_bytes())

    ledger = MemoryLedger()
    source = make_source(ledger, daily_quota=100)
    items = [_described(f"n{i}") for i in range(3)]
    async with client(handler) as http:
        out = await source.enrich(http, items, frozenset({"description"}))
        assert all("description" not in item.fields for item in out) and len(sent) == 1
        with pytest.raises(FetchError, match="daily_quota of 100 requests"):
            await source.fetch(http, FetchState())
    assert len(sent) == 1


async def test_an_answer_that_is_no_search_result_is_an_error_not_an_empty_window() -> None:
    """A 200 answer without totalRecords or opportunitiesData (a gateway page, an error
    document) must not pass for "no notices": the cursor would move past the window."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"errorMessage": "Internal error, try later"})

    async with client(handler) as http:
        with pytest.raises(ParseError, match=r"page at offset 0: not a SAM\.gov search result"):
            await make_source().fetch(http, FetchState())
