"""System messages (pure): health events that go to the notifiers subscribed to the
reserved rule ``source_health``, through the same durable outbox as alerts.

A system message is about no single item, so it has no item row; its id is derived
from the event, the thing it is about and the episode (when the trouble started), so
planning the same message twice can never queue it twice.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from monitor.alerts import NotifierRoute, iso_utc

SOURCE_HEALTH = "source_health"  # the reserved rule name notifiers subscribe with
EVENT_SOURCE_FAILING = "source.failing"
EVENT_SOURCE_RECOVERED = "source.recovered"
EVENT_NOTIFIER_DISABLED = "notifier.disabled"
EVENT_TEST = "notifier.test"  # notify-test and the API's subscription test, sent at once
SYSTEM_EVENTS = (EVENT_SOURCE_FAILING, EVENT_SOURCE_RECOVERED, EVENT_NOTIFIER_DISABLED)
DEFAULT_FAILING_AFTER = 3


@dataclass(frozen=True)
class SystemDraft:
    """One system message to one notifier, written to the outbox without an item."""

    alert_id: str
    notifier: str
    event_type: str
    data: dict[str, Any]


@dataclass(frozen=True)
class HealthPolicy:
    """Who hears about health events, and after how many failures in a row a source fails."""

    routes: tuple[NotifierRoute, ...] = ()
    failing_after: int = DEFAULT_FAILING_AFTER

    def subscribers(self, exclude: str | None = None) -> list[str]:
        return [
            r.name
            for r in self.routes
            if r.rules is not None and SOURCE_HEALTH in r.rules and r.name != exclude
        ]

    def plan(
        self,
        event_type: str,
        subject: str,
        episode: datetime,
        data: Mapping[str, Any],
        *,
        exclude: str | None = None,
    ) -> list[SystemDraft]:
        """One draft per subscriber; ``exclude`` leaves out the notifier the news is about."""
        return plan_system(event_type, subject, episode, data, self.subscribers(exclude))


def system_id(event_type: str, subject: str, episode: datetime, notifier: str) -> str:
    """The stable ``webhook-id`` of one system message to one notifier."""
    key = f"{event_type}\0{subject}\0{iso_utc(episode)}\0{notifier}"
    digest = hashlib.sha256(key.encode()).digest()
    return "sys_" + base64.b32encode(digest).decode("ascii").rstrip("=").lower()[:26]


def plan_system(
    event_type: str,
    subject: str,
    episode: datetime,
    data: Mapping[str, Any],
    notifiers: Iterable[str],
) -> list[SystemDraft]:
    return [
        SystemDraft(
            alert_id=(ident := system_id(event_type, subject, episode, name)),
            notifier=name,
            event_type=event_type,
            data={"alert_id": ident, "rules": [SOURCE_HEALTH], **data},
        )
        for name in notifiers
    ]


def source_failing_data(
    source: str, source_type: str, failures: int, since: datetime, error: str
) -> dict[str, Any]:
    return {
        "source": source,
        "source_type": source_type,
        "consecutive_failures": failures,
        "failing_since": iso_utc(since),
        "last_error": error,
    }


def source_recovered_data(
    source: str, source_type: str, failures: int, since: datetime, now: datetime
) -> dict[str, Any]:
    return {
        "source": source,
        "source_type": source_type,
        "consecutive_failures": failures,
        "failing_since": iso_utc(since),
        "recovered_at": iso_utc(now),
    }


def notifier_disabled_data(
    notifier: str, reason: str, since: datetime | None, now: datetime
) -> dict[str, Any]:
    return {
        "notifier": notifier,
        "reason": reason,
        "failing_since": iso_utc(since) if since else None,
        "disabled_at": iso_utc(now),
        "hint": f"fix the endpoint, then run: noticewatch enable {notifier}",
    }
