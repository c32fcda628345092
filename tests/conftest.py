"""Shared test fixtures. Async tests use anyio's pytest plugin on asyncio."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support.databases import db_url, pg_url, postgres_server  # noqa: F401 - fixtures
from tests.support.feed_server import feed_server  # noqa: F401 - pytest fixture
from tests.support.loopback import loopback_only  # noqa: F401 - autouse fixture
from tests.support.webhook_receiver import (  # noqa: F401 - pytest fixtures
    webhook_receiver,
    webhook_receiver_factory,
)

DATA = Path(__file__).parent / "data"
FIXED_NOW = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def data_dir() -> Path:
    return DATA


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    """main() configures the root logger for the process; give it back after every test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level
