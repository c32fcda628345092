"""HTML to plain text and HTML sanitizing, both with nh3 (feed HTML is untrusted)."""

from __future__ import annotations

import html
import re
from urllib.parse import urljoin, urlsplit

import nh3

_SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
_URL_ATTRS = frozenset({"href", "src", "cite"})
# Block-level tags end a line in the plain-text view so words do not glue together.
_BLOCK_END = re.compile(
    r"<\s*(br|/p|/div|/li|/h[1-6]|/tr|/blockquote|/pre|/section|/article)\b[^>]*>", re.I
)
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")
# An absolute link urljoin returns as it is, whatever the base: a lowercase http(s)
# scheme, an ASCII host without brackets (urlsplit checks those), no ";params" in the
# path (urlparse splits them), no empty "?" or "#" (urlunparse drops them) and no
# whitespace (urlsplit removes tabs and newlines).
_PLAIN_LINK = re.compile(
    r"https?://[A-Za-z0-9.\-_~%!$&'()*+,=:@]+(?:/[^?#;\s]*)?(?:\?[^#\s]+)?(?:#\S+)?"
)


def html_to_text(markup: str) -> str:
    """Strip every tag, drop script/style bodies, decode entities, tidy whitespace."""
    if not markup:
        return ""
    if "<" not in markup and "&" not in markup:
        return _tidy(markup)
    marked = _BLOCK_END.sub(lambda m: m.group(0) + "\n", markup)
    stripped = nh3.clean(marked, tags=set(), clean_content_tags={"script", "style"})
    return _tidy(html.unescape(stripped))


def _tidy(text: str) -> str:
    lines = (_SPACES.sub(" ", line).strip() for line in text.splitlines())
    return _BLANK_LINES.sub("\n", "\n".join(line for line in lines if line)).strip()


def sanitize_html(markup: str, *, base_url: str | None = None) -> str:
    """Sanitize untrusted HTML: safe tags only; http, https and mailto links only.

    Relative links are resolved against ``base_url``; a link whose scheme is not
    allowed after resolution is dropped.
    """
    if not markup:
        return ""

    def keep_url(tag: str, attribute: str, value: str) -> str | None:
        return safe_link(value, base_url) if attribute in _URL_ATTRS else value

    return nh3.clean(
        markup,
        url_schemes=set(_SAFE_SCHEMES),
        attribute_filter=keep_url,
        link_rel="noopener noreferrer nofollow",
    )


def safe_link(value: str, base_url: str | None) -> str | None:
    """``value`` resolved against ``base_url``; None unless http, https or mailto.

    Most feed links are absolute http(s) URLs that ``urljoin`` gives back unchanged:
    those are kept without it (its parsing was ~5 % of the parse workers' CPU in a
    cold 1,000-source cycle, bench/README.md, twenty-third session).
    """
    link = value.strip()
    if _PLAIN_LINK.fullmatch(link):
        return link
    absolute = urljoin(base_url, link) if base_url else link
    scheme = urlsplit(absolute).scheme.lower()
    return absolute if scheme in _SAFE_SCHEMES else None
