"""Helpers shared by the JSON API source types (sam, ocds, ted)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx

from monitor.errors import FetchError, ParseError
from monitor.sources.base import FetchLimits
from monitor.sources.http import redact_url

_HTTP_SCHEMES = frozenset({"http", "https"})


def check_http_url(value: str) -> str:
    """A config validator: an absolute http(s) URL with a host, stripped."""
    parts = urlsplit(value.strip())
    if parts.scheme.lower() not in _HTTP_SCHEMES or not parts.netloc:
        raise ValueError(f"{value!r} is not an http:// or https:// URL")
    return value.strip()


def load_page(body: bytes, source: str, where: str) -> dict[str, Any]:
    """One response body as a dict; malformed or truncated JSON is a ParseError."""
    if not body.strip():
        raise ParseError(source, f"{where}: the response body is empty")
    try:
        data = json.loads(body)
    except UnicodeDecodeError as e:
        raise ParseError(source, f"{where}: the body is not UTF-8 JSON: {e.reason}") from e
    except json.JSONDecodeError as e:
        cut = ends_early(e.doc)
        what = "truncated JSON (the body ends mid-document)" if cut else "malformed JSON"
        raise ParseError(source, f"{where}: {what}: {e.msg} at char {e.pos}") from e
    if not isinstance(data, dict):
        raise ParseError(source, f"{where}: expected a JSON object, got {type(data).__name__}")
    return data


def ends_early(text: str) -> bool:
    """Whether ``text`` is a JSON prefix cut short: brackets or a string left open, and
    no bracket closed wrongly on the way (which would make it malformed, not truncated)."""
    stack: list[str] = []
    in_string = escaped = False
    pairs = {"}": "{", "]": "["}
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            stack.append(char)
        elif char in pairs and (not stack or stack.pop() != pairs[char]):
            return False
    return in_string or bool(stack)


async def post_json(
    client: httpx.AsyncClient,
    url: str,
    payload: dict[str, Any],
    *,
    source: str,
    limits: FetchLimits,
) -> tuple[int, bytes, str | None]:
    """POST ``payload`` as JSON; (status, body, Retry-After) within ``limits``.

    The body is read up to ``limits.max_bytes``; redirects are not followed (an API
    that redirects a POST is misconfigured). Any failure is a FetchError naming
    ``source``, with the URL redacted.
    """
    where = f"POST {redact_url(url)}"
    timeout = httpx.Timeout(
        limits.read_timeout.total_seconds(), connect=limits.connect_timeout.total_seconds()
    )
    with anyio.move_on_after(limits.deadline.total_seconds()):
        try:
            async with client.stream(
                "POST", url, json=payload, headers={"Accept": "application/json"}, timeout=timeout
            ) as response:
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > limits.max_bytes:
                        raise FetchError(source, f"{where}: body larger than the size cap")
                    chunks.append(chunk)
                return response.status_code, b"".join(chunks), response.headers.get("retry-after")
        except httpx.HTTPError as e:
            raise FetchError(source, f"{where}: {type(e).__name__}: {e}") from e
    raise FetchError(source, f"{where}: timed out after {limits.deadline.total_seconds():g}s")
