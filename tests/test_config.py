"""sources.toml validation: every problem at once, with its place; secrets never shown."""

from __future__ import annotations

import base64
import textwrap
from pathlib import Path

import pytest

from monitor.config import DATABASE_ENV, config_path, load_config
from monitor.errors import ConfigError
from monitor.sources import SOURCE_TYPES

ROOT = Path(__file__).parent.parent
SECRET = "whsec_" + base64.b64encode(b"s" * 32).decode()
ENV = {
    "NOTICEWATCH_WEBHOOK_URL": "https://hooks.example.org/noticewatch",
    "NOTICEWATCH_WEBHOOK_SECRET": SECRET,
}

GOOD = """
[monitor]
database = "sqlite:///{db}"

[[sources]]
name = "ap-nl"
type = "rss"
url = "https://autoriteitpersoonsgegevens.nl/feed/article/rss.xml"
every = "15m"
language = "nl"

[[rules]]
name = "clearview-fines"
query = 'clearview AND (fine OR boete OR amende OR sanction*)'
sources = ["ap-nl"]

[[notifiers]]
name = "newsroom"
type = "webhook"
url = "https://hooks.example.org/noticewatch"
secret = "${{NEWSROOM_WEBHOOK_SECRET}}"
rules = ["clearview-fines"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sources.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env if env is not None else ENV)
    return info.value.problems


def test_shipped_sources_toml_is_valid() -> None:
    config = load_config(ROOT / "sources.toml", ENV)
    assert {s.name for s in config.sources} >= {"ap-nl", "cnil", "edpb", "ftc", "gnews-clearview"}
    assert [n.name for n in config.notifiers] == ["newsroom"]
    assert {s.type for s in config.sources} == {"rss", "sam", "html"}
    assert {"ico", "garante"} <= {s.name for s in config.sources if s.type == "html"}


def test_issue_example_loads_with_secret_from_env(tmp_path: Path) -> None:
    env = {"NEWSROOM_WEBHOOK_SECRET": SECRET}
    config = load_config(write(tmp_path, GOOD.format(db=tmp_path / "x.db")), env)
    source = config.source("ap-nl")
    assert source.every.total_seconds() == 900
    assert source.language == "nl"
    assert config.rules[0].sources == frozenset({"ap-nl"})
    notifier = config.notifiers[0]
    assert notifier.secret.get_secret_value() == SECRET  # type: ignore[attr-defined]
    assert SECRET not in repr(config)


def test_secret_from_var_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    env = {"NEWSROOM_WEBHOOK_SECRET_FILE": str(secret_file)}
    config = load_config(write(tmp_path, GOOD.format(db=tmp_path / "x.db")), env)
    assert config.notifiers[0].secret.get_secret_value() == SECRET  # type: ignore[attr-defined]


def test_missing_variable_is_named_and_no_value_leaks(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.format(db=tmp_path / "x.db"), env={"OTHER": SECRET})
    assert any("NEWSROOM_WEBHOOK_SECRET is not set" in p for p in found), found
    assert any(p.startswith("notifiers[0].secret") for p in found), found
    assert not any(SECRET in p for p in found)


def test_bad_secret_value_is_never_echoed(tmp_path: Path) -> None:
    bad = "whsec_not*base64*at*all*but*secret"
    found = problems(
        tmp_path, GOOD.format(db=tmp_path / "x.db"), env={"NEWSROOM_WEBHOOK_SECRET": bad}
    )
    assert any('notifiers[0] "newsroom": secret' in p for p in found), found
    assert not any(bad in p for p in found)


def test_database_env_overrides(tmp_path: Path) -> None:
    env = {"NEWSROOM_WEBHOOK_SECRET": SECRET, DATABASE_ENV: "sqlite:///elsewhere.db"}
    config = load_config(write(tmp_path, GOOD.format(db=tmp_path / "x.db")), env)
    assert config.monitor.database == "sqlite:///elsewhere.db"


def test_every_problem_reported_at_once_with_its_place(tmp_path: Path) -> None:
    text = """
    [monitor]
    databse = "oops"

    [[sources]]
    name = "cnil"
    type = "rss"
    url = "https://www.cnil.fr/fr/rss.xml"
    every = "15 min"
    colour = "red"

    [[sources]]
    name = "cnil"
    type = "rss"
    url = "https://www.cnil.fr/fr/rss.xml"
    every = "1h"

    [[sources]]
    name = "ted"
    type = "telepathy"
    every = "1h"

    [[sources]]
    name = "Bad Name"
    type = "rss"
    url = "https://example.org/feed"
    every = "1h"

    [[rules]]
    name = "r1"
    query = 'clearview AND (fine OR'
    sources = ["nowhere"]

    [[rules]]
    name = "r1"
    query = "x"

    [[notifiers]]
    name = "hook"
    type = "webhook"
    url = "https://hooks.example.org/"
    secret = "${MISSING_SECRET}"
    rules = ["r1", "ghost"]

    [[notifiers]]
    name = "pager"
    type = "pigeon"
    """
    found = problems(tmp_path, text)
    joined = "\n".join(found)
    expected = [
        "monitor: databse: unknown key",
        "sources[0] \"cnil\": every: '15 min' is not a duration like",
        'sources[0] "cnil": colour: unknown key',
        "sources[1] \"cnil\": name: duplicate source name 'cnil'",
        "sources[2] \"ted\": type: unknown type 'telepathy'; known types: "
        + ", ".join(sorted(SOURCE_TYPES)),
        'sources[3] "Bad Name": name:',
        "rules[0] \"r1\": sources: no source named 'nowhere'",
        'rules[0] "r1": query:',
        "rules[1] \"r1\": name: duplicate rule name 'r1'",
        "notifiers[0].secret: environment variable MISSING_SECRET is not set",
        "notifiers[0] \"hook\": rules: no rule named 'ghost'",
        "notifiers[1] \"pager\": type: unknown type 'pigeon'; known types: email, webhook",
    ]
    for piece in expected:
        assert piece in joined, f"missing {piece!r} in:\n{joined}"


def test_bad_query_points_at_the_position(tmp_path: Path) -> None:
    text = GOOD.format(db=tmp_path / "x.db").replace(
        "clearview AND (fine OR boete OR amende OR sanction*)", "clearview AND (fine OR boete"
    )
    found = problems(tmp_path, text, env={"NEWSROOM_WEBHOOK_SECRET": SECRET})
    (query_problem,) = [p for p in found if "query" in p]
    assert query_problem.startswith('rules[0] "clearview-fines": query:')
    assert "position 14" in query_problem  # the unclosed parenthesis


@pytest.mark.parametrize(
    ("every", "message"),
    [("0s", "longer than zero"), ("15", "not a duration"), ("fast", "not a duration")],
)
def test_bad_durations(tmp_path: Path, every: str, message: str) -> None:
    text = GOOD.format(db=tmp_path / "x.db").replace('every = "15m"', f'every = "{every}"')
    found = problems(tmp_path, text, env={"NEWSROOM_WEBHOOK_SECRET": SECRET})
    assert any(p.startswith('sources[0] "ap-nl": every:') and message in p for p in found), found


def test_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    found = problems(tmp_path, "[[sources]\nname = 1")
    assert "not valid TOML" in found[0] and "sources.toml" in found[0]


def test_missing_file_has_a_hint(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.toml", {})
    assert "file not found" in str(info.value) and "NOTICEWATCH_CONFIG" in str(info.value)


def test_no_sources_is_an_error(tmp_path: Path) -> None:
    assert any("no [[sources]]" in p for p in problems(tmp_path, "[monitor]\n"))


def test_unknown_top_level_key(tmp_path: Path) -> None:
    text = GOOD.format(db=tmp_path / "x.db") + "\n[extras]\nx = 1\n"
    found = problems(tmp_path, text, env={"NEWSROOM_WEBHOOK_SECRET": SECRET})
    assert any(p.startswith("extras: unknown top-level key") for p in found)


def test_config_path_precedence(tmp_path: Path) -> None:
    assert config_path("a.toml", {"NOTICEWATCH_CONFIG": "b.toml"}) == Path("a.toml")
    assert config_path(None, {"NOTICEWATCH_CONFIG": "b.toml"}) == Path("b.toml")
    assert config_path(None, {}) == Path("sources.toml")


def test_dollar_escape(tmp_path: Path) -> None:
    text = GOOD.format(db=tmp_path / "x.db").replace("sanction*)'", 'sanction* OR "$$5")\'')
    config = load_config(write(tmp_path, text), {"NEWSROOM_WEBHOOK_SECRET": SECRET})
    assert config.rules[0].query.text.endswith('sanction* OR "$5")')


def test_entries_that_are_not_tables_are_errors(tmp_path: Path) -> None:
    found = problems(tmp_path, 'sources = [1, "x"]\nrules = [2]\n')
    assert "sources[0]: must be a table" in found
    assert "sources[1]: must be a table" in found
    assert "rules[0]: must be a table" in found


def test_empty_rule_sources_is_reported_with_the_others(tmp_path: Path) -> None:
    text = GOOD.format(db=tmp_path / "x.db").replace('sources = ["ap-nl"]', "sources = []")
    found = problems(tmp_path, text, env={})
    assert any('rules[0] "clearview-fines": ' in p and "sources is empty" in p for p in found)
    assert any("NEWSROOM_WEBHOOK_SECRET is not set" in p for p in found)


def test_variable_default_is_used_only_when_unset(tmp_path: Path) -> None:
    text = """
    [[sources]]
    name = "sam-dhs"
    type = "sam"
    api_key = "${SAM_API_KEY:-}"
    every = "6h"
    title = "${SAM_TITLE:-facial recognition}"
    """
    path = write(tmp_path, text)
    unset = load_config(path, {}).sources[0]
    assert unset.api_key.get_secret_value() == ""  # type: ignore[attr-defined]
    assert unset.title == "facial recognition"  # type: ignore[attr-defined]
    key_file = tmp_path / "key"
    key_file.write_text("from-file\n")
    from_file = load_config(path, {"SAM_API_KEY_FILE": str(key_file)}).sources[0]
    assert from_file.api_key.get_secret_value() == "from-file"  # type: ignore[attr-defined]
    env = {"SAM_API_KEY": "k", "SAM_TITLE": "biometric"}
    set_ = load_config(path, env).sources[0]
    assert set_.api_key.get_secret_value() == "k"  # type: ignore[attr-defined]
    assert set_.title == "biometric"  # type: ignore[attr-defined]
