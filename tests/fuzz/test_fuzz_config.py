"""Fuzzing the config loader: TOML text written from generated structures, raw bytes,
and structures handed to parse_config directly, with ``${VAR}`` expansion."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.config import Config, load_config, parse_config
from monitor.errors import ConfigError
from tests.fuzz.strategies import config_document, toml_text, value

SECRET = "fuzz-secret-1234567890"


def environment(folder: Path) -> dict[str, str]:
    secret_file = folder / "secret.txt"
    secret_file.write_text(SECRET + "\n", encoding="utf-8")
    return {
        "SECRET": SECRET,
        "TOKEN": "tok-0987654321",
        "EMPTY": "",
        "VIA_FILE_FILE": str(secret_file),
        "BAD_FILE_FILE": str(folder),  # a directory: reading it fails
    }


def load(raw: bytes) -> Config | None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = folder / "sources.toml"
        path.write_bytes(raw)
        try:
            return load_config(path, environment(folder))
        except ConfigError as e:
            assert SECRET not in str(e)
            assert all(SECRET not in problem for problem in e.problems)
            return None


@given(config_document)
def test_generated_configs_load_or_raise_a_config_error(doc: dict[str, Any]) -> None:
    load(toml_text(doc).encode("utf-8", "surrogatepass"))


@given(
    st.binary(max_size=1000)
    | st.text(max_size=500).map(lambda t: t.encode("utf-8", "surrogatepass"))
)
def test_arbitrary_bytes_load_or_raise_a_config_error(raw: bytes) -> None:
    load(raw)


@given(st.dictionaries(st.text(max_size=10), value, max_size=5) | config_document)
def test_any_structure_parses_or_raises_a_config_error(doc: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            parse_config(doc, environment(Path(tmp)), path=Path("fuzz.toml"))
        except ConfigError as e:
            assert SECRET not in str(e)


@pytest.mark.parametrize(
    ("every", "message"),
    [
        ("99999999999d", "is too long: at most 3650d"),
        (86400000000000.0, "is too long"),
        (float("inf"), "is too long"),
        (float("nan"), "is not a duration"),
        ("3651d", "is too long"),
    ],
)
def test_a_duration_beyond_the_clock_is_a_config_error(every: object, message: str) -> None:
    """Found by the fuzzer: ``every = 86400000000000.0`` (or ``"99999999999d"``) raised
    OverflowError out of the loader instead of a problem naming the key."""
    doc = {
        "monitor": {"disable_after": every},
        "sources": [{"name": "a", "type": "rss", "url": "https://example.org/f", "every": every}],
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(doc, {}, path=Path("sources.toml"))
    assert any(
        p.startswith("monitor: disable_after:") and message in p for p in caught.value.problems
    )
    assert any(
        p.startswith('sources[0] "a": every:') and message in p for p in caught.value.problems
    )
