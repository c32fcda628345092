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


# Codecs Python knows that cannot read arbitrary bytes with errors="replace".
_UNUSABLE = frozenset({"idna", "undefined", "punycode"})


def codec_name(label: str | None) -> str | None:
    """Python's canonical codec name for ``label`` (``latin-1`` -> ``iso8859-1``); None
    for a label Python does not know or that names no text encoding (``charset=base64``,
    ``rot13``, ``idna``: bytes.decode would raise instead of decoding)."""
    if not label:
        return None
    try:
        info = codecs.lookup(label)
    except LookupError:
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _UNUSABLE:
        return None
    return info.name


def is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


__all__ = ["codec_name", "header_charset", "is_utf8"]
