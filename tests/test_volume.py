"""A full data volume mid-run: the fetch fails with a clear error, nothing is half-written,
and once there is room again the same items and alerts go through (nothing lost)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from monitor.alerts import NotifierRoute
from monitor.matching import Matcher, compile_rule
from monitor.pipeline import PipelineContext, run_source
from storage.db import create_db_engine
from storage.store import Store
from tests.conftest import FIXED_NOW
from tests.support.fakes import Clock, FakeSource, make_item, source_config

pytestmark = pytest.mark.anyio


class Volume:
    """Makes the SQLite file unable to grow, as a full disk does, until ``free()``."""

    def __init__(self) -> None:
        self.full = False

    def attach(self, engine: Any) -> None:
        @event.listens_for(engine, "connect")
        def _limit(dbapi_connection: Any, _record: Any) -> None:
            if self.full:
                pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
                dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")


async def test_a_full_volume_mid_run_loses_nothing(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'nw.db'}")
    volume = Volume()
    volume.attach(engine)
    store = Store(engine)
    matcher = Matcher([compile_rule("cv", "clearview")])
    source = FakeSource(source_config("ap-nl"), items=[make_item("ap-nl", "old", "Old news")])
    async with httpx.AsyncClient() as http:
        ctx = PipelineContext(
            store, http, matcher, (NotifierRoute("newsroom", None),), Clock(FIXED_NOW)
        )
        assert (await run_source(source, ctx)).outcome == "baseline"

        source.items = [make_item("ap-nl", f"cv-{i}", "Clearview " + "x" * 3000) for i in range(50)]
        source.body = b"v2"
        volume.full = True
        engine.dispose()  # new connections see the full volume
        failed = await run_source(source, ctx)
        assert failed.failed and "the data volume is full" in (failed.error or "")
        assert store.item_counts() == {"ap-nl": 1}  # nothing of the failed batch was written
        assert store.alert_counts() == {}

        volume.full = False
        engine.dispose()
        retried = await run_source(source, ctx)  # validators did not advance: fetched again
    assert (retried.outcome, retried.counts.new, retried.counts.alerts) == ("ok", 50, 50)
    assert store.alert_counts() == {("newsroom", "pending"): 50}
