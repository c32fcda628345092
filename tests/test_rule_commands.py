"""test-rule, explain and check --diff over items stored the way a poll stores them."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.backtest import ItemRef, diff_rules, highlight
from monitor.cli import main
from monitor.matching import Matcher, compile_rule
from monitor.models import Item, Match
from monitor.progress import Progress
from monitor.sources.base import Fetched
from storage.db import create_db_engine
from storage.store import Change, Store

SOURCES = """
[monitor]
database = "sqlite:///{db}"

[[sources]]
name = "ap"
type = "rss"
url = "https://example.org/ap"
every = "1h"

[[sources]]
name = "cnil"
type = "rss"
url = "https://example.org/cnil"
every = "1h"
"""

NEW_RULES = """
[[rules]]
name = "clearview"
query = "clearview AND (fine OR boete OR amende)"

[[rules]]
name = "big"
query = "amount>=1000000 EUR"
exclude = "webinar"
"""

OLD_RULES = """
[[rules]]
name = "clearview"
query = "clearview AND fine"

[[rules]]
name = "gone"
query = "privacy"
"""


def entry(source: str, key: str, title: str, summary: str = "", days: int = 1) -> Item:
    return Item(
        source=source,
        source_type="rss",
        key=key,
        content_hash=key,
        title=title,
        summary_html=summary,
        published=datetime.now(UTC) - timedelta(days=days),
        language="en" if source == "ap" else "fr",
    )


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    db = tmp_path / "nw.db"
    new = tmp_path / "sources.toml"
    old = tmp_path / "old.toml"
    new.write_text(SOURCES.format(db=db) + NEW_RULES)
    old.write_text(SOURCES.format(db=db) + OLD_RULES)
    store = Store(create_db_engine(f"sqlite:///{db}"))
    now = datetime.now(UTC)
    batches = {
        "ap": [
            entry("ap", "a1", "AP fines Clearview", "a fine of €30.5 million"),
            entry("ap", "a2", "Privacy webinar", "tickets €2 million", days=200),
            entry("ap", "a3", "Clearview boetes"),
        ],
        "cnil": [entry("cnil", "c1", "La CNIL inflige une amende à Clearview", "pour la collecte")],
    }
    for source, items in batches.items():
        changes = [(item, Change.NEW) for item in items]
        store.commit_batch(source, "rss", Fetched("https://x", 200), items, changes, [], now)
    store.engine.dispose()
    return new, old, {}


def test_test_rule_lists_matches_with_highlights_and_counts(
    setup: tuple[Path, Path, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    new, _, env = setup
    assert main(["test-rule", "--rule", "clearview", "--config", str(new)], env) == 0
    out = capsys.readouterr().out
    assert "AP [fines] [Clearview]" in out
    assert "summary: a [fine] of €30.5 million" in out
    assert "La CNIL inflige une [amende] à [Clearview]" in out
    assert "[Clearview] [boetes]" in out
    assert "matched 3 of 4 stored items" in out
    assert "  ap: 2 of 3" in out
    assert "  cnil: 1 of 1" in out


def test_test_rule_json_since_and_source(
    setup: tuple[Path, Path, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    new, _, env = setup
    args = ["test-rule", "--query", "amount>=1000000", "--since", "90d", "--source", "ap"]
    assert main([*args, "--json", "--config", str(new)], env) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["scanned"] == 2  # the 200-day-old item is outside --since
    assert report["matched"] == 1
    assert report["per_source"] == {"ap": {"scanned": 2, "matched": 1}}
    [hit] = report["items"]
    assert hit["key"] == "a1"
    assert hit["matches"][0]["text"] == "€30.5 million"


def test_test_rule_errors(
    setup: tuple[Path, Path, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    new, _, env = setup
    assert main(["test-rule", "--rule", "nope", "--config", str(new)], env) == 2
    assert "no rule named 'nope'" in capsys.readouterr().err
    assert main(["test-rule", "--query", "a NEAR b", "--config", str(new)], env) == 2
    assert "NEAR needs a distance" in capsys.readouterr().err
    assert main(["test-rule", "--query", "a", "--source", "apx", "--config", str(new)], env) == 2
    assert "no source named 'apx'; known: ap, cnil" in capsys.readouterr().err
    assert main(["test-rule", "--query", "a", "--since", "soon", "--config", str(new)], env) == 2
    assert "--since: 'soon' is not a duration" in capsys.readouterr().err


def test_explain(
    setup: tuple[Path, Path, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    new, _, env = setup
    assert main(["explain", "a2", "--config", str(new)], env) == 0
    out = capsys.readouterr().out
    assert "- clearview: no match; missing: clearview; fine OR boete OR amende" in out
    assert "- big: vetoed by its exclude query (title: 'webinar')" in out
    assert main(["explain", "a1", "--json", "--config", str(new)], env) == 0
    [report] = json.loads(capsys.readouterr().out)
    assert [r["matched"] for r in report["rules"]] == [True, True]
    assert main(["explain", "zz", "--config", str(new)], env) == 1


def test_check_diff(
    setup: tuple[Path, Path, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    new, old, env = setup
    assert main(["check", "--diff", str(old), "--config", str(new)], env) == 0
    out = capsys.readouterr().out
    assert "clearview (changed): would start matching 2, stop matching 0" in out
    assert "+ cnil  La CNIL inflige une amende à Clearview" in out
    assert "big (added): would start matching 1, stop matching 0" in out
    assert "gone (removed): would start matching 0, stop matching 1" in out
    assert main(["check", "--diff", str(old), "--json", "--config", str(new)], env) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["scanned"] == 4
    statuses = {r["rule"]: r["status"] for r in report["rules"]}
    assert statuses == {"clearview": "changed", "big": "added", "gone": "removed"}


def test_check_diff_keeps_references_not_items() -> None:
    # A rule change may start matching most of the history: the diff must not hold
    # every item's content in memory until it prints.
    items = [entry("ap", f"k{n}", "Clearview fined", "x" * 10_000) for n in range(3)]
    old = Matcher([compile_rule("r", "privacy")])
    new = Matcher([compile_rule("r", "clearview")])
    scanned, diffs = diff_rules(old, new, items, datetime.now(UTC))
    assert scanned == 3
    assert diffs[0].started == [ItemRef("ap", f"k{n}", "Clearview fined") for n in range(3)]


def test_check_diff_with_a_bad_old_config(
    setup: tuple[Path, Path, dict[str, str]], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    new, _, env = setup
    bad = tmp_path / "bad.toml"
    bad.write_text(SOURCES.format(db=tmp_path / "x.db") + '[[rules]]\nname = "x"\nquery = "("\n')
    assert main(["check", "--diff", str(bad), "--config", str(new)], env) == 2
    assert "never closed" in capsys.readouterr().err


def test_progress_bar_redraws_per_percent_and_stays_quiet_when_disabled() -> None:
    stream = io.StringIO()
    bar = Progress(200, stream, enabled=True)
    for done in range(1, 201):
        bar.update(done)
    bar.finish()
    frames = stream.getvalue().split("\r")[1:]
    assert len(frames) == 101  # 0% to 100%
    assert frames[-1] == "[" + "#" * 30 + "] 200/200 100%\n"
    quiet = io.StringIO()
    off = Progress(200, quiet, enabled=False)
    off.update(100)
    off.finish()
    assert quiet.getvalue() == ""


def test_highlight_merges_overlaps() -> None:
    found = [Match("r", "t", "ab", 0, 2), Match("r", "t", "bc", 1, 3), Match("r", "t", "e", 4, 5)]
    assert highlight("abcde", found) == "[abc]d[e]"
