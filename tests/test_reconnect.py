"""A GET whose pooled connection the server closed unanswered is sent once more."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from monitor.app import open_app
from monitor.config import load_config
from monitor.sources.base import FetchLimits
from monitor.sources.http import FetchError, fetch_url
from tests.support.loopback_server import LoopbackServer
from tests.support.webhook_receiver import WEBHOOK_SECRET
from tests.test_service import write_config

pytestmark = pytest.mark.anyio

RSS = b"<rss version='2.0'><channel><title>t</title></channel></rss>"
CLOSED = "Server disconnected without sending a response."


def flaky(failures: int, error: str = CLOSED) -> tuple[httpx.MockTransport, list[str]]:
    """A transport failing ``failures`` times with ``error``, then answering RSS."""
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if len(calls) <= failures:
            raise httpx.RemoteProtocolError(error, request=request)
        return httpx.Response(200, content=RSS)

    return httpx.MockTransport(handler), calls


async def test_a_get_closed_unanswered_is_sent_once_more() -> None:
    transport, calls = flaky(1)
    async with httpx.AsyncClient(transport=transport) as client:
        got = await fetch_url(client, "https://feeds.test/rss", source="s", limits=FetchLimits())
    assert got.body == RSS
    assert calls == ["GET", "GET"]


async def test_a_server_closing_every_time_fails_after_the_second_try() -> None:
    transport, calls = flaky(10)
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(FetchError) as caught:
            await fetch_url(client, "https://feeds.test/rss", source="s", limits=FetchLimits())
    assert caught.value.source == "s"
    assert "Server disconnected without sending a response" in str(caught.value)
    assert calls == ["GET", "GET"]


async def test_a_malformed_answer_is_not_asked_again() -> None:
    """The server did answer: sending again would only double its load."""
    transport, calls = flaky(1, "illegal status line: bytearray(b'HTTP/1.1 2OO OK')")
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(FetchError, match="illegal status line"):
            await fetch_url(client, "https://feeds.test/rss", source="s", limits=FetchLimits())
    assert calls == ["GET"]


async def test_a_proxy_from_the_environment_still_applies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The retry wraps the request, not the transport: httpx drops the environment's
    proxies for a client given a transport of its own."""
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    config = load_config(write_config(tmp_path), {"SECRET": WEBHOOK_SECRET})
    async with open_app(config) as app:
        assert any(pattern.scheme == "https" for pattern in app.http._mounts)


class ClosingServer(LoopbackServer):
    """Answers the first request of each keep-alive connection; then closes that
    connection as the next request arrives, unanswered (an idle timeout firing)."""

    name = "closing-server"

    def __init__(self) -> None:
        super().__init__()
        self.connections = 0
        self.requests = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._lock:
            self.connections += 1
        for answered in (True, False):
            head = await reader.readuntil(b"\r\n\r\n")
            with self._lock:
                self.requests += 1
            if not answered or not head.startswith(b"GET "):
                break
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(RSS), RSS)
            )
            await writer.drain()
        writer.close()


@pytest.fixture
def closing_server() -> Iterator[ClosingServer]:
    with ClosingServer() as server:
        yield server


async def test_polls_reuse_a_connection_the_server_closes_without_an_error(
    tmp_path: Path, closing_server: ClosingServer
) -> None:
    """Over loopback, through the client ``open_app`` builds: the second fetch meets the
    closed connection and succeeds on a new one."""
    config = load_config(write_config(tmp_path), {"SECRET": WEBHOOK_SECRET})
    url = f"http://127.0.0.1:{closing_server.port}/feed.xml"
    async with open_app(config) as app:
        for _ in range(2):
            got = await fetch_url(app.http, url, source="s", limits=FetchLimits())
            assert got.body == RSS
    assert (closing_server.connections, closing_server.requests) == (2, 3)
