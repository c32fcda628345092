"""The email notifier: rendering (pure) and delivery to a real aiosmtpd over 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from monitor.config import parse_config
from monitor.digest import Pending, digest_data
from monitor.errors import ConfigError
from notifiers import NOTIFIER_TYPES
from notifiers.base import Delivery, Outcome
from notifiers.mail import EmailConfig, EmailNotifier, build
from notifiers.mail_render import marked, one_line
from tests.conftest import FIXED_NOW
from tests.support.smtp_server import PASSWORD, USERNAME, SmtpServer

HEADERS = {
    "subject", "from", "to", "date", "message-id", "auto-submitted", "mime-version",
    "content-type",
}  # fmt: skip
TO = ["procurement@example.org", "legal@example.org"]


def make_config(**keys: Any) -> EmailConfig:
    base: dict[str, Any] = {
        "name": "team-mail",
        "type": "email",
        "to": TO,
        "from": "noticewatch@example.org",
        "smtp_host": "127.0.0.1",
    }
    return EmailConfig.model_validate(base | keys)


def alert_data(title: str = "Clearview AI fined €30.5 million", **item: Any) -> dict[str, Any]:
    start = title.find("Clearview")
    matches = [{"rule": "cv", "field": "title", "text": "Clearview", "start": start,
                "end": start + 9}] if start >= 0 else []  # fmt: skip
    return {
        "alert_id": "msg_abc",
        "rules": ["cv"],
        "item": {
            "source": "ap-nl",
            "source_type": "rss",
            "key": "k1",
            "title": title,
            "url": "https://ap.example/clearview",
            "published": "2026-11-22T09:00:00Z",
            "summary": "The Dutch DPA fined Clearview.",
            "language": "nl",
            "fields": {},
            **item,
        },
        "matches": matches,
        "also_seen_in": [],
    }


def delivery(
    data: dict[str, Any], event: str = "alert.created", ident: str = "msg_abc"
) -> Delivery:
    return Delivery(ident, event, FIXED_NOW, data, 1)


def render(data: dict[str, Any], event: str = "alert.created", **keys: Any) -> Any:
    message = EmailNotifier(make_config(**keys)).render(delivery(data, event))
    # What a receiver sees: the bytes on the wire, parsed back.
    return email.message_from_bytes(message.as_bytes(), policy=email.policy.default)


def parts(message: Any) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    return text, html


# --- rendering -------------------------------------------------------------------------


def test_a_multipart_message_with_text_and_html() -> None:
    message = render(alert_data())
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["Subject"] == "[noticewatch] Clearview AI fined €30.5 million"
    assert message["To"] == ", ".join(TO) and message["From"] == "noticewatch@example.org"
    assert message["Message-ID"] == "<msg_abc@noticewatch>"
    assert {k.lower() for k in message} == HEADERS
    text, html = parts(message)
    assert "Clearview AI fined €30.5 million" in text
    assert "Source:    ap-nl" in text and "Published: 2026-11-22T09:00:00Z" in text
    assert "Link:      https://ap.example/clearview" in text
    assert "<mark>Clearview</mark> AI fined €30.5 million" in html
    assert '<a href="https://ap.example/clearview" rel="noopener noreferrer">' in html
    assert "<strong>Matched:</strong> <mark>Clearview (title)</mark>" in html


def test_procurement_fields_and_also_seen_in_are_shown() -> None:
    fields = {
        "buyer": "Department of Homeland Security",
        "value": {"amount": 1250000.5, "currency": "USD"},
        "deadline": "2026-12-01",
        "naics": ["541512", "541519"],
        "set_aside": None,
        "sole_source": True,
    }
    data = alert_data(fields=fields)
    data["also_seen_in"] = [
        {"source": "gnews", "title": "Clearview wins", "url": "https://news.example/1"},
        "ted",
    ]
    text, html = parts(render(data))
    assert "Buyer: Department of Homeland Security" in text
    assert "Value: 1,250,000.50 USD" in text
    assert "Naics: 541512, 541519" in text and "Sole source: yes" in text
    assert "Set aside" not in text
    assert "gnews – Clearview wins – https://news.example/1" in text and "  - ted" in text
    assert "<th>Deadline</th><td>2026-12-01</td>" in html
    assert "Also seen in" in html


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "&#106;avascript:alert(1)", "data:text/html,x", "JAVASCRIPT:x"],
)
def test_only_http_https_mailto_links_survive(url: str) -> None:
    text, html = parts(render(alert_data(url=url)))
    assert "<a " not in html and "javascript" not in html.lower() and "data:" not in html
    assert "Link:" not in text


def test_feed_markup_is_escaped_and_cleaned() -> None:
    title = '<script>alert(1)</script><img src=x onerror=alert(2)><form action="https://x">'
    data = alert_data(title=title + " Clearview", summary='<a href="javascript:x">click</a>')
    _, html = parts(render(data))
    for bad in ("<script", "<img", "<form", '<a href="javascript'):
        assert bad not in html
    assert "&lt;script&gt;" in html and "&lt;img src=x onerror=alert(2)&gt;" in html


@pytest.mark.parametrize(
    "title",
    [
        "Clearview\r\nBcc: victim@example.net",
        "Clearview\nX-Injected: yes",
        "=?UTF-8?Q?=0A?=Bcc: victim@example.net",
        "Clearview =?utf-8?b?Cg==?=Bcc: victim@example.net",
        "Clearview\u2028Bcc: victim@example.net\u2029X: y",
        "Clearview\x00\x0bnull and vertical tab\u0085next line",
        "Clearview " + "x" * 10_000,
    ],
)
def test_hostile_titles_give_one_message_with_a_one_line_subject(title: str) -> None:
    message = render(alert_data(title=title))
    subject = message["Subject"]
    assert "\n" not in subject and "\r" not in subject and "\u2028" not in subject
    assert len(subject) <= 200
    assert {k.lower() for k in message} == HEADERS  # no Bcc, no X-Injected
    assert message["To"] == ", ".join(TO)
    assert message.get_all("Bcc") is None


def test_one_line_and_marked_helpers() -> None:
    assert one_line("a\r\n\tb\u2028c") == "a b c"
    assert one_line("x" * 500) == "x" * 199 + "…"
    assert marked("abcdef", [(1, 3), (2, 4)]) == [("a", False), ("bc", True), ("d", True),
                                                    ("ef", False)]  # fmt: skip
    assert marked("", []) == [("", False)]


def test_system_messages_render() -> None:
    data = {
        "alert_id": "sys_1", "rules": ["source_health"], "source": "cnil",
        "consecutive_failures": 3, "last_error": "HTTP 503", "failing_since": "2026-11-22T10:00Z",
    }  # fmt: skip
    message = render(data, "source.failing")
    assert message["Subject"] == "[noticewatch] Source cnil is failing"
    text, html = parts(message)
    assert "Consecutive failures: 3" in text and "Last error: HTTP 503" in text
    assert "<th>Source</th><td>cnil</td>" in html


def test_digest_renders_groups_newest_first() -> None:
    pending = [
        Pending("a1", "cv", FIXED_NOW, alert_data("Clearview old")),
        Pending("a2", "cv", FIXED_NOW + timedelta(minutes=5), alert_data("Clearview new")),
        Pending("a3", "fr", FIXED_NOW + timedelta(minutes=1), alert_data("CNIL Clearview")),
    ]
    data = digest_data("dig_1", pending, FIXED_NOW - timedelta(hours=1), FIXED_NOW)
    message = render(data, "alert.digest")
    assert message["Subject"] == "[noticewatch] 3 alerts since 2026-11-22T09:00:00Z"
    text, html = parts(message)
    assert text.index("== cv (2) ==") < text.index("Clearview new") < text.index("Clearview old")
    assert text.index("Clearview old") < text.index("== fr (1) ==")
    assert html.count("<li>") == 3


def test_a_broken_data_object_still_gives_a_message() -> None:
    message = render({"groups": "not a list", "count": 1}, "alert.digest")
    assert message["Subject"] == "[noticewatch] alert.digest msg_abc"


# --- configuration ---------------------------------------------------------------------


def test_defaults_and_registry() -> None:
    config = make_config()
    assert config.tls == "starttls" and config.port == 587
    assert make_config(tls="implicit").port == 465
    assert config.digest == "immediate" and config.subject_prefix == "[noticewatch]"
    assert NOTIFIER_TYPES["email"].config_model is EmailConfig


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"to": []}, "List should have at least 1 item"),
        ({"to": ["not-an-address"]}, "is not an email address"),
        ({"to": ["a@example.org\r\nBcc: x@evil.example"]}, "one line"),
        ({"from": "x"}, "is not an email address"),
        # Display-name forms: the stdlib raises HeaderParseError, not a ValueError.
        ({"to": ["Team <team@example.org>"]}, "is not an email address like name@example.org"),
        ({"from": "<nw@example.org>"}, "is not an email address like name@example.org"),
        ({"to": ['"unterminated@example.org']}, "is not an email address"),
        ({"tls": "ssl"}, "Input should be 'starttls', 'implicit' or 'none'"),
        ({"username": "u"}, "username and password go together"),
        ({"username": "u", "password": "hunter2pass", "tls": "none"}, "clear text"),
        ({"digest": "weekly"}, "is not a digest schedule"),
        ({"digest": "daily 25:00"}, "is not a digest schedule"),
        ({"ca_file": "/nonexistent/ca.pem"}, "is not a readable file"),
        ({"bcc": ["x@example.org"]}, "Extra inputs are not permitted"),
    ],
)
def test_bad_config_is_named(keys: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as e:
        make_config(**keys)
    assert message in str(e.value)
    assert "hunter2pass" not in str(e.value)


# --- a real SMTP server ----------------------------------------------------------------


@pytest.fixture
def client() -> Iterator[httpx.AsyncClient]:
    yield httpx.AsyncClient()  # unused by the email notifier; part of the protocol


async def send(server: SmtpServer, data: dict[str, Any] | None = None, **keys: Any) -> Any:
    config = make_config(**({"smtp_port": server.port, "tls": server.mode, "timeout": "5s"} | keys))
    async with httpx.AsyncClient() as client:
        return await build(config).send(client, delivery(data or alert_data()), FIXED_NOW)


@pytest.mark.integration
@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["starttls", "implicit"])
async def test_delivers_over_tls_with_login_after_tls(mode: Any, tmp_path: Path) -> None:
    with SmtpServer(tmp_path, mode) as server:
        result = await send(server, ca_file=str(server.ca_file), username=USERNAME,
                            password=PASSWORD)  # fmt: skip
    assert result.outcome is Outcome.DELIVERED, result.error
    assert server.auth == [(USERNAME, True)]  # AUTH only once TLS was up
    [envelope] = server.envelopes
    assert envelope.sender == "noticewatch@example.org" and envelope.recipients == TO
    [message] = server.messages
    assert message["Subject"] == "[noticewatch] Clearview AI fined €30.5 million"
    text, html = parts(message)
    assert "https://ap.example/clearview" in text and "<mark>Clearview</mark>" in html


@pytest.mark.integration
@pytest.mark.anyio
async def test_hostile_title_reaches_only_the_configured_recipients(tmp_path: Path) -> None:
    title = "=?UTF-8?Q?=0A?=Bcc: victim@example.net\r\nTo: other@example.net " + "y" * 10_000
    with SmtpServer(tmp_path, "starttls") as server:
        result = await send(server, alert_data(title=title), ca_file=str(server.ca_file))
    assert result.outcome is Outcome.DELIVERED
    [envelope] = server.envelopes
    assert envelope.recipients == TO
    [message] = server.messages
    assert {k.lower() for k in message} == HEADERS
    assert len(message["Subject"]) <= 200 and "\n" not in message["Subject"]


@pytest.mark.integration
@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["starttls", "implicit"])
async def test_an_untrusted_certificate_is_refused(mode: Any, tmp_path: Path) -> None:
    with SmtpServer(tmp_path, mode, untrusted=True) as server:
        result = await send(server, ca_file=str(server.ca_file), username=USERNAME,
                            password=PASSWORD)  # fmt: skip
    assert result.outcome is Outcome.RETRY
    assert "CERTIFICATE_VERIFY_FAILED" in (result.error or "")
    assert server.envelopes == [] and server.auth == []  # nothing sent, no password
    assert PASSWORD not in (result.error or "")


@pytest.mark.integration
@pytest.mark.anyio
async def test_system_trust_store_does_not_know_the_test_ca(tmp_path: Path) -> None:
    with SmtpServer(tmp_path, "starttls") as server:
        result = await send(server)  # no ca_file: the system CAs
    assert result.outcome is Outcome.RETRY and "CERTIFICATE_VERIFY_FAILED" in (result.error or "")
    assert server.envelopes == []


@pytest.mark.integration
@pytest.mark.anyio
async def test_starttls_required_fails_against_a_server_without_it(tmp_path: Path) -> None:
    with SmtpServer(tmp_path, "none") as server:
        result = await send(server, tls="starttls", ca_file=str(server.ca_file))
    assert result.outcome is Outcome.RETRY
    assert "connecting failed" in (result.error or "")
    assert server.envelopes == []


@pytest.mark.integration
@pytest.mark.anyio
async def test_tls_none_sends_in_the_clear_only_when_set(tmp_path: Path) -> None:
    with SmtpServer(tmp_path, "none") as server:
        result = await send(server)
    assert result.outcome is Outcome.DELIVERED
    assert len(server.messages) == 1


@pytest.mark.integration
@pytest.mark.anyio
async def test_wrong_password_is_a_retry_that_does_not_show_it(tmp_path: Path) -> None:
    with SmtpServer(tmp_path, "starttls") as server:
        result = await send(server, ca_file=str(server.ca_file), username=USERNAME,
                            password="wrong-password-value")  # fmt: skip
    assert result.outcome is Outcome.RETRY
    assert "logging in failed" in (result.error or "")
    assert "wrong-password-value" not in (result.error or "")
    assert server.envelopes == []


@pytest.mark.integration
@pytest.mark.anyio
async def test_nothing_listening_is_a_retry(tmp_path: Path) -> None:
    server = SmtpServer(tmp_path, "starttls")  # never started
    result = await send(server, ca_file=str(server.ca_file))
    assert result.outcome is Outcome.RETRY and "connecting failed" in (result.error or "")


def test_a_password_must_come_from_the_environment(tmp_path: Path) -> None:
    raw: dict[str, Any] = {
        "sources": [{"name": "a", "type": "rss", "url": "https://example.org/f", "every": "1h"}],
        "notifiers": [
            {"name": "mail", "type": "email", "to": ["a@example.org"], "from": "b@example.org",
             "smtp_host": "smtp.example.org", "username": "u", "password": "hunter2-literal"}
        ],
    }  # fmt: skip
    with pytest.raises(ConfigError) as e:
        parse_config(raw, {}, path=tmp_path / "x.toml")
    assert 'notifiers[0] "mail": password: write it as "${VAR}"' in str(e.value)
    assert "hunter2-literal" not in str(e.value)
    raw["notifiers"][0]["password"] = "${SMTP_PASSWORD}"
    config = parse_config(raw, {"SMTP_PASSWORD": "hunter2-env"}, path=tmp_path / "x.toml")
    [mail] = config.notifiers
    assert isinstance(mail, EmailConfig) and mail.password is not None
    assert mail.password.get_secret_value() == "hunter2-env"


def test_test_messages_and_updates_have_their_own_subjects() -> None:
    data = {"notifier": "team-mail", "message": "noticewatch test message", "sent_at": "now"}
    message = render(data, "notifier.test")
    assert message["Subject"] == "[noticewatch] Test message from noticewatch"
    assert "Notifier: team-mail" in parts(message)[0]
    updated = render(alert_data(), "alert.updated")
    assert updated["Subject"] == "[noticewatch] Updated: Clearview AI fined €30.5 million"


@pytest.mark.integration
@pytest.mark.anyio
async def test_some_recipients_refused_is_delivered_once_with_the_refusal_noted(
    tmp_path: Path,
) -> None:
    with SmtpServer(tmp_path, "starttls") as server:
        result = await send(server, ca_file=str(server.ca_file),
                            to=["team@example.org", "gone@refused.example"])  # fmt: skip
    assert result.outcome is Outcome.DELIVERED
    assert result.error is not None and "gone@refused.example" in result.error
    [envelope] = server.envelopes
    assert envelope.recipients == ["team@example.org"]


@pytest.mark.integration
@pytest.mark.anyio
async def test_every_recipient_refused_is_a_retry(tmp_path: Path) -> None:
    with SmtpServer(tmp_path, "starttls") as server:
        result = await send(server, ca_file=str(server.ca_file), to=["gone@refused.example"])
    assert result.outcome is Outcome.RETRY and "sending failed" in (result.error or "")
    assert server.envelopes == []


@pytest.mark.parametrize(
    "reply",
    [
        # The password straddles the 300-character cut: its first half must not leak.
        "x" * 280 + " {password} rejected",
        # Whitespace inside the password survives only until the error is made one line.
        "bad credentials: {password}",
        # A server that echoes the AUTH PLAIN / AUTH LOGIN argument back.
        "535 5.7.8 rejected AUTH PLAIN {plain}",
        "535 5.7.8 rejected {login}",
    ],
    ids=["cut", "whitespace", "auth-plain", "auth-login"],
)
def test_smtp_errors_never_show_the_password_in_any_form(reply: str) -> None:
    import base64

    import aiosmtplib

    password = "s3cret  tab\tpass-phrase"
    plain = base64.b64encode(f"\0{USERNAME}\0{password}".encode()).decode()
    login = base64.b64encode(password.encode()).decode()
    notifier = build(make_config(username=USERNAME, password=password))
    text = reply.format(password=password, plain=plain, login=login)
    error = notifier._reason("logging in", aiosmtplib.SMTPAuthenticationError(535, text))
    assert "logging in failed" in error and "[r" in error  # "[redacted]", maybe cut
    for secret in (password, " ".join(password.split()), plain, login, password[:8]):
        assert secret not in error


def updated_data() -> dict[str, Any]:
    data = alert_data("Clearview AI fined €30.5 million", fields={"value": 30_500_000})
    data["changes"] = {
        "title": {"old": "Clearview AI fined", "new": "Clearview AI fined €30.5 million"},
        "value": {"old": None, "new": {"amount": 30500000, "currency": "EUR"}},
        "summary": {"old": "<b>x</b>" + "long " * 200, "new": "The Dutch DPA fined Clearview."},
    }
    return data


def test_an_amended_notice_shows_what_changed() -> None:
    text, html = parts(render(updated_data(), "alert.updated"))
    assert "Changed" in text
    assert "Title: Clearview AI fined → Clearview AI fined €30.5 million" in text
    assert "Value: (none) → 30,500,000.00 EUR" in text
    assert "long long" in text and "long " * 100 not in text  # long values are cut
    assert "<th>Title</th><td>Clearview AI fined → Clearview AI fined €30.5 million</td>" in html
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html


def test_an_amended_notice_in_a_digest_reads_as_an_update() -> None:
    pending = [
        Pending("a1", "cv", FIXED_NOW, alert_data("Clearview new notice")),
        Pending("a2", "cv", FIXED_NOW + timedelta(minutes=5), updated_data()),
    ]
    data = digest_data("dig_1", pending, FIXED_NOW - timedelta(hours=1), FIXED_NOW)
    text, html = parts(render(data, "alert.digest"))
    assert "* Updated: Clearview AI fined €30.5 million" in text
    assert "* Clearview new notice" in text and "Updated: Clearview new" not in text
    assert "Changed: Title: Clearview AI fined → Clearview AI fined €30.5 million" in text
    assert "<strong>Updated: <mark>Clearview</mark> AI fined" in html


def test_a_digest_in_parts_says_which_part() -> None:
    pending = [Pending("a1", "cv", FIXED_NOW, alert_data("Clearview"))]
    data = digest_data("dig_1", pending, FIXED_NOW - timedelta(hours=1), FIXED_NOW, 2, 3)
    message = render(data, "alert.digest")
    assert message["Subject"] == "[noticewatch] 1 alerts since 2026-11-22T09:00:00Z (part 2 of 3)"
