"""A real HTTP/1.1 server on 127.0.0.1 for integration tests of anything that fetches.

It binds an ephemeral port on the loopback interface only, serves each connection in a
daemon thread, and shuts down promptly even while a handler is stalling on purpose.

Use the ``feed_server`` fixture (import it into ``tests/conftest.py``), or the class
directly as a context manager::

    def test_conditional_get(feed_server: FeedServer) -> None:
        feed_server.serve("/feed.xml", RSS, etag='"v1"')
        url = feed_server.url("/feed.xml")          # http://127.0.0.1:PORT/feed.xml
        ...
        assert feed_server.requests[-1].headers["if-none-match"] == '"v1"'

    with FeedServer() as server:
        server.redirect("/old", "/feed.xml")
        server.fault("/slow", "slow")

Routes are matched on the request path with its query string first, then without it;
an unknown path answers 404. Defining a route again replaces it. Only GET is served.

Faults (:data:`FaultKind`):

``slow``   200 with a small RSS body sent one byte per second (``Content-Length`` set).
``hang``   reads the request, then never answers (until the server closes).
``bomb``   a gzip bomb: ``Content-Encoding: gzip`` of 1 GiB of zeros, ~1 MB on the wire,
           streamed from one precomputed 1 MiB block (never built at full size).
``reset``  reads the request, then resets the connection (TCP RST, no response).
``huge``   200 with a 200 MB body, chunked (no ``Content-Length``), from a generator.
``html``   an HTML page (a bot-challenge page) served as ``application/rss+xml``.
"""

from __future__ import annotations

import contextlib
import gzip as gzip_module
import socket
import struct
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, NamedTuple

import pytest

from tests.support.fault_server import bomb_length, bomb_pieces

FaultKind = Literal["slow", "hang", "bomb", "reset", "huge", "html"]
FAULT_KINDS: tuple[FaultKind, ...] = ("slow", "hang", "bomb", "reset", "huge", "html")

SLOW_BODY = b'<?xml version="1.0"?><rss version="2.0"><channel><title>slow</title></channel></rss>'
HTML_BODY = (
    b"<!DOCTYPE html><html><head><title>Just a moment...</title></head>"
    b"<body><p>Checking your browser before accessing the site.</p></body></html>"
)
HUGE_SIZE = 200 * 1000 * 1000

_HUGE_CHUNK = 64 * 1024
_SOCKET_TIMEOUT = 5.0  # no handler blocks longer than this on a silent or stuck client


class RecordedRequest(NamedTuple):
    """One request the server received; header names are lower-cased."""

    method: str
    path: str
    headers: dict[str, str]


@dataclass(frozen=True)
class _Static:
    body: bytes
    content_type: str
    etag: str | None
    last_modified: str | None
    gzip: bool
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Redirect:
    location: str
    status: int


@dataclass(frozen=True)
class _Fault:
    kind: FaultKind


_Route = _Static | _Redirect | _Fault


class FeedServer:
    """A threaded loopback HTTP server whose routes tests define while it runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received = threading.Condition(self._lock)
        self._routes: dict[str, _Route] = {}
        self._requests: list[RecordedRequest] = []
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> FeedServer:
        """Bind 127.0.0.1 on an ephemeral port and serve in a background thread."""
        if self._httpd is None:
            self._stopping.clear()
            self._httpd = _HTTPServer(self)
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"feed-server-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving: wake stalled handlers, cut open connections, release the port."""
        if self._httpd is None:
            return
        self._stopping.set()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=_SOCKET_TIMEOUT)
        self._httpd = None

    def __enter__(self) -> FeedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- addresses -------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("FeedServer is not running; use start() or a with block")
        return int(self._httpd.server_address[1])

    def url(self, path: str = "/") -> str:
        """The absolute URL of ``path`` on this server: ``http://127.0.0.1:PORT/path``."""
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    # -- routes ----------------------------------------------------------------------

    def serve(
        self,
        path: str,
        body: bytes,
        content_type: str = "application/rss+xml",
        etag: str | None = None,
        last_modified: str | None = None,
        gzip: bool = False,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Define ``path`` to answer ``status`` with ``body``.

        With ``etag`` / ``last_modified`` the response carries those validators and a
        matching ``If-None-Match`` (or, without one, an ``If-Modified-Since`` not older than
        ``last_modified``) gets 304. ``gzip=True`` always sends the body gzip-encoded.
        ``headers`` are added to the response as given.
        """
        route = _Static(body, content_type, etag, last_modified, gzip, status, dict(headers or {}))
        self._set_route(path, route)

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        """Define ``path`` to redirect to ``location`` (absolute, or relative to ``path``)."""
        self._set_route(path, _Redirect(location, status))

    def fault(self, path: str, kind: FaultKind) -> None:
        """Define ``path`` to misbehave in one of the :data:`FAULT_KINDS` ways."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULT_KINDS)}")
        self._set_route(path, _Fault(kind))

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> bool:
        """Block until at least ``count`` requests arrived; False if ``timeout`` passed first."""
        with self._received:
            return self._received.wait_for(lambda: len(self._requests) >= count, timeout)

    # -- used by the handler ---------------------------------------------------------

    def _set_route(self, path: str, route: _Route) -> None:
        if not path.startswith("/"):
            raise ValueError(f"route paths start with '/': {path!r}")
        with self._lock:
            self._routes[path] = route

    def _lookup(self, path: str) -> _Route | None:
        with self._lock:
            return self._routes.get(path) or self._routes.get(path.partition("?")[0])

    def _record(self, request: RecordedRequest) -> None:
        with self._received:
            self._requests.append(request)
            self._received.notify_all()

    def _track(self, conn: socket.socket, *, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # The default backlog of 5 makes a burst of parallel fetches wait a second for the
    # kernel's SYN retry: a poll fetches up to 8 sources at once.
    request_queue_size = 128

    def __init__(self, owner: FeedServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about clients that went away (the point of most faults), not bugs."""
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = _SOCKET_TIMEOUT
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection, open_=True)

    def finish(self) -> None:
        self.server.owner._track(self.connection, open_=False)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: object) -> None:
        """No access log on stderr."""

    def do_GET(self) -> None:
        owner = self.server.owner
        headers = {name.lower(): value for name, value in self.headers.items()}
        owner._record(RecordedRequest(self.command, self.path, headers))
        route = owner._lookup(self.path)
        try:
            if route is None:
                self._send(404, b"no route for this path\n", {"Content-Type": "text/plain"})
            elif isinstance(route, _Static):
                self._static(route)
            elif isinstance(route, _Redirect):
                self._send(route.status, b"", {"Location": route.location})
            else:
                getattr(self, f"_fault_{route.kind}")()
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    # -- responses -------------------------------------------------------------------

    def _send(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _static(self, route: _Static) -> None:
        validators = {}
        if route.etag is not None:
            validators["ETag"] = route.etag
        if route.last_modified is not None:
            validators["Last-Modified"] = route.last_modified
        if _not_modified(
            route, self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since")
        ):
            self._send(304, b"", validators)
            return
        body = route.body
        headers = {"Content-Type": route.content_type, **validators}
        if route.gzip:
            body = gzip_module.compress(body, mtime=0)
            headers["Content-Encoding"] = "gzip"
        self._send(route.status, body, {**headers, **route.headers})

    def _fault_html(self) -> None:
        self._send(200, HTML_BODY, {"Content-Type": "application/rss+xml"})

    def _fault_slow(self) -> None:
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("Content-Length", str(len(SLOW_BODY)))
        self.send_header("Connection", "close")
        self.end_headers()
        for i in range(len(SLOW_BODY)):
            self.wfile.write(SLOW_BODY[i : i + 1])
            if self.server.owner._stopping.wait(1.0):
                return

    def _fault_hang(self) -> None:
        self.close_connection = True
        self.server.owner._stopping.wait()

    def _fault_reset(self) -> None:
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()  # the RST goes out once finish() drops the file objects

    def _fault_bomb(self) -> None:
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(bomb_length()))
        self.send_header("Connection", "close")
        self.end_headers()
        for piece in bomb_pieces():
            self.wfile.write(piece)

    def _fault_huge(self) -> None:
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        for chunk in _huge_chunks():
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")


def _not_modified(route: _Static, if_none_match: str | None, if_modified_since: str | None) -> bool:
    """RFC 9110 precedence: If-None-Match decides when present, else If-Modified-Since."""
    if if_none_match is not None:
        if route.etag is None:
            return False
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or route.etag.removeprefix("W/") in tags
    if if_modified_since is None or route.last_modified is None:
        return False
    try:
        return parsedate_to_datetime(route.last_modified) <= parsedate_to_datetime(
            if_modified_since
        )
    except (TypeError, ValueError):
        return route.last_modified == if_modified_since


def _huge_chunks() -> Iterator[bytes]:
    chunk = b"x" * _HUGE_CHUNK
    sent = 0
    while sent < HUGE_SIZE:
        piece = chunk[: HUGE_SIZE - sent]
        sent += len(piece)
        yield piece


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    """A running :class:`FeedServer`, closed after the test."""
    with FeedServer() as server:
        yield server
