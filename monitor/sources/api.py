"""Helpers shared by the JSON API source types (sam, ocds, ted)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx

from monitor.errors import FetchError, ParseError
from monitor.sources.base import FetchLimits
from monitor.sources.http import (
    ACCEPT_ENCODING,
    REDIRECT_STATUSES,
    deadline_error,
    network_error,
    read_body,
    redact_url,
    redirect_target,
    request_timeout,
)

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

    Bounded like :func:`monitor.sources.http.fetch_url`: per-step timeouts plus one
    overall deadline (a server trickling bytes fails on time), and the *decoded* body
    capped at ``limits.max_bytes`` while it streams (a gzip bomb fails at the cap).
    Redirects are not followed: an API that redirects a POST is misconfigured. Any
    failure is a FetchError naming ``source``, with the URL redacted.
    """
    where = f"POST {redact_url(url)}"
    headers = {"Accept": "application/json", "Accept-Encoding": ACCEPT_ENCODING}
    with anyio.move_on_after(limits.deadline.total_seconds()):
        try:
            async with client.stream(
                "POST", url, json=payload, headers=headers, timeout=request_timeout(limits)
            ) as response:
                status = response.status_code
                if status in REDIRECT_STATUSES:
                    raise FetchError(
                        source,
                        f"{where}: HTTP {status} redirect to "
                        f"{redact_url(redirect_target(response))} not followed",
                        hint="an API that redirects a POST is misconfigured; "
                        "set base_url to the address the API answers at",
                    )
                body = await read_body(response, source, limits.max_bytes)
                return status, body, response.headers.get("retry-after")
        except httpx.HTTPError as e:
            raise network_error(e, source, url, limits, method="POST") from e
    raise deadline_error(source, "POST", url, limits)
