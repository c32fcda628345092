"""Webhook: POST every alert as JSON to a URL, signed as Standard Webhooks says.

Example, in sources.toml::

    [[notifiers]]
    name = "ops-hook"
    type = "webhook"
    url = "https://hooks.example.org/noticewatch"
    secret = "${NOTICEWATCH_WEBHOOK_SECRET}"   # whsec_<base64>; keep it in the environment
    timeout = "15s"                             # optional, the default
    headers = { "X-Team" = "procurement" }      # optional extra static headers
    allow_private = false                       # optional; true only for internal receivers

Keys
    url      The http:// or https:// address that receives one POST per alert.
             Redirects are not followed: a 3xx reply is a failed attempt, so point
             ``url`` at the final address.
    secret   The signing secret: ``whsec_`` and then base64, as Standard Webhooks
             receivers (Svix and others) issue it. Anything else is a configuration
             error, reported without showing the value.
    timeout  How long one attempt may take, like ``10s`` or ``1m`` (default ``15s``).
    headers  Extra headers sent with every request. The ``webhook-*`` headers and the
             framing headers (content-type, content-length, transfer-encoding, host,
             connection) cannot be overridden. Values must be printable ASCII.
    allow_private
             ``false`` (default): the URL must not reach a private, loopback,
             link-local or cloud-metadata address. The address is checked when the
             connection is made, so a name that resolves (or re-resolves) to such an
             address is refused too, as are numeric forms like ``http://2130706433/``.
             Set ``true`` for a receiver inside your own network.
    rules    (every notifier) The names of the rules whose alerts go here; all when unset.
             ``source_health`` (reserved) subscribes to source.failing,
             source.recovered and notifier.disabled messages.

What is sent
    ``POST <url>`` with a compact UTF-8 JSON body. The bytes are the same on every
    retry of one alert (a digest's retry also carries copies of its alerts seen since,
    in ``also_seen_in``). Keys inside ``data`` are sorted::

        {"type":"<event type>","timestamp":"2026-11-22T10:00:00Z","data":{...}}

    with these headers:

    webhook-id          The delivery id. It is the same on every retry of one alert to
                        this notifier, so a receiver can drop repeats (delivery is at
                        least once).
    webhook-timestamp   The time of this attempt, in Unix seconds.
    webhook-signature   ``v1,`` and then the base64 HMAC-SHA256 of the signed content.
    content-type        application/json
    user-agent          noticewatch's user agent

How to verify
    Use a Standard Webhooks library on the raw body, before any JSON parsing::

        from standardwebhooks import Webhook
        payload = Webhook(secret).verify(raw_body, request_headers)

    To check it by hand, decode the base64 after ``whsec_`` to get the key. Compute
    HMAC-SHA256 over ``<webhook-id>.<webhook-timestamp>.<raw body>`` and encode it as
    base64. Compare the result, in constant time, with each space-separated ``v1,``
    entry of webhook-signature. Reject a timestamp more than 5 minutes from your clock.

How replies are read
    2xx                 delivered
    410 Gone            stop calling this endpoint
    429, 503            retry later, after Retry-After (seconds or an HTTP date,
                        at most a day) when the receiver sends it
    anything else       retry later (3xx, 4xx, 5xx, timeouts, connection errors)
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import json
import re
import time
import unicodedata
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal

import anyio
import httpx
from pydantic import AfterValidator, Field, SecretStr, model_validator

from monitor.alerts import iso_utc
from monitor.config_base import NotifierConfig
from monitor.durations import Duration, format_duration
from monitor.errors import NotifyError
from monitor.netguard import ALLOW_PRIVATE, host_problem
from monitor.retry_after import parse_retry_after
from monitor.sources.decoding import BodyDecoder, content_encoding, feed_prefix
from notifiers.base import Delivery, DeliveryResult, NotifierType, Outcome, mask_secret

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
MAX_RETRY_AFTER = timedelta(days=1)
_ERROR_BODY_CHARS = 200  # how much of a failed reply's body an error text quotes
_ERROR_BODY_BYTES = 8192  # how much of it is read at most
_RESERVED_HEADERS = frozenset(
    {"content-type", "content-length", "transfer-encoding", "host", "connection"}
)
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an RFC 9110 token
_TRANSPORT_KINDS: dict[type[Exception], str] = {
    httpx.ConnectError: "connection failed",
    httpx.ReadError: "reading the reply failed",
    httpx.WriteError: "sending the request failed",
    httpx.RemoteProtocolError: "the receiver broke the HTTP exchange",
}


# --- configuration ------------------------------------------------------------------


def decode_secret(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret; ValueError never shows the value."""
    shown = mask_secret(secret)
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"must start with {SECRET_PREFIX} and then base64 (got {shown})")
    encoded = secret[len(SECRET_PREFIX) :]
    try:  # padding may be left out, as Standard Webhooks libraries accept
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            f"is not valid base64 after {SECRET_PREFIX} (got {shown}); "
            "use the secret exactly as the receiver issued it"
        ) from None  # the decoder's message could quote the value
    if not key:
        raise ValueError(f"is empty after {SECRET_PREFIX}")
    return key


def _check_secret(value: SecretStr) -> SecretStr:
    decode_secret(value.get_secret_value())
    return value


def _check_url(value: str) -> str:
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as e:
        raise ValueError(f"is not a valid URL: {e}") from None
    if url.scheme not in ("http", "https"):
        # The URL itself is not shown: webhook URLs often carry a token in their path.
        shown = f"the scheme {url.scheme}://" if url.scheme else "no scheme"
        raise ValueError(f"must be an http:// or https:// URL; this one has {shown}")
    if not url.host:
        raise ValueError("has no host name")
    return value


def _check_headers(value: dict[str, str]) -> dict[str, str]:
    problems: list[str] = []
    seen: set[str] = set()
    for name, text in value.items():
        lower = name.lower()
        if not _HEADER_NAME.match(name):
            problems.append(f"{name!r} is not a valid header name")
        elif lower.startswith("webhook-") or lower in _RESERVED_HEADERS:
            problems.append(f"{name!r} is set by the webhook notifier and cannot be overridden")
        elif lower in seen:
            problems.append(f"{name!r} is given twice (header names ignore case)")
        seen.add(lower)
        if not text.isascii() or any(not ch.isprintable() for ch in text):
            problems.append(f"the value of {name!r} must be printable ASCII on one line")
    if problems:
        raise ValueError("; ".join(problems))
    return value


class WebhookConfig(NotifierConfig):
    """The keys of one ``type = "webhook"`` notifier (see the module help)."""

    type: Literal["webhook"]
    url: Annotated[str, AfterValidator(_check_url)]
    secret: Annotated[SecretStr, AfterValidator(_check_secret)]
    timeout: Duration = timedelta(seconds=15)
    headers: Annotated[dict[str, str], AfterValidator(_check_headers)] = Field(default_factory=dict)
    allow_private: bool = False

    @model_validator(mode="after")
    def _refuse_internal_hosts(self) -> WebhookConfig:
        # Numeric and localhost hosts are refused here already, so that `check` says so;
        # names are checked when connecting (see monitor.netguard).
        problem = None if self.allow_private else host_problem(httpx.URL(self.url).host)
        if problem:
            raise ValueError(
                f"url: {problem}; set allow_private = true if this receiver is meant "
                "to be inside your network"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _hide_secret_early(cls, data: Any) -> Any:
        # pydantic quotes the raw input in its errors (input_value=...), also for a
        # missing key next to the secret. Wrapping the secret before any field is
        # validated makes every error show '**********' instead.
        if isinstance(data, dict) and isinstance(data.get("secret"), str):
            return {**data, "secret": SecretStr(data["secret"])}
        return data


# --- the request --------------------------------------------------------------------


def _as_utc(moment: datetime) -> datetime:
    """Aware datetimes in UTC; a naive one is taken to be UTC already (as SQLite stores it)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _sorted_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted_keys(value[key]) for key in sorted(value, key=str)}
    if isinstance(value, list | tuple):
        return [_sorted_keys(item) for item in value]
    return value


def encode_body(delivery: Delivery) -> bytes:
    """The request body: the same bytes for the same delivery, whatever its dict order.

    Keys inside ``data`` are sorted, so a delivery read back from a database that
    reorders JSON keys (PostgreSQL jsonb does) still signs and sends the same bytes.
    """
    envelope = {
        "type": delivery.event_type,
        "timestamp": iso_utc(_as_utc(delivery.created_at)),
        "data": _sorted_keys(delivery.data),
    }
    text = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8")


def sign(key: bytes, msg_id: str, timestamp: str, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256 of id.timestamp.body>``."""
    signed = b".".join((msg_id.encode("utf-8"), timestamp.encode("ascii"), body))
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


# --- reading the reply --------------------------------------------------------------


def _readable(text: str, hidden: Iterable[str]) -> str:
    """One line of printable text, with the secret and signature values blanked out."""
    line = " ".join(text.split())  # newlines, tabs and other whitespace: one space
    line = "".join(ch for ch in line if unicodedata.category(ch) not in ("Cc", "Cf"))
    for value in hidden:  # after the clean-up, so an inserted control char cannot split one
        if value:
            line = line.replace(value, "[redacted]")
    if len(line) > _ERROR_BODY_CHARS:
        line = line[: _ERROR_BODY_CHARS - 1] + "…"
    return line


async def _body_excerpt(response: httpx.Response, hidden: Iterable[str]) -> str:
    """The start of a failed reply's body for the error text (decodes at most 8 KiB).

    Best effort: the body only decorates the error text, the status is what counts. A
    compressed body is inflated in bounded steps, so a gzip bomb costs 8 KiB, not a
    64 KiB chunk's worth of inflated gigabytes; an encoding we cannot decode is not quoted.
    """
    encoding = content_encoding(response)
    if encoding is None:
        return ""
    if response.is_stream_consumed:  # read and decoded already (a transport or a hook did)
        try:
            data = response.content[:_ERROR_BODY_BYTES]
        except httpx.ResponseNotRead:
            return ""
    else:
        decoder = BodyDecoder(encoding, _ERROR_BODY_BYTES)
        await feed_prefix(response, decoder)
        data = decoder.partial()
    return _readable(data.decode("utf-8", "replace"), hidden)


def _redirect_hint(response: httpx.Response) -> str:
    location = response.headers.get("location")
    where = ""
    if location:
        try:
            target = response.url.join(location)
            where = f" to {target.scheme}://{target.netloc.decode('ascii', 'replace')}"
        except httpx.InvalidURL:
            where = ""
    return f"redirect{where} not followed; set url to the final address"


async def _classify(
    response: httpx.Response, now: datetime, hidden: Iterable[str]
) -> DeliveryResult:
    status = response.status_code
    head = f"HTTP {status} {httpx.codes.get_reason_phrase(status)}".rstrip()
    if 200 <= status < 300:
        return DeliveryResult(Outcome.DELIVERED, status_code=status)
    if 300 <= status < 400:
        error = f"{head}: {_redirect_hint(response)}"
        return DeliveryResult(Outcome.RETRY, status_code=status, error=error)
    excerpt = await _body_excerpt(response, hidden)
    error = f"{head}: {excerpt}" if excerpt else head
    if status == 410:
        return DeliveryResult(Outcome.GONE, status_code=status, error=error)
    retry_after = None
    if status in (429, 503):
        retry_after = parse_retry_after(
            response.headers.get("retry-after"), now, cap=MAX_RETRY_AFTER
        )
    return DeliveryResult(Outcome.RETRY, status_code=status, error=error, retry_after=retry_after)


def _transport_reason(exc: Exception, hidden: Iterable[str]) -> str:
    cause: BaseException | None = exc
    os_reason = ""
    for _ in range(8):  # httpx wraps the OSError that says what happened; bounded walk
        if cause is None:
            break
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, OSError) and cause.strerror and not os_reason:
            os_reason = cause.strerror  # e.g. "Connection reset by peer", where str() is ""
        cause = cause.__cause__ or cause.__context__
    kind = _TRANSPORT_KINDS.get(type(exc), "request failed")
    detail = _readable(str(exc), hidden) or os_reason or type(exc).__name__
    return f"{kind}: {detail}"


# --- the notifier -------------------------------------------------------------------


class WebhookNotifier:
    """Sends deliveries to one configured webhook endpoint."""

    type: ClassVar[str] = "webhook"

    def __init__(self, config: WebhookConfig) -> None:
        self.config = config
        self._key = decode_secret(config.secret.get_secret_value())

    @property
    def name(self) -> str:
        return self.config.name

    def __repr__(self) -> str:
        return f"WebhookNotifier(name={self.name!r})"

    async def send(
        self, client: httpx.AsyncClient, delivery: Delivery, now: datetime
    ) -> DeliveryResult:
        """Make one delivery attempt and classify it; never raises for a failed delivery.

        Raises NotifyError only when ``delivery.data`` cannot be encoded as JSON,
        which is a bug upstream rather than a delivery failure.
        """
        try:
            body = encode_body(delivery)
        except (TypeError, ValueError) as e:
            raise NotifyError(
                f"notify: notifier '{self.name}': delivery {delivery.delivery_id} "
                f"cannot be encoded as JSON: {e}"
            ) from e
        timestamp = str(int(_as_utc(now).timestamp()))
        signature = sign(self._key, delivery.delivery_id, timestamp, body)
        headers = {
            **self.config.headers,
            "webhook-id": delivery.delivery_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": signature,
            "content-type": "application/json",
        }
        secret = self.config.secret.get_secret_value()
        hidden = (signature, signature[3:], secret, secret[len(SECRET_PREFIX) :])
        started = time.perf_counter()
        result = await self._attempt(client, body, headers, now, hidden)
        return dataclasses.replace(result, duration=time.perf_counter() - started)

    async def _attempt(
        self,
        client: httpx.AsyncClient,
        body: bytes,
        headers: dict[str, str],
        now: datetime,
        hidden: tuple[str, ...],
    ) -> DeliveryResult:
        seconds = self.config.timeout.total_seconds()
        timed_out = DeliveryResult(
            Outcome.RETRY, error=f"timed out after {format_duration(self.config.timeout)}"
        )
        # httpx's timeout bounds each step (connect, each read...); the cancel scope
        # bounds the whole attempt, so a receiver trickling bytes cannot hold it open.
        with anyio.move_on_after(seconds):
            try:
                async with client.stream(
                    "POST",
                    self.config.url,
                    content=body,
                    headers=headers,
                    timeout=seconds,
                    follow_redirects=False,
                    extensions={ALLOW_PRIVATE: self.config.allow_private},
                ) as response:
                    return await _classify(response, now, hidden)
            except httpx.TimeoutException:
                return timed_out
            except (httpx.HTTPError, OSError) as e:
                return DeliveryResult(Outcome.RETRY, error=_transport_reason(e, hidden))
        return timed_out


def build(config: NotifierConfig) -> WebhookNotifier:
    if not isinstance(config, WebhookConfig):
        raise NotifyError(
            f"notify: notifier '{config.name}': the webhook notifier needs a WebhookConfig, "
            f"not {type(config).__name__}"
        )
    return WebhookNotifier(config)


NOTIFIER_TYPE = NotifierType(
    name="webhook", config_model=WebhookConfig, build=build, help=__doc__ or ""
)
