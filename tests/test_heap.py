"""The garbage collector's settings for poll and run (monitor.heap)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from monitor import cli
from storage.db import create_db_engine

# Run in a child: settling the test process's own heap would freeze every object the
# suite has made so far.
_PROBE = """
import gc, weakref
from monitor.heap import YOUNG_THRESHOLD, settle_heap

class Node:
    pass

before = Node()
_, middle, old = gc.get_threshold()
settle_heap()
print(gc.get_freeze_count() > 0, gc.get_threshold() == (YOUNG_THRESHOLD, middle, old))
gone = weakref.ref(before)
del before
print(gone() is None)  # a frozen object is still freed by its last reference
later = Node(); later.me = later
collected = weakref.ref(later)
del later
gc.collect()
print(collected() is None)  # a cycle made after start-up is still collected
"""


def test_settling_freezes_start_up_and_still_frees_what_comes_later() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["True", "True", "True", "True"]


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "sources.toml"
    config.write_text(
        f'[monitor]\ndatabase = "sqlite:///{tmp_path / "nw.db"}"\n'
        '[[sources]]\nname = "a"\ntype = "rss"\nurl = "http://127.0.0.1:9/a"\nevery = "1h"\n'
    )
    return config


@pytest.mark.parametrize("own_process", [True, False])
def test_poll_settles_the_heap_only_when_it_owns_the_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, own_process: bool
) -> None:
    settled: list[bool] = []
    monkeypatch.setattr(cli, "settle_heap", lambda: settled.append(True))
    argv = ["noticewatch", "poll", "--config", str(_config(tmp_path))]
    monkeypatch.setattr(sys, "argv", argv)
    code = cli.main(None if own_process else argv[1:], {})
    assert code == 1  # the one source's port refuses: a failed poll, still a poll
    assert settled == ([True] if own_process else [])


def test_a_command_that_only_reads_leaves_the_collector_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settled: list[bool] = []
    monkeypatch.setattr(cli, "settle_heap", lambda: settled.append(True))
    monkeypatch.setattr(sys, "argv", ["noticewatch", "status", "--config", str(_config(tmp_path))])
    assert cli.main(None, {}) == 0
    assert settled == []


# What `run` loads on its SQLite default: the PostgreSQL dialect (and its four drivers'
# modules, ~2.3 MB) only once a PostgreSQL database asks for it. (A database still to be
# created or upgraded loads it with alembic, whose dialect modules import it.)
_DIALECTS = """
import sys
import monitor.app, monitor.cli, monitor.scheduler
from sqlmodel import Session
from storage.db import conflict_insert, create_db_engine
from storage.keyfilter import KeyFilter
from storage.tables import Meta

loaded = lambda: "sqlalchemy.dialects.postgresql" in sys.modules
print(loaded())
engine = create_db_engine(sys.argv[1])
with Session(engine) as s:
    KeyFilter.stamp(s)
    s.commit()
engine.dispose()
print(loaded(), type(conflict_insert("sqlite", Meta)).__module__)
print(type(conflict_insert("postgresql", Meta)).__module__, loaded())
"""


def test_the_postgresql_dialect_loads_only_for_postgresql(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'n.db'}"
    create_db_engine(url).dispose()  # at the newest revision: the child opens it as `run` does
    done = subprocess.run(
        [sys.executable, "-c", _DIALECTS, url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.split("\n")[:3] == [
        "False",
        "False sqlalchemy.dialects.sqlite.dml",
        "sqlalchemy.dialects.postgresql.dml True",
    ]
