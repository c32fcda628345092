"""The one bounded HTTP GET that every source type uses.

:func:`fetch_url` is the network boundary of the fetch stage. It follows redirects itself
(the shared client is built with ``follow_redirects=False``), sends the conditional-GET
validators it is given, and bounds everything it does by :class:`FetchLimits`:

- per-request connect / read timeouts, plus one overall deadline covering every redirect hop
  and the whole body, so a server trickling one byte a second still fails on time;
- a size cap on the *decoded* body, enforced while streaming and while decompressing, so a
  gzip bomb fails after at most ``max_bytes`` (plus one 64 KiB chunk) has been inflated;
- at most ``max_redirects`` hops, to ``http`` / ``https`` targets only.

Every failure leaves as :class:`FetchError` (httpx exceptions chained with ``from``), and any
URL a message shows goes through :func:`redact_url` first.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from urllib.parse import unquote_plus, urljoin, urlsplit, urlunsplit

import anyio
import httpx

from monitor.errors import FetchError
from monitor.sources.base import Fetched, FetchLimits, FetchState
from monitor.sources.decoding import (
    BodyDecoder,
    BodyTooLargeError,
    TruncatedBodyError,
    content_encoding,
    feed_prefix,
)
from monitor.sources.reconnect import get_streamed

# Asked before each request of a fetch (the URL, then each redirect target): a reason
# to refuse it, or None.
HopCheck = Callable[[str], Awaitable[str | None]]
_SECRET_NAME_PARTS = ("key", "token", "secret", "password", "sig")
_SENSITIVE_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
_FOLLOWED_SCHEMES = frozenset({"http", "https"})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
ACCEPT_ENCODING = "gzip, deflate"  # what BodyDecoder decodes, within its cap
_CHUNK = 64 * 1024
_SNIPPET_CHARS = 200
_SNIPPET_SECONDS = 1.0
_STATUS_HINTS = {
    401: "check the credentials or API key of this source",
    403: "check the credentials or API key of this source",
    404: "check the URL of this source; the page may have moved",
    410: "the page is gone; update or remove this source",
    429: "the server is rate limiting this client; poll less often",
}


def redact_url(url: str) -> str:
    """Return ``url`` safe to show: no userinfo, secret-looking query values replaced by ``***``.

    A query (or fragment) parameter is secret when its name contains ``key``, ``token``,
    ``secret``, ``password`` or ``sig`` in any case. A URL that does not parse is not echoed.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit(
        (
            parts.scheme,
            netloc,
            parts.path,
            _redact_params(parts.query),
            _redact_params(parts.fragment),
        )
    )


async def fetch_url(
    client: httpx.AsyncClient,
    url: str,
    *,
    source: str,
    limits: FetchLimits,
    state: FetchState | None = None,
    headers: Mapping[str, str] | None = None,
    accept: str = "*/*",
    passthrough: frozenset[int] = frozenset(),
    check_hop: HopCheck | None = None,
) -> Fetched:
    """GET ``url`` within ``limits`` and return the fresh body or a 304 ``not_modified``.

    ``check_hop`` is asked about the URL and every redirect target before it is
    requested; a reason it returns refuses that hop (e.g. an internal address).

    ``state`` supplies ``If-None-Match`` / ``If-Modified-Since``; a 304 that omits the
    validators keeps the old ones. ``headers`` are sent on every hop except that, on a
    redirect to another origin, credentials-looking ones (Authorization, Cookie, names
    containing key/token/secret/password/sig) are dropped. Raises :class:`FetchError`
    naming ``source`` on any failure, except that a status in ``passthrough`` (an API's
    throttle answer whose body says when to come back) is returned with its body.
    """
    started = time.monotonic()
    deadline = limits.deadline.total_seconds()
    with anyio.move_on_after(deadline):
        return await _follow_redirects(
            client,
            url,
            source=source,
            limits=limits,
            state=state,
            headers=_request_headers(accept, headers, state),
            started=started,
            passthrough=passthrough,
            check_hop=check_hop,
        )
    raise deadline_error(source, "GET", url, limits)


async def _follow_redirects(
    client: httpx.AsyncClient,
    url: str,
    *,
    source: str,
    limits: FetchLimits,
    state: FetchState | None,
    headers: httpx.Headers,
    started: float,
    passthrough: frozenset[int],
    check_hop: HopCheck | None = None,
) -> Fetched:
    timeout = _timeout(limits)
    current = url
    _check_url(current, source)
    for _hop in range(limits.max_redirects + 1):
        if check_hop is not None and (problem := await check_hop(current)):
            raise FetchError(source, f"GET {redact_url(current)}: refused: {problem}")
        try:
            async with get_streamed(client, current, headers=headers, per_step=timeout) as response:
                if not _is_redirect(response):
                    return await _finish(
                        response,
                        source=source,
                        limits=limits,
                        state=state,
                        headers=headers,
                        started=started,
                        passthrough=passthrough,
                    )
                target = redirect_target(response)
        except httpx.InvalidURL as e:
            # httpx 0.28 parses a Location even when not following it, and raises for one
            # with a scheme but no host (data:, javascript:, mailto:...): encode/httpx#3706.
            raise FetchError(
                source,
                f"GET {redact_url(current)}: redirect to a URL without a host refused "
                "(such as data: or javascript:); only http and https are followed",
            ) from e
        except httpx.HTTPError as e:
            if str(e).startswith("Invalid URL in location header"):  # httpx's wording
                raise FetchError(
                    source,
                    f"GET {redact_url(current)}: redirect to an invalid URL refused: "
                    f"{_clip(str(e).partition(': ')[2], 100)}",
                ) from e
            raise network_error(e, source, current, limits) from e
        _check_url(target, source, redirected_from=current)
        headers = _headers_for_hop(headers, current, target)
        current = target
    raise FetchError(
        source,
        f"GET {redact_url(url)}: more than {limits.max_redirects} redirects "
        f"(the last to {redact_url(current)})",
        hint="the server redirects in a loop, or the URL of this source is outdated",
    )


async def _finish(
    response: httpx.Response,
    *,
    source: str,
    limits: FetchLimits,
    state: FetchState | None,
    headers: httpx.Headers,
    started: float,
    passthrough: frozenset[int] = frozenset(),
) -> Fetched:
    """Turn the final (non-redirect) response into a Fetched, or raise for its status."""
    status = response.status_code
    etag = response.headers.get("etag")
    last_modified = response.headers.get("last-modified")
    if status == 304:
        return Fetched(
            url=str(response.url),
            status=304,
            etag=etag or (state.etag if state else None),
            last_modified=last_modified or (state.last_modified if state else None),
            content_type=response.headers.get("content-type"),
            elapsed=time.monotonic() - started,
        )
    if not 200 <= status < 300 and status not in passthrough:
        raise await _status_error(response, source, _secret_values(str(response.url), headers))
    body = await read_body(response, source, limits.max_bytes)
    return Fetched(
        url=str(response.url),
        status=status,
        body=body,
        etag=etag,
        last_modified=last_modified,
        content_type=response.headers.get("content-type"),
        elapsed=time.monotonic() - started,
    )


async def read_body(response: httpx.Response, source: str, cap: int) -> bytes:
    """Read and decode the body, never holding more than ``cap`` decoded bytes (+ one chunk).

    Raises :class:`FetchError` naming ``source``, the request and the cap when the body
    is larger, or cannot be decoded.
    """
    where = f"{response.request.method} {redact_url(str(response.url))}"
    too_large = FetchError(
        source,
        f"{where}: body larger than the {_size(cap)} cap",
        hint="the URL may point at the wrong document; otherwise raise this source's size limit",
    )
    if response.is_stream_consumed:
        body = _already_read(response, source)
        if len(body) > cap:
            raise too_large
        return body
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise too_large
    encoding = content_encoding(response)
    if encoding is None:
        value = _clip(response.headers.get("content-encoding", ""), 40)
        raise FetchError(
            source,
            f"{where}: unsupported Content-Encoding '{value}'",
            hint=f"the server ignored 'Accept-Encoding: {ACCEPT_ENCODING}'",
        )
    decoder = BodyDecoder(encoding, cap)
    received = 0
    try:
        async for chunk in response.aiter_raw():
            received += len(chunk)
            if received > cap:
                raise BodyTooLargeError
            decoder.feed(chunk)
        return decoder.finish()
    except BodyTooLargeError:
        raise too_large from None
    except (zlib.error, TruncatedBodyError) as e:
        raise FetchError(source, f"{where}: cannot decode the {encoding} body: {e}") from e


def _already_read(response: httpx.Response, source: str) -> bytes:
    """The body httpx already holds, decoded: a response hook or a transport read it
    (``httpx.Response(content=...)`` in a MockTransport handler does)."""
    try:
        return response.content
    except httpx.ResponseNotRead as e:
        raise FetchError(source, "the response body was consumed before fetch_url read it") from e


async def _status_error(response: httpx.Response, source: str, secrets: list[str]) -> FetchError:
    status = response.status_code
    reason = _clip(response.reason_phrase or httpx.codes.get_reason_phrase(status), 60)
    what = f"GET {redact_url(str(response.url))}: HTTP {status} {reason}".rstrip()
    retry_after = response.headers.get("retry-after") if status in (429, 503) else None
    if retry_after:
        what += f" (Retry-After: {_clip(retry_after, 40)})"
    if snippet := await _body_snippet(response, secrets):
        what += f": {snippet}"
    hint = _STATUS_HINTS.get(status)
    if hint is None and status >= 500:
        hint = "the server failed; this is usually temporary"
    return FetchError(source, what, hint=hint, retry_after=retry_after)


async def _body_snippet(response: httpx.Response, secrets: list[str]) -> str:
    """At most 200 characters of a non-HTML error body, secrets masked; '' if unavailable."""
    encoding = content_encoding(response)
    if encoding is None or "html" in response.headers.get("content-type", "").lower():
        return ""
    if response.is_stream_consumed:  # already read, and decoded, by httpx
        try:
            data = response.content[: 4 * _SNIPPET_CHARS]
        except httpx.ResponseNotRead:
            return ""
    else:
        data = await _read_prefix(response, encoding, 4 * _SNIPPET_CHARS)
    text = " ".join(data.decode("utf-8", "replace").split())
    for secret in secrets:
        text = text.replace(secret, "***")
    return _clip(text, _SNIPPET_CHARS)


async def _read_prefix(response: httpx.Response, encoding: str, size: int) -> bytes:
    """Up to ``size`` decoded bytes of the body, best effort, within a second."""
    decoder = BodyDecoder(encoding, size)
    with anyio.move_on_after(_SNIPPET_SECONDS):
        await feed_prefix(response, decoder)
    return decoder.partial()


def network_error(
    e: httpx.HTTPError, source: str, url: str, limits: FetchLimits, method: str = "GET"
) -> FetchError:
    """A readable FetchError for a transport failure of ``method url`` (URL redacted)."""
    reason = _root_reason(e)
    if isinstance(e, httpx.ConnectTimeout):
        what = f"connect timed out after {_seconds(limits.connect_timeout)}s"
    elif isinstance(e, httpx.ReadTimeout):
        what = f"read timed out after {_seconds(limits.read_timeout)}s without data"
    elif isinstance(e, httpx.WriteTimeout):
        what = "write timed out"
    elif isinstance(e, httpx.PoolTimeout):
        what = "timed out waiting for a free connection in the pool"
    elif isinstance(e, httpx.ConnectError):
        refused = isinstance(_os_error(e), ConnectionRefusedError)
        what = "connection refused" if refused else f"could not connect: {reason}"
    elif isinstance(e, httpx.RemoteProtocolError):
        what = f"the server broke the connection or the protocol: {reason}"
    elif isinstance(e, httpx.ReadError):
        what = f"connection lost while reading: {reason}"
    elif isinstance(e, httpx.UnsupportedProtocol):
        what = "not a valid http(s) URL"
    else:
        what = f"{type(e).__name__}: {reason}"
    return FetchError(source, f"{method} {redact_url(url)}: {what}")


def deadline_error(source: str, method: str, url: str, limits: FetchLimits) -> FetchError:
    """The FetchError of a request that ran past ``limits.deadline``."""
    return FetchError(
        source,
        f"{method} {redact_url(url)}: timed out after {_seconds(limits.deadline)}s "
        "(overall deadline)",
        hint="the server is too slow or stalls; the deadline covers redirects and the whole body",
    )


def redirect_target(response: httpx.Response) -> str:
    """Where a redirect response points, resolved against its URL."""
    return _resolve(str(response.url), response.headers.get("location", ""))


def request_timeout(limits: FetchLimits) -> httpx.Timeout:
    """httpx's per-step timeouts (connect, each read and write) for ``limits``."""
    return _timeout(limits)


def _check_url(target: str, source: str, *, redirected_from: str | None = None) -> None:
    """Refuse anything but an absolute http(s) URL with a host, before any request is made."""
    scheme = target.partition(":")[0].lower() if ":" in target else ""
    try:
        problem = "" if httpx.URL(target).host else "no host"
    except httpx.InvalidURL as e:
        problem = _clip(str(e), 100)
    if redirected_from is None:
        if scheme not in _FOLLOWED_SCHEMES:
            raise FetchError(
                source, f"GET {redact_url(target)}: only http and https URLs are fetched"
            )
        if problem:
            raise FetchError(source, f"GET {redact_url(target)}: invalid URL: {problem}")
        return
    where = f"GET {redact_url(redirected_from)}: redirect to"
    if scheme not in _FOLLOWED_SCHEMES:
        raise FetchError(
            source,
            f"{where} a '{_clip(scheme, 20)}:' URL refused "
            f"({_clip(redact_url(target), 120)}); only http and https are followed",
        )
    if problem:
        raise FetchError(source, f"{where} an invalid URL refused: {problem}")


def _resolve(base: str, location: str) -> str:
    """``location`` resolved against ``base`` (left as is if it does not parse)."""
    try:
        return urljoin(base, location)
    except ValueError:
        return location


def _is_redirect(response: httpx.Response) -> bool:
    return response.status_code in REDIRECT_STATUSES and "location" in response.headers


def _request_headers(
    accept: str, headers: Mapping[str, str] | None, state: FetchState | None
) -> httpx.Headers:
    result = httpx.Headers({"Accept": accept})
    if headers:
        result.update(headers)
    result["Accept-Encoding"] = ACCEPT_ENCODING
    if state is not None and state.etag:
        result["If-None-Match"] = state.etag
    if state is not None and state.last_modified:
        result["If-Modified-Since"] = state.last_modified
    return result


def _headers_for_hop(headers: httpx.Headers, current: str, target: str) -> httpx.Headers:
    """Keep every header on a same-origin hop; drop credential-like ones across origins."""
    a, b = httpx.URL(current), httpx.URL(target)
    if (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port):
        return headers
    return httpx.Headers(
        [
            (name, value)
            for name, value in headers.multi_items()
            if name.lower() not in _SENSITIVE_HEADERS and not _is_secret_name(name)
        ]
    )


def _timeout(limits: FetchLimits) -> httpx.Timeout:
    connect = limits.connect_timeout.total_seconds()
    read = limits.read_timeout.total_seconds()
    return httpx.Timeout(connect=connect, read=read, write=read, pool=connect)


def _is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(part in lowered for part in _SECRET_NAME_PARTS)


def _redact_params(params: str) -> str:
    if "=" not in params:
        return params
    out = []
    for param in params.split("&"):
        name, sep, _value = param.partition("=")
        out.append(f"{name}=***" if sep and _is_secret_name(unquote_plus(name)) else param)
    return "&".join(out)


def _secret_values(url: str, headers: httpx.Headers) -> list[str]:
    """The values :func:`redact_url` hides, plus credential header values (to mask in text)."""
    values = [v for n, v in headers.multi_items() if n.lower() in _SENSITIVE_HEADERS]
    values += [v for n, v in headers.multi_items() if _is_secret_name(n)]
    for param in urlsplit(url).query.split("&"):
        name, sep, value = param.partition("=")
        if sep and _is_secret_name(unquote_plus(name)):
            values += [value, unquote_plus(value)]
    return sorted({v for v in values if len(v) >= 4}, key=len, reverse=True)


def _os_error(e: BaseException) -> OSError | None:
    """The first OSError with an OS reason in ``e``'s cause chain (looking into groups)."""
    seen: set[int] = set()
    todo: list[BaseException] = [e]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return current
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)
        todo.extend(x for x in (current.__cause__, current.__context__) if x is not None)
    return None


def _root_reason(e: BaseException) -> str:
    """The most specific readable reason: the OS error text if there is one."""
    os_error = _os_error(e)
    if os_error is not None and os_error.strerror:
        return _clip(os_error.strerror, 200)
    return _clip(str(e) or type(e).__name__, 200)


def _seconds(value: timedelta) -> str:
    return f"{value.total_seconds():g}"


def _size(n: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= factor:
            return f"{n / factor:g} {unit}"
    return f"{n} bytes"


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
