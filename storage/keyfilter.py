"""Which dedupe keys are certainly not stored: a Bloom filter in front of the key tables.

A new item's ~34 keys are looked up in three tables (``storage.dedupe``), and almost
none of them are there: a new item is mostly a new story. In a first poll of 1,000
sources those lookups were ~6 s of the event loop's ~40 s. The filter answers "not
stored" from memory for most keys, and only the rest are looked up.

The lookups stay exact because the filter holds *every* key of the tables (it may hold
more: pruned keys, and its false positives, which the lookup then does not find). That
is known to hold while the meta row :data:`KEYS_TOKEN` is the token this filter wrote
itself: every commit that writes key rows writes a new token, and the filter takes the
keys of its own commits. Another process (a ``poll`` beside ``run``, a replica) writing
keys makes it stale: lookups go to the tables whole, as without a filter, until the keys
looked up that way are worth a rebuild (a scan of the three tables: a row scanned costs
about a third of a key looked up).

A full filter grows a layer twice its size (a scalable Bloom filter, Almeida et al. 2007)
rather than rescanning the tables: a first poll of 5,000 sources rescanned 4 M and then
8 M rows, ~3 % of its poll process (bench/README.md, eighteenth session). The layers'
false-positive rates halve, so together they stay under twice the first's. A scan is
still made once the layers hold :data:`MAX_GROWTH` times what the last one read: it
drops the keys pruned since, which the layers keep.
"""

from __future__ import annotations

import uuid
from collections.abc import Container, Sequence
from datetime import datetime

from rbloom import Bloom
from sqlalchemy import func
from sqlmodel import Session, select

from storage.db import conflict_insert
from storage.tables import ItemRow, Meta

KEYS_TOKEN = "dedupe.keys_token"  # noqa: S105 (a meta key, no secret): new at each key write
FALSE_POSITIVE_RATE = 0.01
MIN_CAPACITY = 1 << 22  # ~5 MB; a first poll of 1,000 sources writes ~1.7 M keys
# A key looked up in the tables costs three index probes (~1.5 us on a cold 1,000-source
# database); a row scanned into the filter ~0.45 us (bench/README.md, twelfth session).
REBUILD_RATIO = 0.25
MAX_GROWTH = 4  # held keys, against the rows of the last scan, before a rescan
# Rows a scan holds at once: 50,000 rows' tuples took ~4.4 MB of small-object arenas,
# which stayed with `run` (live objects around them keep an arena from going back).
SCAN_BATCH = 5_000
KEYS_PER_ITEM = 34  # about: 32 band keys, the URL, the title (the estimate of a scan)
_SCAN = (
    "SELECT key FROM dedupe_keys UNION ALL SELECT key FROM dedupe_mid_keys "
    "UNION ALL SELECT key FROM dedupe_new_keys"
)


class KeyFilter:
    """One process's filter of the stored dedupe keys (used from the event loop only).

    ``usable(s, since, keys)`` before a lookup (in the lookup's own transaction),
    ``stamp(s)`` in every transaction that writes key rows, ``committed(...)`` once
    that transaction has committed.
    """

    def __init__(
        self,
        *,
        min_capacity: int = MIN_CAPACITY,
        rebuild_ratio: float = REBUILD_RATIO,
    ) -> None:
        self._min_capacity = min_capacity
        self._rebuild_ratio = rebuild_ratio
        self._layers: list[Bloom] = []  # the newest last; empty: not built
        self._view: Container[int] | None = None  # what lookups ask (one layer or all)
        self._token: str | None = None  # the stored token the filter is exact for
        self._capacity = 0  # of the newest layer
        self._in_layer = 0  # keys put in the newest layer
        self._added = 0  # keys put in since the last build (with those of the build)
        self._scanned = 0  # rows the last build read (at least ``min_capacity``)
        self._unfiltered = 0  # keys looked up in the tables since it was last exact
        self._estimate: int | None = None  # rows a first scan would read, about
        self.builds = 0  # scans of the key tables so far (for tests and benchmarks)

    @property
    def layers(self) -> int:
        """Bloom filters the keys are spread over (for tests and benchmarks)."""
        return len(self._layers)

    def usable(self, s: Session, since: datetime, keys: int) -> Container[int] | None:
        """The filter, if it holds every stored key (rebuilt here once that pays);
        None: look all ``keys`` up in the tables (they count towards the rebuild)."""
        stored = _token(s)
        built = bool(self._layers)
        overfull = built and self._added > MAX_GROWTH * self._scanned
        if built and stored == self._token and not overfull:
            return self._view
        if self._estimate is None:
            self._estimate = _estimated_rows(s, since)
        rows = self._added if built else self._estimate
        if not overfull and self._unfiltered < rows * self._rebuild_ratio:
            self._unfiltered += keys
            return None
        self._build(s, stored, rows)
        return self._view

    @staticmethod
    def stamp(s: Session) -> tuple[str | None, str]:
        """Write a new token in ``s`` (a transaction writing key rows): (the token it
        replaces, the new one), for :meth:`committed`."""
        before = _token(s)
        after = uuid.uuid4().hex
        values = {"key": KEYS_TOKEN, "value": after}
        upsert = conflict_insert(s.get_bind().dialect.name, Meta).values(values)
        s.execute(upsert.on_conflict_do_update(index_elements=["key"], set_={"value": after}))
        return before, after

    def committed(self, stamp: tuple[str | None, str], keys: Sequence[int]) -> None:
        """The transaction :meth:`stamp` was given has committed ``keys``. The filter
        stays exact only if it was exact for the token that commit replaced."""
        before, after = stamp
        if not self._layers or before != self._token:
            return
        if self._in_layer >= self._capacity:
            self._grow()
        self._layers[-1].update(keys)
        self._in_layer += len(keys)
        self._added += len(keys)
        self._token = after

    def _grow(self) -> None:
        # A commit's keys all go in one layer, which may end a little over its capacity
        # (a few more false positives); the next commit opens the next layer.
        self._capacity *= 2
        rate = FALSE_POSITIVE_RATE / 2 ** len(self._layers)
        self._layers.append(Bloom(self._capacity, rate))
        self._in_layer = 0
        self._view = _Layers(tuple(self._layers))

    def _build(self, s: Session, token: str | None, rows: int) -> None:
        # The token first: keys committed between the two reads only make the filter
        # hold more than that token promises, never less.
        capacity = max(self._min_capacity, 2 * rows)
        bloom = Bloom(capacity, FALSE_POSITIVE_RATE)
        added = 0
        # The driver's own cursor: through SQLAlchemy's rows a scan cost ~1.9 us a key
        # against ~0.45 (PostgreSQL: a server-side cursor, not the table in memory).
        raw = s.connection().connection.driver_connection
        assert raw is not None
        postgres = s.get_bind().dialect.name == "postgresql"
        cursor = raw.cursor(name="noticewatch_key_scan") if postgres else raw.cursor()
        try:
            cursor.execute(_SCAN)
            while batch := cursor.fetchmany(SCAN_BATCH):
                bloom.update(key for (key,) in batch)
                added += len(batch)
        finally:
            cursor.close()
        # Read more than the estimate said: still exact, with more false positives, and
        # grown a layer at the next commit.
        self._layers, self._view, self._token = [bloom], bloom, token
        self._capacity, self._in_layer, self._added = capacity, added, added
        self._scanned, self._unfiltered = max(added, self._min_capacity), 0
        self.builds += 1


class _Layers:
    """A key is held if any layer holds it (a miss asks them all: ~60 ns a layer)."""

    def __init__(self, layers: tuple[Bloom, ...]) -> None:
        self._layers = layers

    def __contains__(self, key: object) -> bool:
        return any(key in layer for layer in self._layers)


def _token(s: Session) -> str | None:
    row = s.get(Meta, KEYS_TOKEN, populate_existing=True)
    return row.value if row is not None else None


def _estimated_rows(s: Session, since: datetime) -> int:
    """About the rows a scan would read: the keys of the items within the window (an
    index range count; the key tables have no cheap count)."""
    query = select(func.count()).select_from(ItemRow).where(ItemRow.first_seen >= since)
    return int(s.exec(query).one()) * KEYS_PER_ITEM


__all__ = ["KEYS_TOKEN", "MAX_GROWTH", "KeyFilter"]
