"""Hot reload: real files edited under a running Service, the test clock, no sleeps."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from monitor.app import open_app
from monitor.cli import main, status_report
from monitor.config import load_config
from monitor.reload import STATUS_KEY, ConfigStatus, ConfigWatcher
from monitor.scheduler import Service
from tests.conftest import FIXED_NOW
from tests.support.fakes import Clock
from tests.support.feeds import Entry, rss
from tests.support.running import ENV, FEED, Web, config_text, fire, running, source_toml

pytestmark = pytest.mark.anyio

CV = Entry("cv-1", "Clearview fined again", "https://news.example/cv-1")
OTHER = Entry("x-1", "Cookie banners", "https://news.example/x-1")


@pytest.fixture
def web() -> Web:
    return Web(feeds={FEED.format(name=n): rss(OTHER) for n in ("ap", "ico", "cnil")})


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def jobs(service: Service) -> dict[str, object]:
    return {job.id: job for job in service.scheduler.get_jobs()}


async def run(service: Service, name: str) -> None:
    await fire(service, name)


async def test_an_added_source_starts_with_its_baseline(tmp_path: Path, web: Web) -> None:
    db = tmp_path / "nw.db"
    path = write(tmp_path / "sources.toml", config_text(db, source_toml("ap")))
    async with running(path, web) as service:
        await run(service, "ap")
        write(path, config_text(db, source_toml("ap"), source_toml("ico")))
        changes = await service.reload()
        assert changes is not None and changes.added == ("ico",)
        assert "source:ico" in jobs(service)
        web.feeds[FEED.format(name="ico")] = rss(CV)  # it matches, but is its first fetch
        await run(service, "ico")
        assert service.app.store.alert_counts() == {}
        web.feeds[FEED.format(name="ico")] = rss(CV, Entry("cv-2", "Clearview again", "u"))
        await run(service, "ico")
        assert service.app.store.alert_counts() == {("newsroom", "pending"): 1}


async def test_a_removed_source_stops(tmp_path: Path, web: Web) -> None:
    db = tmp_path / "nw.db"
    path = write(tmp_path / "sources.toml", config_text(db, source_toml("ap"), source_toml("ico")))
    async with running(path, web) as service:
        write(path, config_text(db, source_toml("ap")))
        changes = await service.reload()
        assert changes is not None and changes.removed == ("ico",)
        assert set(jobs(service)) == {"source:ap", "deliver:newsroom", "config:watch"}
        assert "ico" not in service.app.sources


async def test_a_changed_schedule_is_rescheduled(tmp_path: Path, web: Web) -> None:
    db = tmp_path / "nw.db"
    path = write(tmp_path / "sources.toml", config_text(db, source_toml("ap", "15m")))
    async with running(path, web) as service:
        write(path, config_text(db, source_toml("ap", "2h")))
        changes = await service.reload()
        assert changes is not None and changes.rescheduled == ("ap",)
        assert jobs(service)["source:ap"].trigger.interval.total_seconds() == 7200  # type: ignore[attr-defined]


async def test_rules_and_notifiers_swap_between_polls(tmp_path: Path, web: Web) -> None:
    db = tmp_path / "nw.db"
    path = write(tmp_path / "sources.toml", config_text(db, source_toml("ap")))
    async with running(path, web) as service:
        await run(service, "ap")  # baseline
        before = service.app
        write(path, config_text(db, source_toml("ap"), rules="cookie"))
        await service.reload()
        assert service.app is not before and before.config.rules[0].name == "cv"
        web.feeds[FEED.format(name="ap")] = rss(OTHER, Entry("x-2", "More cookie news", "u2"))
        await run(service, "ap")  # the new rule ("cookie") decides now
        assert service.app.store.alert_counts() == {("newsroom", "pending"): 1}
        text = config_text(db, source_toml("ap")).replace('name = "newsroom"', 'name = "desk"')
        write(path, text)
        changes = await service.reload()
        assert changes is not None
        assert (changes.notifiers_added, changes.notifiers_removed) == (("desk",), ("newsroom",))
        assert "deliver:desk" in jobs(service) and "deliver:newsroom" not in jobs(service)


@pytest.mark.parametrize("damage", ["invalid", "deleted"])
async def test_a_bad_edit_or_deleted_file_is_refused_and_the_old_config_keeps_running(
    tmp_path: Path,
    web: Web,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    damage: str,
) -> None:
    db = tmp_path / "nw.db"
    good = config_text(db, source_toml("ap"))
    path = write(tmp_path / "sources.toml", good)
    async with running(path, web) as service:
        running_config = service.app.config
        if damage == "invalid":
            write(path, good.replace('every = "15m"', 'every = "15 min"'))
            expected = "every: '15 min' is not a duration"
        else:
            path.unlink()
            expected = "file not found"
        with caplog.at_level(logging.ERROR, logger="noticewatch.reload"):
            assert await service.reload() is None
            assert await service.reload() is None  # polled again: not logged again
            assert await service.reload(force=True) is None  # SIGHUP: not logged again
        assert service.app.config is running_config
        refused = service.app.metrics.registry.get_sample_value(
            "noticewatch_config_reloads_total", {"outcome": "refused"}
        )
        assert refused == 1  # one bad edit, however often it is polled
        assert set(jobs(service)) == {"source:ap", "deliver:newsroom", "config:watch"}
        problems = [r.getMessage() for r in caplog.records if "outcome=refused" in r.getMessage()]
        assert len(problems) == 1 and expected in problems[0]
        status = service.watcher.status  # type: ignore[union-attr]
        assert status.stale and expected in status.errors[0]
        stored = service.app.store.get_meta(STATUS_KEY)
        assert stored is not None and ConfigStatus.from_json(stored).stale
        report = status_report(service.app)
        assert "STALE since" in report and expected in report
        # `status` in another process, with the file still broken: it says so too.
        env = {**ENV, "NOTICEWATCH_DATABASE_URL": f"sqlite:///{db}"}
        assert main(["status", "--config", str(path)], env) == 2
        out = capsys.readouterr()
        assert "STALE since" in out.out and expected in out.err
        # Fixing the file brings it back.
        write(path, good.replace('"15m"', '"30m"'))
        changes = await service.reload()
        assert changes is not None and changes.rescheduled == ("ap",)
        assert not service.watcher.status.stale  # type: ignore[union-attr]
        assert "running, loaded" in status_report(service.app)


async def test_an_unchanged_file_is_not_reloaded_unless_forced(tmp_path: Path, web: Web) -> None:
    db = tmp_path / "nw.db"
    path = write(tmp_path / "sources.toml", config_text(db, source_toml("ap")))
    async with running(path, web) as service:
        app = service.app
        assert await service.reload() is None and service.app is app
        assert await service.reload(force=True) is not None and service.app is not app


async def test_a_source_pointed_elsewhere_fetches_the_new_url_and_baselines_it(
    tmp_path: Path, web: Web
) -> None:
    db = tmp_path / "nw.db"
    path = write(tmp_path / "sources.toml", config_text(db, source_toml("ap")))
    async with running(path, web) as service:
        await run(service, "ap")
        moved = source_toml("ap").replace("/ap.xml", "/cnil.xml")
        write(path, config_text(db, moved))
        changes = await service.reload()
        assert changes is not None and changes.added == changes.removed == ()
        web.feeds[FEED.format(name="cnil")] = rss(CV)
        await run(service, "ap")
        assert web.fetched[-1] == FEED.format(name="cnil")
        # Another feed behind the same name is a new baseline: its back catalogue is not news.
        assert service.app.store.alert_counts() == {}


async def test_a_new_start_clears_a_stale_status_left_by_the_previous_run(
    tmp_path: Path,
) -> None:
    db = tmp_path / "nw.db"
    path = write(tmp_path / "sources.toml", config_text(db, source_toml("ap")))
    config = load_config(path, ENV)
    async with open_app(config, clock=Clock(FIXED_NOW)) as app:
        stale = ConfigStatus(str(path), FIXED_NOW, FIXED_NOW, ("old error",))
        app.store.set_meta(STATUS_KEY, stale.to_json())
        service = Service(app, ConfigWatcher(path, ENV, app.clock))
        service.stop.set()  # run() records the status, then stops at once
        await service.run()
        assert "running, loaded" in status_report(app)


async def test_a_removed_source_leaves_no_metrics_behind(tmp_path: Path, web: Web) -> None:
    """A failing source that is removed must not keep a failure gauge (and alerts on it)
    firing forever; its counters go too. The registry is the same one: no re-registration."""
    db = tmp_path / "nw.db"
    path = write(tmp_path / "sources.toml", config_text(db, source_toml("ap"), source_toml("gone")))
    async with running(path, web) as service:
        await run(service, "ap")
        await run(service, "gone")  # no feed served at that URL: a failure
        metrics = service.app.metrics
        before = metrics.render().decode()
        assert 'noticewatch_source_consecutive_failures{source="gone"} 1.0' in before
        assert 'noticewatch_fetches_total{outcome="error",source="gone"} 1.0' in before
        write(path, config_text(db, source_toml("ap")))
        await service.reload()
        assert service.app.metrics is metrics
        after = metrics.render().decode()
        assert 'source="gone"' not in after
        assert 'noticewatch_source_consecutive_failures{source="ap"} 0.0' in after
        assert 'noticewatch_fetches_total{outcome="baseline",source="ap"} 1.0' in after
        write(path, config_text(db, source_toml("ap"), source_toml("gone")))
        await service.reload()  # back again: its stored state is reported again
        again = metrics.render().decode()
        assert 'noticewatch_source_consecutive_failures{source="gone"} 1.0' in again


async def test_a_reload_that_drops_a_subscribed_rule_says_which_subscription_goes_quiet(
    tmp_path: Path, web: Web, caplog: pytest.LogCaptureFixture
) -> None:
    from monitor.subscriptions import make_subscription

    db = tmp_path / "nw.db"
    path = write(tmp_path / "sources.toml", config_text(db, source_toml("ap")))
    async with running(path, web) as service:
        sub = make_subscription("https://hooks.example.org/sub", ["cv"], "desk", FIXED_NOW)
        health = make_subscription("https://hooks.example.org/h", ["source_health"], "", FIXED_NOW)
        service.app.store.add_subscription(sub)
        service.app.store.add_subscription(health)  # the reserved rule is never missing
        await service.refresh()
        write(path, config_text(db, source_toml("ap")).replace('name = "cv"', 'name = "cookie"'))
        with caplog.at_level(logging.WARNING):
            changes = await service.reload()
        assert changes is not None  # the edit itself is valid and applied
        warned = [r.getMessage() for r in caplog.records if sub.id in r.getMessage()]
        assert len(warned) == 1
        assert not [r for r in caplog.records if health.id in r.getMessage()]
        assert f"notifier={sub.id}" in warned[0] and "rule cv" in warned[0]
        assert f"DELETE /api/subscriptions/{sub.id}" in warned[0]
        caplog.clear()
        write(path, config_text(db, source_toml("ap")))  # the rule is back: no warning
        with caplog.at_level(logging.WARNING):
            await service.reload()
        assert not [r for r in caplog.records if sub.id in r.getMessage()]


async def test_a_reload_keeps_every_policy_the_config_sets(tmp_path: Path, web: Web) -> None:
    """The App a reload builds has the same wiring as the one built at start: SAM.gov
    metering, dedupe and health policies, the digest time zone, the email notifier."""
    db = tmp_path / "nw.db"
    extra = """
[[sources]]
name = "sam-dhs"
type = "sam"
api_key = "sam-key-for-tests-0123"
every = "6h"
daily_quota = 10

[[notifiers]]
name = "team-mail"
type = "email"
to = ["procurement@example.org"]
from = "noticewatch@example.org"
smtp_host = "smtp.example.org"
digest = "daily 08:00"
"""
    head = config_text(db, source_toml("ap"), extra)
    head = head.replace(
        "http_port = 0\n",
        'http_port = 0\ntimezone = "Europe/Amsterdam"\nfailing_after = 7\ndedupe_threshold = 0.8\n',
    )
    path = write(tmp_path / "sources.toml", head)
    async with running(path, web) as service:
        first = service.app
        write(path, head.replace('query = "clearview"', 'query = "cookie"'))
        assert await service.reload() is not None
        app = service.app
        assert app is not first and app.config.rules[0].name == "cv"
        for built in (first, app):
            assert "requests today (UTC): 0 of daily_quota 10" in (
                built.sources["sam-dhs"].quota_status()  # type: ignore[attr-defined]
            )  # metered: a detached source raises instead
            assert built.pipeline.dedupe is not None
            assert built.pipeline.dedupe.threshold == 0.8
            assert built.pipeline.health is not None
            assert built.pipeline.health.failing_after == 7
            assert str(built.deliverer.zone) == "Europe/Amsterdam"
            assert built.notifiers["team-mail"].config.type == "email"
        assert "deliver:team-mail" in jobs(service)
