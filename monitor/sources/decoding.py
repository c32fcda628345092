"""Bounded decoding of HTTP bodies: identity, gzip (several members) and deflate.

The decoder never holds more than its cap of decoded bytes (plus one 64 KiB step), so
a gzip bomb fails after at most ``cap`` bytes were inflated, however large it claims to be.
"""

from __future__ import annotations

import io
import zlib

import httpx

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 64 * 1024


def content_encoding(response: httpx.Response) -> str | None:
    """'identity', 'gzip' or 'deflate'; None for anything this module cannot decode."""
    value = response.headers.get("content-encoding", "")
    codings = [c.strip().lower() for c in value.split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        return "identity"
    if len(codings) == 1 and codings[0] in ("gzip", "x-gzip", "deflate"):
        return "deflate" if codings[0] == "deflate" else "gzip"
    return None


async def feed_prefix(response: httpx.Response, decoder: BodyDecoder) -> None:
    """Feed ``decoder`` the start of ``response``'s body, best effort, for an error text.

    Stops at the decoder's cap, after 64 KiB read from the wire, or at any read or decode
    error; what was decoded stays in ``decoder.partial()``. Never a bomb's worth: the
    decoder inflates in bounded steps (httpx's own decoding inflates a whole chunk).
    """
    received = 0
    try:
        async for chunk in response.aiter_raw():
            decoder.feed(chunk)
            received += len(chunk)
            if received > _CHUNK:
                break
    except (BodyTooLargeError, zlib.error, httpx.HTTPError):
        pass


def _looks_like_zlib(data: bytes) -> bool:
    cmf, flg = data[0], data[1]
    return cmf & 0x0F == 8 and cmf >> 4 <= 7 and (cmf * 256 + flg) % 31 == 0


class BodyTooLargeError(Exception):
    """The decoded body passed the cap."""


class TruncatedBodyError(Exception):
    """The compressed body ended in the middle of a stream."""


class BodyDecoder:
    """Decode a body chunk by chunk into a buffer that never grows past ``cap`` bytes.

    ``gzip`` may hold several concatenated members (zero padding between them and
    trailing non-gzip bytes are ignored, like gzip(1)); ``deflate`` may be zlib-wrapped
    (RFC 1950, as specified) or raw (RFC 1951, as some servers send it).
    """

    def __init__(self, encoding: str, cap: int) -> None:
        self._encoding = encoding
        self._cap = cap
        self._out = io.BytesIO()
        self._size = 0
        self._inflater: zlib._Decompress | None = None
        self._head = b""  # bytes held back until the next stream's start can be recognised
        self._streams = 0
        self._ignore_rest = False

    def feed(self, data: bytes) -> None:
        if self._encoding == "identity":
            self._write(data)
            return
        while data and not self._ignore_rest:
            if self._inflater is None:
                data = self._start_stream(self._head + data)
                if self._inflater is None:
                    return
            data = self._inflate(self._inflater, data)

    def finish(self) -> bytes:
        if self._inflater is not None or (self._head and not self._ignore_rest):
            raise TruncatedBodyError("the compressed stream ends early")
        return self._out.getvalue()

    def partial(self) -> bytes:
        return self._out.getvalue()

    def _start_stream(self, data: bytes) -> bytes:
        """Open an inflater for the stream starting at ``data`` (or hold ``data`` back)."""
        self._head = b""
        if self._encoding == "gzip":
            data = data.lstrip(b"\x00")
            if len(data) < len(_GZIP_MAGIC) and _GZIP_MAGIC.startswith(data):
                self._head = data
                return b""
            if self._streams and not data.startswith(_GZIP_MAGIC):
                self._ignore_rest = True
                return b""
            self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            return data
        if self._streams:  # deflate has one stream; ignore anything after it
            self._ignore_rest = True
            return b""
        if len(data) < 2:
            self._head = data
            return b""
        wbits = zlib.MAX_WBITS if _looks_like_zlib(data) else -zlib.MAX_WBITS
        self._inflater = zlib.decompressobj(wbits)
        return data

    def _inflate(self, inflater: zlib._Decompress, data: bytes) -> bytes:
        """Inflate ``data`` in bounded steps; return what follows the stream if it ended."""
        while True:
            limit = min(_CHUNK, self._cap - self._size + 1)
            out = inflater.decompress(data, limit)
            self._write(out)
            data = inflater.unconsumed_tail
            if inflater.eof:
                self._inflater = None
                self._streams += 1
                return inflater.unused_data
            if not data and len(out) < limit:
                return b""

    def _write(self, data: bytes) -> None:
        room = self._cap - self._size
        self._out.write(data[:room] if len(data) > room else data)
        self._size += min(len(data), room)
        if len(data) > room:
            raise BodyTooLargeError
