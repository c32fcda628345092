"""The service wiring (APScheduler jobs), log scrubbing and CLI edge cases."""

from __future__ import annotations

import io
import logging
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.app import config_secrets, open_app
from monitor.cli import main
from monitor.config import load_config
from monitor.logs import SecretFilter
from monitor.scheduler import Service
from tests.support.webhook_receiver import WEBHOOK_SECRET

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def keep_root_logger() -> Iterator[None]:
    """main() configures the root logger for the process; give it back after each test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "sources.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [monitor]
            database = "sqlite:///{tmp_path / "nw.db"}"

            [[sources]]
            name = "ap-nl"
            type = "rss"
            url = "http://127.0.0.1:9/ap.xml"
            every = "15m"

            [[sources]]
            name = "idle"
            type = "rss"
            url = "http://127.0.0.1:9/idle.xml"
            every = "1h"
            enabled = false

            [[rules]]
            name = "cv"
            query = "clearview"

            [[notifiers]]
            name = "newsroom"
            type = "webhook"
            url = "http://127.0.0.1:9/hook"
            secret = "${{SECRET}}"
            allow_private = true
            """
        )
    )
    return path


async def test_one_job_per_enabled_source_and_per_notifier(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path), {"SECRET": WEBHOOK_SECRET})
    async with open_app(config) as app:
        service = Service(app)
        service._schedule()
        jobs = {job.id: job for job in service.scheduler.get_jobs()}
    assert set(jobs) == {"source:ap-nl", "deliver:newsroom"}
    source_job = jobs["source:ap-nl"]
    assert source_job.coalesce is True and source_job.max_instances == 1
    assert source_job.trigger.interval.total_seconds() == 900
    assert source_job.trigger.jitter == 60
    assert jobs["deliver:newsroom"].max_instances == 1


def test_secret_filter_scrubs_messages_arguments_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(SecretFilter([WEBHOOK_SECRET]))
    logger = logging.getLogger("test.secret-filter")
    logger.addHandler(handler)
    try:
        logger.error("sending with %s", WEBHOOK_SECRET)
        try:
            raise RuntimeError(f"boom {WEBHOOK_SECRET}")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()
    assert WEBHOOK_SECRET not in output
    assert "sending with ***" in output and "RuntimeError: boom ***" in output


def test_config_secrets_lists_secret_values(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path), {"SECRET": WEBHOOK_SECRET})
    assert config_secrets(config) == [WEBHOOK_SECRET]


def test_poll_unknown_source_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path)
    code = main(["poll", "--config", str(path), "--source", "nope"], {"SECRET": WEBHOOK_SECRET})
    assert code == 2
    assert "no source named nope" in capsys.readouterr().out


def test_poll_disabled_source_is_skipped_not_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path)
    code = main(["poll", "--config", str(path), "--source", "idle"], {"SECRET": WEBHOOK_SECRET})
    assert code == 0
    assert "idle: skipped: disabled" in capsys.readouterr().out


def test_check_reports_config_errors_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["check", "--config", str(write_config(tmp_path))], {})
    assert code == 2
    err = capsys.readouterr().err
    assert "environment variable SECRET is not set" in err


async def test_pooled_connections_are_dropped_before_a_5s_server_idle_timeout(
    tmp_path: Path,
) -> None:
    """A connection idle for 5 s is one Apache (and the test feed server) is closing: a
    fetch must not reuse it (see monitor.app.KEEPALIVE_SECONDS)."""
    from tests.support.feed_server import _SOCKET_TIMEOUT

    config = load_config(write_config(tmp_path), {"SECRET": WEBHOOK_SECRET})
    async with open_app(config) as app:
        pool = app.http._transport._pool  # type: ignore[attr-defined]
        assert pool._keepalive_expiry < min(5.0, _SOCKET_TIMEOUT)
