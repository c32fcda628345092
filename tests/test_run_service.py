"""``noticewatch run`` as a process: HTTP endpoints, SIGHUP reload, JSON logs, SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest

from tests.support.feeds import rss
from tests.support.webhook_receiver import WEBHOOK_SECRET
from tests.test_e2e import FINE, FINE2, OLD, Env

pytestmark = pytest.mark.integration
TOKEN = "an-api-token-for-the-e2e-tests"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


@contextmanager
def service(env: Env, **environ: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", "--log-format", "json"],
        cwd=env.tmp, env={**env.environ(), **environ},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def stop(proc: subprocess.Popen[str]) -> tuple[str, float]:
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=15)
    return output, time.monotonic() - started


def get(url: str, **kw: object) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=2, **kw)  # type: ignore[arg-type]
    except httpx.TransportError:
        return None


@pytest.fixture
def env(tmp_path, feed_server, webhook_receiver) -> Env:  # type: ignore[no-untyped-def]
    return Env(tmp_path, feed_server, webhook_receiver)


def test_run_serves_http_reloads_on_sighup_and_logs_json(env: Env) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env.write_config(http_port=port)
    env.feeds.serve("/ap.xml", rss(OLD))
    env.feeds.serve("/ico.xml", rss(FINE))
    with service(env, NOTICEWATCH_API_TOKEN=TOKEN) as proc:
        wait_until(lambda: (r := get(f"{base}/readyz")) is not None and r.status_code == 200)
        assert get(f"{base}/healthz").json() == {"status": "ok"}  # type: ignore[union-attr]
        wait_until(lambda: "noticewatch_fetches_total{" in get(f"{base}/metrics").text)  # type: ignore[union-attr]
        auth = {"Authorization": f"Bearer {TOKEN}"}

        def names() -> list[str]:
            reply = get(f"{base}/api/sources", headers=auth)
            return [s["name"] for s in reply.json()["sources"]] if reply else []

        assert names() == ["ap-nl"]
        health = env.cli("healthcheck", "--ready")  # port from the config file
        assert health.returncode == 0, health.stdout
        assert f"config ok ({env.tmp / 'sources.toml'} loaded" in health.stdout
        env.write_config(http_port=port, extra=env.source("ico", "/ico.xml"))
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: names() == ["ap-nl", "ico"])
        wait_until(lambda: any(r.path == "/ico.xml" for r in env.feeds.requests))
        output, took = stop(proc)
    assert proc.returncode == 0 and took < 10, output
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    assert any(line.get("outcome") == "reloaded" for line in lines)
    ico = [line for line in lines if line.get("source") == "ico"]
    assert ico and ico[0]["outcome"] == "baseline"  # an added source starts with its baseline
    assert all(line["level"] in {"debug", "info", "warning", "error"} for line in lines)
    assert WEBHOOK_SECRET not in output and TOKEN not in output


def test_healthcheck_without_a_service_fails(env: Env) -> None:
    (env.tmp / "sources.toml").write_text("not [ toml")  # it only needs the port
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "healthcheck"],
        cwd=env.tmp, env={**env.environ(), "NOTICEWATCH_HTTP_PORT": str(free_port())},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1 and "unhealthy: no answer from http://127.0.0.1:" in result.stdout


def test_a_busy_http_port_is_a_clear_error(env: Env) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env.write_config(http_port=port)
        result = env.cli("run")
    assert result.returncode == 2
    assert f"monitor.http_port: cannot listen on 127.0.0.1:{port}" in result.stderr


def test_sigterm_in_the_middle_of_a_fetch_stops_cleanly_and_keeps_state(env: Env) -> None:
    env.write_config(baseline=False)
    env.feeds.serve("/ap.xml", rss(FINE))
    assert env.cli("poll").returncode == 0  # one alert delivered, state recorded
    env.receiver.wait_for(1)
    env.feeds.fault("/ap.xml", "hang")
    with service(env) as proc:
        assert env.feeds.wait_for_requests(2, timeout=30)  # the fetch is in flight
        output, took = stop(proc)
    assert proc.returncode == 0 and took < 10, output
    assert "service=stopped" in output
    with sqlite3.connect(env.db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (1,)
        assert conn.execute("SELECT status FROM alerts").fetchall() == [("delivered",)]
        fetches = conn.execute("SELECT fetches, failures FROM source_state").fetchone()
    assert fetches == (1, 0)  # the cut-off fetch is not recorded as a failure
    # The next start picks up where it was: the new item alerts once.
    env.feeds.serve("/ap.xml", rss(FINE, FINE2))
    assert env.cli("poll").returncode == 0
    env.receiver.wait_for(2)
    assert len(env.receiver.unique_ids()) == 2


def test_a_sigterm_while_run_starts_waits_for_it_and_stops_it_cleanly(env: Env) -> None:
    """A container stopped while noticewatch starts (config, database, migrations): the
    SIGTERM is held until the service's own handlers are in place, then stops it with
    exit 0 instead of killing it half-started."""
    env.write_config(baseline=False)
    env.feeds.serve("/ap.xml", rss(FINE))
    # Sent before main() runs and held pending by the child itself, so the signal is
    # there for the whole start however fast this machine is; main() must let it in.
    script = (
        "import os, signal, sys\n"
        "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "from monitor.cli import main\n"
        "sys.exit(main(['run', '--log-format', 'json']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=env.tmp, env=env.environ(),
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "service=stopped" in output
    with sqlite3.connect(env.db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_other_commands_leave_sigterm_to_its_default(env: Env) -> None:
    env.write_config(baseline=False)
    assert env.cli("check").returncode == 0
    from monitor.cli import main

    assert main(["check"], env.environ()) == 0
    assert signal.SIGTERM not in signal.pthread_sigmask(signal.SIG_BLOCK, [])
