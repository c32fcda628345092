"""storage.dedupe.insert_many: the dedupe keys of a batch, written as one executemany."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import col, select

from monitor.models import Item
from storage.db import create_db_engine
from storage.dedupe import insert_many, key_id, pack_signature, unpack_signature
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
    first = [{"key": key_id(f"b:{i}:x"), "item_id": item_id, "at": FIXED_NOW} for i in range(3)]
    with store.session() as s:
        insert_many(s, DedupeKey, first)
        insert_many(s, DedupeKey, [])  # nothing to do is no statement, not an error
        s.commit()
    again = [*first, {"key": key_id("u:example.org/1"), "item_id": item_id, "at": FIXED_NOW}]
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
