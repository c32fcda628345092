"""What the duplicate finder keeps in the database, and reads back (``monitor/dedupe``).

``dedupe_keys`` holds the keys each item is found under (canonical URL, title +
domain, MinHash bands); ``duplicates`` links each later copy to the first copy of its
event. Both are written in the transaction that records the items, so an event's
copies are recognised across sources and restarts. Fingerprints of candidates are
recomputed from the stored item text, so the keys are all that is stored for them.

New keys are written to the small ``dedupe_new_keys``, moved in sorted batches into the
middle-sized ``dedupe_mid_keys`` (:func:`merge_new_keys`), and from there, ten batches at
a time, into ``dedupe_keys`` (:func:`merge_mid_keys`); every lookup reads all three.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Collection, Container, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, text, update
from sqlmodel import Session, col, select

from monitor.alerts import iso_utc
from monitor.dedupe import DedupeOutcome, Event, History, Seen, fingerprint
from monitor.dedupe.fingerprint import BANDS, KeyQuery, key_id, site_of
from storage.commonkeys import split_common
from storage.db import conflict_insert
from storage.tables import (
    AlertRow,
    DedupeKey,
    DedupeMidKey,
    DedupeNewKey,
    DedupeSignature,
    Duplicate,
    ItemRow,
    Meta,
)

InsertIgnoring = Callable[[Session, type[Any], Sequence[dict[str, Any]]], int]
_CHUNK = 500
# The band keys of this many items a query (32 each, sent as one array).
_BAND_QUERY_ITEMS = 250
_KEYS_PRUNED_AT = "dedupe.keys_pruned_at"  # meta: when old keys were last deleted
_PRUNES_PER_WINDOW = 8
# Rows of dedupe_new_keys that make a merge: its ~250 pages stay in SQLite's 2 MB page
# cache, and a merge writes each leaf of dedupe_keys once for ~30 first-poll sources.
# In the first trial (a cold 1,000-source poll, bench/README.md, eighth session) the
# poll process used 38 s of CPU with 50,000, 44 s with 200,000, and 50 s with one table.
DEDUPE_MERGE_ROWS = 50_000
# Rows of dedupe_mid_keys that make a merge into dedupe_keys: ten merges of new keys.
# The middle table (~10 MB at most) is rewritten by each of those, the large one once.
DEDUPE_MID_ROWS = 500_000
_MERGE_LOCK = 0x6E77_6D65_7267_6521  # PostgreSQL advisory lock of the merge ("nwmerge!")


def load_history(
    s: Session,
    queries: Sequence[KeyQuery],
    since: datetime,
    min_bands: int,
    site: str = "",
    present: Container[int] | None = None,
    common: Mapping[int, int] | None = None,
) -> History:
    """The stored items sharing a key with one of ``queries`` (``Fingerprint.query`` of
    each new item) since ``since``, with their events.

    A MinHash band key alone makes no candidate: an item must share an exact key, or
    ``min_bands`` band keys (``DedupePolicy.min_bands``), as ``find_original`` requires.
    ``site``: the site of every item looked up, if they share one (see :func:`_candidates`).
    ``present``: holds every stored key (``storage.keyfilter``); the others are not
    looked up. ``common``: band keys many items hold, with how many
    (``storage.commonkeys``): an item is looked up without as many of its commonest
    ones as it can spare.
    """
    signatures: dict[int, tuple[int, ...]] = {}
    ids = _candidates(s, queries, since, min_bands, site, present, common, signatures)
    if not ids:
        return History()
    root_of, rows, history = _events(s, ids)
    signatures.update(_signatures(s, ids - signatures.keys()))
    for ident in sorted(ids):
        row = rows.get(ident)
        if row is not None:
            signature = signatures.get(ident, ())
            print_ = fingerprint(
                row.title,
                row.summary,
                row.content,
                row.url,
                dict(row.fields),
                signature,
                published=row.published,
            )
            entry = _entry(row, "first" if root_of[ident] == ident else "copy", None)
            history.seen.append(Seen(f"item:{ident}", f"item:{root_of[ident]}", entry, print_))
    return history


def load_events(s: Session, source: str, keys: Sequence[str]) -> dict[str, Event]:
    """The events the stored items ``keys`` of ``source`` belong to, by item key: who
    heard of each event (through any of its copies) and the event's other copies."""
    ids: dict[int, str] = {}
    for chunk in _chunks(sorted(set(keys))):
        query = select(ItemRow.id, ItemRow.item_key).where(
            ItemRow.source == source, col(ItemRow.item_key).in_(chunk)
        )
        ids.update({ident: key for ident, key in s.exec(query).all() if ident is not None})
    if not ids:
        return {}
    root_of, rows, history = _events(s, set(ids))
    events: dict[str, Event] = {}
    for ident, key in ids.items():
        group = f"item:{root_of[ident]}"
        own = rows.get(ident)
        others = [
            entry
            for entry in history.members.get(group, [])
            if own is None
            or (entry["source"], entry["url"], entry["title"]) != (own.source, own.url, own.title)
        ]
        events[key] = Event(dict(history.alerts.get(group, {})), others)
    return events


def _events(s: Session, ids: set[int]) -> tuple[dict[int, int], dict[int, ItemRow], History]:
    """For the stored items ``ids``: the first copy of each one's event, the rows read,
    and a History with each event's members and the alert each notifier got of it."""
    root_of = {i: i for i in ids}
    for chunk in _chunks(sorted(ids)):
        links = select(Duplicate.item_id, Duplicate.original_id).where(
            col(Duplicate.item_id).in_(chunk)
        )
        root_of.update(dict(s.exec(links).all()))
    roots = set(root_of.values())
    copies: list[Duplicate] = []
    for chunk in _chunks(sorted(roots)):
        later = select(Duplicate).where(col(Duplicate.original_id).in_(chunk))
        copies.extend(s.exec(later.order_by(col(Duplicate.at), col(Duplicate.item_id))).all())
    group_of = {**root_of, **{d.item_id: d.original_id for d in copies}}
    members = roots | ids | {d.item_id for d in copies}
    rows: dict[int, ItemRow] = {
        row.id: row
        for chunk in _chunks(sorted(members))
        for row in _items(s, chunk)
        if row.id is not None
    }
    history = History()
    for root in sorted(roots):
        if root in rows:
            history.members[f"item:{root}"] = [_entry(rows[root], "first", None)]
    for copy in copies:
        if copy.item_id in rows:
            entry = _entry(rows[copy.item_id], copy.match, copy.similarity)
            history.members.setdefault(f"item:{copy.original_id}", []).append(entry)
    for chunk in _chunks(sorted(members)):
        alerts = (
            select(AlertRow.id, AlertRow.item_id, AlertRow.notifier)
            .where(col(AlertRow.item_id).in_(chunk))
            .order_by(col(AlertRow.created_at), col(AlertRow.id))
        )
        for alert_id, alerted, notifier in s.exec(alerts).all():
            if alerted is None:  # system messages are about no item
                continue
            group = history.alerts.setdefault(f"item:{group_of.get(alerted, alerted)}", {})
            group.setdefault(notifier, alert_id)
    return root_of, rows, history


def record_outcome(
    s: Session,
    source: str,
    outcome: DedupeOutcome,
    now: datetime,
    insert: InsertIgnoring,
    known: Mapping[str, int] | None = None,
) -> list[int]:
    """Store the new items' keys, their links to earlier copies, and the attachments;
    drop the keys and signatures that have left the window (links stay: status shows them).
    ``known``: item ids by key, as the insert of this transaction returned them; the
    others (an item another replica inserted first) are read. The keys of the rows
    written to ``dedupe_new_keys``."""
    if outcome.prune_before is not None:
        s.execute(delete(DedupeSignature).where(col(DedupeSignature.at) < outcome.prune_before))
        _prune_keys(s, outcome.prune_before, now, insert)
    known = known or {}
    ids = {key: known[key] for key in outcome.fingerprints if key in known}
    for chunk in _chunks([key for key in outcome.fingerprints if key not in ids]):
        query = select(ItemRow.item_key, ItemRow.id).where(
            ItemRow.source == source, col(ItemRow.item_key).in_(chunk)
        )
        ids.update({key: ident for key, ident in s.exec(query).all() if ident is not None})
    rows = [
        (key, ids[item])
        for item, print_ in outcome.fingerprints.items()
        if item in ids
        for key in sorted(print_.stored_ids)
    ]
    insert_key_rows(s, DedupeNewKey, rows)
    signatures = [
        {"item_id": ids[item], "signature": pack_signature(print_.signature), "at": now}
        for item, print_ in outcome.fingerprints.items()
        if item in ids and print_.signature
    ]
    insert_many(s, DedupeSignature, signatures)
    links = []
    for link in outcome.links:
        root = _root_id(link.group, ids)
        if root is not None and link.item_key in ids:
            links.append(
                {
                    "item_id": ids[link.item_key],
                    "original_id": root,
                    "match": link.match,
                    "similarity": link.similarity,
                    "at": now,
                }
            )
    insert(s, Duplicate, links)
    for attachment in outcome.attachments:
        alert = s.get(AlertRow, attachment.alert_id)
        if alert is None:
            continue
        also = [*alert.data.get("also_seen_in", []), attachment.entry]
        alert.data = {**alert.data, "also_seen_in": also}  # a new dict: JSON columns compare
        s.add(alert)
    return [key for key, _ in rows]


def count_keys(s: Session, table: type[DedupeNewKey] | type[DedupeMidKey]) -> int:
    """The rows waiting in ``table`` for a merge."""
    return int(s.exec(select(func.count()).select_from(table)).one())


def merge_new_keys(s: Session) -> int:
    """Move every row of ``dedupe_new_keys`` into ``dedupe_mid_keys``, in the caller's
    transaction; the number of rows moved (0 when another replica is merging)."""
    return _move(s, "dedupe_new_keys", "dedupe_mid_keys")


def merge_mid_keys(s: Session) -> int:
    """Move every row of ``dedupe_mid_keys`` into ``dedupe_keys``, as :func:`merge_new_keys`."""
    return _move(s, "dedupe_mid_keys", "dedupe_keys")


def _move(s: Session, source: str, target: str) -> int:
    """Move every row of the key table ``source`` into ``target``, in key order (the two
    names are this module's constants, never input: hence the ``noqa: S608``).

    Sorted, the rows fill each leaf of the target in one visit. On PostgreSQL the rows
    moved are exactly those deleted, so keys another replica writes meanwhile wait for
    the next merge instead of being lost.
    """
    if s.get_bind().dialect.name == "postgresql":
        # Two replicas deleting the same rows in different orders would deadlock: one
        # merges, the other leaves the rows to it. (Held to the commit, and taken again
        # at once by the same transaction: both merges of one commit run under it.)
        if not s.execute(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _MERGE_LOCK}
        ).scalar():
            return 0
        moved = s.execute(
            text(
                f"WITH moved AS (DELETE FROM {source} RETURNING key, item_id), "  # noqa: S608
                f"copied AS (INSERT INTO {target} (key, item_id) "
                "SELECT key, item_id FROM moved ORDER BY key, item_id ON CONFLICT DO NOTHING) "
                "SELECT count(*) FROM moved"
            )
        )
        return int(moved.scalar_one())
    # One writer at a time on SQLite: nothing is added between the copy and the delete.
    s.execute(
        text(
            f"INSERT INTO {target} (key, item_id) "  # noqa: S608
            f"SELECT key, item_id FROM {source} WHERE true ORDER BY key, item_id "
            "ON CONFLICT DO NOTHING"
        )
    )
    deleted = s.execute(text(f"DELETE FROM {source}"))  # noqa: S608
    return int(deleted.rowcount or 0)  # type: ignore[attr-defined]


def _prune_keys(s: Session, before: datetime, now: datetime, insert: InsertIgnoring) -> None:
    """Delete the keys of items first seen before ``before``, at most every eighth of
    the window: the key table has no index by time or item (one was as large as the
    table, and half of a first poll's writes), so this reads the whole table."""
    mark = s.get(Meta, _KEYS_PRUNED_AT)
    if mark is not None:
        last = datetime.fromisoformat(mark.value)
        if now - last < (now - before) / _PRUNES_PER_WINDOW:
            return
    # Item ids grow with first_seen: every item below the first one still in the window
    # has left it (one out of order, near the boundary, waits for the next pruning).
    boundary = s.exec(select(func.min(ItemRow.id)).where(ItemRow.first_seen >= before)).one()
    for table in (DedupeKey, DedupeMidKey, DedupeNewKey):
        prune = delete(table)
        s.execute(prune if boundary is None else prune.where(col(table.item_id) < boundary))
    insert(s, Meta, [{"key": _KEYS_PRUNED_AT, "value": now.isoformat()}])  # replicas race
    s.execute(update(Meta).where(col(Meta.key) == _KEYS_PRUNED_AT).values(value=now.isoformat()))


def insert_key_rows(
    s: Session,
    table: type[DedupeKey] | type[DedupeMidKey] | type[DedupeNewKey],
    rows: Sequence[tuple[int, int]],
) -> None:
    """INSERT ... ON CONFLICT DO NOTHING of ``(key, item_id)`` rows, handed to the
    driver's executemany as they are.

    A first poll's source brings ~1,700 of them. Through SQLAlchemy each row was a
    dict whose parameters were processed in Python, which cost more than SQLite's
    inserts (2.7-4.6 against 1.2 ms for 1,700 rows); two integers need no processing.
    """
    if not rows:
        return
    connection = s.connection()
    mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    connection.exec_driver_sql(
        f"INSERT INTO {table.__tablename__} (key, item_id) "  # noqa: S608 (a table's name)
        f"VALUES ({mark}, {mark}) ON CONFLICT DO NOTHING",
        list(rows),
    )


def insert_many(s: Session, table: type[Any], rows: Sequence[dict[str, Any]]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING of ``rows`` as one Core executemany.

    For the ~34 key rows an item brings: unlike the ORM's bulk insert with RETURNING
    (which counts what was new, and costs about as much again in Python), nothing is
    read back, so the driver runs one prepared statement over all the rows.
    """
    if not rows:
        return
    insert = conflict_insert(s.get_bind().dialect.name, table.__table__)
    s.execute(insert.on_conflict_do_nothing(), list(rows))


def recent_events(s: Session, since: datetime, limit: int) -> list[tuple[ItemRow, list[ItemRow]]]:
    """The events seen more than once since ``since``: first copy, later copies; newest first."""
    query = (
        select(Duplicate)
        .where(col(Duplicate.at) >= since)
        .order_by(col(Duplicate.at).desc(), col(Duplicate.item_id).desc())
    )
    by_root: dict[int, list[int]] = {}
    for link in s.exec(query).all():
        if link.original_id not in by_root and len(by_root) >= limit:
            continue
        by_root.setdefault(link.original_id, []).insert(0, link.item_id)
    wanted = sorted({*by_root, *(i for copies in by_root.values() for i in copies)})
    rows = {row.id: row for chunk in _chunks(wanted) for row in _items(s, chunk)}
    return [
        (rows[root], [rows[i] for i in copies if i in rows])
        for root, copies in by_root.items()
        if root in rows
    ]


def pack_signature(signature: Sequence[int]) -> bytes:
    """A MinHash signature (unsigned 64-bit values) as big-endian 64-bit integers."""
    return struct.pack(f">{len(signature)}Q", *signature)


def unpack_signature(packed: bytes) -> tuple[int, ...]:
    return struct.unpack(f">{len(packed) // 8}Q", packed)


def _candidates(
    s: Session,
    queries: Sequence[KeyQuery],
    since: datetime,
    min_bands: int,
    site: str = "",
    present: Container[int] | None = None,
    common: Mapping[int, int] | None = None,
    signatures: dict[int, tuple[int, ...]] | None = None,
) -> set[int]:
    """The items within the window sharing an exact key, or ``min_bands`` band keys, with
    one of ``queries``; when ``site`` is the site of every item looked up, not those of that
    site found by their bands alone.

    Two pages of one site are never near duplicates (``conflicting``), so those could
    only be turned down, after costing a load and a fingerprint each. SAM.gov notices,
    all on sam.gov, compared on titles that repeat, brought more of them as the
    database grew: 3 a search early in a first 1,000-source poll, 15 by its end
    (bench/README.md, ninth session).

    Items found by their bands are then turned down unless their stored signature has
    ``min_bands`` whole bands equal to a query's (the stored signatures read go into
    ``signatures``): a lookup's count is over the keys of a whole batch, or over part of
    an item's keys (``split_common``), so it finds spares, and each cost a load and a
    fingerprint. A pair the threshold accepts has those bands equal (``min_shared_bands``).
    """
    exact = {key for asked in queries for key in asked.exact}
    if present is not None:
        exact = {k for k in exact if k in present}
    by_key: set[int] = set(_holding(s, sorted(exact), 1)) if exact else set()
    by_bands: set[int] = set()
    # The database counts the bands: a query's keys are those of whole items, so an
    # item sharing min_bands with one of them is counted complete (and one sharing a
    # few with each of several is a spare candidate, which find_original turns down).
    # Counting in Python read back every item sharing a single band.
    # Band keys many items hold are left out, each item then asking for one band fewer
    # per key left out (storage.commonkeys): a query of those read every item holding them.
    for start in range(0, len(queries), _BAND_QUERY_ITEMS):
        group: list[list[int]] = []
        for asked in queries[start : start + _BAND_QUERY_ITEMS]:
            # A key not stored holds no item: leaving it out changes no count.
            group.append([b for b in asked.bands if present is None or b in present])
        for at_least, bands in sorted(split_common(group, common or {}, min_bands).items()):
            by_bands.update(_holding(s, sorted(bands), at_least))
    # The window: a key row was written with its item, at the item's first_seen.
    # Only the one field site_of reads is taken out of ``fields``: most band finds of a
    # shared SAM description are turned down here, and decoding each one's whole fields
    # was about half of this query's time (bench/README.md, twenty-second session).
    source_url_of = col(ItemRow.fields)["source_url"]
    recent: set[int] = set()
    for chunk in _chunks(sorted(by_key | by_bands)):
        query = select(ItemRow.id, ItemRow.url, source_url_of).where(
            col(ItemRow.id).in_(chunk), ItemRow.first_seen >= since
        )
        for ident, url, source_url in s.exec(query).all():
            if ident is None:
                continue
            publisher = {} if source_url is None else {"source_url": source_url}
            if not site or ident in by_key or site_of(url, publisher) != site:
                recent.add(ident)
    # Last, as the fewest are left: at 5,000 sources, reading the signatures of every
    # band find before the window and site took ~16 s more of a cold poll's loop.
    banded = recent - by_key
    read = _signatures(s, banded)
    if signatures is not None:
        signatures.update(read)
    return (recent & by_key) | _sharing_bands(banded, read, queries, min_bands)


def _signatures(s: Session, ids: Collection[int]) -> dict[int, tuple[int, ...]]:
    """The stored MinHash signatures of the items ``ids`` that have one."""
    signatures: dict[int, tuple[int, ...]] = {}
    for chunk in _chunks(sorted(ids)):
        stored = select(DedupeSignature.item_id, DedupeSignature.signature).where(
            col(DedupeSignature.item_id).in_(chunk)
        )
        signatures.update({i: unpack_signature(packed) for i, packed in s.exec(stored).all()})
    return signatures


def _sharing_bands(
    ids: set[int],
    signatures: Mapping[int, tuple[int, ...]],
    queries: Sequence[KeyQuery],
    min_bands: int,
) -> set[int]:
    """Of ``ids``, those whose signature has ``min_bands`` whole bands equal to one of
    ``queries``'; an item whose signature cannot be compared (none stored, another
    length, or a query without one) is kept for ``find_original`` to judge."""
    asked = [q.signature for q in queries if q.bands]
    width = len(asked[0]) if asked else 0
    if not ids or not width or width % BANDS or any(len(a) != width for a in asked):
        return set(ids)
    # Imported here, as minhash64 is: numpy loads with the first MinHash, not every command.
    import numpy as np

    from monitor.dedupe.minhash64 import shared_bands

    kept = {i for i in ids if len(signatures.get(i, ())) != width}
    comparable = sorted(ids - kept)
    wanted = np.array(asked, dtype=np.uint64)
    # A block of found x asked x width booleans stays near 1 MB.
    step = max(1, (1 << 20) // (len(asked) * width))
    for start in range(0, len(comparable), step):
        block = comparable[start : start + step]
        found = np.array([signatures[i] for i in block], dtype=np.uint64)
        best = shared_bands(found, wanted, BANDS).max(axis=1)
        kept.update(i for i, count in zip(block, best.tolist(), strict=True) if count >= min_bands)
    return kept


def _holding(s: Session, keys: Sequence[int], at_least: int) -> list[int]:
    """The items holding ``at_least`` of ``keys``, merged (dedupe_keys) or waiting
    (dedupe_mid_keys, dedupe_new_keys); a key in two tables counts once.

    The keys go as one array (PostgreSQL) or JSON text (SQLite, ``json_each``): as
    8,000 bound parameters each, SQLAlchemy's Python spent more on expanding them
    than SQLite on the lookups.
    """
    value: list[int] | str
    if s.get_bind().dialect.name == "postgresql":
        query, value = _HOLDING_POSTGRESQL, list(keys)
    else:
        query, value = _HOLDING_SQLITE, json.dumps(list(keys))
    rows = s.execute(text(query), {"keys": value, "at_least": at_least}).all()
    return [int(i) for (i,) in rows]


_HOLDING_SQLITE = """
SELECT item_id FROM (
    SELECT key, item_id FROM dedupe_keys WHERE key IN (SELECT value FROM json_each(:keys))
    UNION ALL
    SELECT key, item_id FROM dedupe_mid_keys WHERE key IN (SELECT value FROM json_each(:keys))
    UNION ALL
    SELECT key, item_id FROM dedupe_new_keys WHERE key IN (SELECT value FROM json_each(:keys))
) AS held GROUP BY item_id HAVING count(DISTINCT key) >= :at_least
"""
_HOLDING_POSTGRESQL = """
SELECT item_id FROM (
    SELECT key, item_id FROM dedupe_keys WHERE key = ANY(CAST(:keys AS BIGINT[]))
    UNION ALL
    SELECT key, item_id FROM dedupe_mid_keys WHERE key = ANY(CAST(:keys AS BIGINT[]))
    UNION ALL
    SELECT key, item_id FROM dedupe_new_keys WHERE key = ANY(CAST(:keys AS BIGINT[]))
) AS held GROUP BY item_id HAVING count(DISTINCT key) >= :at_least
"""


def _root_id(group: str, ids: dict[str, int]) -> int | None:
    kind, _, ref = group.partition(":")
    if kind == "item":
        return int(ref)
    return ids.get(ref)  # "new:<key>": an earlier item of this same batch


def _entry(row: ItemRow, match: str, similarity: float | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "source": row.source,
        "title": row.title,
        "url": row.url,
        "published": iso_utc(row.published) if row.published else None,
        "seen_at": iso_utc(row.first_seen),
        "match": match,
    }
    if similarity is not None:
        entry["similarity"] = similarity
    return entry


def _items(s: Session, ids: Sequence[int]) -> Sequence[ItemRow]:
    return s.exec(select(ItemRow).where(col(ItemRow.id).in_(ids))).all()


def _chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


__all__ = [
    "DEDUPE_MERGE_ROWS",
    "DEDUPE_MID_ROWS",
    "count_keys",
    "insert_key_rows",
    "insert_many",
    "key_id",
    "load_events",
    "load_history",
    "merge_mid_keys",
    "merge_new_keys",
    "pack_signature",
    "recent_events",
    "record_outcome",
    "unpack_signature",
]
