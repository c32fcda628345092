"""Band finds are checked against the stored signatures before they are loaded.

A lookup counts band keys over the keys of a whole batch (or over part of an item's keys,
``storage.commonkeys``), so a stored item sharing a few bands with each of two new items
comes back though it is a candidate of neither; loading and fingerprinting each of those
cost more than the lookups saved (bench/README.md, twenty-seventh and twenty-eighth
sessions). The database tests run on SQLite and PostgreSQL (``db_url``).
"""

from __future__ import annotations

import random

import storage.dedupe
from monitor.dedupe.fingerprint import BANDS, KeyQuery, band_keys, item_fingerprint
from storage.db import create_db_engine
from storage.dedupe import load_history
from storage.store import Store
from tests.test_keyfilter import MIN_BANDS, SINCE, _commit, _item, _story

ROWS = 2  # signature values a band


def _like(signature: tuple[int, ...], bands: range, rng: random.Random) -> KeyQuery:
    """A query whose signature equals ``signature`` in ``bands`` and nowhere else."""
    values = [rng.randrange(1 << 64) for _ in signature]
    for band in bands:
        values[band * ROWS : band * ROWS + ROWS] = signature[band * ROWS : band * ROWS + ROWS]
    own = tuple(values)
    return KeyQuery(frozenset(), band_keys(own), own)


def _urls(store: Store, queries: list[KeyQuery]) -> set[str]:
    with store.session() as s:
        history = load_history(s, queries, SINCE, MIN_BANDS)
    return {seen.entry["url"] for seen in history.seen}


def test_an_item_sharing_a_few_bands_with_each_of_two_new_items_is_not_loaded(
    db_url: str,
) -> None:
    rng = random.Random(11)
    store = Store(create_db_engine(db_url))
    item = _item("stored", _story(rng))
    _commit(store, item)
    signature = item_fingerprint(item).signature
    assert len(signature) == BANDS * ROWS
    first = _like(signature, range(0, 4), rng)  # 4 bands each, 8 together: the lookup's 7
    second = _like(signature, range(4, 8), rng)
    with store.session() as s:
        held = storage.dedupe._holding(s, sorted(first.bands | second.bands), MIN_BANDS)
    assert len(held) == 1  # the database finds it over the two items' keys together
    assert _urls(store, [first, second]) == set()
    # Seven whole bands with one of them: a candidate.
    assert _urls(store, [first, _like(signature, range(10, 17), rng)]) == {item.url}
    # Equal in one row of each band: the keys differ, and so does every whole band.
    half = list(signature)
    for band in range(BANDS):
        half[band * ROWS] ^= 1
    halved = tuple(half)
    assert _urls(store, [KeyQuery(frozenset(), band_keys(halved), halved)]) == set()
    store.engine.dispose()


def test_without_a_signature_to_compare_band_finds_are_kept(db_url: str) -> None:
    """A query that brings band keys but no signature (or one of another length) cannot
    be checked: what the lookup found goes on to the duplicate finder, as before."""
    rng = random.Random(12)
    store = Store(create_db_engine(db_url))
    item = _item("stored", _story(rng))
    _commit(store, item)
    signature = item_fingerprint(item).signature
    first, second = _like(signature, range(0, 4), rng), _like(signature, range(4, 8), rng)
    bare = [KeyQuery(q.exact, q.bands) for q in (first, second)]
    assert _urls(store, bare) == {item.url}
    short = [KeyQuery(q.exact, q.bands, q.signature[:-2]) for q in (first, second)]
    assert _urls(store, short) == {item.url}
    store.engine.dispose()
