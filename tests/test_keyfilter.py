"""storage.keyfilter: the filter of stored dedupe keys never hides a stored key.

Every test runs on SQLite and PostgreSQL (``db_url``). "Another process" is a second
``Store`` on the same database: it shares nothing with the first but the database.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from rbloom import Bloom
from sqlmodel import select

import storage.dedupe
from monitor.dedupe import DedupeOutcome, Fingerprint
from monitor.dedupe.fingerprint import item_fingerprint
from monitor.errors import StorageError
from monitor.models import Item
from monitor.sources.base import Fetched
from storage.db import create_db_engine
from storage.dedupe import load_history
from storage.keyfilter import KeyFilter
from storage.store import Change, Store
from storage.tables import DedupeKey, DedupeMidKey, DedupeNewKey
from tests.conftest import FIXED_NOW

SINCE = FIXED_NOW - timedelta(days=7)
MIN_BANDS = 7


def _item(key: str, words: Sequence[str]) -> Item:
    return Item(
        source="s", source_type="rss", key=key, content_hash="h", title=f"Notice {key} issued",
        url=f"https://example.org/{key}", summary_html=" ".join(words),
    )  # fmt: skip


def _story(rng: random.Random, n: int = 40) -> list[str]:
    return [f"w{rng.randrange(100_000)}" for _ in range(n)]


def _commit(store: Store, item: Item) -> None:
    print_ = item_fingerprint(item)
    outcome = DedupeOutcome([], {item.key: print_}, [], [])
    fetched = Fetched(url="https://example.org/feed", status=200, body=b"<rss/>")
    store.commit_batch("s", "rss", fetched, [item], [(item, Change.NEW)], [], FIXED_NOW,
                       dedupe=outcome)  # fmt: skip


def _found(store: Store, prints: Sequence[Fingerprint]) -> set[str]:
    history = store.dedupe_history([p.query for p in prints], SINCE, MIN_BANDS)
    return {seen.entry["url"] for seen in history.seen}


def _asked(prints: Sequence[Fingerprint]) -> int:
    """The keys a lookup of ``prints`` asks for, exact and band keys, as the store counts them."""
    return sum(len(p.query.exact) + len(p.query.bands) for p in prints)


def _build_on_empty(store: Store) -> None:
    """A lookup on the empty database: the filter is built at once (nothing to scan)."""
    assert _found(store, [item_fingerprint(_item("first", _story(random.Random(0))))]) == set()
    assert store.key_filter.builds == 1


def _assert_holds_every_stored_key(store: Store) -> None:
    """The invariant itself, when the filter says it holds: no stored key left out."""
    with store.session() as s:
        bloom = store.key_filter.usable(s, SINCE, 0)
        if bloom is None:
            return
        stored = [k for t in (DedupeKey, DedupeMidKey, DedupeNewKey) for k in s.exec(select(t.key))]
    assert stored and all(k in bloom for k in stored)


def _truth(store: Store, prints: Sequence[Fingerprint]) -> set[str]:
    """The same lookup straight from the tables, with no filter."""
    with store.session() as s:
        history = load_history(s, [p.query for p in prints], SINCE, MIN_BANDS)
    return {seen.entry["url"] for seen in history.seen}


@pytest.fixture
def looked_up(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The keys each lookup sends to the tables, all lookups together."""
    sent: list[int] = []
    holding = storage.dedupe._holding

    def spy(s: Any, keys: Sequence[int], at_least: int) -> list[int]:
        sent.extend(keys)
        return holding(s, keys, at_least)

    monkeypatch.setattr(storage.dedupe, "_holding", spy)
    return sent


def test_keys_not_stored_are_not_looked_up_and_stored_ones_are_found(
    db_url: str, looked_up: list[int]
) -> None:
    """A first lookup on an empty database builds the filter and the store's commits
    keep it exact; new stories' keys then stay out of the queries, and a copy of a
    stored story is found as the tables alone find it."""
    store = Store(create_db_engine(db_url))
    rng = random.Random(1)
    _build_on_empty(store)
    stories = {f"k{n}": _story(rng) for n in range(20)}
    looked_up.clear()
    for key, words in stories.items():
        _commit(store, _item(key, words))
    fresh = [item_fingerprint(_item(f"new{n}", _story(rng))) for n in range(50)]
    assert _found(store, fresh) == set()
    keys = _asked(fresh)
    assert store.key_filter.builds == 1
    assert len(looked_up) < keys * 0.05, (len(looked_up), keys)  # false positives only
    _assert_holds_every_stored_key(store)
    copy = item_fingerprint(_item("copy", stories["k3"]))
    looked_up.clear()
    assert _found(store, [copy]) == _truth(store, [copy]) == {"https://example.org/k3"}
    assert looked_up  # a stored key is sent to the tables
    store.engine.dispose()


def test_keys_written_by_another_process_are_found_and_the_filter_rebuilt_when_it_pays(
    db_url: str,
) -> None:
    """Another Store's commit makes this one's filter stale: its lookups go to the
    tables whole (and find that commit's item) until they are worth a scan."""
    rng = random.Random(2)
    this = Store(create_db_engine(db_url))
    this.key_filter = KeyFilter(rebuild_ratio=1.0)
    other = Store(create_db_engine(db_url))
    _build_on_empty(this)
    _commit(this, _item("mine", _story(rng)))
    probe = [item_fingerprint(_item("p", _story(rng)))]
    assert _found(this, probe) == set() and this.key_filter.builds == 1
    theirs = _story(rng)
    _commit(other, _item("theirs", theirs))
    copy = item_fingerprint(_item("copy", theirs))
    assert _found(this, [copy]) == {"https://example.org/theirs"}
    assert this.key_filter.builds == 1  # 34 rows known: 34 keys looked up before a scan
    assert _found(this, [copy]) == {"https://example.org/theirs"}
    assert this.key_filter.builds == 2
    assert _found(this, [copy]) == {"https://example.org/theirs"}
    assert this.key_filter.builds == 2  # exact again: its own commits keep it so
    _commit(this, _item("mine2", _story(rng)))
    with this.session() as s:
        assert this.key_filter.usable(s, SINCE, 0) is not None
    this.engine.dispose()
    other.engine.dispose()


def test_a_failed_commit_leaves_the_filter_exact_and_its_keys_unstored(db_url: str) -> None:
    rng = random.Random(3)
    store = Store(create_db_engine(db_url))
    _build_on_empty(store)
    _commit(store, _item("a", _story(rng)))
    assert _found(store, [item_fingerprint(_item("p", _story(rng)))]) == set()
    words = _story(rng)

    def fail(*_: Any) -> None:  # after the keys and the new token are written
        raise StorageError("storage: disk on fire")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(store, "_recovered", fail)
        with pytest.raises(StorageError, match="disk on fire"):
            _commit(store, _item("lost", words))
    with store.session() as s:
        assert store.key_filter.usable(s, SINCE, 0) is not None  # not made stale
    copy = item_fingerprint(_item("copy", words))
    assert _found(store, [copy]) == _truth(store, [copy]) == set()
    _commit(store, _item("kept", words))
    assert _found(store, [copy]) == {"https://example.org/kept"}
    assert store.key_filter.builds == 1
    store.engine.dispose()


def test_a_full_filter_grows_a_layer_and_is_rescanned_only_past_max_growth(db_url: str) -> None:
    """A full filter takes a new layer, not a scan of the tables; once its layers hold
    MAX_GROWTH times what the last scan read, the next lookup rescans (dropping pruned keys)."""
    rng = random.Random(4)
    store = Store(create_db_engine(db_url))
    store.key_filter = KeyFilter(min_capacity=50)
    _build_on_empty(store)
    stories = [_story(rng) for _ in range(8)]
    _commit(store, _item("s0", stories[0]))
    copies = [item_fingerprint(_item(f"c{n}", words)) for n, words in enumerate(stories)]
    assert _found(store, copies) == {"https://example.org/s0"}
    assert (store.key_filter.builds, store.key_filter.layers) == (1, 1)
    for n, words in enumerate(stories[1:4], 1):
        _commit(store, _item(f"s{n}", words))  # 34 keys each: the first layer full at s2
    assert _found(store, copies) == {f"https://example.org/s{n}" for n in range(4)}
    assert (store.key_filter.builds, store.key_filter.layers) == (1, 2)
    for n, words in enumerate(stories[4:6], 4):
        _commit(store, _item(f"s{n}", words))  # 204 keys: past 4 x 50
    assert _found(store, copies) == {f"https://example.org/s{n}" for n in range(6)}
    assert (store.key_filter.builds, store.key_filter.layers) == (2, 1)
    for n, words in enumerate(stories[6:], 6):
        _commit(store, _item(f"s{n}", words))
    assert _found(store, copies) == {f"https://example.org/s{n}" for n in range(8)}
    assert store.key_filter.builds == 2  # built for twice what it held: room for these
    store.engine.dispose()


def test_layers_answer_for_every_key_any_of_them_holds() -> None:
    """Keys committed into each layer in turn are all held by the filter's view, and a
    miss is asked of every layer (so the false-positive rates stay low)."""
    key_filter = KeyFilter(min_capacity=100)
    key_filter._layers = [Bloom(100, 0.01)]  # as built by a scan of an empty database
    key_filter._view, key_filter._token = key_filter._layers[0], "t0"
    key_filter._capacity, key_filter._scanned = 100, 100
    committed: list[int] = []
    for n in range(1, 8):
        keys = list(range(n * 1_000, n * 1_000 + 60))
        key_filter.committed((f"t{n - 1}", f"t{n}"), keys)
        committed += keys
    view = key_filter._view
    assert view is not None
    assert key_filter.layers == 3  # 100, then 200 (full at 240), then 400
    assert all(k in view for k in committed)
    misses = sum(k in view for k in range(10**6, 10**6 + 20_000))
    assert misses < 20_000 * 0.04


def test_a_process_that_never_built_it_waits_for_lookups_worth_the_scan(db_url: str) -> None:
    """A store opened on a database with keys (a cron poll) looks them up in the tables
    first: a scan costs what looking up a quarter of the rows does."""
    rng = random.Random(5)
    writer = Store(create_db_engine(db_url))
    stories = [_story(rng) for _ in range(8)]
    for n, words in enumerate(stories):
        _commit(writer, _item(f"s{n}", words))
    reader = Store(create_db_engine(db_url))
    copies = [item_fingerprint(_item(f"c{n}", words)) for n, words in enumerate(stories)]
    rows = 8 * 34  # the estimate: 34 keys an item of the window
    assert _found(reader, copies[:1]) == {"https://example.org/s0"}
    asked = _asked(copies[:1])
    while asked < rows * 0.25:
        assert reader.key_filter.builds == 0
        assert _found(reader, copies[:1]) == {"https://example.org/s0"}
        asked += _asked(copies[:1])
    assert _found(reader, copies) == _truth(reader, copies)
    assert reader.key_filter.builds == 1
    writer.engine.dispose()
    reader.engine.dispose()


def test_two_processes_writing_in_turn_always_find_what_the_tables_hold(db_url: str) -> None:
    """Random commits and lookups from two stores: every lookup equals the unfiltered one."""
    rng = random.Random(6)
    stores = [Store(create_db_engine(db_url)) for _ in range(2)]
    for store in stores:
        store.key_filter = KeyFilter(min_capacity=200, rebuild_ratio=0.1)
    stories: list[list[str]] = []
    for step in range(60):
        store = rng.choice(stores)
        if rng.random() < 0.5 or not stories:
            words = _story(rng)
            stories.append(words)
            _commit(store, _item(f"s{step}", words))
            continue
        picked = rng.sample(stories, k=min(len(stories), 3))
        prints = [item_fingerprint(_item(f"c{step}-{n}", w)) for n, w in enumerate(picked)]
        prints.append(item_fingerprint(_item(f"fresh{step}", _story(rng))))
        assert _found(store, prints) == _truth(store, prints)
        assert len(_found(store, prints)) == len(picked)
    assert all(store.key_filter.builds >= 1 for store in stores)
    for store in stores:
        _assert_holds_every_stored_key(store)
    for store in stores:
        store.engine.dispose()
