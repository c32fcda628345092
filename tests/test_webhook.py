"""The webhook notifier: body, signature, reply classification, config, secrets.

Unit tests run against ``httpx.MockTransport``. The integration tests use the real
loopback receiver in ``tests/support/webhook_receiver.py``, which verifies with the
independent ``standardwebhooks`` package. That package checks the timestamp against
the real clock, so those tests send with the real current time.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx
import pytest
from pydantic import ValidationError
from standardwebhooks import Webhook, WebhookVerificationError

from monitor.errors import NotifyError
from monitor.registry import make_registry
from monitor.retry_after import parse_retry_after
from notifiers import NOTIFIER_TYPES
from notifiers.base import Delivery, DeliveryResult, Outcome
from notifiers.webhook import (
    MAX_RETRY_AFTER,
    NOTIFIER_TYPE,
    WebhookConfig,
    WebhookNotifier,
    build,
)
from tests.conftest import FIXED_NOW
from tests.support import webhook_receiver as receiver_support
from tests.support.webhook_receiver import WEBHOOK_SECRET, WebhookReceiver

# The receiver's fixtures, until tests/conftest.py imports them for every module.
webhook_receiver = receiver_support.webhook_receiver
webhook_receiver_factory = receiver_support.webhook_receiver_factory

SECRET_KEY = bytes(range(32))
SECRET = "whsec_" + base64.b64encode(SECRET_KEY).decode()
USER_AGENT = "noticewatch-test/1.0"
CREATED = datetime(2026, 11, 22, 9, 58, 30, 123456, tzinfo=UTC)
DATA = {"rule": "eu-tenders", "title": "Ausschreibung für Brücken", "terms": ["bridge"], "n": 3}
EXPECTED_BODY = (
    '{"type":"alert.matched","timestamp":"2026-11-22T09:58:30Z",'
    '"data":{"n":3,"rule":"eu-tenders","terms":["bridge"],"title":"Ausschreibung für Brücken"}}'
).encode()

Handler = Callable[[httpx.Request], Any]  # returns a Response, or awaits one


def make_config(**overrides: Any) -> WebhookConfig:
    keys: dict[str, Any] = {
        "name": "ops-hook",
        "type": "webhook",
        "url": "https://hooks.example.org/noticewatch",
        "secret": SECRET,
    }
    keys.update(overrides)
    return WebhookConfig.model_validate(keys)


def make_delivery(attempt: int = 1, data: dict[str, Any] | None = None) -> Delivery:
    return Delivery(
        delivery_id="dlv_01JD5Q2",
        event_type="alert.matched",
        created_at=CREATED,
        data=DATA if data is None else data,
        attempt=attempt,
    )


class Recorder:
    """A MockTransport handler that records requests and answers with ``reply``."""

    def __init__(self, reply: Handler | httpx.Response | None = None) -> None:
        self.reply = reply if reply is not None else httpx.Response(204)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> Any:  # a Response, or an awaitable of one
        request.read()
        self.requests.append(request)
        if isinstance(self.reply, httpx.Response):
            return self.reply
        return self.reply(request)


async def send(
    reply: Recorder | Handler | httpx.Response | None = None,
    *,
    config: WebhookConfig | None = None,
    delivery: Delivery | None = None,
    now: datetime = FIXED_NOW,
) -> tuple[DeliveryResult, list[httpx.Request]]:
    recorder = reply if isinstance(reply, Recorder) else Recorder(reply)
    notifier = WebhookNotifier(config or make_config())
    transport = httpx.MockTransport(recorder)
    async with httpx.AsyncClient(transport=transport, headers={"user-agent": USER_AGENT}) as c:
        result = await notifier.send(c, delivery or make_delivery(), now)
    return result, recorder.requests


# --- body and headers -------------------------------------------------------------


@pytest.mark.anyio
async def test_body_is_compact_utf8_json_and_identical_on_every_attempt() -> None:
    recorder = Recorder()
    await send(recorder, delivery=make_delivery(attempt=1), now=FIXED_NOW)
    await send(recorder, delivery=make_delivery(attempt=2), now=FIXED_NOW + timedelta(hours=3))
    first, second = recorder.requests
    assert first.content == EXPECTED_BODY
    assert second.content == first.content
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == "dlv_01JD5Q2"
    assert first.headers["webhook-timestamp"] != second.headers["webhook-timestamp"]


@pytest.mark.anyio
async def test_body_does_not_depend_on_the_order_of_data_keys() -> None:
    reordered = {key: DATA[key] for key in reversed(list(DATA))}
    _, [request] = await send(delivery=make_delivery(data=reordered))
    assert request.content == EXPECTED_BODY


@pytest.mark.anyio
async def test_a_naive_created_at_is_taken_as_utc() -> None:
    naive = Delivery("d1", "alert.matched", CREATED.replace(tzinfo=None), DATA, 1)
    _, [request] = await send(delivery=naive)
    assert request.content == EXPECTED_BODY


@pytest.mark.anyio
async def test_headers_sent() -> None:
    config = make_config(headers={"X-Team": "procurement"})
    _, [request] = await send(config=config)
    assert request.method == "POST"
    assert request.url == "https://hooks.example.org/noticewatch"
    assert request.headers["webhook-id"] == "dlv_01JD5Q2"
    assert request.headers["webhook-timestamp"] == str(int(FIXED_NOW.timestamp()))
    assert request.headers["webhook-signature"].startswith("v1,")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == USER_AGENT
    assert request.headers["x-team"] == "procurement"
    assert request.headers["content-length"] == str(len(EXPECTED_BODY))


@pytest.mark.anyio
async def test_signature_is_the_standard_webhooks_one() -> None:
    _, [request] = await send(now=FIXED_NOW)
    expected = Webhook(SECRET).sign("dlv_01JD5Q2", FIXED_NOW, EXPECTED_BODY.decode())
    assert request.headers["webhook-signature"] == expected


@pytest.mark.anyio
async def test_signature_verifies_with_standardwebhooks_and_tampering_fails() -> None:
    _, [request] = await send(now=datetime.now(UTC))  # verify() checks the real clock
    headers = dict(request.headers)
    assert Webhook(SECRET).verify(request.content, headers) == json.loads(EXPECTED_BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(request.content.replace(b"3", b"4"), headers)
    other = "whsec_" + base64.b64encode(b"another key of thirty-two bytes!").decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(request.content, headers)


@pytest.mark.anyio
async def test_data_that_is_not_json_is_a_notify_error() -> None:
    for bad in ({"when": datetime(2026, 1, 1)}, {"ratio": float("nan")}):
        with pytest.raises(NotifyError, match="cannot be encoded as JSON"):
            await send(delivery=make_delivery(data=bad))


# --- classifying replies ----------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "headers", "outcome", "error", "retry_after"),
    [
        (200, {}, Outcome.DELIVERED, None, None),
        (204, {}, Outcome.DELIVERED, None, None),
        (301, {"location": "https://new.example.org/hook?t=1"}, Outcome.RETRY,
         "HTTP 301 Moved Permanently: redirect to https://new.example.org not followed; "
         "set url to the final address", None),
        (400, {}, Outcome.RETRY, "HTTP 400 Bad Request: nope", None),
        (404, {}, Outcome.RETRY, "HTTP 404 Not Found: nope", None),
        (410, {}, Outcome.GONE, "HTTP 410 Gone: nope", None),
        (429, {"retry-after": "120"}, Outcome.RETRY, "HTTP 429 Too Many Requests: nope",
         timedelta(seconds=120)),
        (429, {"retry-after": "Sun, 22 Nov 2026 10:01:30 GMT"}, Outcome.RETRY,
         "HTTP 429 Too Many Requests: nope", timedelta(seconds=90)),
        (500, {"retry-after": "60"}, Outcome.RETRY, "HTTP 500 Internal Server Error: nope", None),
        (503, {"retry-after": "30"}, Outcome.RETRY, "HTTP 503 Service Unavailable: nope",
         timedelta(seconds=30)),
        (503, {}, Outcome.RETRY, "HTTP 503 Service Unavailable: nope", None),
    ],
)  # fmt: skip
async def test_status_classification(
    status: int,
    headers: dict[str, str],
    outcome: Outcome,
    error: str | None,
    retry_after: timedelta | None,
) -> None:
    result, requests = await send(httpx.Response(status, headers=headers, text="nope"))
    assert result.outcome is outcome
    assert result.status_code == status
    assert result.error == error
    assert result.retry_after == retry_after
    assert result.duration >= 0
    assert len(requests) == 1  # a redirect is never followed


@pytest.mark.anyio
async def test_error_quotes_at_most_200_printable_chars_of_the_body() -> None:
    body = "line one\r\n\tline\x1b[31m two\x00\u202e" + "x" * 500
    result, _ = await send(httpx.Response(500, text=body))
    assert result.error is not None
    excerpt = result.error.removeprefix("HTTP 500 Internal Server Error: ")
    assert excerpt.startswith("line one line[31m two")
    assert len(excerpt) == 200
    assert excerpt.endswith("…")
    assert all(ch.isprintable() for ch in result.error)


@pytest.mark.anyio
async def test_error_without_a_body_is_just_the_status() -> None:
    result, _ = await send(httpx.Response(502))
    assert result.error == "HTTP 502 Bad Gateway"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", timedelta(0)),
        (" 45 ", timedelta(seconds=45)),
        ("Sun, 22 Nov 2026 10:00:10 GMT", timedelta(seconds=10)),
        ("Sunday, 22-Nov-26 10:00:10 GMT", timedelta(seconds=10)),
        ("Sun, 22 Nov 2026 09:00:00 GMT", timedelta(0)),  # already past: retry now
        ("999999999", timedelta(days=1)),  # capped
        ("Tue, 22 Dec 2026 10:00:00 GMT", timedelta(days=1)),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        ("\u0663", None),  # a non-ASCII digit
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: timedelta | None) -> None:
    assert parse_retry_after(value, FIXED_NOW, cap=MAX_RETRY_AFTER) == expected


@pytest.mark.anyio
async def test_timeout_is_a_retry_that_names_the_limit() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    result, _ = await send(slow)
    assert (result.outcome, result.status_code) == (Outcome.RETRY, None)
    assert result.error == "timed out after 15s"

    result, _ = await send(slow, config=make_config(timeout="2m"))
    assert result.error == "timed out after 2m"


@pytest.mark.anyio
async def test_timeout_bounds_the_whole_attempt_not_only_each_read() -> None:
    async def stalls(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(30)  # MockTransport ignores httpx timeouts: only the deadline acts
        return httpx.Response(200)

    started = time.monotonic()
    result, _ = await send(stalls, config=make_config(timeout="100ms"))
    assert result.error == "timed out after 0.1s"
    assert time.monotonic() - started < 2


@pytest.mark.anyio
async def test_connection_refused_is_a_retry() -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as e:
            raise httpx.ConnectError("All connection attempts failed", request=request) from e

    result, _ = await send(refused)
    assert result.outcome is Outcome.RETRY
    assert result.status_code is None
    assert result.error == "connection refused"


@pytest.mark.anyio
async def test_other_transport_errors_are_retries_with_a_short_reason() -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.")

    result, _ = await send(broken)
    assert result.outcome is Outcome.RETRY
    assert result.error == (
        "the receiver broke the HTTP exchange: Server disconnected without sending a response."
    )


# --- secrets ----------------------------------------------------------------------


def secret_forms(signature: str = "") -> list[str]:
    forms = [SECRET, SECRET.removeprefix("whsec_")]
    if signature:
        forms += [signature, signature.removeprefix("v1,")]
    return forms


@pytest.mark.anyio
async def test_secret_and_signature_never_reach_an_error_text() -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        # A receiver that echoes what it got, and even the secret, into its error page.
        signature = request.headers["webhook-signature"]
        echoed = f"signature {signature} is wrong for key {SECRET}: {dict(request.headers)}"
        return httpx.Response(400, text=echoed)

    result, [request] = await send(echo)
    assert result.error is not None
    assert "[redacted]" in result.error
    for form in secret_forms(request.headers["webhook-signature"]):
        assert form not in result.error

    def leaky_transport(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError(f"failed after {request.headers['webhook-signature']}")

    result, [request] = await send(leaky_transport)
    assert result.error is not None
    for form in secret_forms(request.headers["webhook-signature"]):
        assert form not in result.error


def test_secret_is_not_in_repr_str_or_json_of_the_config() -> None:
    config = make_config(headers={"X-Team": "procurement"})
    for text in (repr(config), str(config), config.model_dump_json(), repr(build(config))):
        for form in secret_forms():
            assert form not in text
    assert config.secret.get_secret_value() == SECRET


# --- config validation ------------------------------------------------------------


def validation_error(**overrides: Any) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        make_config(**overrides)
    return info.value


def assert_no_secret(error: ValidationError, secret: str) -> None:
    rendered = [str(error), error.json(), repr(error.errors())]
    for text in rendered:
        for form in {secret, secret.removeprefix("whsec_")} - {"", "whsec_"}:
            assert form not in text


def test_defaults_and_durations() -> None:
    config = make_config()
    assert config.timeout == timedelta(seconds=15)
    assert config.headers == {}
    assert make_config(timeout="90s").timeout == timedelta(seconds=90)
    local = make_config(url="http://127.0.0.1:8080/hook", allow_private=True)
    assert local.url == "http://127.0.0.1:8080/hook"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "ftp://hooks.example.org/x",
            "must be an http:// or https:// URL; this one has the scheme ftp://",
        ),
        ("hooks.example.org/x", "must be an http:// or https:// URL; this one has no scheme"),
        (
            "file:///etc/passwd",
            "must be an http:// or https:// URL; this one has the scheme file://",
        ),
        ("https:///path-only", "has no host name"),
    ],
)
def test_url_must_be_http_or_https(url: str, message: str) -> None:
    error = validation_error(url=url)
    [problem] = error.errors()
    assert problem["loc"] == ("url",)
    assert message in problem["msg"]


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("c2VjcmV0LWtleS1vZi1hLWdvb2QtbGVuZ3Ro", "must start with whsec_"),
        ("whsec_not base64 at all!!", "is not valid base64 after whsec_"),
        ("whsec_c2VjcmV0-_", "is not valid base64 after whsec_"),  # url-safe alphabet
        ("whsec_", "is empty after whsec_"),
    ],
)
def test_bad_secret_is_an_error_that_never_shows_it(secret: str, message: str) -> None:
    error = validation_error(secret=secret)
    [problem] = error.errors()
    assert problem["loc"] == ("secret",)
    assert message in problem["msg"]
    assert_no_secret(error, secret)


def test_secret_without_base64_padding_is_accepted() -> None:
    unpadded = "whsec_" + base64.b64encode(b"twenty-five bytes of key!").decode().rstrip("=")
    assert make_config(secret=unpadded).secret.get_secret_value() == unpadded


def test_errors_next_to_a_good_secret_do_not_show_it() -> None:
    with pytest.raises(ValidationError) as info:
        WebhookConfig.model_validate({"name": "ops-hook", "type": "webhook", "secret": SECRET})
    assert info.value.errors()[0]["type"] == "missing"
    assert_no_secret(info.value, SECRET)


def test_unknown_key_is_an_error() -> None:
    error = validation_error(retries=3)
    [problem] = error.errors()
    assert problem["type"] == "extra_forbidden"
    assert problem["loc"] == ("retries",)


def test_wrong_type_literal_is_an_error() -> None:
    assert validation_error(type="email").errors()[0]["loc"] == ("type",)


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"webhook-id": "x"}, "'webhook-id' is set by the webhook notifier"),
        ({"Webhook-Signature": "v1,x"}, "'Webhook-Signature' is set by the webhook notifier"),
        ({"Content-Type": "text/plain"}, "'Content-Type' is set by the webhook notifier"),
        ({"Bad Name": "x"}, "'Bad Name' is not a valid header name"),
        ({"X-A": "one\r\nX-Injected: two"}, "the value of 'X-A' must be printable ASCII"),
        ({"X-A": "x", "x-a": "y"}, "'x-a' is given twice"),
    ],
)
def test_headers_cannot_override_ours_or_break_the_request(
    headers: dict[str, str], message: str
) -> None:
    [problem] = validation_error(headers=headers).errors()
    assert problem["loc"] == ("headers",)
    assert message in problem["msg"]


# --- registry ---------------------------------------------------------------------


def test_registry_holds_the_webhook_type() -> None:
    assert NOTIFIER_TYPES["webhook"] is NOTIFIER_TYPE
    assert NOTIFIER_TYPE.config_model is WebhookConfig
    assert "webhook-signature" in NOTIFIER_TYPE.help
    assert isinstance(NOTIFIER_TYPE.build(make_config()), WebhookNotifier)
    with pytest.raises(TypeError):
        NOTIFIER_TYPES["other"] = NOTIFIER_TYPE  # type: ignore[index]


def test_registry_refuses_a_duplicate_name() -> None:
    with pytest.raises(ValueError, match="'webhook' is registered twice"):
        make_registry("notifier", [NOTIFIER_TYPE, NOTIFIER_TYPE])


def test_build_refuses_another_config_model() -> None:
    from monitor.config_base import NotifierConfig

    with pytest.raises(NotifyError, match="needs a WebhookConfig"):
        build(NotifierConfig(name="mail", type="email"))


def test_notifier_exposes_the_protocol() -> None:
    notifier = build(make_config())
    assert notifier.type == "webhook"
    assert notifier.name == "ops-hook"
    assert isinstance(notifier.config, WebhookConfig)


# --- against the real loopback receiver -------------------------------------------


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # trust_env=False: a proxy set in the environment must not see loopback traffic.
    async with httpx.AsyncClient(trust_env=False, headers={"user-agent": USER_AGENT}) as c:
        yield c


def notifier_for(receiver: WebhookReceiver, secret: str = WEBHOOK_SECRET, **keys: Any) -> Any:
    # The receiver is on loopback, which a webhook may reach only when it says so.
    return build(make_config(url=receiver.url, secret=secret, allow_private=True, **keys))


@pytest.mark.integration
@pytest.mark.anyio
async def test_receiver_verifies_a_signed_delivery(
    webhook_receiver: WebhookReceiver, client: httpx.AsyncClient
) -> None:
    result = await notifier_for(webhook_receiver).send(client, make_delivery(), datetime.now(UTC))
    assert result.outcome is Outcome.DELIVERED
    assert result.status_code == 204
    [delivery] = webhook_receiver.wait_for(1)
    assert delivery.verified
    assert delivery.webhook_id == "dlv_01JD5Q2"
    assert delivery.body == EXPECTED_BODY
    assert delivery.payload == json.loads(EXPECTED_BODY)
    assert delivery.headers["user-agent"] == USER_AGENT
    assert delivery.headers["content-type"] == "application/json"
    assert webhook_receiver.request_count == 1
    assert webhook_receiver.rejected == []


@pytest.mark.integration
@pytest.mark.anyio
async def test_receiver_rejects_a_delivery_signed_with_another_secret(
    webhook_receiver: WebhookReceiver, client: httpx.AsyncClient
) -> None:
    tampered = "whsec_" + base64.b64encode(b"not the receiver's secret, sorry").decode()
    notifier = notifier_for(webhook_receiver, secret=tampered)
    result = await notifier.send(client, make_delivery(), datetime.now(UTC))
    assert result.outcome is Outcome.RETRY
    assert result.error == "HTTP 401 Unauthorized: invalid signature"
    [rejected] = webhook_receiver.rejected
    assert rejected.status == 401
    assert rejected.verify_error is not None
    assert webhook_receiver.deliveries == []
    assert webhook_receiver.request_count == 1


@pytest.mark.integration
@pytest.mark.anyio
async def test_failure_then_success_keeps_the_same_webhook_id(
    webhook_receiver: WebhookReceiver, client: httpx.AsyncClient
) -> None:
    notifier = notifier_for(webhook_receiver)
    webhook_receiver.fail_next(2, status=503, retry_after=7)
    for attempt, expected in ((1, Outcome.RETRY), (2, Outcome.RETRY), (3, Outcome.DELIVERED)):
        result = await notifier.send(client, make_delivery(attempt), datetime.now(UTC))
        assert result.outcome is expected
    assert result.retry_after is None
    requests = webhook_receiver.requests
    assert [r.status for r in requests] == [503, 503, 204]
    assert {r.webhook_id for r in requests} == {"dlv_01JD5Q2"}
    assert {r.body for r in requests} == {EXPECTED_BODY}
    assert webhook_receiver.ids() == webhook_receiver.unique_ids() == ["dlv_01JD5Q2"]


@pytest.mark.integration
@pytest.mark.anyio
async def test_retry_after_from_the_receiver(
    webhook_receiver: WebhookReceiver, client: httpx.AsyncClient
) -> None:
    webhook_receiver.fail_next(1, status=429, retry_after=42)
    result = await notifier_for(webhook_receiver).send(client, make_delivery(), datetime.now(UTC))
    assert result.outcome is Outcome.RETRY
    assert result.retry_after == timedelta(seconds=42)
    assert result.error == "HTTP 429 Too Many Requests: scripted failure"


@pytest.mark.integration
@pytest.mark.anyio
async def test_gone_receiver(webhook_receiver: WebhookReceiver, client: httpx.AsyncClient) -> None:
    webhook_receiver.set_status(410)
    notifier = notifier_for(webhook_receiver)
    for _ in range(2):
        result = await notifier.send(client, make_delivery(), datetime.now(UTC))
        assert result.outcome is Outcome.GONE
    assert webhook_receiver.deliveries == []
    assert [r.status for r in webhook_receiver.requests] == [410, 410]


@pytest.mark.integration
@pytest.mark.anyio
async def test_hanging_receiver_times_out_and_the_next_delivery_goes_through(
    webhook_receiver_factory: Callable[..., WebhookReceiver], client: httpx.AsyncClient
) -> None:
    receiver = webhook_receiver_factory()
    receiver.hang_next(1)
    notifier = notifier_for(receiver, timeout="300ms")
    result = await notifier.send(client, make_delivery(), datetime.now(UTC))
    assert result.outcome is Outcome.RETRY
    assert result.error == "timed out after 0.3s"
    assert result.duration > 0.25  # no upper bound: this machine's load is not the code's
    [hung] = receiver.wait_for_requests(1)
    assert hung.status is None
    assert hung.verified
    result = await notifier.send(client, make_delivery(), datetime.now(UTC))
    assert result.outcome is Outcome.DELIVERED  # only one was scripted to hang
    receiver.close()


@pytest.mark.integration
@pytest.mark.anyio
async def test_receiver_down_then_up_on_the_same_port(
    webhook_receiver: WebhookReceiver, client: httpx.AsyncClient
) -> None:
    notifier = notifier_for(webhook_receiver)
    url = webhook_receiver.url
    webhook_receiver.down()
    assert not webhook_receiver.is_up
    result = await notifier.send(client, make_delivery(), datetime.now(UTC))
    assert result.outcome is Outcome.RETRY
    assert result.error == "connection refused"
    webhook_receiver.up()
    assert webhook_receiver.url == url
    result = await notifier.send(client, make_delivery(2), datetime.now(UTC))
    assert result.outcome is Outcome.DELIVERED
    assert webhook_receiver.ids() == ["dlv_01JD5Q2"]
    assert webhook_receiver.request_count == 1  # the refused attempt never arrived


@pytest.mark.integration
def test_wait_for_times_out_with_what_arrived(webhook_receiver: WebhookReceiver) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"expected 1 accepted deliveries within 0\.2s; got 0"):
        webhook_receiver.wait_for(1, timeout=0.2)
    assert time.monotonic() - started < 2


@pytest.mark.integration
def test_unsigned_request_is_rejected_and_counted(webhook_receiver: WebhookReceiver) -> None:
    response = httpx.post(webhook_receiver.url, content=b"{}", trust_env=False)
    assert response.status_code == 401
    [rejected] = webhook_receiver.rejected
    assert rejected.verify_error is not None
    assert "Missing required headers" in rejected.verify_error
    assert webhook_receiver.request_count == 1


@pytest.mark.integration
def test_factory_gives_independent_receivers(
    webhook_receiver_factory: Callable[..., WebhookReceiver],
) -> None:
    first, second = webhook_receiver_factory(), webhook_receiver_factory(SECRET, path="/other")
    assert first.port != second.port
    assert second.url.endswith("/other")
    assert second.secret == SECRET
