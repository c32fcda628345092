"""Checks and fixes a feed body needs before feedparser may read it.

Why the entity guard exists: feedparser keeps the entities a DOCTYPE declares with a
literal value, and when its strict (expat) pass fails, which any stray byte triggers,
its loose fallback parser replaces every reference to them with the value, with no
limit on the total. One 50 KB entity referenced 15,000 times is a 110 KB feed that
expands to a 750 MB summary. Recent expat caps amplification; the loose parser does
not, and feedparser has no switch to refuse DTDs, so :func:`declares_entities` refuses
them before feedparser runs. It reads the prolog in every encoding feedparser might
pick (BOM, NUL pattern, HTTP charset, XML declaration), since a declaration hidden
from one reading (UTF-16, UTF-7, EBCDIC) is still expanded under another.

:func:`prepare_body` then keeps feedparser on its strict parser, which is faster and
fixes less by guesswork: it strips whitespace before the XML declaration, corrects
a Latin-1 label on a body that is really UTF-8, and turns character references to no
character (a surrogate, past U+10FFFF) into U+FFFD.
"""

from __future__ import annotations

import codecs
import re
import warnings
from collections.abc import Iterator

from monitor.sources.charsets import codec_name, header_charset, is_utf8

# --- Entity-expansion guard -------------------------------------------------------------------

_ENTITY_DECL = re.compile(rb"<!ENTITY", re.IGNORECASE)
_FEEDPARSER_HEAD_END = re.compile(rb"<\w")  # feedparser's own end of the prolog
_PROLOG_TOKEN = re.compile(rb"<\?|<!--|<!DOCTYPE|<!ENTITY|<[\w:\x80-\xff]", re.IGNORECASE)
_DOCTYPE_TOKEN = re.compile(rb"[\"'\[\]>]|<\?|<!--|<!ENTITY", re.IGNORECASE)
_CLOSERS = {b"<?": b"?>", b"<!--": b"-->", b'"': b'"', b"'": b"'"}
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def declares_entities(body: bytes, content_type: str | None = None) -> bool:
    """True when the prolog of ``body`` declares an XML entity, in any encoding the body
    could be read in (the bytes as ASCII-compatible, a BOM or NUL pattern, the HTTP
    charset, the XML declaration).

    Only the prolog is read, two ways: as feedparser's regex does (everything before the
    first ``<`` + letter) and as an XML parser does (comments, processing instructions and
    the DOCTYPE's literals and internal subset skipped properly), so ``<!ENTITY`` in a
    CDATA section of an entry is not mistaken for a declaration.
    """
    return any(_prolog_declares_entities(view) for view in _views(body, content_type))


def _views(body: bytes, content_type: str | None) -> Iterator[bytes]:
    yield body
    labels = {_sniffed_codec(body), header_charset(content_type), _xml_encoding(body)}
    codecs_to_try = {codec_name(label) for label in labels if label}
    for codec in sorted(c for c in codecs_to_try if c and not _ascii_transparent(c)):
        # "replace" both ways: UTF-7 and unicode-escape can decode to lone surrogates.
        yield body.decode(codec, "replace").encode("utf-8", "replace")


def _sniffed_codec(body: bytes) -> str | None:
    """UTF-16/32 or EBCDIC from a BOM or the NUL pattern of the first characters."""
    for bom, codec in _BOMS:
        if body.startswith(bom):
            return codec
    head = body[:4]
    if len(head) < 4 or b"\x00" not in head:
        return "cp037" if head == b"\x4c\x6f\xa7\x94" else None
    if head[:2] == b"\x00\x00":
        return "utf-32-be"
    if head[1:3] == b"\x00\x00":
        return "utf-32-le"
    return "utf-16-be" if head[0] == 0 else "utf-16-le"


def _ascii_transparent(codec: str) -> bool:
    """Whether every ASCII byte of ``codec`` text stands for itself (UTF-8, Latin-1, ...)."""
    if codec == "utf-8":
        return True
    probe = bytes(range(128)) + b"\x1b$B<!a\x1b(B~{<!a~}+ADw-"
    high = bytes(range(128, 256))
    # unicode-escape warns about the probe's backslash sequences; it fails the test anyway.
    with warnings.catch_warnings(action="ignore", category=DeprecationWarning):
        same_ascii = probe.decode(codec, "replace") == probe.decode("ascii")
        return same_ascii and len(high.decode(codec, "replace")) == len(high)


def _prolog_declares_entities(data: bytes) -> bool:
    head = _FEEDPARSER_HEAD_END.search(data)
    if _ENTITY_DECL.search(data, 0, head.start() if head else len(data)):
        return True
    pos = 0
    while match := _PROLOG_TOKEN.search(data, pos):
        token = match.group().upper()
        if token == b"<!ENTITY":
            return True
        if token == b"<!DOCTYPE":
            declares, pos = _doctype_declares_entities(data, match.end())
            if declares:
                return True
            continue
        closer = _CLOSERS.get(token)
        if closer is None:  # the root element starts
            return False
        end = data.find(closer, match.end())
        if end < 0:
            return False
        pos = end + len(closer)
    return False


def _doctype_declares_entities(data: bytes, pos: int) -> tuple[bool, int]:
    """Whether the DOCTYPE starting at ``pos`` declares an entity; and where it ends."""
    in_subset = False
    while match := _DOCTYPE_TOKEN.search(data, pos):
        token = match.group()
        pos = match.end()
        if token.upper() == b"<!ENTITY":
            return True, pos
        if token == b"[":
            in_subset = True
        elif token == b"]":
            in_subset = False
        elif token == b">":
            if not in_subset:
                return False, pos
        else:
            closer = _CLOSERS[token]
            end = data.find(closer, pos)
            if end < 0:
                return False, len(data)
            pos = end + len(closer)
    return False, len(data)


# --- Preparing the body for feedparser --------------------------------------------------------

_LATIN = frozenset({"ascii", "iso8859-1", "iso8859-15", "cp1252"})
_XML_ENCODING = re.compile(
    rb"\A(?:\xef\xbb\xbf)?\s*<\?xml[^>]*?\bencoding\s*=\s*[\"']([^\"'>]{1,40})"
)


def prepare_body(body: bytes, content_type: str | None) -> tuple[bytes, str]:
    """Strip whitespace before the XML declaration, and say UTF-8 when a Latin-1 or
    ASCII label (header or declaration) lies about a body that is valid UTF-8.

    A declaration that does not start the document sends feedparser from expat to its
    slower, sloppier loose parser; a lying label makes mojibake, which feedparser repairs
    in element text but not in attributes such as link hrefs.
    """
    if _sniffed_codec(body) is None:
        bom = codecs.BOM_UTF8 if body.startswith(codecs.BOM_UTF8) else b""
        if body[len(bom) : len(bom) + 1].isspace():
            body = bom + body[len(bom) :].lstrip()
    body = _replace_bad_char_refs(body)
    declared = {codec_name(header_charset(content_type)), codec_name(_xml_encoding(body))}
    if declared & _LATIN and not body.isascii() and is_utf8(body):
        return body, "application/xml; charset=utf-8"
    return body, content_type or "application/xml"


_CHAR_REF = re.compile(rb"&#(?:[xX]([0-9A-Fa-f]{1,16})|([0-9]{1,20}));")
_REPLACEMENT_REF = b"&#xFFFD;"


def _replace_bad_char_refs(body: bytes) -> bytes:
    """``&#xD800;`` (a surrogate) or ``&#99999999;`` (past U+10FFFF) as U+FFFD.

    Expat refuses them, and feedparser's loose fallback then raises on them (chr() out of
    range, a surrogate it cannot encode), so one bad reference in one entry lost the
    whole feed. Only ASCII-compatible bodies are fixed; a UTF-16 feed keeps its bytes.
    """
    if b"&#" not in body:
        return body

    def fix(match: re.Match[bytes]) -> bytes:
        hex_digits, decimal = match.groups()
        code = int(hex_digits, 16) if hex_digits else int(decimal)
        bad = code > 0x10FFFF or 0xD800 <= code <= 0xDFFF
        return _REPLACEMENT_REF if bad else match.group()

    return _CHAR_REF.sub(fix, body)


def _xml_encoding(body: bytes) -> str | None:
    match = _XML_ENCODING.match(body[:1024])
    return match.group(1).decode("ascii", "replace") if match else None


__all__ = ["declares_entities", "prepare_body"]
