"""Store queries the service and the API use: recent alerts by rule, oldest pending, meta."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlmodel import Session

from storage.db import create_db_engine
from storage.store import Store
from storage.tables import AlertRow, ItemRow
from tests.conftest import FIXED_NOW


def store_with_alerts(db_url: str, rules_by_age: list[list[str]]) -> Store:
    """One item and one alert per entry, the first the oldest (a minute apart)."""
    store = Store(create_db_engine(db_url))
    with Session(store.engine) as s:
        for i, rules in enumerate(rules_by_age):
            when = FIXED_NOW + timedelta(minutes=i)
            item = ItemRow(source="ap", source_type="rss", item_key=f"k{i}", content_hash="h",
                           title=f"t{i}", first_seen=when, last_seen=when)  # fmt: skip
            s.add(item)
            s.flush()
            assert item.id is not None
            s.add(AlertRow(id=f"msg_{i}", item_id=item.id, notifier="newsroom", rules=rules,
                           created_at=when, next_attempt_at=when))  # fmt: skip
        s.commit()
    return store


def test_recent_alerts_by_rule_reach_past_newer_alerts_of_other_rules(db_url: str) -> None:
    store = store_with_alerts(db_url, [["cv"], ["cv", "fines"], *[["cv-2"]] * 30])
    assert [a.id for a in store.recent_alerts(None, 5, "cv")] == ["msg_1", "msg_0"]
    assert [a.id for a in store.recent_alerts(None, 1, "fines")] == ["msg_1"]
    assert len(store.recent_alerts(None, 5, "cv-2")) == 5
    since = FIXED_NOW + timedelta(minutes=1)
    assert [a.id for a in store.recent_alerts(since, 5, "cv")] == ["msg_1"]


def test_oldest_pending_by_notifier_is_aware_utc(db_url: str) -> None:
    store = store_with_alerts(db_url, [["cv"], ["cv"]])
    assert store.oldest_pending() == {"newsroom": FIXED_NOW}


def test_meta_values_round_trip(db_url: str, tmp_path: Path) -> None:
    store = Store(create_db_engine(db_url))
    assert store.get_meta("config_status") is None
    store.set_meta("config_status", "a")
    store.set_meta("config_status", "b")
    assert store.get_meta("config_status") == "b"


def test_the_reserved_rule_name_is_matched_exactly_not_as_a_like_pattern(db_url: str) -> None:
    # "_" is LIKE's any-character: "source_health" must not find a rule "source-health".
    store = store_with_alerts(db_url, [["source_health"], ["source-health"], ["sourcexhealth"]])
    assert [a.id for a in store.recent_alerts(None, 1, "source_health")] == ["msg_0"]
    assert [a.id for a in store.recent_alerts(None, 5, "source-health")] == ["msg_1"]
