"""Item identity: which fetched entries are the same item, and whether an item changed.

Pure functions, no I/O:

- :func:`canonical_url` rewrites a URL so that the same page reached through different
  tracking decorations (``utm_*``, Google News ``oc=5``, ``#ref=rss``...) compares equal.
- :func:`item_key` is the unique key of an item within its source, by the fallback chain
  native id -> canonical URL -> hash of title and body.
- :func:`content_hash` is a versioned hash of what a reader sees; a change means "updated".
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

CONTENT_HASH_VERSION = "v1"

# Query parameters that only say how a reader arrived (matched case-insensitively).
TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "msclkid",
        "mc_cid",
        "mc_eid",
        "oc",  # Google News
        "ref",
        "ref_src",
        "cmpid",
        "xtor",
        "at_medium",
        "at_campaign",
        "_hsenc",
        "_hsmi",
        "igshid",
        "spm",
        "ito",
        "wt_mc",
        "rss",
    }
)
_TRACKING_PREFIXES = ("utm_",)
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Fragments that address a route in a single-page application, not a spot in a page.
_SPA_FRAGMENTS = ("!/", "/")
_HTTP_URL = re.compile(r"https?://", re.IGNORECASE)
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# Characters left as they are when re-quoting: RFC 3986 reserved and unreserved, plus "%".
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"
_QUERY_SAFE = _PATH_SAFE + "?"


def canonical_url(url: str) -> str:
    """Normalise ``url`` for identity; any input that does not parse comes back stripped.

    Lowercases scheme and host (IDNA-encoding a non-ASCII host), drops a default port and
    every fragment except single-page-app routes (``#!/...``, ``#/...``), drops tracking
    query parameters (``utm_*`` and :data:`TRACKING_PARAMS`) keeping the others in order,
    turns an empty path into ``/``, and normalises percent-encoding: unreserved characters
    are decoded, other escapes uppercased, spaces and non-ASCII characters encoded as UTF-8.
    Only URLs with a scheme and a host are rewritten.
    """
    text = url.strip()
    try:
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if not scheme or not parts.netloc:
            return text
        netloc = _netloc(scheme, parts.netloc, parts.hostname, parts.port)
        path = _normalise_escapes(parts.path, _PATH_SAFE) or "/"
        query = _strip_tracking(parts.query)
        fragment = parts.fragment if parts.fragment.startswith(_SPA_FRAGMENTS) else ""
        fragment = _normalise_escapes(fragment, _QUERY_SAFE)
        return urlunsplit((scheme, netloc, path, query, fragment))
    except (ValueError, UnicodeError):
        return text


def _netloc(scheme: str, netloc: str, hostname: str | None, port: int | None) -> str:
    host = (hostname or "").rstrip(".")
    if not host:
        raise ValueError("no host")
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    elif not host.isascii():
        with contextlib.suppress(UnicodeError):  # not valid IDNA: keep the Unicode host
            host = host.encode("idna").decode("ascii")
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    userinfo, at, _ = netloc.rpartition("@")
    return f"{userinfo}{at}{host}"


def _strip_tracking(query: str) -> str:
    kept = []
    for pair in query.split("&"):
        if not pair:
            continue
        name = unquote(pair.partition("=")[0]).strip().lower()
        if name in TRACKING_PARAMS or name.startswith(_TRACKING_PREFIXES):
            continue
        kept.append(_normalise_escapes(pair, _QUERY_SAFE))
    return "&".join(kept)


def _normalise_escapes(text: str, safe: str) -> str:
    def fix(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else match.group(0).upper()

    return quote(_ESCAPE.sub(fix, text), safe=safe)


def item_key(native_id: str | None, url: str | None, title: str, body: str) -> str:
    """The key of an item within its source: ``id:...``, ``url:...`` or ``hash:...``.

    A native id wins; an id that is itself an http(s) URL (an RSS permalink guid, an Atom
    id) is keyed as a canonical URL so that it agrees with the item's link. URL keys leave
    out the scheme: ``http://x/a`` and ``https://x/a`` are one item. Without an id,
    the canonical link; without either, the first 32 hex digits of a SHA-256 of the
    case-folded, whitespace-collapsed title and body.
    """
    native = (native_id or "").strip()
    if native:
        if _HTTP_URL.match(native):
            return _url_key(native)
        return "id:" + native
    link = (url or "").strip()
    if link:
        return _url_key(link)
    text = _fold(title) + "\n" + _fold(body)
    return "hash:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _url_key(url: str) -> str:
    """``url:`` + the canonical URL without its http/https scheme.

    A site that moves its feed from http to https (or serves both) must not turn every
    item it ever published into a new one, so the scheme is not part of the identity.
    """
    canonical = canonical_url(url)
    scheme, sep, rest = canonical.partition("://")
    if sep and scheme in ("http", "https"):
        return "url://" + rest
    return "url:" + canonical


def _fold(text: str) -> str:
    return " ".join(text.casefold().split())


def content_hash(
    title: str, summary: str, content: str, url: str | None, fields: Mapping[str, Any]
) -> str:
    """``v1:`` + SHA-256 of a canonical JSON of what a reader sees of an item.

    Whitespace runs are collapsed in every string and the URL is canonicalised, so
    re-serialising a feed does not make its items "updated". The published date is left
    out on purpose: a feed re-serving an item with a new date has not changed the item.
    Bump :data:`CONTENT_HASH_VERSION` whenever what goes into the hash changes.
    """
    document = {
        "title": _collapse(title),
        "summary": _collapse(summary),
        "content": _collapse(content),
        "url": canonical_url(url) if url else None,
        "fields": _collapse(dict(fields)),
    }
    encoded = json.dumps(
        document, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=_json_value
    )
    return f"{CONTENT_HASH_VERSION}:{hashlib.sha256(encoded.encode('utf-8')).hexdigest()}"


def _collapse(value: Any) -> Any:
    if isinstance(value, str):
        return " ".join(value.split())
    if isinstance(value, Mapping):
        return {str(k): _collapse(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_collapse(v) for v in value]
    return value


def _json_value(value: Any) -> str:
    """JSON for the values sources put in ``fields`` beyond JSON's own types."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)
