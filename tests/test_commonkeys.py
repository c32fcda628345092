"""storage.commonkeys: band keys many items hold stay out of lookups, which stay exact.

The database tests run on SQLite and PostgreSQL (``db_url``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest

import storage.dedupe
from monitor.dedupe import Fingerprint
from monitor.dedupe.fingerprint import item_fingerprint
from storage.commonkeys import CommonKeys, common_new_keys, split_common
from storage.db import create_db_engine
from storage.dedupe import load_history
from storage.store import Store
from tests.test_keyfilter import MIN_BANDS, SINCE, _commit, _item, _story

Sent = list[tuple[frozenset[int], int]]


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Sent:
    """Each band or exact-key query: the keys sent, and the count asked of an item."""
    queries: Sent = []
    holding = storage.dedupe._holding

    def spy(s: Any, keys: Sequence[int], at_least: int) -> list[int]:
        queries.append((frozenset(keys), at_least))
        return holding(s, keys, at_least)

    monkeypatch.setattr(storage.dedupe, "_holding", spy)
    return queries


def test_an_item_is_looked_up_without_its_common_keys_at_a_count_lowered_by_them() -> None:
    common = {1: 9, 2: 8, 3: 7, 4: 6, 5: 5, 6: 4}
    plain, one, five, only_common = [10, 11], [1, 20, 21], [1, 2, 3, 4, 5, 30], [1, 2]
    assert split_common([plain], common, 7) == {7: {10, 11}}
    assert split_common([plain, one], common, 7) == {7: {10, 11}, 6: {20, 21}}
    assert split_common([five], common, 7) == {2: {30}}
    # Two common keys cannot make the seven a candidate needs: nothing to look up.
    assert split_common([only_common], common, 7) == {}
    assert split_common([plain, one], {}, 7) == {7: {10, 11, 1, 20, 21}}


def test_an_item_with_more_common_keys_than_it_can_spare_leaves_out_its_commonest() -> None:
    """Left out below two, any one shared key would make a candidate: five of the six
    are left out, the five counted on most rows, and the sixth is looked up at two."""
    common = {1: 9, 2: 8, 3: 7, 4: 6, 5: 5, 6: 4}
    assert split_common([[1, 2, 3, 4, 5, 6, 40]], common, 7) == {2: {6, 40}}
    assert split_common([[6, 2, 40, 3, 4, 5, 1]], {**common, 6: 10}, 7) == {2: {5, 40}}
    # Equal counts: the smaller keys are left out, whatever the item's order.
    even = dict.fromkeys(range(1, 7), 3)
    assert split_common([[6, 5, 4, 3, 2, 1, 40]], even, 7) == {2: {6, 40}}
    # With min_bands at two there is nothing to spare: all keys, at two.
    assert split_common([[1, 2, 40]], common, 2) == {2: {1, 2, 40}}
    # Items of one lookup keep their own counts.
    assert split_common([[1, 2, 3, 4, 5, 6, 40], [1, 50, 51]], common, 7) == {
        2: {6, 40},
        6: {50, 51},
    }


def test_a_key_keeps_the_most_rows_a_merge_counted_and_the_set_is_cleared_past_its_limit() -> None:
    keys = CommonKeys(limit=3)
    keys.add({1: 3, 2: 5})
    keys.add({1: 4, 2: 3, 3: 3})
    assert dict(keys) == {1: 4, 2: 5, 3: 3} and 2 in keys and 9 not in keys
    keys.add({4: 3})
    assert len(keys) == 0 and 2 not in keys


def _variant(rng: random.Random, words: Sequence[str], changed: int) -> list[str]:
    out = list(words)
    for at in rng.sample(range(len(out)), changed):
        out[at] = f"x{rng.randrange(10**9)}"
    return out


def _truth(new: Fingerprint, stored: dict[str, Fingerprint]) -> set[str]:
    """The stored items a lookup must find: an exact key or MIN_BANDS band keys shared."""
    return {
        url
        for url, print_ in stored.items()
        if new.lookup & print_.stored or len(new.bands & print_.bands) >= MIN_BANDS
    }


def test_lookups_without_common_keys_find_every_candidate(db_url: str, sent: Sent) -> None:
    """Stored stories and near copies of them at every similarity; whichever keys are
    taken as common (none, some at random, every stored one), a lookup finds each item
    sharing an exact key or MIN_BANDS band keys, and the common keys are not sent
    unless an item needs them."""
    rng = random.Random(7)
    store = Store(create_db_engine(db_url))
    bases = [_story(rng, 30) for _ in range(6)]
    stored: dict[str, Fingerprint] = {}
    for n in range(36):
        item = _item(f"s{n}", _variant(rng, bases[n % 6], rng.randrange(0, 5)))
        _commit(store, item)
        stored[item.url] = item_fingerprint(item)
    every: set[int] = set().union(*(p.bands for p in stored.values()))
    some = dict.fromkeys(rng.sample(sorted(every), len(every) // 3), 3)
    all_of = {key: rng.randrange(3, 9) for key in every}
    news = [
        item_fingerprint(_item(f"n{n}", _variant(rng, bases[n % 6], n // 2))) for n in range(12)
    ]
    news.append(item_fingerprint(_item("s5", bases[5])))  # an exact key (the URL) shared
    news.append(item_fingerprint(_item("fresh", _story(rng, 30))))  # a story never seen
    wanted = [_truth(p, stored) for p in news]
    assert sum(map(len, wanted)) > 20 and any(not w for w in wanted)  # both kinds met
    with store.session() as s:
        for common in (CommonKeys(), some, all_of):
            sent.clear()
            history = load_history(s, [p.query for p in news], SINCE, MIN_BANDS, common=common)
            found = {seen.entry["url"] for seen in history.seen}
            # Every candidate, and no spare: band finds are checked against signatures.
            assert found == set().union(*wanted)
            band_queries = [q for q in sent if q[1] != 1]
            if common is all_of:
                # Every item but the fresh story holds more common keys than it can
                # spare: its commonest MIN_BANDS - 2 are left out, it is looked up at
                # two. The fresh story holds none, and is looked up whole.
                assert {at for _, at in band_queries} == {2, MIN_BANDS}
                whole = [keys for keys, at in band_queries if at == MIN_BANDS]
                assert whole == [news[-1].bands] and not news[-1].bands & all_of.keys()
            elif common is some:
                # Common keys are left out (some, where an item holds more than it can
                # spare), the lookups lowered by them.
                asked = set().union(*(p.bands for p in news)) & some.keys()
                looked_up = set().union(*(keys for keys, _ in band_queries))
                assert any(at < MIN_BANDS for _, at in band_queries)
                assert len(looked_up & asked) < len(asked)
    store.engine.dispose()


def _bands(item_key: str, words: Sequence[str]) -> frozenset[int]:
    return item_fingerprint(_item(item_key, words)).bands


def test_keys_many_merged_rows_hold_become_common(db_url: str, sent: Sent) -> None:
    """Three copies of a story merged: the band keys all three hold are noted (not
    those of a story stored twice), and a later copy is still found, looked up with
    them while it holds too many, without them when it can do without."""
    rng = random.Random(3)
    store = Store(create_db_engine(db_url), dedupe_merge_rows=180)
    hub, pair = _story(rng), _story(rng)
    for n in range(3):
        _commit(store, _item(f"hub{n}", hub))
    for n in range(2):
        _commit(store, _item(f"pair{n}", pair))
    assert len(store.common_keys) == 0
    _commit(store, _item("other", _story(rng)))  # the merge is due
    # The titles differ, and the MinHash reads them: not every band is the same.
    thrice = _bands("hub0", hub) & _bands("hub1", hub) & _bands("hub2", hub)
    twice = _bands("pair0", pair) & _bands("pair1", pair)
    assert len(thrice) > 10 and twice
    assert all(k in store.common_keys for k in thrice)
    assert len(store.common_keys) == len(thrice)
    with store.session() as s:
        assert common_new_keys(s) == {}  # merged: nothing left to count
    copy = item_fingerprint(_item("copy", hub))
    held = {k for k in _bands("copy", hub) if k in store.common_keys}
    assert len(held) > MIN_BANDS
    hubs = {f"https://example.org/hub{n}" for n in range(3)}
    sent.clear()
    found = store.dedupe_history([copy.query], SINCE, MIN_BANDS)
    assert {seen.entry["url"] for seen in found.seen} == hubs
    # More than it can spare, all counted on three rows: the smallest MIN_BANDS - 2 of
    # them are left out, and it is looked up with the others at two.
    assert dict.fromkeys(thrice, 3) == dict(store.common_keys)
    spared = set(sorted(held)[: MIN_BANDS - 2])
    assert [at for keys, at in sent if at != 1] == [2]
    assert all(held - spared <= keys and not spared & keys for keys, at in sent if at != 1)
    # Holding two of them, it is looked up without those two, at MIN_BANDS - 2.
    store.common_keys = CommonKeys()
    two = sorted(held)[:2]
    store.common_keys.add(dict.fromkeys(two, 3))
    sent.clear()
    found = store.dedupe_history([copy.query], SINCE, MIN_BANDS)
    assert {seen.entry["url"] for seen in found.seen} == hubs
    assert [at for keys, at in sent if at != 1] == [MIN_BANDS - 2]
    assert all(not set(two) & keys for keys, _ in sent)
    store.engine.dispose()
