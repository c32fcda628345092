"""Press-release listing pages (``type = "html"``), for regulators that publish no feed.

Example::

    [[sources]]
    name = "ico"
    type = "html"
    url = "https://ico.org.uk/about-the-ico/media-centre/news-and-blogs/"
    every = "30m"
    language = "en-GB"
    item = "ul.listing li"            # one entry of the listing
    title = "h3"                      # CSS inside the entry
    link = "a@href"                   # `@attr` takes an attribute instead of the text
    date = "time@datetime"
    summary = "p.summary"
    follow = true                     # fetch each new entry's page, match on its text
    detail_selector = "main article"  # the main text on that page

Each element ``item`` selects becomes one item. Links are resolved against the page
(relative and protocol-relative alike) and the canonical link is the item's identity.
Dates are read in the page's language (``language``, else ``<html lang>``) by
``monitor.dates``; an entry without a readable date is kept, undated.

A selector that matches nothing is a broken source, not an empty one: the poll fails
with a message naming the key and selector (``item``, ``title`` or ``link`` matching
nothing on the page; ``date`` or ``summary`` matching in none of two or more entries).

With ``follow = true``, at most ``follow_limit`` (default 20) new or changed entries
per poll have their page fetched, with the same timeout and size cap as the listing,
and only when a rule reads the ``content`` field. A detail page that fails, is too
large or is not HTML (a PDF) leaves its item as the listing had it; so does a link
from a public listing to a loopback, private or cloud-metadata address, written as
such (``http://169.254.169.254/``, ``http://localhost:8080/``), as a name on another
host that resolves to one, or reached by a redirect.
"""

from __future__ import annotations

import asyncio
import html
import ipaddress
import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Annotated, ClassVar, Literal
from urllib.parse import urlsplit

import httpx
from bs4 import Tag
from pydantic import AfterValidator, ByteSize, Field, model_validator

from monitor.config_base import SourceConfig
from monitor.dates import parse_date
from monitor.durations import Duration
from monitor.errors import MonitorError, ParseError
from monitor.identity import content_hash, item_key
from monitor.models import Item
from monitor.netguard import (
    Resolver,
    blocked_kind,
    host_problem,
    literal_address,
    system_resolver,
)
from monitor.sources.base import Fetched, FetchLimits, FetchState, SourceType, builder
from monitor.sources.htmlpage import (
    Selector,
    absolute_link,
    decode_html,
    inner_html,
    page_base,
    page_language,
    parse_selector,
    soup,
)
from monitor.sources.http import fetch_url, redact_url

log = logging.getLogger("noticewatch.sources.html")

ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.1"
DETAIL_FIELDS = frozenset({"content"})  # what a detail page adds to an item
DETAIL_CONCURRENCY = 4
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_MAIN = ("main", "article", "[role=main]", "body")
_HTTP_SCHEMES = frozenset({"http", "https"})


def _check_url(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme.lower() not in _HTTP_SCHEMES or not parts.netloc:
        raise ValueError(f"{value!r} is not an http:// or https:// URL")
    return value.strip()


def _check_selector(value: str) -> str:
    parse_selector(value)  # raises ValueError naming the problem
    return value.strip()


CssSelector = Annotated[str, AfterValidator(_check_selector)]


class HtmlSourceConfig(SourceConfig):
    """The keys of an ``html`` source."""

    type: Literal["html"]
    url: Annotated[str, AfterValidator(_check_url)]
    item: CssSelector
    title: CssSelector
    link: CssSelector = "a@href"
    date: CssSelector | None = None
    summary: CssSelector | None = None
    follow: bool = False
    follow_limit: int = Field(default=20, ge=1, le=200)
    detail_selector: CssSelector | None = None
    timeout: Duration = timedelta(seconds=30)
    max_bytes: Annotated[ByteSize, Field(gt=0)] = ByteSize(10 * 1024 * 1024)

    @model_validator(mode="after")
    def _detail_needs_follow(self) -> HtmlSourceConfig:
        if self.detail_selector is not None and not self.follow:
            raise ValueError("detail_selector is only used with follow = true; set follow")
        return self

    def identity(self) -> str:
        return self.url


class HtmlSource:
    """A listing page read with CSS selectors; ``parse`` is pure, ``enrich`` fetches."""

    type: ClassVar[str] = "html"

    def __init__(
        self, config: HtmlSourceConfig, limits: FetchLimits, resolver: Resolver = system_resolver
    ) -> None:
        self.config = config
        self.limits = replace(limits, deadline=config.timeout, max_bytes=int(config.max_bytes))
        self.item = parse_selector(config.item)
        self.title = parse_selector(config.title)
        self.link = parse_selector(config.link)
        self.date = parse_selector(config.date) if config.date else None
        self.summary = parse_selector(config.summary) if config.summary else None
        detail = [config.detail_selector] if config.detail_selector else list(_MAIN)
        self.detail = [parse_selector(spec) for spec in detail]
        # A page on the internet must not steer us to the cloud metadata service or an
        # admin port on our own network; a listing on an intranet may link within it.
        self.host = (urlsplit(config.url).hostname or "").lower()
        self.public = host_problem(self.host) is None
        self.resolve: Resolver = resolver

    @property
    def name(self) -> str:
        return self.config.name

    async def fetch(self, client: httpx.AsyncClient, state: FetchState) -> Fetched:
        return await fetch_url(
            client,
            self.config.url,
            source=self.name,
            limits=self.limits,
            state=state,
            accept=ACCEPT,
        )

    # --- the listing (pure) ----------------------------------------------------------------

    def parse(self, fetched: Fetched) -> list[Item]:
        """One item per entry, first occurrence of each key; ParseError if a selector broke."""
        if fetched.not_modified:
            return []
        if not fetched.body.strip():
            raise ParseError(self.name, "the response body is empty")
        page = soup(decode_html(fetched.body, fetched.content_type))
        entries = self.item.all(page)
        if not entries:
            raise self._broken("item", self.item, "on the page")
        base = page_base(page, fetched.url)
        language = self.config.language or page_language(page)
        self._check_selectors(entries)
        items: dict[str, Item] = {}
        for entry in entries:
            item = self._item(entry, base, language)
            if item is not None and item.key not in items:
                items[item.key] = item
        return list(items.values())

    def _check_selectors(self, entries: Sequence[Tag]) -> None:
        """A selector matching in no entry means the layout changed under it."""
        required: list[tuple[str, Selector | None]] = [("title", self.title), ("link", self.link)]
        if len(entries) >= 2:  # one undated entry is plausible; a whole undated page is not
            required += [("date", self.date), ("summary", self.summary)]
        for key, selector in required:
            fallback = selector is self.date
            if selector is not None and all(
                selector.text(e, text_fallback=fallback) is None for e in entries
            ):
                many = len(entries) > 1
                where = f"in any of the {len(entries)} entries" if many else "in the entry"
                raise self._broken(key, selector, where)

    def _broken(self, key: str, selector: Selector, where: str) -> ParseError:
        return ParseError(
            self.name,
            f"{key} selector {selector.spec!r} matched nothing {where}",
            hint="the page layout has probably changed; update this selector in sources.toml",
        )

    def _item(self, entry: Tag, base: str, language: str | None) -> Item | None:
        title = self.title.text(entry) or ""
        link = absolute_link(base, self.link.text(entry))
        summary_html = self._summary_html(entry)
        if not (title or link or summary_html):
            return None
        date_text = self.date.text(entry, text_fallback=True) if self.date else None
        return Item(
            source=self.name,
            source_type=self.type,
            key=item_key(None, link, title, summary_html),
            content_hash=content_hash(title, summary_html, "", link, {}),
            title=title,
            url=link,
            published=parse_date(date_text, language),
            summary_html=summary_html,
            language=language,
            base_url=base,  # relative links in the summary are relative to the listing
        )

    def _summary_html(self, entry: Tag) -> str:
        if self.summary is None:
            return ""
        if self.summary.attr is not None:
            return html.escape(self.summary.text(entry) or "", quote=False)
        found = self.summary.first(entry)
        return inner_html(found) if found is not None else ""

    # --- detail pages (I/O) -----------------------------------------------------------------

    async def enrich(
        self, client: httpx.AsyncClient, items: Sequence[Item], wanted: frozenset[str]
    ) -> list[Item]:
        """Fetch the page of at most ``follow_limit`` items and add its main text."""
        if not self.config.follow or not wanted & DETAIL_FIELDS:
            return list(items)
        chosen = [item for item in items if item.url][: self.config.follow_limit]
        gate = asyncio.Semaphore(DETAIL_CONCURRENCY)

        async def one(item: Item) -> Item:
            async with gate:
                return await self._with_detail(client, item)

        done = {item.key: item for item in await asyncio.gather(*(one(i) for i in chosen))}
        return [done.get(item.key, item) for item in items]

    async def _with_detail(self, client: httpx.AsyncClient, item: Item) -> Item:
        assert item.url is not None
        problem = host_problem(urlsplit(item.url).hostname or "") if self.public else None
        if problem:
            log.warning(
                "source=%s detail page %s skipped, item kept as listed: %s, "
                "not a public address like the listing's",
                self.name,
                redact_url(item.url),
                problem,
            )
            return item
        try:
            fetched = await fetch_url(
                client,
                item.url,
                source=self.name,
                limits=self.limits,
                accept=ACCEPT,
                check_hop=self._public_only if self.public else None,
            )
            content = self.detail_content(fetched)
        except MonitorError as e:
            log.warning("source=%s detail page skipped, item kept as listed: %s", self.name, e)
            return item
        return replace(item, content_html=content)

    async def _public_only(self, url: str) -> str | None:
        """Why a detail hop from a public listing must not be requested, if it must not.

        Another host's name is resolved first (and each redirect target's), so a public
        page cannot steer us to an internal address by name either. The listing's own
        host was fetched already; DNS that changes between this check and the connect
        is not covered (the notifiers' connect-time guard is; sources keep the plain
        client, whose proxies intranet users rely on).
        """
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if problem := host_problem(host):
            return problem
        if host == self.host or literal_address(host) is not None:
            return None
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            addresses = await self.resolve(host, port)
        except OSError:
            return None  # the fetch itself reports a name that does not resolve
        for address in addresses:
            kind = blocked_kind(ipaddress.ip_address(address.split("%", 1)[0]))
            if kind is not None:
                return f"{host} resolves to {address}, a {kind} address"
        return None

    def detail_content(self, fetched: Fetched) -> str:
        """The main content of a detail page as (untrusted) markup; pure."""
        where = f"detail page {redact_url(fetched.url)}"
        kind = (fetched.content_type or "").split(";")[0].strip().lower()
        if kind and kind not in _HTML_TYPES:
            raise ParseError(self.name, f"{where} is {kind}, not HTML")
        if fetched.body.lstrip()[:5] == b"%PDF-":
            raise ParseError(self.name, f"{where} is a PDF, not HTML")
        page = soup(decode_html(fetched.body, fetched.content_type))
        for selector in self.detail:
            found = selector.first(page)
            if found is not None:
                return inner_html(found)
        spec = self.config.detail_selector or "main, article, body"
        raise ParseError(self.name, f"{where}: detail_selector {spec!r} matched nothing")


SOURCE_TYPE = SourceType(
    name="html",
    config_model=HtmlSourceConfig,
    build=builder(HtmlSourceConfig, HtmlSource),
    help=__doc__ or "",
)

__all__ = ["ACCEPT", "SOURCE_TYPE", "HtmlSource", "HtmlSourceConfig"]
