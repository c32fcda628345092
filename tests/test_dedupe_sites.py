"""storage.sites and the band lookups that leave out the looked-up items' own site."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import select

import storage.dedupe
from monitor.dedupe import DedupeOutcome, DedupePolicy, Fingerprint
from monitor.dedupe.fingerprint import item_fingerprint
from monitor.models import Item
from storage.db import create_db_engine
from storage.dedupe import _candidates, merge_mid_keys, merge_new_keys, record_outcome
from storage.sites import SiteIds
from storage.store import Store
from storage.tables import DedupeKey, DedupeMidKey, DedupeNewKey, DedupeSite, ItemRow
from tests.conftest import FIXED_NOW

_TITLE = "Notice of intent to award a sole-source contract for facial recognition"
_TEXT = (
    "The agency intends to award a sole-source contract under FAR 6.302-1 for access to "
    "a facial recognition search service and its image database, with training and support."
)


def _item(source: str, key: str, url: str) -> Item:
    return Item(
        source=source, source_type="fake", key=key, content_hash=f"h-{key}", title=_TITLE,
        url=url, summary_html=_TEXT,
    )  # fmt: skip


def _store_batch(store: Store, source: str, items: Sequence[Item]) -> dict[str, int]:
    """Store ``items`` with their dedupe keys as a poll's commit does; their ids."""
    prints: dict[str, Fingerprint] = {item.key: item_fingerprint(item) for item in items}
    with store.session() as s:
        store._insert_items(s, list(items), FIXED_NOW)
        record_outcome(
            s,
            source,
            DedupeOutcome([], prints, [], []),
            FIXED_NOW,
            store._insert_ignoring_duplicates,
            store.site_ids,
        )
        s.commit()
        rows = s.exec(select(ItemRow.item_key, ItemRow.id).where(ItemRow.source == source))
        return {key: ident for key, ident in rows.all() if ident is not None}


def test_band_lookups_leave_out_the_rows_of_their_own_site_in_every_table(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same text on sam.gov and on a news site: a sam.gov lookup gets only the news item
    back from the key tables (the sam.gov rows never reach the count), wherever the rows
    are after merges; a lookup without a site, or of another site, gets them all."""
    store = Store(create_db_engine(db_url))
    sam = _store_batch(
        store, "sam", [_item("sam", f"n{n}", f"https://sam.gov/opp/{n}") for n in range(3)]
    )
    with store.session() as s:
        merge_new_keys(s)
        merge_mid_keys(s)
        s.commit()
    sam.update(_store_batch(store, "sam", [_item("sam", "n3", "https://sam.gov/opp/3")]))
    with store.session() as s:
        merge_new_keys(s)  # n3's rows in the middle table
        s.commit()
    news = _store_batch(store, "news", [_item("news", "a", "https://www.news.example/a")])
    with store.session() as s:
        sites = dict(s.exec(select(DedupeSite.site, DedupeSite.id)).all())
        tagged = {
            (table.__tablename__, item, site)
            for table in (DedupeKey, DedupeMidKey, DedupeNewKey)
            for item, site in s.exec(select(table.item_id, table.site).distinct()).all()
        }
    assert set(sites) == {"sam.gov", "news.example"}
    assert tagged == {
        *(("dedupe_keys", sam[f"n{n}"], sites["sam.gov"]) for n in range(3)),
        ("dedupe_mid_keys", sam["n3"], sites["sam.gov"]),
        ("dedupe_new_keys", news["a"], sites["news.example"]),
    }
    returned: list[set[int]] = []
    holding = storage.dedupe._holding

    def spy(s: Any, keys: Sequence[int], at_least: int, not_site: int = 0) -> list[int]:
        found = holding(s, keys, at_least, not_site)
        returned.append(set(found))
        return found

    monkeypatch.setattr(storage.dedupe, "_holding", spy)
    new = item_fingerprint(_item("sam", "n9", "https://sam.gov/opp/9"))
    bands = {k for k in new.lookup if k.startswith("b:")}
    since, min_bands = FIXED_NOW - timedelta(days=7), DedupePolicy().min_bands
    with store.session() as s:
        own = _candidates(s, [bands], since, min_bands, "sam.gov", site_number=sites["sam.gov"])
        assert returned == [{news["a"]}]
        assert own == {news["a"]}
        returned.clear()
        everyone = _candidates(s, [bands], since, min_bands)
        assert returned == [{*sam.values(), news["a"]}] and everyone == returned[0]
        returned.clear()
        other = _candidates(
            s, [bands], since, min_bands, "news.example", site_number=sites["news.example"]
        )
        assert returned == [set(sam.values())] and other == returned[0]
    history = store.dedupe_history([frozenset(bands)], since, min_bands, "sam.gov")
    assert [seen.ref for seen in history.seen] == [f"item:{news['a']}"]
    store.engine.dispose()


def test_a_number_given_in_a_rolled_back_transaction_is_not_remembered(db_url: str) -> None:
    """SQLite gives a rolled-back number to the next new site: remembering it would tag
    that site's rows with another site's number, and leave them out of its lookups."""
    store = Store(create_db_engine(db_url))
    sites, insert = SiteIds(), store._insert_ignoring_duplicates
    with store.session() as s:
        first = sites.numbers(s, ["lost.example", ""], insert)
        assert first[""] == 0 and first["lost.example"] > 0
        assert sites.numbers(s, ["lost.example"], insert) == {"lost.example": first["lost.example"]}
        s.rollback()
    with store.session() as s:
        assert sites.known(s, "lost.example") is None
        kept = sites.numbers(s, ["kept.example"], insert)["kept.example"]
        s.commit()
    with store.session() as s:
        assert sites.known(s, "kept.example") == kept
        assert sites.known(s, "lost.example") is None
        again = sites.numbers(s, ["lost.example", "kept.example"], insert)
        s.commit()
    assert again["kept.example"] == kept and again["lost.example"] not in {0, kept}
    with store.session() as s:
        stored = dict(s.exec(select(DedupeSite.site, DedupeSite.id)).all())
    assert stored == {"kept.example": kept, "lost.example": again["lost.example"]}
    # Another process (a replica) sees the numbers already given.
    with store.session() as s:
        assert SiteIds().known(s, "kept.example") == kept
    store.engine.dispose()
