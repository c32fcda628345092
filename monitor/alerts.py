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
EVENT_UPDATED = "alert.updated"


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
    event_type: str = EVENT_ALERT


def alert_id(source: str, item_key: str, notifier: str) -> str:
    """The stable ``webhook-id`` of one item to one notifier."""
    digest = hashlib.sha256(f"{source}\0{item_key}\0{notifier}".encode()).digest()
    return "msg_" + base64.b32encode(digest).decode("ascii").rstrip("=").lower()[:26]


def update_id(source: str, item_key: str, notifier: str, version: int) -> str:
    """The ``webhook-id`` of one version of an item to one notifier (``alert.updated``).

    Keyed by the stored version number, not the content: a notice that goes back to an
    earlier content (a deadline moved, then moved back) is a new update, while planning
    the same amendment twice (a crash before the commit) gives the same id.
    """
    return alert_id(source, f"{item_key}\0v{version}", notifier)


def plan_alerts(
    item: Item, matches: Sequence[Match], routes: Iterable[NotifierRoute]
) -> list[AlertDraft]:
    """One draft per notifier that listens to at least one rule that matched ``item``."""
    matched_rules = _rules_of(matches)
    drafts = []
    for route in routes:
        rules = _listened_by(route, matched_rules)
        if rules:
            drafts.append(_created(item, matches, route, rules))
    return drafts


def plan_updates(
    item: Item,
    before: Item,
    matches: Sequence[Match],
    routes: Iterable[NotifierRoute],
    alerted: frozenset[str],
    quiet: frozenset[str] = frozenset(),
    version: int = 2,
) -> list[AlertDraft]:
    """Drafts for an amended item (``before`` is the stored version it replaces, and
    ``version`` the number the amended one is stored under).

    ``alerted`` names the notifiers already told about the item (it matched for them
    before). Those it still matches for get ``alert.updated`` with the changed fields,
    unless every rule it matches for them is in ``quiet`` (``on_update = false``). A
    notifier never told (the item matches only now, it was recorded as a baseline, or
    the notifier is new) gets the ``alert.created`` it never had.
    """
    matched_rules = _rules_of(matches)
    changes = changed_fields(before, item)
    drafts = []
    for route in routes:
        rules = _listened_by(route, matched_rules)
        if not rules:
            continue
        if route.name not in alerted:
            drafts.append(_created(item, matches, route, rules))
            continue
        if all(r in quiet for r in rules) or not changes:
            continue
        ident = update_id(item.source, item.key, route.name, version)
        own = [m for m in matches if m.rule in rules]
        data = {**alert_data(ident, item, rules, own), "changes": changes}
        drafts.append(AlertDraft(ident, item.key, route.name, tuple(rules), data, EVENT_UPDATED))
    return drafts


def changed_fields(before: Item, after: Item) -> dict[str, dict[str, Any]]:
    """``{"field": {"old": ..., "new": ...}}`` for what a reader sees of the item.

    A field the new version does not carry at all (extra text an enrichment could not
    fetch this time) is not reported as removed.
    """
    old = {"title": before.title, "url": before.url, "summary": before.summary}
    new = {"title": after.title, "url": after.url, "summary": after.summary}
    if before.content != after.content:
        old["content"], new["content"] = before.content, after.content
    old.update(before.fields)
    new.update(after.fields)
    return {
        name: {"old": old.get(name), "new": value}
        for name, value in new.items()
        if old.get(name) != value
    }


def _rules_of(matches: Sequence[Match]) -> list[str]:
    return list(dict.fromkeys(m.rule for m in matches))


def _listened_by(route: NotifierRoute, rules: Sequence[str]) -> list[str]:
    return [r for r in rules if route.rules is None or r in route.rules]


def _created(
    item: Item, matches: Sequence[Match], route: NotifierRoute, rules: Sequence[str]
) -> AlertDraft:
    own = [m for m in matches if m.rule in rules]
    ident = alert_id(item.source, item.key, route.name)
    return AlertDraft(
        ident, item.key, route.name, tuple(rules), alert_data(ident, item, rules, own)
    )


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
