"""Reading HTML pages (pure): decoding the bytes, selectors with ``@attr``, the parts of an entry.

Nothing here does I/O; ``monitor.sources.html`` fetches and this module reads.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import soupsieve
from bs4 import BeautifulSoup, Tag

from monitor.sources.charsets import codec_name, header_charset, is_utf8

_ATTR = re.compile(r"^(.*?)@([A-Za-z_:][-\w:.]*)$", re.S)
_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([-\w:.]{1,40})", re.I)
_LATIN = frozenset({"ascii", "latin_1", "iso8859-1", "iso8859-15", "cp1252"})
_HTTP_SCHEMES = frozenset({"http", "https"})
# Python codecs no browser decodes pages with; they can also yield lone surrogates,
# which lxml refuses.
_NOT_WEB = frozenset({"utf-7", "unicode-escape", "raw-unicode-escape", "punycode"})
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Elements whose text is code or chrome, never the words of a notice.
_NOT_TEXT = ("script", "style", "noscript", "template", "iframe", "object", "embed", "svg")


@dataclass(frozen=True)
class Selector:
    """A CSS selector, optionally taking an attribute: ``a@href``, ``time@datetime``.

    An empty CSS part (``@href``) means the element itself.
    """

    spec: str
    css: str
    attr: str | None
    compiled: soupsieve.SoupSieve | None

    def first(self, element: Tag) -> Tag | None:
        if self.compiled is None:
            return element
        found = self.compiled.select_one(element)
        return found if isinstance(found, Tag) else None

    def all(self, element: Tag) -> list[Tag]:
        if self.compiled is None:
            return [element]
        return [tag for tag in self.compiled.select(element) if isinstance(tag, Tag)]

    def text(self, element: Tag, *, text_fallback: bool = False) -> str | None:
        """The attribute or the collapsed text of the first match; None if nothing matched.

        With ``text_fallback``, a match without the attribute gives its text instead
        (``time@datetime`` on a ``<time>`` that has no ``datetime``).
        """
        found = self.first(element)
        if found is None:
            return None
        if self.attr is None:
            return " ".join(found.get_text(" ").split())
        value = found.get(self.attr)
        if isinstance(value, list):  # class and other multi-valued attributes
            value = " ".join(value)
        if isinstance(value, str):
            return value.strip()
        return " ".join(found.get_text(" ").split()) if text_fallback else None


def parse_selector(spec: str) -> Selector:
    """Compile ``css`` or ``css@attr``; ValueError with the reason on a bad selector."""
    text = spec.strip()
    if not text:
        raise ValueError("empty selector")
    css, attr = text, None
    if match := _ATTR.match(text):
        css, attr = match.group(1).strip(), match.group(2)
    if not css:
        return Selector(text, "", attr, None)
    try:
        compiled = soupsieve.compile(css)
    except soupsieve.SelectorSyntaxError as e:
        reason = str(e).splitlines()[0]
        raise ValueError(f"{css!r} is not a valid CSS selector: {reason}") from e
    except NotImplementedError as e:  # soupsieve's answer to ::before and other pseudo-elements
        raise ValueError(f"{css!r} is not supported: {e}; select elements, not parts") from e
    return Selector(text, css, attr, compiled)


def decode_html(body: bytes, content_type: str | None) -> str:
    """The page as text: BOM, then the HTTP charset, then ``<meta charset>``, then UTF-8
    if the bytes are valid UTF-8, else Windows-1252 (what browsers assume for Latin-1).

    A Latin-1 label on bytes that are valid, non-ASCII UTF-8 is a mislabel (UTF-8 text
    almost never decodes as Latin-1 by accident the other way round), so UTF-8 wins then.
    """
    for bom, codec in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(codec, "replace")
    label = codec_name(header_charset(content_type)) or codec_name(_meta_charset(body))
    if label in _NOT_WEB:
        label = None  # browsers do not decode these either (UTF-7 is an XSS vector)
    if label in _LATIN:
        label = "cp1252"  # the WHATWG reading of every Latin-1 label
        if not body.isascii() and is_utf8(body):
            label = "utf-8"
    if label is None or label.startswith("utf-16"):  # a UTF-16 label without a BOM is a lie
        label = "utf-8" if is_utf8(body) else "cp1252"
    return body.decode(label, "replace")


def _meta_charset(body: bytes) -> str | None:
    match = _META_CHARSET.search(body[:4096])
    return match.group(1).decode("ascii") if match else None


def soup(text: str) -> BeautifulSoup:
    """The parsed page with every script, style and embedded object removed."""
    page = BeautifulSoup(text, "lxml")
    for tag in page.find_all(_NOT_TEXT):
        tag.decompose()
    return page


def page_base(page: BeautifulSoup, url: str) -> str:
    """Where relative links point: the page's ``<base href>``, else its URL (also when the
    base does not parse as a URL, ``http://[``: browsers ignore such a base too)."""
    base = page.find("base", href=True)
    href = base.get("href") if isinstance(base, Tag) else None
    if not isinstance(href, str) or not href.strip():
        return url
    try:
        return urljoin(url, href.strip())
    except ValueError:
        return url


def page_language(page: BeautifulSoup) -> str | None:
    root = page.find("html")
    lang = root.get("lang") if isinstance(root, Tag) else None
    return lang.strip() if isinstance(lang, str) and lang.strip() else None


def absolute_link(base: str, href: str | None) -> str | None:
    """``href`` resolved against ``base`` (relative and protocol-relative alike);
    None unless it is an http(s) URL with a host (not ``javascript:``, ``mailto:``,
    nor a ``#fragment`` of the listing itself)."""
    if not href or not href.strip() or href.strip().startswith("#"):
        return None
    try:
        absolute = urljoin(base, href.strip())
        parts = urlsplit(absolute)
    except ValueError:
        return None
    if parts.scheme.lower() not in _HTTP_SCHEMES or not parts.netloc:
        return None
    return absolute


def inner_html(element: Tag) -> str:
    """The markup inside ``element`` (untrusted; sanitized where it is displayed)."""
    return element.decode_contents().strip()


__all__ = [
    "Selector",
    "absolute_link",
    "decode_html",
    "inner_html",
    "page_base",
    "page_language",
    "parse_selector",
    "soup",
]
