"""The README documents every setting, and CI runs the README's own test command."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from monitor.config import MonitorSettings, RuleConfig
from monitor.config_base import NotifierConfig, SourceConfig
from monitor.sources import SOURCE_TYPES
from notifiers import NOTIFIER_TYPES

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
MODELS: list[type[BaseModel]] = [
    MonitorSettings,
    RuleConfig,
    SourceConfig,
    NotifierConfig,
    *(t.config_model for t in SOURCE_TYPES.values()),
    *(t.config_model for t in NOTIFIER_TYPES.values()),
]
DOCUMENTED = set(re.findall(r"^\| `([a-z_]+)` \|", README, flags=re.M))


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_config_key_is_in_the_readme_reference(model: type[BaseModel]) -> None:
    keys = {field.alias or name for name, field in model.model_fields.items()}  # TOML keys
    missing = keys - DOCUMENTED
    if issubclass(model, NotifierConfig):
        missing -= {"rules"}  # described once for every notifier, in prose
    assert not missing, f"{model.__name__}: undocumented keys {sorted(missing)}"


@pytest.mark.parametrize("kind", [*SOURCE_TYPES.values(), *NOTIFIER_TYPES.values()])
def test_every_type_has_help_and_is_in_the_readme(kind: object) -> None:
    name, help_text = kind.name, kind.help  # type: ignore[attr-defined]
    assert len(help_text.strip()) > 200
    assert f'`type = "{name}"`' in README


def test_ci_runs_the_readme_test_command() -> None:
    blocks = re.findall(r"```sh\n(.*?)\n```", README, flags=re.S)
    test_command = next(b for b in blocks if "tests/run.sh" in b).strip()
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_command in ci.splitlines()
    assert "python3 -m pytest" in (ROOT / "tests" / "run.sh").read_text()


def test_shipped_config_check_passes_with_the_documented_variables() -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "NOTICEWATCH_WEBHOOK_URL": "https://hooks.example.org/noticewatch",
        "NOTICEWATCH_WEBHOOK_SECRET": "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=",
    }
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "check"], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "8 sources (8 enabled), 4 rules, 1 notifiers" in result.stdout


@pytest.mark.skipif(shutil.which("noticewatch") is None, reason="package not installed")
def test_console_script_is_installed() -> None:
    result = subprocess.run(
        ["noticewatch", "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0 and result.stdout.startswith("noticewatch ")
