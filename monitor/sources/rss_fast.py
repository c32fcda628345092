"""RSS 2.0 and Atom 1.0 entries read with lxml, exactly as feedparser's strict parser
reads them.

feedparser drives expat through Python SAX callbacks and spends ~0.3 ms an item; a
first poll of 1,000 sources spent ~9 s of CPU in it (bench/README.md). lxml builds the
tree in C. This module reads the plain, well-formed RSS 2.0 and Atom 1.0 most sources serve
and returns ``None`` for anything else, which then goes to feedparser as before.

What it returns must equal what :mod:`monitor.sources.rss` reads from feedparser's
entries, value for value: an item's key and content hash are computed from it, so a
feed read one way on one poll and the other way on the next would re-alert. It
therefore does what feedparser's ``pop()`` does to each value (strip, the Latin-1 /
UTF-8 repair, the cp1252 translation, the link fix-ups, guid-as-link) with
feedparser's own functions, and gives up on everything whose handling depends on more
state than it follows: ``xml:base`` / ``xml:lang``, attributes that change a value's
type, repeated or nested elements, namespaces feedparser maps onto the keys read
here. ``tests/test_rss_fast.py`` compares the two readings over every feed in the
tests and over generated feeds.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from typing import Any

from feedparser.api import replace_doctype
from feedparser.datetimes import _parse_date
from feedparser.encodings import convert_to_utf8
from feedparser.html import _cp1252
from feedparser.mixin import _FeedParserMixin
from feedparser.urls import _urljoin
from lxml import etree

_DC = "{http://purl.org/dc/elements/1.1/}"
_CONTENT = "{http://purl.org/rss/1.0/modules/content/}"
_ATOM = "{http://www.w3.org/2005/Atom}"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
# Channel children that only set feed-level values feedparser keeps and we never read.
_CHANNEL_IGNORED = frozenset(
    {
        "title",
        "link",
        "description",
        "copyright",
        "managingEditor",
        "webMaster",
        "pubDate",
        "lastBuildDate",
        "category",
        "generator",
        "docs",
        "cloud",
        "ttl",
        "image",
        "rating",
        "textInput",
        "skipHours",
        "skipDays",
        "{http://www.w3.org/2005/Atom}link",
        "{http://purl.org/rss/1.0/modules/syndication/}updatePeriod",
        "{http://purl.org/rss/1.0/modules/syndication/}updateFrequency",
        "{http://purl.org/rss/1.0/modules/syndication/}updateBase",
    }
)
_CHANNEL_LEAVES = frozenset(
    {"title", "link", "url", "description", "width", "height", "name", "hour", "day"}
)
# Item children stored under keys nobody here reads (comments, tags, enclosure links).
_ITEM_IGNORED = frozenset(
    {
        "category",
        "comments",
        "enclosure",
        "{http://wellformedweb.org/commentAPI/}commentRss",
        "{http://purl.org/rss/1.0/modules/slash/}comments",
    }
)
# The attributes each item child may carry; any other (type, mode, href, xml:base...)
# changes how feedparser reads the element.
_ATTRIBUTES: dict[str, frozenset[str]] = {
    "guid": frozenset({"isPermaLink"}),
    "source": frozenset({"url"}),
    "category": frozenset({"domain"}),
    "enclosure": frozenset({"url", "length", "type"}),
}
_NO_ATTRIBUTES: frozenset[str] = frozenset()
# At most once an item: feedparser's handling of a second one depends on depth and order.
_ONCE = frozenset(
    {"title", "link", "description", "guid", "pubDate", "author", "source", _DC + "creator"}
)
_CP1252_KEYS = re.compile("[" + "".join(re.escape(chr(code)) for code in _cp1252) + "]")
_LINK_ENTITY = re.compile("&([A-Za-z0-9_]+);")
_PARSER_OPTIONS: dict[str, Any] = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "huge_tree": False,
    "strip_cdata": True,
    "remove_blank_text": False,
}
_looks_like_html: Callable[[str], bool] = _FeedParserMixin.looks_like_html


class _Unsupported(Exception):
    """The document holds something only feedparser reads right."""


def read_rss(body: bytes, content_type: str) -> dict[str, Any] | None:
    """feedparser's ``entries``, ``bozo`` and ``feed.language`` for a plain RSS 2.0 or
    Atom 1.0 ``body``; ``None`` when feedparser must read it (anything else, or no
    entry)."""
    result: dict[str, Any] = {}
    try:
        data = convert_to_utf8({"content-type": content_type}, body, result)
    except Exception:  # feedparser meets it again, and reports it as the source's error
        return None
    if not result.get("encoding"):
        return None  # feedparser would use its loose parser
    version, data, entities = replace_doctype(data)
    if version or entities:
        return None
    try:
        root = etree.fromstring(data, etree.XMLParser(**_PARSER_OPTIONS))
    except (etree.XMLSyntaxError, ValueError):
        return None
    try:
        parsed = read_atom(root) if root.tag == _ATOM + "feed" else _read(root)
    except _Unsupported:
        return None
    if parsed is not None and result.get("bozo"):
        # An encoding feedparser overrode: RssSource reads the flag to drop entries a
        # cut body left unfinished, and the exception when none are left.
        parsed.update(bozo=True, bozo_exception=result.get("bozo_exception"))
    return parsed


def _read(root: Any) -> dict[str, Any] | None:
    if root.tag != "rss" or set(root.attrib) - {"version"}:
        raise _Unsupported
    channels = [c for c in root if _is_element(c)]
    if len(channels) != 1 or channels[0].tag != "channel" or channels[0].attrib:
        raise _Unsupported
    language: str | None = None
    entries: list[dict[str, Any]] = []
    for child in channels[0]:
        if not _is_element(child):
            continue
        if child.tag == "item":
            entries.append(_entry(child))
        elif child.tag == "language":
            if language is not None or len(child) or child.attrib:
                raise _Unsupported
            language = _popped(child.text)
        elif child.tag in _CHANNEL_IGNORED:
            _check_subtree(child)
        else:
            raise _Unsupported
    # "version" is only asked whether it is set: feedparser sets one for any <rss> root.
    return _parsed(entries, language, "rss")


def _entry(item: Any) -> dict[str, Any]:
    if item.attrib:
        raise _Unsupported  # rdf:about, lastmod, href: read as values by feedparser
    entry: dict[str, Any] = {}
    links: list[dict[str, str]] = []
    seen: set[str] = set()
    for child in item:
        if not _is_element(child):
            continue
        tag = child.tag
        if len(child):
            raise _Unsupported
        if set(child.attrib) - _ATTRIBUTES.get(tag, _NO_ATTRIBUTES):
            raise _Unsupported
        if tag in _ONCE:
            if tag in seen:
                raise _Unsupported
            seen.add(tag)
        text = child.text
        if tag == "title":
            entry["title_detail"] = _title_detail(text)
        elif tag == "link":
            link = _link_value(text)
            entry["link"] = link
            links.append({"rel": "alternate", "href": link} if link else {"rel": "alternate"})
        elif tag == "guid":
            _guid(entry, text, child.get("isPermaLink", "true") == "true")
        elif tag == "description":
            entry["summary_detail"] = _detail("text/html", _popped(text))
        elif tag == _CONTENT + "encoded":
            entry.setdefault("content", []).append(_detail("text/html", _popped(text)))
        elif tag == "pubDate":
            value = _popped(text)
            entry["published"] = value
            entry["published_parsed"] = _parse_date(value)
        elif tag in ("author", _DC + "creator"):
            if "author" in entry:
                raise _Unsupported
            entry["author"] = _popped(text)
        elif tag == "source":
            entry["source"] = _source(child.get("url"), _popped(text))
        elif tag in _ITEM_IGNORED:
            continue
        else:
            raise _Unsupported
    entry["links"] = links
    return entry


def _title_detail(text: str | None) -> dict[str, Any]:
    # pop(): nominally plain titles holding markup are HTML, decided before the repairs
    value = (text or "").strip()
    kind = "text/html" if _looks_like_html(value) else "text/plain"
    return _detail(kind, _repaired(value))


def _link_value(text: str | None) -> str:
    value = (text or "").strip()
    if value:
        value = _urljoin("", value)
    value = _repaired(value).replace("&amp;", "&")
    return _LINK_ENTITY.sub(r"&\g<1>", value)


def _guid(entry: dict[str, Any], text: str | None, is_link: bool) -> None:
    value = (text or "").strip()
    if value and is_link:
        value = _urljoin("", value)
    value = _repaired(value)
    entry["id"] = value
    if is_link:
        entry.setdefault("link", value)  # a permalink guid is the link unless one came first


def _source(url: str | None, title: str) -> dict[str, str]:
    source: dict[str, str] = {} if url is None else {"href": url}
    if title:
        source["title"] = title
    return source


def _detail(kind: str, value: str) -> dict[str, Any]:
    return {"type": kind, "language": None, "base": "", "value": value}


def _popped(text: str | None) -> str:
    return _repaired((text or "").strip())


def _repaired(value: str) -> str:
    """The two repairs feedparser's strict parser (encoding ``utf-8``) makes to text."""
    with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
        value = value.encode("iso-8859-1").decode("utf-8")
    # str.translate with a dict costs ~10 us on a 1.5 KB summary; most hold no such
    # character, and a search for one costs a tenth of that.
    return value.translate(_cp1252) if _CP1252_KEYS.search(value) else value


def _parsed(
    entries: list[dict[str, Any]], language: str | None, version: str
) -> dict[str, Any] | None:
    """feedparser's result for ``entries``; None (left to feedparser) when there are none."""
    if not entries:
        return None
    feed = {} if language is None else {"language": language}
    return {"entries": entries, "bozo": False, "feed": feed, "version": version}


def _check_subtree(element: Any, leaves: frozenset[str] = _CHANNEL_LEAVES) -> None:
    """An ignored element may not change the state later elements are read in: no
    ``xml:lang`` or ``xml:base``, and only the given leaves (those RSS gives an image, a
    text input or skip lists; an Atom person's): an ``item`` nested in an ``image``
    would be an entry to feedparser."""
    if _sets_context(element):
        raise _Unsupported
    for node in element:
        if not _is_element(node):
            continue
        if node.tag not in leaves or len(node) or _sets_context(node):
            raise _Unsupported


def _sets_context(node: Any) -> bool:
    for name in node.attrib:
        local = etree.QName(name).localname.lower()
        if local in ("lang", "base"):
            return True
    return False


def _is_element(node: Any) -> bool:
    return isinstance(node.tag, str)


# --- Atom 1.0 --------------------------------------------------------------------------------

# Feed children that only set feed-level values we never read; their own children may
# only be a person's leaves.
_ATOM_FEED_IGNORED = frozenset(
    _ATOM + tag
    for tag in (
        "title", "subtitle", "id", "updated", "link", "author", "contributor", "generator",
        "icon", "logo", "rights", "category",
    )
)  # fmt: skip
_ATOM_PERSON = frozenset({_ATOM + "name", _ATOM + "email", _ATOM + "uri"})
_ATOM_ONCE = frozenset(
    _ATOM + tag for tag in ("title", "id", "published", "updated", "author", "summary", "content")
)
_ATOM_ATTRIBUTES: dict[str, frozenset[str]] = {
    _ATOM + "title": frozenset({"type"}),
    _ATOM + "summary": frozenset({"type"}),
    _ATOM + "content": frozenset({"type"}),
    _ATOM + "link": frozenset({"rel", "href", "type", "hreflang", "title", "length"}),
    _ATOM + "category": frozenset({"term", "scheme", "label"}),
}
# Text constructs of these types only: xhtml is markup feedparser serialises itself.
_ATOM_TEXT_TYPES = {None: "text/plain", "text": "text/plain", "html": "text/html"}
_HTML_LINK_TYPES = frozenset({"text/html", "application/xhtml+xml", "html", "xhtml"})
# feedparser copies xml:lang as written into every text construct; a tag this simple
# is the same however it is read.
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*")


def read_atom(root: Any) -> dict[str, Any] | None:
    """What :func:`read_rss` returns, for an Atom 1.0 document's root element."""
    if set(root.attrib) - {_XML_LANG}:
        raise _Unsupported
    language = root.get(_XML_LANG)
    if language is not None and not _LANGUAGE_TAG.fullmatch(language):
        raise _Unsupported
    entries: list[dict[str, Any]] = []
    for child in root:
        if not _is_element(child):
            continue
        if child.tag == _ATOM + "entry":
            entries.append(_atom_entry(child, language))
        elif child.tag in _ATOM_FEED_IGNORED:
            _check_subtree(child, _ATOM_PERSON)
        else:
            raise _Unsupported
    return _parsed(entries, language, "atom10")


def _atom_entry(element: Any, language: str | None) -> dict[str, Any]:
    if element.attrib:
        raise _Unsupported
    entry: dict[str, Any] = {}
    links: list[dict[str, str]] = []
    seen: set[str] = set()
    for child in element:
        if not _is_element(child):
            continue
        tag = child.tag
        if set(child.attrib) - _ATOM_ATTRIBUTES.get(tag, _NO_ATTRIBUTES):
            raise _Unsupported
        if tag in _ATOM_ONCE:
            if tag in seen:
                raise _Unsupported
            seen.add(tag)
        if tag == _ATOM + "author":
            entry["author"] = _atom_person(child)
            continue
        if len(child):
            raise _Unsupported
        if tag == _ATOM + "title":
            entry["title_detail"] = _atom_text(child, language)
        elif tag == _ATOM + "link":
            _atom_link(entry, links, child)
        elif tag == _ATOM + "id":
            _guid(entry, child.text, True)  # feedparser reads an Atom id as a permalink guid
        elif tag == _ATOM + "summary":
            if "content" in entry:
                raise _Unsupported  # feedparser would read it as a second content
            entry["summary_detail"] = _atom_text(child, language)
        elif tag == _ATOM + "content":
            # Without a summary feedparser copies it to ``summary``, which is never read.
            entry["content"] = [_atom_text(child, language)]
        elif tag in (_ATOM + "published", _ATOM + "updated"):
            key = etree.QName(tag).localname
            value = _popped(child.text)
            entry[key] = value
            entry[key + "_parsed"] = _parse_date(value)
        elif tag == _ATOM + "category":
            continue
        else:
            raise _Unsupported
    entry["links"] = links
    return entry


def _atom_text(element: Any, language: str | None) -> dict[str, Any]:
    kind = _ATOM_TEXT_TYPES.get(element.get("type"))
    if kind is None:
        raise _Unsupported
    return {"type": kind, "language": language, "base": "", "value": _popped(element.text)}


def _atom_link(entry: dict[str, Any], links: list[dict[str, str]], element: Any) -> None:
    if element.text and element.text.strip():
        raise _Unsupported  # feedparser reads a link's text as its href
    href = element.get("href")
    if href is None:
        raise _Unsupported  # feedparser then reads the empty text as the link
    rel = (element.get("rel") or "alternate").lower()
    link = {"rel": rel, "href": _urljoin("", href) if href else href}
    if rel == "alternate" and (element.get("type") or "text/html").lower() in _HTML_LINK_TYPES:
        entry["link"] = link["href"]
    links.append(link)


def _atom_person(element: Any) -> str:
    """feedparser's ``author``: the name, the email, or ``name (email)``, stripped and
    not repaired (feedparser builds it from the values as they were before ``pop()``)."""
    if element.attrib:
        raise _Unsupported
    parts: dict[str, str] = {}
    for child in element:
        if not _is_element(child):
            continue
        if child.tag not in _ATOM_PERSON or len(child) or child.attrib or child.tag in parts:
            raise _Unsupported
        parts[child.tag] = (child.text or "").strip()
    name, email = parts.get(_ATOM + "name", ""), parts.get(_ATOM + "email", "")
    return f"{name} ({email})" if name and email else name or email


__all__ = ["read_atom", "read_rss"]
