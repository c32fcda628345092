"""Band keys many stored items hold: left out of lookups, which stay exact without them.

Two unrelated items share a band key when both of that band's MinHash minima land on
the same word pairs, and the commonest pairs of a language make a few band keys that
hundreds of items hold. A lookup meeting one reads every item holding it, and that
number grows with the database: in a cold 5,000-source poll, lookups cost 5.7 ms a
query against 2.0 ms at 1,000 (bench/README.md, twelfth and thirteenth sessions).

A stored item is a candidate of a new one when they share ``min_bands`` band keys. Of
those, at most ``h`` are common keys the new item holds, so the candidate shares at
least ``min_bands - h`` of the new item's *other* keys: a lookup of those alone, at
that lower count, finds every candidate (and maybe a few more, which the duplicate
finder compares and turns down). Any set of keys keeps lookups exact that way, so this
one need not be complete or current: it is what this process saw, a key that came
:data:`COMMON_IN_MERGE` times among the new keys it merged (``Store``). A new item
holding more common keys than it can do without is looked up without its commonest
ones only (:func:`split_common`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from sqlalchemy import text
from sqlmodel import Session

# A key held this many times among the ~50,000 rows of a merge of new keys. In a cold
# 1,000-source database that finds the keys held by more than ~100 of the 50,000 items.
COMMON_IN_MERGE = 3
# The set is cleared past this (~4 MB); the next merges find the common keys again.
MAX_COMMON_KEYS = 1 << 16
# So many of a new item's common keys are left out of its lookup that it still needs
# this many of its other band keys in common: one would make a candidate of every item
# sharing any.
MIN_LOWERED_BANDS = 2


class CommonKeys(Mapping[int, int]):
    """The band keys this process has seen held by many items: for each, the most rows
    holding it that one merge counted (what :func:`split_common` ranks them by)."""

    def __init__(self, limit: int = MAX_COMMON_KEYS) -> None:
        self._held: dict[int, int] = {}
        self._limit = limit

    def __getitem__(self, key: int) -> int:
        return self._held[key]

    def __iter__(self) -> Iterator[int]:
        return iter(self._held)

    def __len__(self) -> int:
        return len(self._held)

    def add(self, held: Mapping[int, int]) -> None:
        for key, rows in held.items():
            if rows > self._held.get(key, 0):
                self._held[key] = rows
        if len(self._held) > self._limit:
            self._held.clear()


def common_new_keys(s: Session, at_least: int = COMMON_IN_MERGE) -> dict[int, int]:
    """The keys held ``at_least`` times in ``dedupe_new_keys``, with those counts (read in
    key order: the table is its primary key, so the count streams)."""
    query = text("SELECT key, count(*) FROM dedupe_new_keys GROUP BY key HAVING count(*) >= :n")
    return {int(k): int(n) for k, n in s.execute(query, {"n": at_least})}


def split_common(
    lookups: Sequence[Sequence[int]], common: Mapping[int, int], min_bands: int
) -> dict[int, set[int]]:
    """The band keys of ``lookups`` (one list per new item) to look up, by the count a
    stored item must reach among them: each item's keys without its commonest ones, at
    ``min_bands`` less one for each key left out.

    At most ``min_bands - MIN_LOWERED_BANDS`` keys are left out, the ones ``common``
    counts most rows for: an item holding more common keys is looked up with the rest
    of them. Looking those up with all its keys, as before, read every row of its
    commonest keys, and a cold 5,000-source poll's lookups read 6 rows a key at its
    start and 55 at its end (bench/README.md, twenty-seventh session).
    """
    room = max(0, min_bands - MIN_LOWERED_BANDS)
    by_count: dict[int, set[int]] = {}
    for keys in lookups:
        held = [k for k in keys if k in common]
        if len(held) > room:
            held.sort(key=lambda k: (-common[k], k))
            held = held[:room]
        if not held:
            by_count.setdefault(min_bands, set()).update(keys)
            continue
        left_out = set(held)
        rest = [k for k in keys if k not in left_out]
        if rest:
            by_count.setdefault(min_bands - len(left_out), set()).update(rest)
    return by_count


__all__ = ["COMMON_IN_MERGE", "CommonKeys", "common_new_keys", "split_common"]
