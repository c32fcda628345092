"""A lean HTTP/1.1 server on 127.0.0.1 for bench_cycle.py: static bodies, ETags, keep-alive.

tests/support/feed_server.py serves a thread per connection through ``http.server``; at
5,000 sources its own CPU would compete with the poll for the machine's two cores. This
one answers from one asyncio loop in a daemon thread, from bodies built beforehand, so a
request costs it tens of microseconds. Routes match the path without its query (a SAM
search carries its dates and key in the query). ``If-None-Match`` equal to the route's
ETag answers 304. Only GET; anything unknown answers 404.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from types import TracebackType


@dataclass(frozen=True)
class Route:
    body: bytes
    content_type: str
    etag: str | None = None


class CycleServer:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests = 0
        self.not_modified = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> CycleServer:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        self._server = future.result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _start(self) -> asyncio.Server:
        return await asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=1024)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def serve(self, routes: dict[str, Route]) -> None:
        """Replace the routes in one step (a dict swap is atomic for the server thread)."""
        self.routes = routes

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    name, sep, value = line.partition(":")
                    if sep:
                        headers[name.strip().lower()] = value.strip()
                writer.write(self._answer(method, target, headers))
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    return
        finally:
            writer.close()

    def _answer(self, method: str, target: str, headers: dict[str, str]) -> bytes:
        self.requests += 1
        route = self.routes.get(target.partition("?")[0])
        if method != "GET" or route is None:
            return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
        etag = f"ETag: {route.etag}\r\n" if route.etag else ""
        if route.etag is not None and headers.get("if-none-match") == route.etag:
            self.not_modified += 1
            return f"HTTP/1.1 304 Not Modified\r\n{etag}Content-Length: 0\r\n\r\n".encode()
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: {route.content_type}\r\n{etag}"
            f"Content-Length: {len(route.body)}\r\n\r\n"
        )
        return head.encode() + route.body
