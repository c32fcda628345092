"""fetch_url: status mapping, redirects, conditional GET, deadlines and size caps.

Unit tests drive ``httpx.MockTransport``; integration tests use the real loopback
``feed_server`` fixture (imported into tests/conftest.py). An autouse guard fails any test
that resolves or connects anywhere but 127.0.0.1. Nothing sleeps: deadlines and timeouts
do the waiting.
"""

from __future__ import annotations

import gzip
import socket
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest

from monitor.errors import FetchError
from monitor.sources.base import Fetched, FetchLimits, FetchState
from monitor.sources.http import fetch_url, redact_url
from tests.support.feed_server import HTML_BODY, FeedServer

pytestmark = pytest.mark.anyio

RSS = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'
MiB = 1024 * 1024
LIMITS = FetchLimits()
Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail loudly if anything resolves or connects to an address other than 127.0.0.1."""
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in ("127.0.0.1", b"127.0.0.1"):
            raise AssertionError(f"test tried to resolve {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self: socket.socket, address: Any) -> None:
        if isinstance(address, tuple) and address[0] != "127.0.0.1":
            raise AssertionError(f"test tried to connect to {address!r}")
        real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)


def reply(
    status: int,
    *,
    content: bytes | AsyncIterator[bytes] = b"",
    headers: dict[str, str] | None = None,
    stream: httpx.AsyncByteStream | None = None,
) -> httpx.Response:
    """A mock response streamed like a real one: ``httpx.Response(content=bytes)`` is read
    (and decoded) by httpx up front, so a bytes body goes in as a ``ByteStream`` to exercise
    fetch_url's own streaming decoder. Pre-read responses are tested separately below."""
    if stream is None and isinstance(content, bytes):
        stream = httpx.ByteStream(content)
    if stream is not None:
        return httpx.Response(status, headers=headers, stream=stream)
    return httpx.Response(status, headers=headers, content=content)


def mock_client(handler: Handler) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler), follow_redirects=False)


async def fetch(handler: Handler, url: str = "https://feeds.test/rss", **kwargs: Any) -> Fetched:
    kwargs.setdefault("limits", LIMITS)
    async with mock_client(handler) as client:
        return await fetch_url(client, url, source="src", **kwargs)


async def fetch_error(
    handler: Handler, url: str = "https://feeds.test/rss", **kwargs: Any
) -> FetchError:
    with pytest.raises(FetchError) as info:
        await fetch(handler, url, **kwargs)
    assert info.value.source == "src"
    return info.value


def recording(respond: Handler) -> tuple[Handler, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return respond(request)

    return handler, seen


# -- status mapping and conditional GET ------------------------------------------------


async def test_200_returns_body_validators_and_sends_accept_headers() -> None:
    handler, seen = recording(
        lambda r: reply(
            200,
            content=RSS,
            headers={
                "ETag": '"v1"',
                "Last-Modified": "Sun, 22 Nov 2026 09:00:00 GMT",
                "Content-Type": "application/rss+xml",
            },
        )
    )
    got = await fetch(handler, accept="application/rss+xml", headers={"X-Client": "nw"})
    assert (got.status, got.body, got.url) == (200, RSS, "https://feeds.test/rss")
    assert (got.etag, got.last_modified) == ('"v1"', "Sun, 22 Nov 2026 09:00:00 GMT")
    assert got.content_type == "application/rss+xml"
    assert not got.not_modified and got.elapsed >= 0
    sent = seen[0].headers
    assert sent["accept"] == "application/rss+xml"
    assert sent["accept-encoding"] == "gzip, deflate"
    assert sent["x-client"] == "nw"
    assert "if-none-match" not in sent and "if-modified-since" not in sent


async def test_conditional_headers_are_sent_from_state() -> None:
    handler, seen = recording(lambda r: reply(304))
    state = FetchState(etag='"abc"', last_modified="Sat, 21 Nov 2026 10:00:00 GMT")
    await fetch(handler, state=state)
    assert seen[0].headers["if-none-match"] == '"abc"'
    assert seen[0].headers["if-modified-since"] == "Sat, 21 Nov 2026 10:00:00 GMT"


async def test_304_keeps_old_validators_when_omitted() -> None:
    state = FetchState(etag='"old"', last_modified="Sat, 21 Nov 2026 10:00:00 GMT")
    got = await fetch(lambda r: reply(304), state=state)
    assert got.not_modified and got.body == b""
    assert (got.etag, got.last_modified) == (state.etag, state.last_modified)


async def test_304_takes_new_validators_when_given() -> None:
    got = await fetch(
        lambda r: reply(304, headers={"ETag": '"new"'}), state=FetchState(etag='"old"')
    )
    assert got.not_modified and got.etag == '"new"'


@pytest.mark.parametrize(
    ("status", "expected", "hint"),
    [
        (404, "HTTP 404 Not Found", "check the URL"),
        (410, "HTTP 410 Gone", "gone"),
        (401, "HTTP 401 Unauthorized", "credentials"),
        (500, "HTTP 500 Internal Server Error", "temporary"),
        (502, "HTTP 502 Bad Gateway", "temporary"),
        (300, "HTTP 300 Multiple Choices", None),
        (302, "HTTP 302 Found", None),  # a redirect without Location is an error, not a hop
    ],
)
async def test_error_statuses_raise_with_status_and_reason(
    status: int, expected: str, hint: str | None
) -> None:
    err = await fetch_error(lambda r: reply(status))
    assert f"GET https://feeds.test/rss: {expected}" in err.message
    assert err.message.startswith("fetch: source 'src': ")
    assert (hint is None and err.hint is None) or (hint is not None and hint in (err.hint or ""))


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_is_reported(status: int) -> None:
    err = await fetch_error(lambda r: reply(status, headers={"Retry-After": "120"}))
    assert f"HTTP {status}" in err.message and "(Retry-After: 120)" in err.message
    assert err.retry_after == "120"


async def test_error_body_is_quoted_at_most_200_chars_and_never_html() -> None:
    body = ('{"error": "quota exceeded", "detail": "' + "x" * 5000 + '"}').encode()
    err = await fetch_error(
        lambda r: reply(500, content=body, headers={"Content-Type": "application/json"})
    )
    quoted = err.message.split("Internal Server Error: ", 1)[1]
    assert quoted.startswith('{"error": "quota exceeded"') and len(quoted) <= 200
    html = b"<html><body>" + b"secret internals " * 100 + b"</body></html>"
    err = await fetch_error(
        lambda r: reply(502, content=html, headers={"Content-Type": "text/html"})
    )
    assert "internals" not in err.message


# -- redirects ---------------------------------------------------------------------------


async def test_redirects_are_followed_relative_to_the_current_url() -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        return {
            "/rss": reply(301, headers={"Location": "feeds/new?x=1"}),
            "/feeds/new": reply(307, headers={"Location": "//cdn.test/final"}),
            "/final": reply(200, content=RSS),
        }[request.url.path]

    handler, seen = recording(respond)
    got = await fetch(handler, state=FetchState(etag='"e"'))
    assert got.url == "https://cdn.test/final" and got.body == RSS
    assert [str(r.url) for r in seen] == [
        "https://feeds.test/rss",
        "https://feeds.test/feeds/new?x=1",
        "https://cdn.test/final",
    ]
    assert all(r.headers["if-none-match"] == '"e"' for r in seen)


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("file:///etc/passwd", "redirect to a 'file:' URL refused"),
        ("ftp://feeds.test/rss", "redirect to a 'ftp:' URL refused"),
        ("gopher://feeds.test/1", "redirect to a 'gopher:' URL refused"),
        # httpx itself rejects host-less Locations before we see them (encode/httpx#3706)
        ("data:text/plain,hi", "redirect to a URL without a host refused"),
        ("javascript:alert(1)", "redirect to a URL without a host refused"),
        ("http://[::1/x", "redirect to an invalid URL refused"),
    ],
)
async def test_redirect_to_non_http_target_is_refused(location: str, expected: str) -> None:
    handler, seen = recording(lambda r: reply(302, headers={"Location": location}))
    err = await fetch_error(handler)
    assert expected in err.message
    assert len(seen) == 1


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("file:///etc/passwd", "only http and https URLs are fetched"),
        ("feeds.test/rss", "only http and https URLs are fetched"),
        ("https:///rss", "invalid URL: no host"),
        ("https://feeds.test:port/rss", "invalid URL"),
    ],
)
async def test_bad_url_is_refused_without_a_request(url: str, expected: str) -> None:
    handler, seen = recording(lambda r: reply(200))
    err = await fetch_error(handler, url)
    assert expected in err.message and not seen


@pytest.mark.parametrize("max_redirects", [5, 2, 0])
async def test_too_many_redirects(max_redirects: int) -> None:
    handler, seen = recording(lambda r: reply(302, headers={"Location": f"/hop{len(seen)}"}))
    err = await fetch_error(handler, limits=FetchLimits(max_redirects=max_redirects))
    assert f"more than {max_redirects} redirects" in err.message
    assert len(seen) == max_redirects + 1


async def test_exactly_max_redirects_is_allowed() -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        hop = len(seen)
        if hop <= 5:
            return reply(302, headers={"Location": f"/hop{hop}"})
        return reply(200, content=RSS)

    handler, seen = recording(respond)
    got = await fetch(handler)
    assert got.url == "https://feeds.test/hop5" and len(seen) == 6


async def test_cross_origin_redirect_drops_credential_headers() -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        if request.url.host == "feeds.test" and request.url.path == "/rss":
            return reply(302, headers={"Location": "/same"})
        if request.url.host == "feeds.test":
            return reply(302, headers={"Location": "https://other.test/x"})
        return reply(200, content=RSS)

    handler, seen = recording(respond)
    creds = {"Authorization": "Bearer abcd", "X-Api-Key": "k123", "Cookie": "s=1", "X-Client": "nw"}
    await fetch(handler, headers=creds)
    same, other = seen[1].headers, seen[2].headers
    assert same["authorization"] == "Bearer abcd" and same["x-api-key"] == "k123"
    assert "authorization" not in other and "x-api-key" not in other and "cookie" not in other
    assert other["x-client"] == "nw" and other["accept-encoding"] == "gzip, deflate"


# -- size cap and content encodings ----------------------------------------------------


class TrackingStream(httpx.AsyncByteStream):
    """An endless body that counts how many bytes were pulled from it."""

    def __init__(self, chunk: bytes = b"x" * 65536) -> None:
        self.chunk = chunk
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            self.pulled += len(self.chunk)
            yield self.chunk


async def test_content_length_over_cap_is_rejected_before_reading() -> None:
    stream = TrackingStream()
    err = await fetch_error(
        lambda r: reply(200, headers={"Content-Length": str(11 * MiB)}, stream=stream)
    )
    assert "body larger than the 10 MiB cap" in err.message
    assert stream.pulled == 0


async def test_streamed_body_over_cap_stops_at_the_cap() -> None:
    stream = TrackingStream()
    err = await fetch_error(lambda r: reply(200, stream=stream), limits=FetchLimits(max_bytes=MiB))
    assert "body larger than the 1 MiB cap" in err.message
    assert stream.pulled <= MiB + 65536


async def test_body_exactly_at_cap_is_accepted() -> None:
    body = b"y" * MiB
    got = await fetch(lambda r: reply(200, content=body), limits=FetchLimits(max_bytes=MiB))
    assert got.body == body


def encoded(body: bytes, encoding: str) -> Handler:
    return lambda r: reply(200, content=body, headers={"Content-Encoding": encoding})


def raw_deflate(data: bytes) -> bytes:
    deflater = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return deflater.compress(data) + deflater.flush()


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("gzip", gzip.compress(RSS)),
        ("x-gzip", gzip.compress(RSS)),
        ("GZIP", gzip.compress(RSS)),
        ("deflate", zlib.compress(RSS)),
        ("deflate", raw_deflate(RSS)),
        ("identity", RSS),
    ],
    ids=["gzip", "x-gzip", "GZIP", "deflate-zlib", "deflate-raw", "identity"],
)
async def test_supported_encodings_are_decoded(encoding: str, body: bytes) -> None:
    assert (await fetch(encoded(body, encoding))).body == RSS


async def test_gzip_concatenated_members_and_zero_padding() -> None:
    body = (
        gzip.compress(b"<rss>one,")
        + gzip.compress(b"two,")
        + b"\0\0\0"
        + gzip.compress(b"three</rss>")
    )
    assert (await fetch(encoded(body, "gzip"))).body == b"<rss>one,two,three</rss>"


async def test_gzip_split_into_tiny_chunks() -> None:
    body = gzip.compress(b"a" * 1000) + gzip.compress(b"b" * 1000)

    async def tiny() -> AsyncIterator[bytes]:
        for i in range(len(body)):
            yield body[i : i + 1]

    got = await fetch(lambda r: reply(200, content=tiny(), headers={"Content-Encoding": "gzip"}))
    assert got.body == b"a" * 1000 + b"b" * 1000


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "gzip, gzip"])
async def test_unsupported_content_encoding(encoding: str) -> None:
    err = await fetch_error(encoded(b"\x00" * 10, encoding))
    assert "unsupported Content-Encoding" in err.message


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_compressed_bomb_fails_at_the_cap(encoding: str) -> None:
    zeros = bytes(8 * MiB)
    body = gzip.compress(zeros) if encoding == "gzip" else zlib.compress(zeros)
    err = await fetch_error(encoded(body, encoding), limits=FetchLimits(max_bytes=MiB))
    assert "body larger than the 1 MiB cap" in err.message


@pytest.mark.parametrize(
    "body", [gzip.compress(RSS)[:-12], b"not gzip at all"], ids=["truncated", "garbage"]
)
async def test_undecodable_gzip(body: bytes) -> None:
    err = await fetch_error(encoded(body, "gzip"))
    assert "cannot decode the gzip body" in err.message


async def test_pre_read_responses_are_accepted_and_capped() -> None:
    """httpx.Response(content=...) in a MockTransport, or a response hook calling aread(),
    hands fetch_url a body httpx already read and decoded."""
    got = await fetch(lambda r: httpx.Response(200, content=RSS))
    assert got.body == RSS
    zipped = gzip.compress(RSS)
    got = await fetch(
        lambda r: httpx.Response(200, content=zipped, headers={"Content-Encoding": "gzip"})
    )
    assert got.body == RSS
    err = await fetch_error(
        lambda r: httpx.Response(200, content=b"z" * (MiB + 1)), limits=FetchLimits(max_bytes=MiB)
    )
    assert "body larger than the 1 MiB cap" in err.message
    err = await fetch_error(lambda r: httpx.Response(400, json={"error": "bad query"}))
    assert err.message.endswith('HTTP 400 Bad Request: {"error":"bad query"}')


async def test_a_response_hook_that_reads_the_body_is_fine() -> None:
    async def read_it(response: httpx.Response) -> None:
        await response.aread()

    transport = httpx.MockTransport(
        lambda r: reply(200, content=gzip.compress(RSS), headers={"Content-Encoding": "gzip"})
    )
    async with httpx.AsyncClient(transport=transport, event_hooks={"response": [read_it]}) as c:
        got = await fetch_url(c, "https://feeds.test/rss", source="src", limits=LIMITS)
    assert got.body == RSS


# -- wrapped httpx errors and redaction ------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ConnectTimeout("t"), "connect timed out after 10s"),
        (httpx.ReadTimeout("t"), "read timed out after 20s"),
        (httpx.ConnectError("boom"), "could not connect: boom"),
        (httpx.RemoteProtocolError("Server disconnected"), "Server disconnected"),
        (httpx.ReadError("reset"), "connection lost while reading: reset"),
    ],
)
async def test_httpx_errors_are_wrapped(exc: httpx.HTTPError, expected: str) -> None:
    def raise_it(request: httpx.Request) -> httpx.Response:
        raise exc

    err = await fetch_error(raise_it)
    assert expected in err.message and err.__cause__ is exc


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://a.test/rss?q=x&api_key=S3CR3T&limit=5",
            "https://a.test/rss?q=x&api_key=***&limit=5",
        ),
        (
            "https://u:pw@a.test:8443/p?TOKEN=t&Signature=s",
            "https://a.test:8443/p?TOKEN=***&Signature=***",
        ),
        (
            "https://a.test/p?client_secret=x&password=y&sig=z",
            "https://a.test/p?client_secret=***&password=***&sig=***",
        ),
        (
            "https://a.test/p?apiKey=1&access%5Ftoken=2",
            "https://a.test/p?apiKey=***&access%5Ftoken=***",
        ),
        ("https://a.test/p#access_token=abc&state=1", "https://a.test/p#access_token=***&state=1"),
        ("https://a.test/p?q=keyword", "https://a.test/p?q=keyword"),
        ("https://a.test/p?flag&q=1", "https://a.test/p?flag&q=1"),
        ("https://[::1/broken", "<invalid URL>"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


async def test_no_error_message_contains_a_secret() -> None:
    url = "https://user:hunter22@feeds.test/rss?api_key=S3CR3T-VALUE&q=1"
    echo = lambda r: reply(  # noqa: E731
        403,
        content=b'{"error": "bad key S3CR3T-VALUE"}',
        headers={"Content-Type": "application/json"},
    )
    loop = lambda r: reply(302, headers={"Location": str(r.url)})  # noqa: E731

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    for handler in (echo, loop, refused):
        err = await fetch_error(handler, url)
        assert "S3CR3T-VALUE" not in str(err) and "hunter22" not in str(err)
        assert "api_key=***" in str(err)


# -- integration: the real loopback server ---------------------------------------------


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(follow_redirects=False, trust_env=False)


async def fetch_from(server: FeedServer, path: str, **kwargs: Any) -> Fetched:
    kwargs.setdefault("limits", LIMITS)
    async with client() as c:
        return await fetch_url(c, server.url(path), source="live", **kwargs)


async def fetch_from_error(
    server: FeedServer, path: str, **kwargs: Any
) -> tuple[FetchError, float]:
    started = time.monotonic()
    with pytest.raises(FetchError) as info:
        await fetch_from(server, path, **kwargs)
    return info.value, time.monotonic() - started


@pytest.mark.integration
async def test_live_etag_round_trip_gives_304(feed_server: FeedServer) -> None:
    feed_server.serve("/feed.xml", RSS, etag='"v1"', last_modified="Sun, 22 Nov 2026 09:00:00 GMT")
    first = await fetch_from(feed_server, "/feed.xml")
    assert first.status == 200 and first.body == RSS and first.etag == '"v1"'
    second = await fetch_from(
        feed_server, "/feed.xml", state=FetchState(first.etag, first.last_modified)
    )
    assert second.not_modified and second.etag == '"v1"'
    assert second.last_modified == "Sun, 22 Nov 2026 09:00:00 GMT"
    assert feed_server.requests[-1].headers["if-none-match"] == '"v1"'


@pytest.mark.integration
async def test_live_last_modified_round_trip_and_gzip(feed_server: FeedServer) -> None:
    feed_server.serve("/lm.xml", RSS, last_modified="Sun, 22 Nov 2026 09:00:00 GMT", gzip=True)
    first = await fetch_from(feed_server, "/lm.xml")
    assert first.body == RSS and first.etag is None
    second = await fetch_from(
        feed_server, "/lm.xml", state=FetchState(last_modified=first.last_modified)
    )
    assert second.not_modified


@pytest.mark.integration
async def test_live_redirect_then_feed(feed_server: FeedServer) -> None:
    feed_server.serve("/new.xml", RSS)
    feed_server.redirect("/old.xml", "/new.xml", status=301)
    got = await fetch_from(feed_server, "/old.xml")
    assert got.url == feed_server.url("/new.xml") and got.body == RSS


@pytest.mark.integration
@pytest.mark.parametrize(("status", "reason"), [(404, "Not Found"), (500, "Internal Server Error")])
async def test_live_error_status(feed_server: FeedServer, status: int, reason: str) -> None:
    if status != 404:  # 404 is what an undefined route answers
        feed_server.serve("/x", b"oops", content_type="text/plain", status=status)
    err, _ = await fetch_from_error(feed_server, "/x")
    assert f"HTTP {status} {reason}" in err.message


@pytest.mark.integration
async def test_live_slow_server_fails_at_the_deadline(feed_server: FeedServer) -> None:
    feed_server.fault("/slow", "slow")
    err, took = await fetch_from_error(
        feed_server, "/slow", limits=FetchLimits(deadline=timedelta(seconds=1.5))
    )
    assert "timed out after 1.5s (overall deadline)" in err.message
    assert 1.4 < took < 3


@pytest.mark.integration
async def test_live_hanging_server_fails_at_the_read_timeout(feed_server: FeedServer) -> None:
    feed_server.fault("/hang", "hang")
    limits = FetchLimits(read_timeout=timedelta(seconds=0.5), deadline=timedelta(seconds=10))
    err, took = await fetch_from_error(feed_server, "/hang", limits=limits)
    assert "read timed out after 0.5s" in err.message and isinstance(
        err.__cause__, httpx.ReadTimeout
    )
    assert 0.4 < took < 2


@pytest.mark.integration
async def test_live_gzip_bomb_fails_at_the_cap_with_bounded_memory(feed_server: FeedServer) -> None:
    feed_server.fault("/bomb", "bomb")
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        err, took = await fetch_from_error(feed_server, "/bomb")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    growth = peak - before
    print(f"gzip bomb: peak traced memory growth {growth / MiB:.1f} MiB in {took:.2f}s")
    assert "body larger than the 10 MiB cap" in err.message
    assert growth < 100 * 1000 * 1000
    assert growth < 2 * LIMITS.max_bytes  # the cap, one chunk and buffer slack; never a copy


@pytest.mark.integration
async def test_live_huge_body_without_content_length_fails_at_the_cap(
    feed_server: FeedServer,
) -> None:
    feed_server.fault("/huge", "huge")
    err, took = await fetch_from_error(feed_server, "/huge")
    assert "body larger than the 10 MiB cap" in err.message and took < 5


@pytest.mark.integration
async def test_live_connection_reset(feed_server: FeedServer) -> None:
    feed_server.fault("/reset", "reset")
    err, _ = await fetch_from_error(feed_server, "/reset")
    assert isinstance(err.__cause__, httpx.ReadError | httpx.RemoteProtocolError)


@pytest.mark.integration
async def test_live_html_as_rss_is_fetched_as_is(feed_server: FeedServer) -> None:
    feed_server.fault("/html", "html")
    got = await fetch_from(feed_server, "/html")
    assert got.body == HTML_BODY and got.content_type == "application/rss+xml"


@pytest.mark.integration
async def test_live_connection_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the fetch: nothing listens there
    async with client() as c:
        with pytest.raises(FetchError) as info:
            await fetch_url(c, f"http://127.0.0.1:{port}/rss", source="live", limits=LIMITS)
    assert "connection refused" in info.value.message


@pytest.mark.integration
def test_server_closes_promptly_with_a_stalled_request() -> None:
    server = FeedServer().start()
    server.fault("/hang", "hang")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
        conn.sendall(b"GET /hang HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert server.wait_for_requests(1, timeout=5)
        started = time.monotonic()
        server.close()
        assert time.monotonic() - started < 1
        assert conn.recv(1024) == b""  # closed without an answer
    assert server.requests[0] == ("GET", "/hang", server.requests[0].headers)


def test_feed_server_requires_known_faults_and_absolute_paths() -> None:
    with FeedServer() as server:
        with pytest.raises(ValueError, match="unknown fault"):
            server.fault("/x", "explode")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="start with '/'"):
            server.serve("x", b"")
