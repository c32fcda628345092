"""Email rendering (pure): a delivery in, one multipart text + HTML message out.

Everything that comes from a feed is untrusted. Headers get only one-line text with
encoded-word look-alikes broken up (the stdlib decodes ``=?UTF-8?Q?=0A?=`` inside a
header value it is given and would emit the newline); recipients come from the
config alone. The HTML part is rendered with autoescaping and then cleaned with nh3
so that only plain markup and http, https and mailto links survive.
"""

from __future__ import annotations

import email.utils
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import jinja2
import markupsafe
import nh3

SUBJECT_MAX = 200
SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
_TAGS = frozenset(
    {"a", "br", "div", "h2", "hr", "li", "mark", "p", "small", "strong", "table", "td", "th",
     "tr", "ul"}
)  # fmt: skip
_TEMPLATES = Path(__file__).parent / "templates"
_SYSTEM_HEADLINES = {
    "source.failing": "Source {source} is failing",
    "source.recovered": "Source {source} works again",
    "notifier.disabled": "Notifier {notifier} was disabled",
    "notifier.test": "Test message from noticewatch",
}


@dataclass(frozen=True)
class Envelope:
    """Who the message is from and to, from the notifier config only."""

    sender: str
    recipients: tuple[str, ...]
    subject_prefix: str


def one_line(text: str, limit: int = SUBJECT_MAX) -> str:
    """Printable single-line text of at most ``limit`` characters, safe in a header."""
    cleaned = "".join(
        " " if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch for ch in text
    )
    line = " ".join(cleaned.split()).replace("=?", "= ?")
    if len(line) > limit:
        line = line[: limit - 1].rstrip() + "…"
    return line


def safe_link(url: Any) -> str | None:
    """``url`` if it is an http, https or mailto link, else None (javascript: and co.)."""
    if not isinstance(url, str):
        return None
    text = url.strip()
    scheme = text.split(":", 1)[0].lower() if ":" in text else ""
    return text if scheme in SAFE_SCHEMES and one_line(text, 4000) == text else None


def marked(text: str, spans: Sequence[tuple[int, int]]) -> list[tuple[str, bool]]:
    """``text`` cut into (piece, highlighted) at the match offsets; overlaps merged."""
    pieces: list[tuple[str, bool]] = []
    position = 0
    for start, end in sorted(spans):
        start, end = max(start, position), min(end, len(text))
        if start >= end:
            continue
        if start > position:
            pieces.append((text[position:start], False))
        pieces.append((text[start:end], True))
        position = end
    if position < len(text) or not pieces:
        pieces.append((text[position:], False))
    return pieces


def format_value(value: Any) -> str | None:
    """A structured field as text: money as ``1,200.50 EUR``, lists joined, None left out."""
    if value is None or value == [] or value == "":
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping) and {"amount", "currency"} <= set(value):
        amount = value["amount"]
        shown = f"{amount:,.2f}" if isinstance(amount, int | float) else str(amount)
        return f"{shown} {value['currency']}"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, int | float):
        return f"{value:,}"
    return str(value)


CHANGE_MAX = 200  # characters of one old or new value shown in an update


def _changes(changes: Any) -> list[tuple[str, str]]:
    """``changes`` of an ``alert.updated`` as (label, "old → new"), long values cut."""
    if not isinstance(changes, Mapping):
        return []
    shown = []
    for name, change in changes.items():
        if not isinstance(change, Mapping):
            continue
        old, new = (
            one_line(format_value(change.get(side)) or "(none)", CHANGE_MAX)
            for side in ("old", "new")
        )
        shown.append((str(name).replace("_", " ").capitalize(), f"{old} → {new}"))
    return shown


def _seen(entry: Any) -> str:
    if isinstance(entry, Mapping):
        parts = [entry.get("source"), entry.get("title"), safe_link(entry.get("url"))]
        return " – ".join(str(p) for p in parts if p)
    return str(entry)


class MailRenderer:
    """Renders deliveries with the templates in ``notifiers/templates``."""

    def __init__(self, templates: Path = _TEMPLATES) -> None:
        loader = jinja2.FileSystemLoader(templates)
        self._html = jinja2.Environment(
            loader=loader, autoescape=True, undefined=jinja2.StrictUndefined
        )
        self._text = jinja2.Environment(
            loader=loader,
            autoescape=False,  # noqa: S701 - the text/plain part is not HTML
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
        )

    def message(
        self, envelope: Envelope, delivery_id: str, event_type: str, data: Mapping[str, Any],
        created_at: datetime,
    ) -> EmailMessage:  # fmt: skip
        """One message; falls back to a plain summary rather than lose the delivery."""
        try:
            subject, text, html = self._render(envelope, event_type, data)
        except (jinja2.TemplateError, TypeError, ValueError, KeyError, AttributeError) as e:
            subject = f"{event_type} {delivery_id}"
            text = f"noticewatch could not render this {event_type} ({type(e).__name__}).\n"
            html = f"<p>{markupsafe.escape(text)}</p>"
        return assemble(envelope, delivery_id, subject, text, html, created_at)

    def _render(
        self, envelope: Envelope, event_type: str, data: Mapping[str, Any]
    ) -> tuple[str, str, str]:
        recipients = ", ".join(envelope.recipients)
        if event_type == "alert.digest":
            groups = [
                {"rule": g["rule"], "alerts": [alert_view(a) for a in g["alerts"]]}
                for g in data["groups"]
            ]
            context = {
                "groups": groups,
                "count": data["count"],
                "since": data.get("since") or "the start",
                "recipients": recipients,
            }
            subject = f"{data['count']} alerts since {context['since']}"
            if data.get("parts", 1) > 1:  # a large digest comes in parts
                subject += f" (part {data['part']} of {data['parts']})"
            return subject, *self._both("digest", context)
        if "item" in data:
            view = alert_view(data)
            context = {"alerts": [view], "recipients": recipients}
            # An amended notice (alert.updated) must not read like a new one.
            subject = ("Updated: " if event_type == "alert.updated" else "") + view["title_text"]
            return subject, *self._both("alert", context)
        headline = _SYSTEM_HEADLINES.get(event_type, event_type).format(
            source=one_line(str(data.get("source", "?")), 100),
            notifier=one_line(str(data.get("notifier", "?")), 100),
        )
        details = [
            (key.replace("_", " ").capitalize(), text)
            for key, value in data.items()
            if key not in ("rules",) and (text := format_value(value)) is not None
        ]
        context = {"headline": headline, "details": details, "recipients": recipients}
        return headline, *self._both("system", context)

    def _both(self, name: str, context: Mapping[str, Any]) -> tuple[str, str]:
        text = self._text.get_template(f"{name}.txt.j2").render(context)
        fragment = self._html.get_template(f"{name}.html.j2").render(context)
        return text, clean_html(fragment)


def clean_html(fragment: str) -> str:
    """Allow plain markup and safe links only, whatever reached the template."""
    body = nh3.clean(
        fragment,
        tags=set(_TAGS),
        attributes={"a": {"href"}},
        url_schemes=set(SAFE_SCHEMES),
        link_rel="noopener noreferrer",
    )
    head = '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head><body>'
    return f"{head}\n{body}\n</body></html>\n"


def alert_view(data: Mapping[str, Any]) -> dict[str, Any]:
    """What the templates show of one ``alert.created`` data object."""
    item = data.get("item") or {}
    title = str(item.get("title") or "(untitled)")
    summary = str(item.get("summary") or "")
    matches = [m for m in data.get("matches", []) if isinstance(m, Mapping)]
    spans = {
        name: [(int(m["start"]), int(m["end"])) for m in matches if m.get("field") == name]
        for name in ("title", "summary")
    }
    terms = list(dict.fromkeys(f"{m.get('text')} ({m.get('field')})" for m in matches))
    fields = [
        (str(name).replace("_", " ").capitalize(), text)
        for name, value in (item.get("fields") or {}).items()
        if (text := format_value(value)) is not None
    ]
    return {
        "alert_id": data.get("alert_id", ""),
        "title": marked(title, spans["title"]),
        "title_text": title,
        "summary": marked(summary, spans["summary"]) if summary else [],
        "summary_text": summary,
        "source": item.get("source", ""),
        "date": item.get("published") or "unknown",
        "url": safe_link(item.get("url")),
        "rules": list(data.get("rules", [])),
        "terms": terms,
        "fields": fields,
        "also_seen_in": [_seen(e) for e in data.get("also_seen_in") or []],
        # Only an alert.updated carries "changes": in a digest it must not read as new.
        "updated": "changes" in data,
        "changes": _changes(data.get("changes")),
    }


def assemble(
    envelope: Envelope,
    delivery_id: str,
    subject: str,
    text: str,
    html: str,
    created_at: datetime,
) -> EmailMessage:
    """The message with exactly our headers; the subject is one line of at most 200."""
    message = EmailMessage()
    prefix = one_line(envelope.subject_prefix, 50)
    message["Subject"] = one_line(f"{prefix} {one_line(subject)}" if prefix else subject)
    message["From"] = envelope.sender
    message["To"] = ", ".join(envelope.recipients)
    message["Date"] = email.utils.format_datetime(created_at)
    # Stable across retries, so a mail client can drop a repeated delivery.
    message["Message-ID"] = f"<{delivery_id}@noticewatch>"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text, subtype="plain", cte="quoted-printable")
    message.add_alternative(html, subtype="html", cte="quoted-printable")
    return message
