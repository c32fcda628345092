"""One alert per event (pure): which new items are later copies, and what becomes of their alerts.

:func:`dedupe_batch` takes the new items of one poll, the alert drafts planned for
them, and :class:`History` (the earlier items that share a key with them, read from
the database), and returns the drafts to write plus what to record:

- an item with no earlier copy is the first copy of its event and alerts as planned;
- a later copy (same canonical URL; aggregator title + publisher domain; or a near
  duplicate above the threshold whose titles do not name different things), published
  within :data:`MAX_PUBLISHED_GAP` of the earlier one when both are dated, plans no
  alert for a notifier that already heard of the event: it is appended to the
  ``also_seen_in`` of that notifier's alert instead. A notifier that never heard of
  the event (the first copy matched none of its rules) gets an alert, whose
  ``also_seen_in`` lists the copies seen before.

Items are taken earliest published first, so two copies in one poll are one event too,
first seen as the earlier of the two.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from monitor.alerts import EVENT_ALERT, AlertDraft, iso_utc
from monitor.dedupe.fingerprint import (
    Fingerprint,
    conflicting,
    min_shared_bands,
    similarity,
)
from monitor.models import Item

DEFAULT_THRESHOLD = 0.6
DEFAULT_WINDOW = timedelta(days=7)
# Copies of one event are published within days of each other; beyond this gap two dated
# items are two events however alike they read: a weekly column keeps its title
# ("Data protection roundup") week after week.
MAX_PUBLISHED_GAP = timedelta(days=3)


@dataclass(frozen=True)
class DedupePolicy:
    """``threshold``: the estimated Jaccard similarity of word 2-shingles from which two
    items are one event; ``window``: how far back an earlier copy is looked for."""

    threshold: float = DEFAULT_THRESHOLD
    window: timedelta = DEFAULT_WINDOW

    @cached_property
    def min_bands(self) -> int:
        """The band keys a stored item must share with a new one to be compared with it."""
        return min_shared_bands(self.threshold)


@dataclass(frozen=True)
class Seen:
    """An earlier item that may be the original of a new one."""

    ref: str  # "item:<id>" (stored) or "new:<key>" (earlier in this batch)
    group: str  # the ref of the first copy of its event
    entry: dict[str, Any]  # what also_seen_in shows of it
    fingerprint: Fingerprint


@dataclass
class History:
    """What the database knows of the events the new items may belong to."""

    seen: list[Seen] = field(default_factory=list)
    alerts: dict[str, dict[str, str]] = field(default_factory=dict)  # group -> notifier -> id
    members: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # group -> entries


@dataclass(frozen=True)
class Event:
    """The event a stored item belongs to: the alert each notifier got of it (through
    any of its copies) and what ``also_seen_in`` shows of its other copies."""

    alerts: dict[str, str]  # notifier -> alert id
    others: list[dict[str, Any]]


@dataclass(frozen=True)
class CopyLink:
    """The new item ``item_key`` is a later copy of the event first seen as ``group``."""

    item_key: str
    group: str
    match: str
    similarity: float


@dataclass(frozen=True)
class Attachment:
    """Append ``entry`` to the ``also_seen_in`` of the stored alert ``alert_id``."""

    alert_id: str
    entry: dict[str, Any]


@dataclass(frozen=True)
class DedupeOutcome:
    drafts: list[AlertDraft]
    fingerprints: dict[str, Fingerprint]  # by key, for every new item
    links: list[CopyLink]
    attachments: list[Attachment]
    prune_before: datetime | None = None  # stored keys older than this can go


@dataclass(frozen=True)
class Verdict:
    original: Seen
    match: str
    similarity: float


def find_original(fp: Fingerprint, seen: Sequence[Seen], policy: DedupePolicy) -> Verdict | None:
    """The earlier item ``fp`` is a copy of: an exact match first, else the nearest."""
    for candidate in seen:
        shared = fp.lookup & candidate.fingerprint.stored
        if any(k.startswith("u:") for k in shared):
            return Verdict(candidate, "same_url", 1.0)
        if shared and not _far_apart(fp, candidate.fingerprint):
            return Verdict(candidate, "same_title", 1.0)
    best: Verdict | None = None
    for candidate in seen:
        if len(fp.bands & candidate.fingerprint.bands) < policy.min_bands:
            continue
        score = similarity(fp.signature, candidate.fingerprint.signature)
        if score < policy.threshold or conflicting(fp, candidate.fingerprint):
            continue
        if _far_apart(fp, candidate.fingerprint):
            continue
        if best is None or score > best.similarity:
            best = Verdict(candidate, "near", round(score, 3))
    return best


def _far_apart(a: Fingerprint, b: Fingerprint) -> bool:
    if a.published is None or b.published is None:
        return False
    return abs(a.published - b.published) > MAX_PUBLISHED_GAP


def item_entry(item: Item, seen_at: datetime) -> dict[str, Any]:
    return {
        "source": item.source,
        "title": item.title,
        "url": item.url,
        "published": iso_utc(item.published) if item.published else None,
        "seen_at": iso_utc(seen_at),
    }


def dedupe_batch(
    items: Sequence[Item],
    fingerprints: Mapping[str, Fingerprint],
    drafts: Sequence[AlertDraft],
    history: History,
    policy: DedupePolicy,
    now: datetime,
) -> DedupeOutcome:
    """Split ``drafts`` of the new ``items`` into alerts and attachments (see the module)."""
    by_item: dict[str, list[AlertDraft]] = {}
    for draft in drafts:
        by_item.setdefault(draft.item_key, []).append(draft)
    seen = _SeenIndex(history.seen, policy.min_bands, list(fingerprints.values()))
    alerts = {group: dict(ids) for group, ids in history.alerts.items()}
    members = {group: list(entries) for group, entries in history.members.items()}
    planned: dict[str, AlertDraft] = {}  # drafts of this batch by alert id
    attachments: list[Attachment] = []
    links: list[CopyLink] = []
    for item in _earliest_first(items):
        fp = fingerprints[item.key]
        verdict = find_original(fp, seen.candidates(fp), policy)
        entry = item_entry(item, now)
        if verdict is None:
            group = "new:" + item.key
            entry["match"] = "first"
            earlier: list[dict[str, Any]] = []
        else:
            group = verdict.original.group
            entry |= {"match": verdict.match, "similarity": verdict.similarity}
            links.append(CopyLink(item.key, group, verdict.match, verdict.similarity))
            earlier = members.get(group) or [verdict.original.entry]
            for alert_id in alerts.get(group, {}).values():
                if alert_id in planned:  # an alert of this same batch: amend it before writing
                    planned[alert_id] = _with_copy(planned[alert_id], entry)
                else:
                    attachments.append(Attachment(alert_id, entry))
        heard = alerts.setdefault(group, {})
        for draft in by_item.get(item.key, []):
            if draft.notifier in heard:
                continue
            fresh = replace(draft, data={**draft.data, "also_seen_in": list(earlier)})
            planned[fresh.alert_id] = fresh
            heard[draft.notifier] = fresh.alert_id
        members.setdefault(group, list(earlier)).append(entry)
        seen.add(Seen("new:" + item.key, group, entry, fp))
    new_keys = {item.key for item in items}
    others = [d for d in drafts if d.item_key not in new_keys]  # updated items: not dedupe's
    kept = [*others, *planned.values()]
    return DedupeOutcome(kept, dict(fingerprints), links, attachments, now - policy.window)


class _SeenIndex:
    """The items seen so far, found by key: an item is compared only with those that
    share an exact key or ``min_bands`` band keys with it (the others cannot
    match in ``find_original``), in the order they were seen, so the verdict is the
    one a scan of them all would give. A batch of 50 new items against a history of
    hundreds compared every pair.

    ``asking`` are the fingerprints that will be looked up (and added after). Only the
    bands two of them, or one of them and a seen item, hold are indexed: no other band
    can be shared, and in a first poll almost none is (indexing all 32 of every item
    was ~1.8 M dict calls a 1,000-source cycle, bench/README.md, twenty-sixth session).
    """

    def __init__(self, seen: Sequence[Seen], min_bands: int, asking: Sequence[Fingerprint]) -> None:
        self._min_bands = min_bands
        self._seen: list[Seen] = []
        self._by_key: dict[str, list[int]] = {}
        self._by_band: dict[int, list[int]] = {}
        held: set[int] = set()
        for one in seen:
            held |= one.fingerprint.bands
        shared: set[int] = set()
        for print_ in asking:
            shared |= print_.bands & held
            held |= print_.bands
        self._shared = frozenset(shared)
        for one in seen:
            self.add(one)

    def add(self, seen: Seen) -> None:
        index = len(self._seen)
        self._seen.append(seen)
        for key in seen.fingerprint.stored:
            self._by_key.setdefault(key, []).append(index)
        for band in seen.fingerprint.bands & self._shared:
            self._by_band.setdefault(band, []).append(index)

    def candidates(self, fp: Fingerprint) -> list[Seen]:
        exact: set[int] = set()
        for key in fp.lookup:
            exact.update(self._by_key.get(key, ()))
        shared: dict[int, int] = {}
        for band in fp.bands & self._shared:
            for index in self._by_band.get(band, ()):
                shared[index] = shared.get(index, 0) + 1
        exact.update(i for i, count in shared.items() if count >= self._min_bands)
        return [self._seen[i] for i in sorted(exact)]


def settle_amended(drafts: Sequence[AlertDraft], events: Mapping[str, Event]) -> list[AlertDraft]:
    """The drafts of amended items (``events`` by item key) as one alert per event: a
    notifier that already heard of the event through another copy gets no second
    ``alert.created``; every other draft lists the event's other copies in ``also_seen_in``."""
    kept = []
    for draft in drafts:
        event = events.get(draft.item_key)
        if event is None:
            kept.append(draft)
            continue
        if draft.event_type == EVENT_ALERT and draft.notifier in event.alerts:
            continue  # told of this event already; an amended copy is not a new event
        kept.append(replace(draft, data={**draft.data, "also_seen_in": list(event.others)}))
    return kept


def _earliest_first(items: Sequence[Item]) -> list[Item]:
    """Feeds list newest first, so a copy can precede the original in one poll: the
    earliest published is the first copy; undated items keep their order, after them."""
    return sorted(items, key=lambda i: (i.published is None, i.published or datetime.min))


def _with_copy(draft: AlertDraft, entry: dict[str, Any]) -> AlertDraft:
    also = [*draft.data.get("also_seen_in", []), entry]
    return replace(draft, data={**draft.data, "also_seen_in": also})


__all__ = [
    "Attachment",
    "CopyLink",
    "DedupeOutcome",
    "DedupePolicy",
    "Event",
    "History",
    "Seen",
    "dedupe_batch",
    "find_original",
    "item_entry",
    "settle_amended",
]
