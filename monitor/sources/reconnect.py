"""One more try for a GET whose connection the server closed before answering.

A pooled keep-alive connection can be taken for a request at the very moment the
server's idle timeout closes it. The request then fails before a single byte of
response: "Server disconnected without sending a response". The server began no answer
and a GET changes nothing, so it is sent once more, as browsers and urllib3 do; the pool
has dropped the closed connection, so that try goes out on another one. Anything else
(a reset, a timeout, a malformed answer, any other method) fails as it is: a server
that closes every connection unanswered fails on the second try, with the same error.
"""

from __future__ import annotations

import httpx

_RETRIED_METHODS = frozenset({"GET", "HEAD"})
# httpcore's wording when the connection closed with no byte of a response read.
_NO_RESPONSE = "Server disconnected without sending a response"


class ReconnectingTransport(httpx.AsyncBaseTransport):
    """``inner``, sending a GET or HEAD once more when :func:`closed_unanswered`."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self.inner.handle_async_request(request)
        except httpx.RemoteProtocolError as e:
            if request.method not in _RETRIED_METHODS or not closed_unanswered(e):
                raise
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def closed_unanswered(e: httpx.RemoteProtocolError) -> bool:
    """Whether the server closed the connection before any byte of its answer."""
    return str(e).startswith(_NO_RESPONSE)


__all__ = ["ReconnectingTransport", "closed_unanswered"]
