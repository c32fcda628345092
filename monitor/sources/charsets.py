"""Character-set labels, as HTTP headers and documents declare them (pure helpers)."""

from __future__ import annotations

import codecs


def header_charset(content_type: str | None) -> str | None:
    """The ``charset`` parameter of a Content-Type header, unquoted; None if absent."""
    for param in (content_type or "").split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip("\"'")
    return None


def codec_name(label: str | None) -> str | None:
    """Python's canonical codec name for ``label`` (``latin-1`` -> ``iso8859-1``); None
    for a label Python does not know."""
    try:
        return codecs.lookup(label).name if label else None
    except LookupError:
        return None


def is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


__all__ = ["codec_name", "header_charset", "is_utf8"]
