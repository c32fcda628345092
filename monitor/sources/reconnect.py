"""One more try for a GET whose connection the server closed before answering.

A pooled keep-alive connection can be taken for a request at the very moment the
server's idle timeout closes it. The request then fails before a single byte of
response: "Server disconnected without sending a response". The server began no answer
and a GET changes nothing, so it is sent once more, as browsers and urllib3 do; the pool
has dropped the closed connection, so that try goes out on another one. Anything else
(a reset, a timeout, a malformed answer) fails as it is: a server that closes every
connection unanswered fails on the second try, with the same error.

This wraps the request rather than the client's transport: httpx ignores the
``HTTP_PROXY``/``HTTPS_PROXY`` environment for a client given a transport of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

# httpcore's wording when the connection closed with no byte of a response read.
_NO_RESPONSE = "Server disconnected without sending a response"


@asynccontextmanager
async def get_streamed(
    client: httpx.AsyncClient, url: str, *, headers: httpx.Headers, per_step: httpx.Timeout
) -> AsyncIterator[httpx.Response]:
    """``client.stream("GET", url, ...)``, sent once more when :func:`closed_unanswered`
    (``per_step``: httpx's connect, read and write timeouts)."""
    request = client.build_request("GET", url, headers=headers, timeout=per_step)
    try:
        response = await client.send(request, stream=True)
    except httpx.RemoteProtocolError as e:
        if not closed_unanswered(e):
            raise
        response = await client.send(request, stream=True)
    try:
        yield response
    finally:
        await response.aclose()


def closed_unanswered(e: httpx.RemoteProtocolError) -> bool:
    """Whether the server closed the connection before any byte of its answer."""
    return str(e).startswith(_NO_RESPONSE)


__all__ = ["closed_unanswered", "get_streamed"]
