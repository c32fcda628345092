"""SAM.gov contract opportunities (``type = "sam"``), the Get Opportunities Public API v2.

Example::

    [[sources]]
    name = "sam-dhs"
    type = "sam"
    api_key = "${SAM_API_KEY}"           # from the environment; never logged or stored
    notice_types = ["s", "u", "a"]       # Special Notice, Justification, Award Notice
    organization = "HOMELAND SECURITY, DEPARTMENT OF"
    every = "6h"
    daily_quota = 10                      # requests a day for this key, all sources together
    lookback = "7d"                       # how far back the first window reaches

Each poll asks for the notices posted from the last successful poll (one day of
overlap) to today, at most one year apart, paging with ``limit``/``offset`` until
``totalRecords`` is covered (a page that repeats ids ends the paging). Every request is
counted per key per UTC day in the database and never goes over ``daily_quota``; a
``429`` throttle answer pauses the source until its ``nextAccessTime`` (a wait, not a
failure). A quota that runs out mid-window keeps the pages fetched, pauses the source until
the quota is back, and the next poll resumes that window at the page reached. The notice
description (a separate, metered document) is fetched only when a rule reads the
``description`` field and today's spare quota allows it. Fields: ``notice_id``,
``solicitation_number``, ``notice_type``, ``base_type``, ``agency``, ``office``,
``posted``, ``response_deadline``, ``naics``, ``psc``, ``set_aside``, ``active``,
``award_amount``, ``award_date``, ``awardee``, ``awardee_uei``, ``ui_link``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal

import httpx
from pydantic import AfterValidator, Field, SecretStr

from monitor.config_base import SourceConfig
from monitor.durations import Duration
from monitor.errors import FetchError, MonitorError, ParseError
from monitor.models import Item
from monitor.quota import (
    Clock,
    QuotaExhausted,
    RequestLedger,
    http_date,
    key_id,
    next_access_time,
    next_utc_midnight,
    spare_requests,
    utc_day,
)
from monitor.sources.api import check_http_url, load_page
from monitor.sources.base import Fetched, FetchLimits, FetchState, SourceType, builder
from monitor.sources.http import fetch_url, redact_url
from monitor.sources.sam_records import (
    DESCRIPTION_URL,
    SAM_FIELDS,
    parse_sam,
    records_of,
)
from monitor.text import html_to_text

log = logging.getLogger("noticewatch.sources.sam")

SEARCH_PATH = "/opportunities/v2/search"
MAX_WINDOW = timedelta(days=364)  # postedFrom..postedTo: "at most one year apart"
OVERLAP = timedelta(days=1)  # dates are days: re-cover the last one for late postings
CURSOR_PREFIX = "sam-from:"
NoticeType = Literal["s", "u", "a", "p", "k", "o", "r", "g", "i"]
_THROTTLE_STATUSES = frozenset({401, 403, 429})


def _check_lookback(value: timedelta) -> timedelta:
    if value > MAX_WINDOW + timedelta(days=1):
        raise ValueError("must be at most 365d: SAM.gov searches at most one year at a time")
    return value


class SamSourceConfig(SourceConfig):
    """The keys of a ``sam`` source."""

    type: Literal["sam"]
    api_key: SecretStr
    notice_types: list[NoticeType] = Field(default_factory=list)
    organization: str | None = None
    naics: str | None = None
    title: str | None = None
    lookback: Annotated[Duration, AfterValidator(_check_lookback)] = timedelta(days=7)
    daily_quota: int = Field(default=10, ge=1)
    page_size: int = Field(default=1000, ge=1, le=1000)
    base_url: Annotated[str, AfterValidator(check_http_url)] = "https://api.sam.gov"
    timeout: Duration = timedelta(seconds=60)

    def identity(self) -> str:
        """The search it runs (never the key): another search starts a new baseline."""
        search = [self.base_url, ",".join(self.notice_types), self.organization, self.naics]
        return "|".join(part or "" for part in [*search, self.title])

    def search_params(self) -> dict[str, str]:
        params = {
            "ptype": ",".join(self.notice_types),
            "organizationName": self.organization or "",
            "ncode": self.naics or "",
            "title": self.title or "",
        }
        return {k: value for k, value in params.items() if value}


def resume_point(state: FetchState) -> tuple[date | None, date | None, int]:
    """Where the next poll starts: ``(first day, last day, offset)``.

    A window cut short by the quota left a cursor with its days and the offset reached:
    the next poll asks for the same window (same days, so the offsets still point at
    the same notices) from that offset, so each day's quota pays for new pages and a
    window larger than one day's quota completes over several days. Otherwise the
    window starts where the last complete one left (its end, less a day of overlap), else the
    day before the last success, else None (the first poll: ``lookback``); its last
    day is then today (None here) and the offset 0.

    The cursor travels in the validator slot every source has (``etag``), because it must
    advance in the same transaction as the items, like any validator.
    """
    text = (state.etag or "").strip('"')
    if text.startswith(CURSOR_PREFIX):
        first, _, rest = text.removeprefix(CURSOR_PREFIX).partition(";")
        try:
            start = date.fromisoformat(first)
            if not rest:
                return start, None, 0
            parts = dict(part.partition("=")[::2] for part in rest.split(";"))
            return start, date.fromisoformat(parts["to"]), max(int(parts["offset"]), 0)
        except (ValueError, KeyError):
            pass
    return (utc_day(state.last_success) - OVERLAP if state.last_success else None), None, 0


def resume_from(state: FetchState) -> date | None:
    """The first day of the next window (see :func:`resume_point`)."""
    return resume_point(state)[0]


def cursor(day: date, end: date | None = None, offset: int = 0) -> str:
    """A complete window's next start, or a cut-short window's days and offset reached."""
    if end is None:
        return f'"{CURSOR_PREFIX}{day.isoformat()}"'
    return f'"{CURSOR_PREFIX}{day.isoformat()};to={end.isoformat()};offset={offset}"'


def plan_window(now: datetime, start: date | None, lookback: timedelta) -> tuple[date, date]:
    """postedFrom / postedTo: from ``start`` (else ``lookback`` ago) to today, <= 1 year."""
    posted_to = utc_day(now)
    first = start if start is not None else utc_day(now - lookback)
    return min(max(first, posted_to - MAX_WINDOW), posted_to), posted_to


def _us_date(day: date) -> str:
    return day.strftime("%m/%d/%Y")


class SamSource:
    """SAM.gov opportunities; ``fetch`` pages and counts requests, ``parse`` is pure."""

    type: ClassVar[str] = "sam"

    def __init__(self, config: SamSourceConfig, limits: FetchLimits) -> None:
        self.config = config
        self.limits = replace(limits, deadline=config.timeout)
        self._key = config.api_key.get_secret_value().strip()
        self._key_id = key_id("sam", self._key)
        self._ledger: RequestLedger | None = None
        self._clock: Clock | None = None

    @property
    def name(self) -> str:
        return self.config.name

    def attach(self, ledger: RequestLedger, clock: Clock) -> None:
        self._ledger, self._clock = ledger, clock

    def quota_status(self) -> str:
        ledger, now = self._metering()
        spent = ledger.requests_spent(self._key_id, utc_day(now))
        return f"requests today (UTC): {spent} of daily_quota {self.config.daily_quota}"

    # --- fetch ----------------------------------------------------------------------------

    async def fetch(self, client: httpx.AsyncClient, state: FetchState) -> Fetched:
        """Every page of the current window, assembled into one response-shaped body."""
        if not self._key:
            raise FetchError(
                self.name,
                "api_key is empty: no request sent",
                hint="get a free public API key in your SAM.gov account (Account Details) and "
                "set the variable api_key names (SAM_API_KEY in the shipped sources.toml)",
            )
        ledger, now = self._metering()
        start, end, offset = resume_point(state)
        if start is not None and end is not None and start <= end <= utc_day(now):
            posted_from, posted_to = start, end  # resume the window cut short
        else:
            posted_from, posted_to = plan_window(now, start, self.config.lookback)
            offset = 0
        records: list[dict[str, Any]] = []
        seen: set[str] = set()
        total, started = 0, time.monotonic()
        pause: str | None = None  # set when the quota cut the window short
        while True:
            where = f"page at offset {offset}"
            try:
                page = await self._page(client, ledger, now, posted_from, posted_to, offset, where)
            except QuotaExhausted as e:
                if not records:
                    raise
                # Keep what the spent requests brought; the next poll resumes here, and
                # not before the quota is back.
                log.warning(
                    "source=%s quota ran out after %d of %d notices; keeping them, the next "
                    "poll resumes the window %s..%s at offset %d: %s",
                    self.name, offset, total, posted_from.isoformat(), posted_to.isoformat(),
                    offset, e.what,
                )  # fmt: skip
                pause = e.retry_after or http_date(next_utc_midnight(now))
                break
            batch = records_of(page, self.name, where)
            total = _total(page, self.name, where)
            fresh = [r for r in batch if _notice_id(r) not in seen]
            seen.update(_notice_id(r) for r in fresh)
            records.extend(fresh)
            offset += len(batch)
            if batch and not fresh:
                log.warning(
                    "source=%s page at offset %d repeated only known notice ids; "
                    "paging stopped there",
                    self.name,
                    offset - len(batch),
                )
            if not batch or not fresh or offset >= total:
                break
        body = json.dumps(
            {"totalRecords": total, "opportunitiesData": records}, sort_keys=True
        ).encode("utf-8")
        url = self._search_url(posted_from, posted_to, 0, with_key=False)
        if pause is None:
            next_cursor = cursor(posted_to - OVERLAP)
        else:
            next_cursor = cursor(posted_from, posted_to, offset)
        return Fetched(
            url=url,
            status=200,
            body=body,
            etag=next_cursor,
            elapsed=time.monotonic() - started,
            retry_after=pause,
        )

    async def _page(
        self,
        client: httpx.AsyncClient,
        ledger: RequestLedger,
        now: datetime,
        posted_from: date,
        posted_to: date,
        offset: int,
        where: str,
    ) -> dict[str, Any]:
        self._spend(ledger, now)
        url = self._search_url(posted_from, posted_to, offset, with_key=True)
        fetched = await self._get(client, url)
        page = load_page(fetched.body, self.name, where)
        if "totalRecords" not in page and "opportunitiesData" not in page:
            # Taken for "no notices", an error document would move the cursor past them.
            keys = ", ".join(sorted(page)[:5]) or "none"
            raise ParseError(
                self.name,
                f"{where}: not a SAM.gov search result (no totalRecords or "
                f"opportunitiesData; keys: {keys})",
                hint="check base_url points at the SAM.gov API (or a mirror of it)",
            )
        return page

    async def _get(self, client: httpx.AsyncClient, url: str) -> Fetched:
        fetched = await fetch_url(
            client,
            url,
            source=self.name,
            limits=self.limits,
            accept="application/json",
            passthrough=_THROTTLE_STATUSES,
        )
        if fetched.status == 429:
            # SAM.gov says the key's quota is spent: mark today spent in the shared ledger,
            # so no request of any kind (page, description, other process) goes out today.
            ledger, now = self._metering()
            ledger.exhaust(self._key_id, utc_day(now), self.config.daily_quota)
            raise self._throttled(fetched.body, url)
        if fetched.status in (401, 403):
            raise FetchError(
                self.name,
                f"GET {redact_url(url)}: HTTP {fetched.status}: SAM.gov refused the API key"
                f"{self._reason(fetched.body)}",
                hint="check api_key (SAM.gov keys expire after 90 days; "
                "renew it in your SAM.gov account)",
            )
        return fetched

    def _throttled(self, body: bytes, url: str) -> QuotaExhausted:
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        until = next_access_time(document) or next_utc_midnight(self._now())
        code = document.get("code") if isinstance(document, dict) else None
        return QuotaExhausted(
            self.name,
            f"GET {redact_url(url)}: HTTP 429: SAM.gov throttled this API key"
            f"{f' (code {code})' if isinstance(code, str | int) else ''}; "
            f"paused, no request before {until:%Y-%m-%d %H:%M:%SZ}",
            hint="the key's daily quota at SAM.gov is used up; lower daily_quota or poll less",
            retry_after=http_date(until),
        )

    def _reason(self, body: bytes) -> str:
        """The gateway's message, if short and free of the key."""
        try:
            document = json.loads(body)
        except ValueError:
            return ""
        error = document.get("error") if isinstance(document, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        if not isinstance(message, str) or not message.strip():
            return ""
        return ": " + " ".join(message.replace(self._key, "***").split())[:160]

    def _spend(self, ledger: RequestLedger, now: datetime) -> None:
        day = utc_day(now)
        if ledger.spend_request(self._key_id, day, self.config.daily_quota):
            return
        until = next_utc_midnight(now)
        raise QuotaExhausted(
            self.name,
            f"daily_quota of {self.config.daily_quota} requests for this API key is used up "
            f"for {day.isoformat()} (UTC); paused, no request before {until:%Y-%m-%d %H:%M:%SZ}",
            hint="raise daily_quota if your key allows more, or poll less often (every)",
            retry_after=http_date(until),
        )

    def _search_url(
        self, posted_from: date, posted_to: date, offset: int, *, with_key: bool
    ) -> str:
        params = {
            "postedFrom": _us_date(posted_from),
            "postedTo": _us_date(posted_to),
            "limit": str(self.config.page_size),
            "offset": str(offset),
            **self.config.search_params(),
        }
        if with_key:
            params = {"api_key": self._key, **params}
        base = self.config.base_url.rstrip("/") + SEARCH_PATH
        return str(httpx.URL(base, params=params))

    def _metering(self) -> tuple[RequestLedger, datetime]:
        if self._ledger is None or self._clock is None:
            raise RuntimeError(f"sam source '{self.name}' has no request ledger attached")
        return self._ledger, self._clock()

    def _now(self) -> datetime:
        return self._metering()[1]

    # --- parse and enrich -----------------------------------------------------------------

    def parse(self, fetched: Fetched) -> list[Item]:
        return parse_sam(fetched.body, self.name)

    async def enrich(
        self, client: httpx.AsyncClient, items: Sequence[Item], wanted: frozenset[str]
    ) -> list[Item]:
        """Add ``description`` text when a rule reads it and today's spare quota allows."""
        if "description" not in wanted:
            return list(items)
        ledger, now = self._metering()
        day = utc_day(now)
        spent = ledger.requests_spent(self._key_id, day)
        spare = spare_requests(spent, self.config.daily_quota, now, self.config.every)
        out: list[Item] = []
        for item in items:
            url = item.fields.get(DESCRIPTION_URL)
            if not isinstance(url, str) or not self._same_origin(url) or spare <= 0:
                out.append(item)
                continue
            if not ledger.spend_request(self._key_id, day, self.config.daily_quota):
                spare = 0
                out.append(item)
                continue
            spare -= 1
            try:
                out.append(await self._with_description(client, item, url))
            except QuotaExhausted as e:  # throttled: no more requests before it lifts
                log.warning("source=%s descriptions stopped: %s", self.name, e.what)
                spare = 0
                out.append(item)
        skipped = sum(1 for item in out if "description" not in item.fields)
        if skipped:
            log.info(
                "source=%s descriptions not fetched for %d notices (no URL or no spare quota)",
                self.name,
                skipped,
            )
        return out

    async def _with_description(self, client: httpx.AsyncClient, item: Item, url: str) -> Item:
        keyed = str(httpx.URL(url).copy_merge_params({"api_key": self._key}))
        try:
            fetched = await self._get(client, keyed)
            text = _description_text(fetched.body)
        except QuotaExhausted:
            raise
        except MonitorError as e:
            log.warning("source=%s notice=%s description not fetched: %s", self.name, item.key, e)
            return item
        return replace(item, fields={**item.fields, "description": text})

    def _same_origin(self, url: str) -> bool:
        """The key goes only to the configured API host, never to a URL a record names."""
        try:
            a, b = httpx.URL(url), httpx.URL(self.config.base_url)
        except httpx.InvalidURL:
            return False
        return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)


def _notice_id(record: dict[str, Any]) -> str:
    value = record.get("noticeId")
    return value if isinstance(value, str) else json.dumps(record, sort_keys=True)


def _total(page: dict[str, Any], source: str, where: str) -> int:
    value = page.get("totalRecords", 0)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ParseError(source, f"{where}: 'totalRecords' is not a number")
    try:
        return max(int(value), 0)
    except ValueError as e:
        raise ParseError(source, f"{where}: 'totalRecords' is not a number") from e


def _description_text(body: bytes) -> str:
    """The noticedesc answer is ``{"description": "<html>"}``; plain HTML is accepted too."""
    raw = body.decode("utf-8", "replace")
    try:
        document = json.loads(raw)
    except ValueError:
        document = None
    if isinstance(document, dict) and isinstance(document.get("description"), str):
        raw = document["description"]
    return html_to_text(raw)


SOURCE_TYPE = SourceType(
    name="sam",
    config_model=SamSourceConfig,
    build=builder(SamSourceConfig, SamSource),
    help=__doc__ or "",
    fields=SAM_FIELDS,
    templated_summary=True,
)
