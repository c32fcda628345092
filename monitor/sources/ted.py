"""EU Tenders Electronic Daily (``type = "ted"``): the TED search API v3.

Example::

    [[sources]]
    name = "ted-facial-recognition"
    type = "ted"
    query = 'FT ~ ("facial recognition") AND publication-date >= today(-7)'
    language = "de"       # multilingual values: this language first, then English, then any
    every = "6h"
    max_pages = 3         # pages of page_size notices per poll

Each poll POSTs the expert ``query`` to ``/v3/notices/search`` asking for the fields
below, page by page while notices remain (at most ``max_pages``). Notices are keyed by
their notice identifier when TED gives one (so a new version of a notice is an update of
the same item, with its new publication number), else by publication number. Multilingual
values come as maps keyed by language (``{"eng": ..., "spa": ...}``): the source's
``language`` is picked first, then English, then any. A query TED cannot parse (HTTP 400
``QUERY_SYNTAX_ERROR``) is reported as a config problem of this source, with its query.
Fields: ``publication_number``, ``notice_type``, ``buyer``, ``country``, ``cpv``,
``value`` (amount and currency), ``deadline``.
"""

from __future__ import annotations

import html
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Literal

import httpx
from pydantic import AfterValidator, Field, model_validator

from monitor.config_base import SourceConfig
from monitor.durations import Duration
from monitor.errors import FetchError, ParseError, SourceConfigError
from monitor.identity import content_hash, item_key
from monitor.matching.schema import DATE, MONEY, TEXT
from monitor.models import Item
from monitor.sources import values as v
from monitor.sources.api import check_http_url, load_page, post_json
from monitor.sources.base import Fetched, FetchLimits, FetchState, SourceType, builder
from monitor.sources.http import redact_url

log = logging.getLogger("noticewatch.sources.ted")

SEARCH_PATH = "/v3/notices/search"
PAGED_LIMIT = 15_000  # notices TED serves per query in page-number mode; past it, errors
# The fields items of this type carry, and what each holds (for rules on them).
TED_FIELDS: Mapping[str, str] = MappingProxyType(
    {
        "publication_number": TEXT,
        "notice_type": TEXT,
        "buyer": TEXT,
        "country": TEXT,
        "cpv": TEXT,
        "value": MONEY,
        "deadline": DATE,
    }
)
REQUESTED = (
    "publication-number",
    "notice-identifier",
    "publication-date",
    "notice-title",
    "notice-type",
    "buyer-name",
    "buyer-country",
    "classification-cpv",
    "deadline-receipt-tender-date-lot",
    "total-value",
    "total-value-cur",
    "estimated-value-lot",
    "estimated-value-cur-lot",
    "description-proc",
    "links",
)
# TED keys its multilingual maps by ISO 639-2/B codes; users write ISO 639-1.
_ISO639_2 = {
    "bg": "bul", "cs": "ces", "da": "dan", "de": "deu", "el": "ell", "en": "eng", "es": "spa",
    "et": "est", "fi": "fin", "fr": "fra", "ga": "gle", "hr": "hrv", "hu": "hun", "it": "ita",
    "lt": "lit", "lv": "lav", "mt": "mlt", "nl": "nld", "pl": "pol", "pt": "por", "ro": "ron",
    "sk": "slk", "sl": "slv", "sv": "swe",
}  # fmt: skip


class TedSourceConfig(SourceConfig):
    """The keys of a ``ted`` source."""

    type: Literal["ted"]
    query: str = Field(min_length=1)
    page_size: int = Field(default=100, ge=1, le=250)
    max_pages: int = Field(default=3, ge=1, le=100)
    base_url: Annotated[str, AfterValidator(check_http_url)] = "https://api.ted.europa.eu"
    timeout: Duration = timedelta(seconds=60)

    def identity(self) -> str:
        return f"{self.base_url}|{self.query}"

    @model_validator(mode="after")
    def _within_teds_paging(self) -> TedSourceConfig:
        asked = self.page_size * self.max_pages
        if asked > PAGED_LIMIT:
            raise ValueError(
                f"page_size x max_pages is {asked}, but TED serves at most 15,000 notices "
                "per query page by page: lower max_pages, or narrow the query "
                "(e.g. publication-date >= today(-7))"
            )
        return self


class TedSource:
    """TED notices matching an expert query; ``fetch`` pages, ``parse`` is pure."""

    type: ClassVar[str] = "ted"

    def __init__(self, config: TedSourceConfig, limits: FetchLimits) -> None:
        self.config = config
        self.limits = replace(limits, deadline=config.timeout)
        self.languages = preferred_languages(config.language)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def url(self) -> str:
        return self.config.base_url.rstrip("/") + SEARCH_PATH

    async def fetch(self, client: httpx.AsyncClient, state: FetchState) -> Fetched:
        """Every page of the query's notices, assembled into one response-shaped body."""
        started = time.monotonic()
        notices: list[Any] = []
        total = 0
        for page in range(1, self.config.max_pages + 1):
            document = await self._page(client, page)
            batch = document.get("notices")
            if not isinstance(batch, list):
                where = f"POST {redact_url(self.url)} page {page}"
                raise ParseError(self.name, f"{where}: no 'notices' list in TED's answer")
            notices.extend(batch)
            count = document.get("totalNoticeCount")
            total = count if isinstance(count, int) and not isinstance(count, bool) else 0
            if not batch or page * self.config.page_size >= total:
                break
        if total > len(notices) and len(notices) >= self.config.max_pages * self.config.page_size:
            # Silently reading part of the matches would hide notices: say which key to change.
            log.warning(
                "source=%s query matched %d notices, this poll read %d (max_pages=%d x "
                "page_size=%d); narrow the query or raise max_pages",
                self.name, total, len(notices), self.config.max_pages, self.config.page_size,
            )  # fmt: skip
        body = json.dumps({"notices": notices, "totalNoticeCount": total}, sort_keys=True)
        return Fetched(
            url=redact_url(self.url),
            status=200,
            body=body.encode("utf-8"),
            content_type="application/json",
            elapsed=time.monotonic() - started,
        )

    async def _page(self, client: httpx.AsyncClient, page: int) -> dict[str, Any]:
        payload = {
            "query": self.config.query,
            "fields": list(REQUESTED),
            "page": page,
            "limit": self.config.page_size,
            "scope": "ALL",
            "paginationMode": "PAGE_NUMBER",
        }
        status, body, retry_after = await post_json(
            client, self.url, payload, source=self.name, limits=self.limits
        )
        where = f"POST {redact_url(self.url)} page {page}"
        if status == 400:
            raise self._rejected(body, where)
        if not 200 <= status < 300:
            raise FetchError(
                self.name,
                f"{where}: HTTP {status}"
                + (f" (Retry-After: {retry_after})" if retry_after else ""),
                hint="the server failed; this is usually temporary" if status >= 500 else None,
                retry_after=retry_after if status in (429, 503) else None,
            )
        return load_page(body, self.name, where)

    def _rejected(self, body: bytes, where: str) -> Exception:
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        kind = v.text(v.dig(document, "error", "type"))
        message = v.text(v.dig(document, "message")) or "(no message)"
        if kind == "QUERY_SYNTAX_ERROR":
            return SourceConfigError(
                self.name,
                f"query: TED cannot parse the expert query {self.config.query!r}: {message[:300]}",
                hint="fix 'query' in sources.toml (TED expert search syntax, "
                'e.g. FT ~ ("facial recognition"))',
            )
        return FetchError(
            self.name, f"{where}: HTTP 400 ({kind or 'bad request'}): {message[:300]}"
        )

    def parse(self, fetched: Fetched) -> list[Item]:
        return parse_notices(fetched.body, self.name, self.languages)


def preferred_languages(language: str | None) -> tuple[str, ...]:
    """The map keys to try first: the source's language (as TED writes it), then English."""
    wanted = (language or "").lower().split("-")[0]
    first = _ISO639_2.get(wanted, wanted) if wanted else ""
    return tuple(dict.fromkeys(code for code in (first, "eng") if code))


def parse_notices(body: bytes, source: str, languages: tuple[str, ...]) -> list[Item]:
    """Each notice as an item; the latest publication of a notice identifier wins."""
    document = load_page(body, source, "TED response")
    found: dict[str, Item] = {}
    for notice in document.get("notices") or []:
        item = notice_item(v.obj(notice), source, languages)
        if item is None:
            continue
        kept = found.get(item.key)
        if kept is None or _order(item) > _order(kept):
            found[item.key] = item
    return list(found.values())


def _order(item: Item) -> tuple[int, int]:
    """Publication numbers read ``<number>-<year>``: later year, then larger number."""
    number, _, year = str(item.fields["publication_number"]).partition("-")
    return (int(year), int(number)) if year.isdigit() and number.isdigit() else (0, 0)


def notice_item(notice: dict[str, Any], source: str, languages: tuple[str, ...]) -> Item | None:
    def one(name: str) -> Any:
        value = v.pick_language(notice.get(name), languages)
        return value[0] if isinstance(value, list) and value else value

    number = v.text(one("publication-number"))
    if number is None:
        return None
    fields = {
        "publication_number": number,
        "notice_type": v.text(one("notice-type")),
        "buyer": v.text(one("buyer-name")),
        "country": v.text(one("buyer-country")),
        "cpv": v.texts(notice.get("classification-cpv") or []),
        "value": v.money(one("total-value"), one("total-value-cur"))
        or v.money(one("estimated-value-lot"), one("estimated-value-cur-lot")),
        "deadline": v.when(one("deadline-receipt-tender-date-lot")),
    }
    title = v.text(one("notice-title")) or f"TED notice {number}"
    summary = v.text(one("description-proc")) or ""
    links = v.obj(notice.get("links"))
    upper = tuple(code.upper() for code in languages)
    url = v.text(v.pick_language(links.get("html"), upper)) or v.text(
        v.pick_language(links.get("xml"), upper)
    )
    identifier = v.text(one("notice-identifier"))
    return Item(
        source=source,
        source_type="ted",
        key=item_key(identifier or number, None, title, ""),
        content_hash=content_hash(title, summary, "", url, fields),
        title=title,
        url=url,
        published=v.as_datetime(v.when(one("publication-date"))),
        summary_html=html.escape(summary, quote=False),
        language=_language_of(notice.get("notice-title"), languages),
        fields=fields,
    )


def _language_of(titles: Any, languages: tuple[str, ...]) -> str | None:
    """The ISO 639-1 code of the language the title was read in, when TED says."""
    if not isinstance(titles, dict) or not titles:
        return None
    keys = {str(k).casefold() for k in titles}
    chosen = next((code for code in languages if code in keys), next(iter(keys)))
    return next((two for two, three in _ISO639_2.items() if three == chosen), None)


SOURCE_TYPE = SourceType(
    name="ted",
    config_model=TedSourceConfig,
    build=builder(TedSourceConfig, TedSource),
    help=__doc__ or "",
    fields=TED_FIELDS,
)
