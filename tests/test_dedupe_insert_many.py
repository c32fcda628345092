"""storage.dedupe: the dedupe keys of a batch, written as one executemany, and read back."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlmodel import col, select

import storage.dedupe
from monitor.dedupe import DedupeOutcome
from monitor.models import Item
from storage.db import create_db_engine
from storage.dedupe import (
    _candidates,
    insert_many,
    key_id,
    pack_signature,
    record_outcome,
    unpack_signature,
)
from storage.store import Store
from storage.tables import DedupeKey, DedupeSignature, ItemRow
from tests.conftest import FIXED_NOW


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
        insert_many(s, DedupeKey, rows)
        s.commit()
    lookups = [
        {f"b:{band}:x" for band in range(0, 7)},  # all 7 of k0's
        {f"b:{band}:x" for band in range(10, 16)} | {"b:20:x"},  # 6 of k1's, k2's one
        {"u:example.org/elsewhere"},
    ]
    since = FIXED_NOW - timedelta(days=7)
    for per_query in (1, 2, 250):
        monkeypatch.setattr(storage.dedupe, "_BAND_QUERY_ITEMS", per_query)
        with store.session() as s:
            assert _candidates(s, lookups, since, 7) == {ids["k0"]}
            assert _candidates(s, lookups, since, 6) == {ids["k0"], ids["k1"]}
            assert _candidates(s, lookups, FIXED_NOW + timedelta(seconds=1), 1) == set()
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
        return {k for k, i in ids.items() if i in kept}

    assert record(FIXED_NOW) == {"edge", "new"}  # the first pruning: no mark yet
    assert any(s.startswith("DELETE FROM dedupe_keys") for s in statements)
    # 13 hours on, "edge" has left the window but an eighth (a day) has not passed.
    assert record(FIXED_NOW + timedelta(hours=13)) == {"edge", "new"}
    assert not any(s.startswith("DELETE FROM dedupe_keys") for s in statements)
    with store.session() as s:  # meanwhile it is no candidate: the window is first_seen's
        since = FIXED_NOW + timedelta(hours=13) - window
        assert _candidates(s, [{"u:edge"}, {"u:new"}], since, 7) == {ids["new"]}
    assert record(FIXED_NOW + timedelta(days=1)) == {"new"}
    assert record(FIXED_NOW + timedelta(days=9)) == set()  # no item left in the window
    store.engine.dispose()
