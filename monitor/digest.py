"""Digests (pure): when one is due, and what it contains.

``digest = "immediate"`` (default) sends each alert on its own. ``"hourly"`` sends one
digest at the start of every hour, ``"daily 08:00"`` one a day at 08:00 in
``[monitor] timezone`` (on the day clocks skip that time, as much later as they
jumped). A digest gathers every alert of the notifier not yet sent, grouped by rule,
newest first; the store marks them in the same transaction that queues the digest,
so no alert is in two digests, and the digest is then delivered (and retried) like
any alert. Health messages are never held for a digest.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Any

from monitor.alerts import iso_utc

EVENT_DIGEST = "alert.digest"
# One digest carries at most this many alerts; more are sent as several parts. A busy
# day in one message would outgrow what SMTP servers (often 10-25 MB) and webhook
# receivers (often 1 MB bodies) accept, and fail on every retry until dead.
MAX_DIGEST_ALERTS = 200
_DAILY = re.compile(r"^daily ([01][0-9]|2[0-3]):([0-5][0-9])$")


@dataclass(frozen=True)
class Schedule:
    """``every`` is None for immediate; ``at`` is the local time of a daily digest."""

    every: str | None = None  # None | "hourly" | "daily"
    at: time | None = None

    @property
    def immediate(self) -> bool:
        return self.every is None


def parse_schedule(text: str) -> Schedule:
    """``immediate``, ``hourly`` or ``daily HH:MM``; ValueError says what is expected."""
    value = " ".join(text.split()).lower()
    if value == "immediate":
        return Schedule()
    if value == "hourly":
        return Schedule("hourly")
    m = _DAILY.match(value)
    if m:
        return Schedule("daily", time(int(m.group(1)), int(m.group(2))))
    raise ValueError(
        f'{text!r} is not a digest schedule; use "immediate", "hourly" or "daily HH:MM" '
        '(24-hour time in [monitor] timezone, e.g. "daily 08:00")'
    )


def check_digest(text: str) -> str:
    parse_schedule(text)
    return text


def latest_slot(schedule: Schedule, now: datetime, zone: tzinfo) -> datetime:
    """The most recent digest time at or before ``now``, in UTC."""
    if schedule.every == "hourly":
        # The start of the local hour: in a zone offset by a part of an hour (India,
        # +05:30) that is not the start of a UTC hour. Truncating keeps the fold, so
        # the repeated hour when clocks go back resolves to the right moment.
        local = now.astimezone(zone).replace(minute=0, second=0, microsecond=0)
        return local.astimezone(UTC)
    if schedule.at is None:
        raise ValueError("an immediate schedule has no digest times")
    today = now.astimezone(zone).date()
    for days_back in range(3):
        # fold=0: a time that happens twice (clocks go back) counts at its first
        # occurrence; a time that does not exist (clocks go forward) is read with the
        # offset before the jump, so that day's digest goes out as much later as the
        # clocks jumped, and no day is skipped. Compared in UTC: aware datetimes that
        # share a tzinfo compare by wall time, which is wrong in the repeated hour.
        local = datetime.combine(today - timedelta(days=days_back), schedule.at, tzinfo=zone)
        slot = local.astimezone(UTC)
        if slot <= now.astimezone(UTC):
            return slot
    raise ValueError(f"no digest time found before {iso_utc(now)}")  # pragma: no cover


def digest_id(notifier: str, slot: datetime, part: int = 1) -> str:
    """The stable ``webhook-id`` of (part ``part`` of) the digest of ``notifier`` for ``slot``."""
    key = f"digest\0{notifier}\0{iso_utc(slot)}" + (f"\0{part}" if part > 1 else "")
    digest = hashlib.sha256(key.encode()).digest()
    return "dig_" + base64.b32encode(digest).decode("ascii").rstrip("=").lower()[:26]


@dataclass(frozen=True)
class Pending:
    """One alert waiting for a digest: its outbox id, first rule, time and data."""

    alert_id: str
    rule: str
    created_at: datetime
    data: Mapping[str, Any]


def split_digest(alerts: Sequence[Pending], size: int = MAX_DIGEST_ALERTS) -> list[list[Pending]]:
    """The parts of one digest, newest alerts first, each of at most ``size`` alerts."""
    newest_first = sorted(alerts, key=lambda a: (a.created_at, a.alert_id), reverse=True)
    return [newest_first[i : i + size] for i in range(0, len(newest_first), size)]


def digest_data(
    ident: str,
    alerts: Sequence[Pending],
    since: datetime | None,
    until: datetime,
    part: int = 1,
    parts: int = 1,
) -> dict[str, Any]:
    """The ``data`` of an ``alert.digest``: groups by rule (in first-seen order of their
    newest alert), each newest first. An alert matching several rules is listed once,
    under the first rule it matched."""
    newest_first = sorted(alerts, key=lambda a: (a.created_at, a.alert_id), reverse=True)
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for alert in newest_first:
        groups.setdefault(alert.rule, []).append(alert.data)
    return {
        "digest_id": ident,
        "since": iso_utc(since) if since else None,
        "until": iso_utc(until),
        "count": len(alerts),
        "part": part,
        "parts": parts,
        "groups": [{"rule": rule, "alerts": items} for rule, items in groups.items()],
    }


def refreshed(data: Mapping[str, Any], current: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """``data`` of a digest with each alert replaced by its ``current`` data (by alert id).

    An alert keeps changing after it was gathered (dedupe appends later copies to its
    ``also_seen_in``); a digest not yet delivered should carry what is known when it goes.
    """
    groups = [
        {**group, "alerts": [current.get(a.get("alert_id", ""), a) for a in group["alerts"]]}
        for group in data.get("groups", [])
    ]
    return {**data, "groups": groups}
