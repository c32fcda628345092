"""Helpers shared by the JSON API source types (sam, ocds, ted)."""

from __future__ import annotations

from urllib.parse import urlsplit

_HTTP_SCHEMES = frozenset({"http", "https"})


def check_http_url(value: str) -> str:
    """A config validator: an absolute http(s) URL with a host, stripped."""
    parts = urlsplit(value.strip())
    if parts.scheme.lower() not in _HTTP_SCHEMES or not parts.netloc:
        raise ValueError(f"{value!r} is not an http:// or https:// URL")
    return value.strip()
