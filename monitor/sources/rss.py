"""RSS and Atom feeds (``type = "rss"``): RSS 0.9x, 1.0 (RDF) and 2.0, and Atom 1.0.

Example::

    [[sources]]
    name = "cnil"
    type = "rss"
    url = "https://www.cnil.fr/fr/rss.xml"
    every = "15m"
    language = "fr"      # used when neither the entry nor the feed states a language
    timeout = "30s"      # overall deadline of one fetch, redirects and body included
    max_bytes = "10MiB"  # a larger response fails the fetch

Each entry becomes one item: its title, link, date (published, else updated; a date
feedparser cannot read is read in the entry's language by ``monitor.dates``), summary
and longest content. Items are keyed by guid / Atom id, else by link, else by a hash of
title and summary; tracking decorations (``utm_*``, ``#ref=rss``, Google News ``oc=5``)
do not make an item new. For Google News feeds, the publisher (``<source>``) is kept
in the fields ``source_title`` and ``source_url``.

A feed whose DOCTYPE declares XML entities is refused (entity-expansion attacks), and
so is an HTML page: point ``url`` at the feed itself.
"""

from __future__ import annotations

import calendar
import html
import io
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urljoin, urlsplit

import feedparser
import httpx
from pydantic import AfterValidator, ByteSize, Field

from monitor.config_base import SourceConfig
from monitor.dates import parse_date
from monitor.durations import Duration
from monitor.errors import ParseError
from monitor.identity import content_hash, item_key
from monitor.models import Item
from monitor.sources.base import Fetched, FetchLimits, FetchState, SourceType, builder
from monitor.sources.http import fetch_url
from monitor.sources.rss_fast import read_rss
from monitor.sources.xmlsafe import declares_entities, prepare_body
from monitor.text import html_to_text

ACCEPT = (
    "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.8, */*;q=0.1"
)
_HTTP_SCHEMES = frozenset({"http", "https"})
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_HTML = re.compile(rb"<html[\s>]|<!doctype\s+html", re.IGNORECASE)  # a page, not a feed


def _check_url(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme.lower() not in _HTTP_SCHEMES or not parts.netloc:
        raise ValueError(f"{value!r} is not an http:// or https:// URL")
    return value.strip()


class RssSourceConfig(SourceConfig):
    """The keys of an ``rss`` source."""

    type: Literal["rss"]
    url: Annotated[str, AfterValidator(_check_url)]
    timeout: Duration = timedelta(seconds=30)
    max_bytes: Annotated[ByteSize, Field(gt=0)] = ByteSize(10 * 1024 * 1024)

    def identity(self) -> str:
        return self.url


class RssSource:
    """An RSS or Atom feed; ``parse`` is pure and needs no network."""

    type: ClassVar[str] = "rss"

    def __init__(self, config: RssSourceConfig, limits: FetchLimits) -> None:
        self.config = config
        self.limits = replace(limits, deadline=config.timeout, max_bytes=int(config.max_bytes))

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

    def parse(self, fetched: Fetched) -> list[Item]:
        """The feed's entries as items, first occurrence of each key only; pure."""
        if fetched.not_modified:
            return []
        body = fetched.body
        if not body or body.isspace():
            raise ParseError(self.name, "the response body is empty")
        if declares_entities(body, fetched.content_type):
            raise ParseError(
                self.name,
                "feed declares XML entities in its DOCTYPE; refused (entity-expansion attacks)",
            )
        body, content_type = prepare_body(body, fetched.content_type)
        parsed = read_rss(body, content_type)  # plain RSS 2.0 / Atom 1.0, as feedparser reads it
        if parsed is None:
            parsed = self._feedparser(body, content_type)
        entries = _complete_entries(parsed, body)
        if not entries:
            self._check_empty(parsed, body)
            return []
        feed_language = _text((parsed.get("feed") or {}).get("language")) or self.config.language
        items: dict[str, Item] = {}
        for entry in entries:
            item = self._item(entry, fetched.url, feed_language)
            if item is not None and item.key not in items:
                items[item.key] = item
        return list(items.values())

    def _feedparser(self, body: bytes, content_type: str) -> Any:
        try:
            return feedparser.parse(
                io.BytesIO(body),  # never bytes: feedparser would open() a body naming a file
                # No content-location: feedparser would resolve relative guids against it,
                # turning "12345" into a URL key that changes when the feed moves host.
                # Links are resolved here instead (_link, _base_url).
                response_headers={"content-type": content_type},
                sanitize_html=False,  # done later, only for the items stored (Item derives it)
                resolve_relative_uris=False,
            )
        except Exception as e:  # feedparser is meant never to raise; wrap it if it does
            raise ParseError(self.name, f"feedparser failed: {type(e).__name__}: {e}") from e

    def _check_empty(self, parsed: Any, body: bytes) -> None:
        """Raise ParseError unless ``parsed`` is a well-formed feed with no entries."""
        error = parsed.get("bozo_exception") if parsed.get("bozo") else None
        if not parsed.get("version") and _HTML.search(body, 0, 65536):
            raise ParseError(
                self.name,
                "this is an HTML page, not a feed",
                hint="point `url` at the feed itself "
                "(look for <link rel=alternate type=application/rss+xml>)",
            )
        if error is not None and not isinstance(error, feedparser.ThingsNobodyCaresAboutButMe):
            raise ParseError(
                self.name, f"malformed feed with no entries: {type(error).__name__}: {error}"
            ) from error
        if not parsed.get("version"):
            raise ParseError(
                self.name, "not an RSS or Atom feed (no <rss>, <feed> or <rdf:RDF> root element)"
            )

    def _item(self, entry: Any, feed_url: str, feed_language: str | None) -> Item | None:
        link = _link(entry, feed_url)
        title = _title(entry.get("title_detail"))
        summary_html = _html(entry.get("summary_detail"))
        content_html = max((_html(c) for c in entry.get("content") or ()), key=len, default="")
        if content_html == summary_html:
            content_html = ""
        if not (title or link or summary_html or content_html):
            return None
        fields: dict[str, Any] = {}
        if author := _text(entry.get("author")):
            fields["author"] = author
        source = entry.get("source") or {}
        if source_title := _text(source.get("title")):
            fields["source_title"] = source_title
        if source_url := _text(source.get("href")):
            fields["source_url"] = source_url
        # The hash is over the raw markup: deriving plain text costs an nh3 pass per entry.
        return Item(
            source=self.name,
            source_type=self.type,
            key=item_key(_text(entry.get("id")), link, title, summary_html or content_html),
            content_hash=content_hash(title, summary_html, content_html, link, fields),
            title=title,
            url=link,
            published=_published(entry, _language(entry) or feed_language),
            summary_html=summary_html,
            content_html=content_html,
            language=_language(entry) or feed_language,
            base_url=_base_url(entry, link, feed_url),
            fields=fields,
        )


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _title(detail: Any) -> str:
    if not detail:
        return ""
    value = _text(detail.get("value"))
    if detail.get("type") in _HTML_TYPES:
        value = html_to_text(value)
    return " ".join(value.split())


def _html(detail: Any) -> str:
    """The markup of a text construct; plain text is escaped so it stays literal."""
    if not detail:
        return ""
    value = detail.get("value")
    if not isinstance(value, str):
        return ""
    if detail.get("type") == "text/plain":
        return html.escape(value, quote=False)
    return value


def _link(entry: Any, feed_url: str) -> str | None:
    """The entry's alternate link, absolute; None unless it is http(s)."""
    href = ""
    for link in entry.get("links") or ():
        if link.get("rel", "alternate") == "alternate" and _text(link.get("href")):
            href = _text(link.get("href"))
            break
    href = href or _text(entry.get("link"))
    if not href:
        return None
    try:
        absolute = urljoin(feed_url, href)
        scheme = urlsplit(absolute).scheme.lower()
    except ValueError:  # "http://[": no URL; the entry is kept without a link
        return None
    return absolute if scheme in _HTTP_SCHEMES else None


def _base_url(entry: Any, link: str | None, feed_url: str) -> str:
    """Where relative links in the summary point: its xml:base, else the entry link."""
    detail = entry.get("summary_detail") or {}
    declared = _text(detail.get("base"))
    if declared and declared != feed_url:
        return declared
    return link or feed_url


def _published(entry: Any, language: str | None) -> datetime | None:
    # dict.get, not entry.get: FeedParserDict maps a missing "published" to "updated"
    # with a DeprecationWarning, and we ask for both ourselves, in order.
    for key in ("published_parsed", "updated_parsed"):
        value = dict.get(entry, key)
        if value:
            try:
                return datetime.fromtimestamp(calendar.timegm(value), tz=UTC)
            except (TypeError, ValueError, OverflowError):
                continue
    # feedparser reads RFC 822 and ISO only; a feed dating in its own language
    # ("mer., 20 oct. 2022", "13/09/2024") is read as a listing page's dates are.
    for key in ("published", "updated"):
        if found := parse_date(_text(dict.get(entry, key)), language):
            return found
    return None


def _language(entry: Any) -> str | None:
    for value in (
        entry.get("language"),
        (entry.get("title_detail") or {}).get("language"),
        (entry.get("summary_detail") or {}).get("language"),
    ):
        if language := _text(value):
            return language
    return None


# --- Truncated documents ---------------------------------------------------------------------

_ENTRY_END = re.compile(rb"</(?:[\w.-]+:)?(?:item|entry)\s*>")
_ROOT_END = re.compile(rb"</(?:[\w.-]+:)?(?:rss|feed|RDF)\s*>\s*\Z")


def _complete_entries(parsed: Any, body: bytes) -> list[Any]:
    """Entries, minus the trailing ones a truncated document left unfinished."""
    entries = list(parsed.get("entries") or ())
    if entries and parsed.get("bozo") and not _ROOT_END.search(body[-1024:]):
        closed = sum(1 for _ in _ENTRY_END.finditer(body))
        del entries[closed:]
    return entries


SOURCE_TYPE = SourceType(
    name="rss",
    config_model=RssSourceConfig,
    build=builder(RssSourceConfig, RssSource),
    help=__doc__ or "",
)

__all__ = ["ACCEPT", "SOURCE_TYPE", "RssSource", "RssSourceConfig"]
