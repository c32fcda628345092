"""A loopback HTTP/1.1 server that plays the faults Toxiproxy models, one fault per path.

It is an asyncio stream server running its own event loop in a daemon thread, so sync
tests (``main(["poll"])``) and async tests can both use it. It binds 127.0.0.1 on an
ephemeral port, speaks just enough HTTP/1.1 (GET and POST with a ``Content-Length`` body,
one request per connection, ``Connection: close``) and controls the socket byte by byte.

Use the ``fault_server`` fixture (import it into a test module or ``conftest.py``)::

    def test_reset(fault_server: FaultServer) -> None:
        fault_server.serve("/good.xml", RSS)                  # a good response
        fault_server.fault("/bad.xml", Fault.RESET)           # the same, but it resets
        fault_server.fault("/flaky.xml", Fault.BURST_5XX, body=RSS, burst=2)  # 503, 503, 200
        url = fault_server.url("/bad.xml")

Routes match the request path without its query string. A fault plays *around* a good
response (``body``, ``status``, ``content_type``, ``headers``), as a proxy in front of a
healthy server would:

=================  ===========================================================================
``LATENCY``        the good response, after ``delay`` seconds of silence
``RESET``          reads the request, then resets the connection (TCP RST, no response)
``HANG``           reads the request, then never answers (until the server closes)
``SLOW_BYTES``     the good response (status line, headers, body) one byte per ``interval`` s
``SHORT_BODY``     the good response's headers with its full ``Content-Length``, half the
                   body, then the connection closes
``BURST_5XX``      ``burst`` answers of 503 (no Retry-After), then the good response
``REDIRECT_LOOP``  302 to the same path with a counter in the query, forever
``GZIP_BOMB``      ``Content-Encoding: gzip`` of 1 GiB of zeros (~1 MB on the wire), made on
                   the fly from one compressed 1 MiB block; ``status`` as given
``HUGE_BODY``      200 MB with no ``Content-Length`` (close-delimited), made on the fly
=================  ===========================================================================
"""

from __future__ import annotations

import asyncio
import enum
import functools
import struct
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import NamedTuple

import pytest

from tests.support.loopback_server import LoopbackServer, reset

BOMB_DECODED_SIZE = 1 << 30
HUGE_SIZE = 200 * 1000 * 1000
_BLOCK = 1 << 20  # decoded size of one repeated bomb block
_CHUNK = 64 * 1024
_MAX_HEAD = 64 * 1024  # request line and headers


class Fault(enum.StrEnum):
    """The faults a route can play (see the module docstring)."""

    LATENCY = "latency"
    RESET = "reset"
    HANG = "hang"
    SLOW_BYTES = "slow-bytes"
    SHORT_BODY = "short-body"
    BURST_5XX = "burst-5xx"
    REDIRECT_LOOP = "redirect-loop"
    GZIP_BOMB = "gzip-bomb"
    HUGE_BODY = "huge-body"


class Recorded(NamedTuple):
    """One request the server read; header names are lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Route:
    """A good response, and the fault (if any) played around it."""

    body: bytes = b""
    status: int = 200
    content_type: str = "application/octet-stream"
    headers: Mapping[str, str] = field(default_factory=dict)
    fault: Fault | None = None
    delay: float = 3.0  # LATENCY: seconds before answering
    interval: float = 1.0  # SLOW_BYTES: seconds between bytes
    burst: int = 2  # BURST_5XX: failed answers before the good one


class FaultServer(LoopbackServer):
    """The HTTP server; define routes with :meth:`serve` and :meth:`fault` while it runs."""

    name = "fault-server"

    def __init__(self) -> None:
        super().__init__()
        self._routes: dict[str, Route] = {}
        self._hits: dict[str, int] = {}
        self._requests: list[Recorded] = []

    def url(self, path: str = "/") -> str:
        """``http://127.0.0.1:PORT/path``."""
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def serve(
        self,
        path: str,
        body: bytes,
        *,
        status: int = 200,
        content_type: str = "application/octet-stream",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Define ``path`` to answer ``status`` with ``body``, no fault."""
        self._set(path, Route(body, status, content_type, dict(headers or {})))

    def fault(
        self,
        path: str,
        fault: Fault,
        *,
        body: bytes = b"",
        status: int = 200,
        content_type: str = "application/octet-stream",
        headers: Mapping[str, str] | None = None,
        delay: float = 3.0,
        interval: float = 1.0,
        burst: int = 2,
    ) -> None:
        """Define ``path`` to play ``fault`` around the good response given."""
        if not isinstance(fault, Fault):
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(Fault)}")
        extra = dict(headers or {})
        self._set(path, Route(body, status, content_type, extra, fault, delay, interval, burst))

    def hits(self, path: str) -> int:
        """How many requests ``path`` (without query) has received."""
        with self._lock:
            return self._hits.get(path, 0)

    @property
    def requests(self) -> list[Recorded]:
        """Every request read so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def _set(self, path: str, route: Route) -> None:
        if not path.startswith("/"):
            raise ValueError(f"route paths start with '/': {path!r}")
        with self._lock:
            self._routes[path] = route
            self._hits.pop(path, None)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await _read_request(reader)
        if request is not None:
            await self._answer(request, writer)

    async def _answer(self, request: Recorded, writer: asyncio.StreamWriter) -> None:
        path = request.path.partition("?")[0]
        with self._lock:
            self._requests.append(request)
            hit = self._hits.get(path, 0)
            self._hits[path] = hit + 1
            route = self._routes.get(path)
        if route is None:
            await _respond(writer, 404, b"no route for this path\n", {"Content-Type": "text/plain"})
            return
        play = _PLAYERS[route.fault] if route.fault is not None else _good
        await play(self, route, writer, request, hit)


# --- the HTTP bits ---------------------------------------------------------------------


async def _read_request(reader: asyncio.StreamReader) -> Recorded | None:
    head = await reader.readuntil(b"\r\n\r\n")
    if len(head) > _MAX_HEAD:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _version = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    body = await reader.readexactly(length) if length else b""
    return Recorded(method, target, headers, body)


def _head(status: int, headers: Mapping[str, str]) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Status"
    lines = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join([*lines, "Connection: close"]) + "\r\n\r\n").encode("latin-1")


def _good_headers(route: Route, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": route.content_type,
        "Content-Length": str(len(body)),
        **route.headers,
    }


async def _respond(
    writer: asyncio.StreamWriter, status: int, body: bytes, headers: Mapping[str, str]
) -> None:
    writer.write(_head(status, {**headers, "Content-Length": str(len(body))}) + body)
    await writer.drain()


async def _good(
    server: FaultServer, route: Route, writer: asyncio.StreamWriter, req: Recorded, hit: int
) -> None:
    await _respond(writer, route.status, route.body, _good_headers(route, route.body))


async def _latency(
    server: FaultServer, route: Route, writer: asyncio.StreamWriter, req: Recorded, hit: int
) -> None:
    if not await server._wait_stop(route.delay):
        await _good(server, route, writer, req, hit)


async def _reset(
    server: FaultServer, route: Route, writer: asyncio.StreamWriter, req: Recorded, hit: int
) -> None:
    reset(writer)


async def _hang(
    server: FaultServer, route: Route, writer: asyncio.StreamWriter, req: Recorded, hit: int
) -> None:
    await server._wait_stop()


async def _slow_bytes(
    server: FaultServer, route: Route, writer: asyncio.StreamWriter, req: Recorded, hit: int
) -> None:
    whole = _head(route.status, _good_headers(route, route.body)) + route.body
    for i in range(len(whole)):
        writer.write(whole[i : i + 1])
        await writer.drain()
        if await server._wait_stop(route.interval):
            return


async def _short_body(
    server: FaultServer, route: Route, writer: asyncio.StreamWriter, req: Recorded, hit: int
) -> None:
    writer.write(_head(route.status, _good_headers(route, route.body)))
    writer.write(route.body[: len(route.body) // 2])
    await writer.drain()  # then the connection closes, short of Content-Length


async def _burst_5xx(
    server: FaultServer, route: Route, writer: asyncio.StreamWriter, req: Recorded, hit: int
) -> None:
    if hit < route.burst:
        text = b"upstream unavailable, try again\n"
        await _respond(writer, 503, text, {"Content-Type": "text/plain"})
    else:
        await _good(server, route, writer, req, hit)


async def _redirect_loop(
    server: FaultServer, route: Route, writer: asyncio.StreamWriter, req: Recorded, hit: int
) -> None:
    path = req.path.partition("?")[0]
    await _respond(writer, 302, b"", {"Location": f"{path}?loop={hit + 1}"})


async def _gzip_bomb(
    server: FaultServer, route: Route, writer: asyncio.StreamWriter, req: Recorded, hit: int
) -> None:
    headers = {
        "Content-Type": route.content_type,
        "Content-Encoding": "gzip",
        "Content-Length": str(bomb_length()),
        **route.headers,
    }
    writer.write(_head(route.status, headers))
    for piece in bomb_pieces():
        writer.write(piece)
        await writer.drain()


async def _huge_body(
    server: FaultServer, route: Route, writer: asyncio.StreamWriter, req: Recorded, hit: int
) -> None:
    writer.write(_head(route.status, {"Content-Type": route.content_type, **route.headers}))
    chunk = b"x" * _CHUNK
    sent = 0
    while sent < HUGE_SIZE:
        piece = chunk[: HUGE_SIZE - sent]
        writer.write(piece)
        await writer.drain()
        sent += len(piece)


_PLAYERS = {
    Fault.LATENCY: _latency,
    Fault.RESET: _reset,
    Fault.HANG: _hang,
    Fault.SLOW_BYTES: _slow_bytes,
    Fault.SHORT_BODY: _short_body,
    Fault.BURST_5XX: _burst_5xx,
    Fault.REDIRECT_LOOP: _redirect_loop,
    Fault.GZIP_BOMB: _gzip_bomb,
    Fault.HUGE_BODY: _huge_body,
}


# --- the gzip bomb, never materialised -------------------------------------------------


@functools.cache
def _bomb_block() -> bytes:
    """Raw deflate of one 1 MiB block of zeros, ending in a full flush so blocks concatenate."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return deflater.compress(bytes(_BLOCK)) + deflater.flush(zlib.Z_FULL_FLUSH)


_GZIP_HEADER = struct.pack("<BBBBIBB", 0x1F, 0x8B, 8, 0, 0, 2, 255)
_DEFLATE_END = b"\x03\x00"  # an empty final fixed-Huffman block


def bomb_length(decoded_size: int = BOMB_DECODED_SIZE) -> int:
    """The wire size of :func:`bomb_pieces` for ``decoded_size``."""
    blocks = decoded_size // _BLOCK
    return len(_GZIP_HEADER) + blocks * len(_bomb_block()) + len(_DEFLATE_END) + 8


def bomb_pieces(decoded_size: int = BOMB_DECODED_SIZE) -> Iterator[bytes]:
    """A valid gzip stream of ``decoded_size`` zeros (a multiple of 1 MiB), made on the fly;
    its CRC is computed only if a client reads that far."""
    blocks = decoded_size // _BLOCK
    yield _GZIP_HEADER
    block = _bomb_block()
    for _ in range(blocks):
        yield block
    crc = 0
    zeros = bytes(_BLOCK)
    for _ in range(blocks):
        crc = zlib.crc32(zeros, crc)
    yield _DEFLATE_END + struct.pack("<II", crc, decoded_size & 0xFFFFFFFF)


@pytest.fixture
def fault_server() -> Iterator[FaultServer]:
    """A running :class:`FaultServer`, closed after the test."""
    with FaultServer() as server:
        yield server
