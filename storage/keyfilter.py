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
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from rbloom import Bloom
from sqlalchemy import func
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, select

from storage.tables import ItemRow, Meta

KEYS_TOKEN = "dedupe.keys_token"  # noqa: S105 (a meta key, no secret): new at each key write
FALSE_POSITIVE_RATE = 0.01
MIN_CAPACITY = 1 << 22  # ~5 MB; a first poll of 1,000 sources writes ~1.7 M keys
# A key looked up in the tables costs three index probes (~1.5 us on a cold 1,000-source
# database); a row scanned into the filter ~0.45 us (bench/README.md, twelfth session).
REBUILD_RATIO = 0.25
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
        self._bloom: Bloom | None = None
        self._token: str | None = None  # the stored token the filter is exact for
        self._capacity = 0
        self._added = 0  # keys put in since the last build (with those of the build)
        self._unfiltered = 0  # keys looked up in the tables since it was last exact
        self._estimate: int | None = None  # rows a first scan would read, about
        self.builds = 0  # scans of the key tables so far (for tests and benchmarks)

    def usable(self, s: Session, since: datetime, keys: int) -> Bloom | None:
        """The filter, if it holds every stored key (rebuilt here once that pays);
        None: look all ``keys`` up in the tables (they count towards the rebuild)."""
        stored = _token(s)
        built = self._bloom is not None
        overfull = built and self._added > self._capacity
        if built and stored == self._token and not overfull:
            return self._bloom
        if self._estimate is None:
            self._estimate = _estimated_rows(s, since)
        rows = self._added if built else self._estimate
        if not overfull and self._unfiltered < rows * self._rebuild_ratio:
            self._unfiltered += keys
            return None
        self._build(s, stored, rows)
        return self._bloom

    @staticmethod
    def stamp(s: Session) -> tuple[str | None, str]:
        """Write a new token in ``s`` (a transaction writing key rows): (the token it
        replaces, the new one), for :meth:`committed`."""
        before = _token(s)
        after = uuid.uuid4().hex
        values = {"key": KEYS_TOKEN, "value": after}
        dialect = postgresql if s.get_bind().dialect.name == "postgresql" else sqlite
        upsert = dialect.insert(Meta).values(values)
        s.execute(upsert.on_conflict_do_update(index_elements=["key"], set_={"value": after}))
        return before, after

    def committed(self, stamp: tuple[str | None, str], keys: Sequence[int]) -> None:
        """The transaction :meth:`stamp` was given has committed ``keys``. The filter
        stays exact only if it was exact for the token that commit replaced."""
        before, after = stamp
        if self._bloom is None or before != self._token:
            return
        self._bloom.update(keys)
        self._added += len(keys)
        self._token = after

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
            while batch := cursor.fetchmany(50_000):
                bloom.update(key for (key,) in batch)
                added += len(batch)
        finally:
            cursor.close()
        # Read more than the estimate said: still exact, with more false positives, and
        # rebuilt larger at the next lookup (``overfull``).
        self._bloom, self._token = bloom, token
        self._capacity, self._added, self._unfiltered = capacity, added, 0
        self.builds += 1


def _token(s: Session) -> str | None:
    row = s.get(Meta, KEYS_TOKEN, populate_existing=True)
    return row.value if row is not None else None


def _estimated_rows(s: Session, since: datetime) -> int:
    """About the rows a scan would read: the keys of the items within the window (an
    index range count; the key tables have no cheap count)."""
    query = select(func.count()).select_from(ItemRow).where(ItemRow.first_seen >= since)
    return int(s.exec(query).one()) * KEYS_PER_ITEM


__all__ = ["KEYS_TOKEN", "KeyFilter"]
