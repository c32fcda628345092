"""storage.dedupe: the dedupe keys of a batch, written as one executemany, and read back."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, event
from sqlmodel import col, select

import storage.dedupe
from monitor.dedupe import DedupeOutcome
from monitor.dedupe.fingerprint import KeyQuery, item_fingerprint
from monitor.identity import item_key
from monitor.models import Item
from monitor.sources.base import Fetched
from storage.db import create_db_engine
from storage.dedupe import (
    _candidates,
    insert_key_rows,
    insert_many,
    key_id,
    merge_mid_keys,
    merge_new_keys,
    pack_signature,
    record_outcome,
    unpack_signature,
)
from storage.store import Change, Store
from storage.tables import DedupeKey, DedupeMidKey, DedupeNewKey, DedupeSignature, ItemRow
from tests.conftest import FIXED_NOW


def _query(exact: Iterable[str] = (), bands: Iterable[str] = ()) -> KeyQuery:
    """A lookup in stored form: exact keys hashed as stored (key_id), and fake band keys
    named ``b:...`` here for readability, stored and looked up as the same hashes (any
    64-bit integer is a band key)."""
    return KeyQuery(frozenset(map(key_id, exact)), frozenset(map(key_id, bands)))


def test_rows_already_there_are_skipped_and_the_rest_inserted(tmp_path: Path) -> None:
    store = Store(create_db_engine(f"sqlite:///{tmp_path / 'n.db'}"))
    item = Item(
        source="s", source_type="rss", key="k", content_hash="h", title="t",
        url="https://example.org/1", summary_html="s",
    )  # fmt: skip
    with store.session() as s:
        store._insert_items(s, [item], FIXED_NOW)
        s.commit()
    with store.session() as s:
        [item_id] = s.exec(select(col(ItemRow.id))).all()
        assert item_id is not None
    first = [{"key": key_id(f"b:{i}:x"), "item_id": item_id} for i in range(3)]
    with store.session() as s:
        insert_many(s, DedupeKey, first)
        insert_many(s, DedupeKey, [])  # nothing to do is no statement, not an error
        s.commit()
    again = [*first, {"key": key_id("u:example.org/1"), "item_id": item_id}]
    with store.session() as s:
        insert_many(s, DedupeKey, again)  # the first three conflict with the stored rows
        insert_many(
            s,
            DedupeSignature,
            [{"item_id": item_id, "signature": pack_signature([3, 1]), "at": FIXED_NOW}],
        )
        s.commit()
    with store.session() as s:
        keys = sorted(row.key for row in s.exec(select(DedupeKey)).all())
        [signature] = s.exec(select(DedupeSignature)).all()
    assert keys == sorted(key_id(k) for k in ["b:0:x", "b:1:x", "b:2:x", "u:example.org/1"])
    assert (signature.item_id, unpack_signature(signature.signature)) == (item_id, (3, 1))
    store.engine.dispose()


def test_candidates_are_the_items_sharing_the_bands_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database counts shared bands per query; each query takes whole items' keys,
    so a stored item sharing enough bands with one new item is found whatever the
    grouping, and one sharing too few with every new item is not."""
    store = Store(create_db_engine(f"sqlite:///{tmp_path / 'n.db'}"))
    items = [
        Item(source="s", source_type="rss", key=f"k{n}", content_hash="h", title="t")
        for n in range(3)
    ]
    with store.session() as s:
        store._insert_items(s, items, FIXED_NOW)
        s.commit()
        ids = dict(s.exec(select(ItemRow.item_key, ItemRow.id)).all())
    stored = {"k0": range(0, 7), "k1": range(10, 16), "k2": [20]}  # 7, 6 and 1 bands
    rows = [
        {"key": key_id(f"b:{band}:x"), "item_id": ids[item]}
        for item, bands in stored.items()
        for band in bands
    ]
    with store.session() as s:
        # Merged and waiting keys count together: k0's bands are in both tables.
        insert_many(s, DedupeKey, rows[:4])
        insert_many(s, DedupeNewKey, rows[4:])
        s.commit()
    lookups = [
        _query(bands=[f"b:{band}:x" for band in range(0, 7)]),  # all 7 of k0's
        # 6 of k1's, k2's one
        _query(bands=[*(f"b:{band}:x" for band in range(10, 16)), "b:20:x"]),
        _query(exact=["u:example.org/elsewhere"]),
    ]
    since = FIXED_NOW - timedelta(days=7)
    for per_query in (1, 2, 250):
        monkeypatch.setattr(storage.dedupe, "_BAND_QUERY_ITEMS", per_query)
        with store.session() as s:
            assert _candidates(s, lookups, since, 7) == {ids["k0"]}
            assert _candidates(s, lookups, since, 6) == {ids["k0"], ids["k1"]}
            assert _candidates(s, lookups, FIXED_NOW + timedelta(seconds=1), 1) == set()
    store.engine.dispose()


def test_band_candidates_of_the_one_site_looked_up_are_left_out(db_url: str) -> None:
    """Items all of one site never find a near duplicate on that site (``conflicting``):
    stored items of it found by their bands alone are no candidates; those sharing an
    exact key, those of another site, and aggregator copies (no site of their own) are.
    On both engines: the site is read from one field of the stored JSON, not all of it."""
    store = Store(create_db_engine(db_url))
    pages = {
        "same": ("https://sam.gov/opp/1/view", {}),
        "same-url": ("https://sam.gov/opp/2/view", {}),
        "other": ("https://www.fbo.example/notice/3", {}),
        "copy": ("https://sam.gov/opp/4/view", {"source_url": "https://news.example"}),
    }
    items = [
        Item(source="s", source_type="sam", key=key, content_hash="h", title="t", url=url,
             fields=fields)
        for key, (url, fields) in pages.items()
    ]  # fmt: skip
    with store.session() as s:
        store._insert_items(s, items, FIXED_NOW)
        ids = {k: i for k, i in s.exec(select(ItemRow.item_key, ItemRow.id)).all() if i}
        bands = [{"key": key_id(f"b:{b}:x"), "item_id": i} for i in ids.values() for b in range(7)]
        insert_many(s, DedupeKey, [*bands, {"key": key_id("u:exact"), "item_id": ids["same-url"]}])
        s.commit()
    lookups = [_query(["u:exact"], [f"b:{b}:x" for b in range(7)])]
    since = FIXED_NOW - timedelta(days=7)
    with store.session() as s:
        assert _candidates(s, lookups, since, 7) == set(ids.values())
        assert _candidates(s, lookups, since, 7, "sam.gov") == {
            ids["same-url"],
            ids["other"],
            ids["copy"],
        }
        assert _candidates(s, lookups, since, 7, "fbo.example") == {
            ids["same"],
            ids["same-url"],
            ids["copy"],
        }
    store.engine.dispose()


def test_keys_leave_with_their_items_window_and_are_pruned_every_eighth_of_it(
    tmp_path: Path,
) -> None:
    """The key table has no index by time: an item's keys go once its first_seen has left
    the window, by a scan of the table made at most every eighth of the window."""
    store = Store(create_db_engine(f"sqlite:///{tmp_path / 'n.db'}"))
    window = timedelta(days=8)
    ages = {"old": timedelta(days=9), "edge": timedelta(days=7, hours=12), "new": timedelta(0)}
    with store.session() as s:
        for key, age in ages.items():
            item = Item(source="s", source_type="rss", key=key, content_hash="h", title=key)
            store._insert_items(s, [item], FIXED_NOW - age)
        ids = dict(s.exec(select(ItemRow.item_key, ItemRow.id)).all())
        insert_many(s, DedupeKey, [{"key": key_id(f"u:{k}"), "item_id": i} for k, i in ids.items()])
        waiting = [{"key": key_id(f"p:{k}|example.org"), "item_id": i} for k, i in ids.items()]
        insert_many(s, DedupeNewKey, waiting)
        middle = [{"key": key_id(f"g:{k}|example.org"), "item_id": i} for k, i in ids.items()]
        insert_many(s, DedupeMidKey, middle)
        s.commit()
    statements: list[str] = []
    event.listen(
        store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]), named=False
    )

    def record(now: datetime) -> set[str]:
        statements.clear()
        outcome = DedupeOutcome([], {}, [], [], prune_before=now - window)
        with store.session() as s:
            record_outcome(s, "s", outcome, now, store._insert_ignoring_duplicates)
            s.commit()
            kept = {i for i in s.exec(select(DedupeKey.item_id)).all()}
            waiting = {i for i in s.exec(select(DedupeNewKey.item_id)).all()}
            middle = {i for i in s.exec(select(DedupeMidKey.item_id)).all()}
        assert kept == waiting == middle  # the keys waiting for a merge go with the others
        return {k for k, i in ids.items() if i in kept}

    assert record(FIXED_NOW) == {"edge", "new"}  # the first pruning: no mark yet
    assert any(s.startswith("DELETE FROM dedupe_keys") for s in statements)
    assert any(s.startswith("DELETE FROM dedupe_new_keys") for s in statements)
    assert any(s.startswith("DELETE FROM dedupe_mid_keys") for s in statements)
    # 13 hours on, "edge" has left the window but an eighth (a day) has not passed.
    assert record(FIXED_NOW + timedelta(hours=13)) == {"edge", "new"}
    assert not any(s.startswith("DELETE FROM dedupe_keys") for s in statements)
    with store.session() as s:  # meanwhile it is no candidate: the window is first_seen's
        since = FIXED_NOW + timedelta(hours=13) - window
        assert _candidates(s, [_query(["u:edge"]), _query(["u:new"])], since, 7) == {ids["new"]}
    assert record(FIXED_NOW + timedelta(days=1)) == {"new"}
    assert record(FIXED_NOW + timedelta(days=9)) == set()  # no item left in the window
    store.engine.dispose()


def _items_with_keys(store: Store, count: int, per_item: int) -> dict[str, int]:
    """``count`` stored items, each with ``per_item`` band keys waiting for a merge."""
    items = [
        Item(source="s", source_type="rss", key=f"k{n}", content_hash="h", title="t")
        for n in range(count)
    ]
    with store.session() as s:
        store._insert_items(s, items, FIXED_NOW)
        ids = dict(s.exec(select(ItemRow.item_key, ItemRow.id)).all())
        rows = [
            {"key": key_id(f"b:{band}:{key}"), "item_id": ident}
            for key, ident in ids.items()
            for band in range(per_item)
        ]
        insert_many(s, DedupeNewKey, rows)
        s.commit()
    return {k: i for k, i in ids.items() if i is not None}


def test_key_rows_go_to_the_driver_as_pairs_and_stored_ones_are_skipped(db_url: str) -> None:
    """insert_key_rows on each engine (its placeholders differ): every table, conflicts
    with stored rows and within the batch skipped, the 64-bit extremes kept exactly."""
    store = Store(create_db_engine(db_url))
    ids = _items_with_keys(store, 2, 0)
    one, two = ids["k0"], ids["k1"]
    extremes = [(2**63 - 1, one), (-(2**63), one), (0, two)]
    with store.session() as s:
        for table in (DedupeKey, DedupeMidKey):
            insert_key_rows(s, table, extremes)
        insert_key_rows(s, DedupeNewKey, [(7, one), (7, one)])  # twice in one batch
        insert_key_rows(s, DedupeNewKey, [])  # nothing to do is no statement, not an error
        s.commit()
    with store.session() as s:
        insert_key_rows(s, DedupeKey, [*extremes, (7, two)])  # three already stored
        s.commit()
    merged, middle, waiting = _keys(store)
    assert merged == {*extremes, (7, two)}
    assert middle == set(extremes)
    assert waiting == {(7, one)}
    store.engine.dispose()


Pairs = set[tuple[int, int]]


def _keys(store: Store) -> tuple[Pairs, Pairs, Pairs]:
    """(merged, middle, waiting) as (key, item_id) pairs."""
    with store.session() as s:
        merged = set(s.exec(select(DedupeKey.key, DedupeKey.item_id)).all())
        middle = set(s.exec(select(DedupeMidKey.key, DedupeMidKey.item_id)).all())
        waiting = set(s.exec(select(DedupeNewKey.key, DedupeNewKey.item_id)).all())
    return merged, middle, waiting


def test_merges_move_every_waiting_key_and_lookups_find_the_same_items(db_url: str) -> None:
    """Keys go new -> middle -> merged; an item is found the same wherever its keys are,
    even split across the three tables, and a key in two of them counts once."""
    store = Store(create_db_engine(db_url))
    ids = _items_with_keys(store, 5, 8)
    with store.session() as s:  # k0's keys already merged, one of them written again
        first = [{"key": key_id(f"b:{band}:k0"), "item_id": ids["k0"]} for band in range(8)]
        insert_many(s, DedupeKey, first)
        s.execute(delete(DedupeNewKey).where(col(DedupeNewKey.item_id) == ids["k0"]))
        insert_many(s, DedupeNewKey, first[:1])
        # k1's keys: three in each of the smaller tables, two in the large one (7 rows)
        k1 = [{"key": key_id(f"b:{band}:k1"), "item_id": ids["k1"]} for band in range(8)]
        s.execute(delete(DedupeNewKey).where(col(DedupeNewKey.item_id) == ids["k1"]))
        insert_many(s, DedupeNewKey, k1[:3])
        insert_many(s, DedupeMidKey, k1[3:6])
        insert_many(s, DedupeKey, k1[6:])
        s.commit()
    lookups = [_query(bands=[f"b:{band}:{key}" for band in range(8)]) for key in ("k0", "k1", "k3")]
    since = FIXED_NOW - timedelta(days=7)
    with store.session() as s:
        before = _candidates(s, lookups, since, 8)
    merged, middle, waiting = _keys(store)
    with store.session() as s:
        moved = merge_new_keys(s)
        s.commit()
    assert before == {ids["k0"], ids["k1"], ids["k3"]}
    assert moved == len(waiting) == 3 * 8 + 1 + 3
    assert _keys(store) == (merged, middle | waiting, set())
    with store.session() as s:
        assert _candidates(s, lookups, since, 8) == before
        assert merge_new_keys(s) == 0  # nothing waiting: nothing to do
        assert merge_mid_keys(s) == len(middle | waiting)
        s.commit()
    assert _keys(store) == (merged | middle | waiting, set(), set())
    with store.session() as s:
        assert _candidates(s, lookups, since, 8) == before
        assert merge_mid_keys(s) == 0
    store.engine.dispose()


def test_a_failed_commit_keeps_the_keys_waiting(tmp_path: Path) -> None:
    store = Store(create_db_engine(f"sqlite:///{tmp_path / 'n.db'}"))
    _items_with_keys(store, 3, 4)
    with store.session() as s:
        assert merge_new_keys(s) == 12
        assert merge_mid_keys(s) == 12
        s.rollback()
    merged, middle, waiting = _keys(store)
    assert merged == middle == set() and len(waiting) == 12
    store.engine.dispose()


def _notice(key: str, content_hash: str = "h") -> Item:
    return Item(
        source="s", source_type="rss", key=key, content_hash=content_hash,
        title=f"Regulator notice about {key}", url=f"https://example.org/{key}",
        summary_html=" ".join(f"word{key}{n}" for n in range(40)),
    )  # fmt: skip


def _commit_new_item(store: Store, key: str) -> None:
    """One new item through commit_batch, with a URL key and a 32-band fingerprint."""
    item = _notice(key)
    outcome = DedupeOutcome([], {key: item_fingerprint(item)}, [], [])
    fetched = Fetched(url="https://example.org/feed", status=200, body=b"<rss/>")
    store.commit_batch("s", "rss", fetched, [item], [(item, Change.NEW)], [], FIXED_NOW,
                       dedupe=outcome)  # fmt: skip


def test_the_store_merges_once_its_threshold_is_reached_counting_rows_left_by_a_restart(
    tmp_path: Path,
) -> None:
    """34 key rows an item, a merge from 100 rows into a middle table merged from 200:
    the third item's commit merges into the middle table, the sixth's on into the large
    one. A store opened afterwards counts the rows already waiting before adding its own."""
    url = f"sqlite:///{tmp_path / 'n.db'}"
    store = Store(create_db_engine(url), dedupe_merge_rows=100, dedupe_mid_rows=200)
    sizes = []
    for key in ("a", "b", "c", "d"):
        _commit_new_item(store, key)
        sizes.append(tuple(map(len, _keys(store))))
    assert sizes == [(0, 0, 34), (0, 0, 68), (0, 102, 0), (0, 102, 34)]
    store.engine.dispose()
    again = Store(create_db_engine(url), dedupe_merge_rows=100, dedupe_mid_rows=200)
    _commit_new_item(again, "e")
    assert tuple(map(len, _keys(again))) == (0, 102, 68)  # 34 left + 34 own: under 100
    _commit_new_item(again, "f")
    assert tuple(map(len, _keys(again))) == (204, 0, 0)  # 102 + 102 reached 200
    with again.session() as s:  # every item is still found under its own URL
        for key in "abcdef":
            lookup = [_query([f"u:{item_key(None, f'https://example.org/{key}', '', '')}"])]
            assert len(_candidates(s, lookup, FIXED_NOW - timedelta(days=1), 7)) == 1
    again.engine.dispose()


def test_on_postgresql_a_merge_under_way_in_another_replica_is_left_to_it(pg_url: str) -> None:
    """Two replicas merging at once would delete the same rows in their own orders and
    could deadlock; the second one sees the lock and leaves the rows."""
    store = Store(create_db_engine(pg_url))
    _items_with_keys(store, 2, 4)
    other = Store(create_db_engine(pg_url))
    with store.session() as s, other.session() as o:
        assert merge_new_keys(s) == 8  # holds the merge lock until it commits
        assert merge_new_keys(o) == 0
        assert merge_mid_keys(o) == 0
        assert tuple(map(len, _keys(store))) == (0, 0, 8)  # the others see nothing moved yet
        assert merge_mid_keys(s) == 8  # the lock holder goes on to the large table
        s.commit()
        o.commit()
    assert tuple(map(len, _keys(store))) == (8, 0, 0)
    other.engine.dispose()
    store.engine.dispose()


def test_new_items_keys_go_under_the_ids_their_insert_returned_or_the_stored_row_s(
    tmp_path: Path,
) -> None:
    """The insert returns the new items' ids, and their key rows use them without a query
    for the ids; an item another replica stored first (the insert skips it) still gets its
    keys, under the stored row's id."""
    url = f"sqlite:///{tmp_path / 'n.db'}"
    first, second = Store(create_db_engine(url)), Store(create_db_engine(url))
    statements: list[str] = []
    event.listen(first.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    _commit_new_item(first, "z")
    assert not [q for q in statements if q.startswith("SELECT items.item_key, items.id")]
    with first.session() as s:  # "a" stored by another replica, its keys not yet written
        first._insert_items(s, [_notice("a")], FIXED_NOW)
        s.commit()
    counts = []
    for key in ("a", "b"):
        item = _notice(key, "h2")
        outcome = DedupeOutcome([], {key: item_fingerprint(item)}, [], [])
        fetched = Fetched(url="https://example.org/feed", status=200, body=key.encode())
        counts.append(second.commit_batch("s", "rss", fetched, [item], [(item, Change.NEW)],
                                          [], FIXED_NOW, dedupe=outcome).new)  # fmt: skip
    assert counts == [0, 1]
    with first.session() as s:
        ids = dict(s.exec(select(ItemRow.item_key, ItemRow.id)).all())
        rows = s.exec(select(DedupeNewKey.key, DedupeNewKey.item_id)).all()
    by_item: dict[int | None, set[int]] = {}
    for key_value, item_id in rows:
        by_item.setdefault(item_id, set()).add(key_value)
    assert by_item == {
        ids[key]: set(item_fingerprint(_notice(key)).stored_ids) for key in ("z", "a", "b")
    }
    first.engine.dispose()
    second.engine.dispose()
