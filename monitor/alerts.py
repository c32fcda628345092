"""Planning alerts (pure): which notifiers hear about an item, and the event they receive."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from monitor.models import Item, Match

EVENT_ALERT = "alert.created"


@dataclass(frozen=True)
class NotifierRoute:
    """A notifier by name and the rules it listens to (None = every rule)."""

    name: str
    rules: frozenset[str] | None


@dataclass(frozen=True)
class AlertDraft:
    """An alert to write to the outbox with its item, in the same transaction."""

    alert_id: str
    item_key: str
    notifier: str
    rules: tuple[str, ...]
    data: dict[str, Any]


def alert_id(source: str, item_key: str, notifier: str) -> str:
    """The stable ``webhook-id`` of one item to one notifier."""
    digest = hashlib.sha256(f"{source}\0{item_key}\0{notifier}".encode()).digest()
    return "msg_" + base64.b32encode(digest).decode("ascii").rstrip("=").lower()[:26]


def plan_alerts(
    item: Item, matches: Sequence[Match], routes: Iterable[NotifierRoute]
) -> list[AlertDraft]:
    """One draft per notifier that listens to at least one rule that matched ``item``."""
    matched_rules = list(dict.fromkeys(m.rule for m in matches))
    drafts = []
    for route in routes:
        rules = [r for r in matched_rules if route.rules is None or r in route.rules]
        if not rules:
            continue
        own = [m for m in matches if m.rule in rules]
        ident = alert_id(item.source, item.key, route.name)
        drafts.append(
            AlertDraft(
                alert_id=ident,
                item_key=item.key,
                notifier=route.name,
                rules=tuple(rules),
                data=alert_data(ident, item, rules, own),
            )
        )
    return drafts


def alert_data(
    ident: str, item: Item, rules: Sequence[str], matches: Sequence[Match]
) -> dict[str, Any]:
    """The ``data`` object of an ``alert.created`` event (see the README)."""
    return {
        "alert_id": ident,
        "rules": list(rules),
        "item": item_payload(item),
        "matches": [m.as_dict() for m in matches],
        "also_seen_in": [],
    }


def item_payload(item: Item) -> dict[str, Any]:
    return {
        "source": item.source,
        "source_type": item.source_type,
        "key": item.key,
        "title": item.title,
        "url": item.url,
        "published": iso_utc(item.published) if item.published else None,
        "summary": item.summary,
        "language": item.language,
        "fields": dict(item.fields),
    }


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, to the second."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
