"""Secret canaries: every secret gets a unique fake value, the real CLI is driven through
failures (SAM 401/403/429/500 that echo the request, a TLS error, a webhook receiver
answering 5xx and 4xx with an echo, SMTP auth failure and a 550, config errors next to
the secrets, reloads with changed and with broken secrets), and then no canary, in any
obvious encoding, may appear anywhere it could leak to: logs at DEBUG in both formats,
stdout/stderr of every command, the database and its -wal/-shm, the emails and webhook
requests received (bar the signature), ``status`` and the HTTP API.
"""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import textwrap
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook

from tests.support import smtp_server
from tests.support.feeds import rss
from tests.support.smtp_server import USERNAME, SmtpServer
from tests.test_e2e import FINE, FINE2, OTHER
from tests.test_run_service import free_port, get, wait_until

pytestmark = pytest.mark.integration


def _whsec(tag: str) -> tuple[str, bytes]:
    key = f"CANARY-{tag}-webhook-key-bytes!!".encode()  # 32 bytes, readable when decoded
    return "whsec_" + base64.b64encode(key).decode(), key


@dataclass(frozen=True)
class Canaries:
    """One generation of secret values; ``tag`` makes each generation's values unique."""

    tag: str
    sam_key: str = ""
    smtp_bad: str = ""  # a password the server refuses
    smtp_good: str = ""  # the one it accepts (it must not show up in the emails either)
    hook_secret: str = ""
    hook_key: bytes = b""
    hook_secret_2: str = ""
    hook_key_2: bytes = b""

    @classmethod
    def make(cls, tag: str) -> Canaries:
        hook, key = _whsec(f"{tag}a")
        hook_2, key_2 = _whsec(f"{tag}b")
        return cls(
            tag,
            sam_key=f"CANARY-{tag}-sam-api-key-7f3a9c",
            smtp_bad=f"CANARY-{tag}-smtp-wrong-pass/+=",
            smtp_good=f"CANARY-{tag}-smtp-right-pass&?",
            hook_secret=hook,
            hook_key=key,
            hook_secret_2=hook_2,
            hook_key_2=key_2,
        )

    def env(self) -> dict[str, str]:
        return {
            "SAM_API_KEY": self.sam_key,
            "SMTP_BAD": self.smtp_bad,
            "SMTP_GOOD": self.smtp_good,
            "HOOK_SECRET": self.hook_secret,
            "HOOK_SECRET_2": self.hook_secret_2,
        }

    def values(self) -> list[str]:
        return [*self.env().values(), *(s.removeprefix("whsec_") for s in self.hook_secrets)]

    @property
    def hook_secrets(self) -> tuple[str, str]:
        return self.hook_secret, self.hook_secret_2

    def decoded_keys(self) -> list[bytes]:
        return [self.hook_key, self.hook_key_2]


API_TOKEN = "CANARY-api-token-0b7d5e1f2a"


def encodings(secret: str) -> set[bytes]:
    """The forms a secret takes when it leaks: raw, URL-encoded, JSON-escaped, base64."""
    raw = secret.encode()
    forms = {
        raw,
        urllib.parse.quote(secret, safe="").encode(),
        urllib.parse.quote_plus(secret).encode(),
        json.dumps(secret)[1:-1].encode(),
        base64.b64encode(raw),
        base64.urlsafe_b64encode(raw),
        raw.hex().encode(),
    }
    return {form for form in forms if len(form) >= 8}


def key_encodings(key: bytes) -> set[bytes]:
    """A whsec_ secret's decoded key: its bytes, base64, hex."""
    return {key, base64.b64encode(key), key.hex().encode(), base64.urlsafe_b64encode(key)}


# --- a scripted loopback server that echoes requests back, as real APIs do --------------


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class EchoServer:
    """Answers each path with a fixed status and an echo of the request (query, headers,
    body) in a JSON body; records every request."""

    routes: dict[str, tuple[int, bytes | None]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def base(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> EchoServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                path = urllib.parse.urlsplit(self.path).path
                with owner.lock:
                    owner.seen.append(Seen(self.path, dict(self.headers.items()), body))
                status, content = owner.routes.get(path, (404, None))
                if content is None:
                    echo = {
                        "error": {"code": status, "message": "request rejected"},
                        "request": {"method": self.command, "url": self.path,
                                    "headers": dict(self.headers.items()),
                                    "body": body.decode("utf-8", "replace")},
                    }  # fmt: skip
                    content = json.dumps(echo).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if status == 429:
                    self.send_header("Retry-After", "120")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = _serve

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    with SmtpServer(tmp_path) as server:
        yield server


# --- the run -------------------------------------------------------------------------------


@dataclass
class Run:
    tmp: Path
    echo: EchoServer
    smtp: SmtpServer
    outputs: list[tuple[str, str]] = field(default_factory=list)  # (what, text)
    extra: dict[str, str] = field(default_factory=dict)  # more environment

    @property
    def db(self) -> Path:
        return self.tmp / "data" / "noticewatch.db"

    def config(self, canaries: Canaries, *, http_port: int = 0, broken: str = "") -> None:
        e = self.echo.base
        sams = "".join(
            f"""
            [[sources]]
            name = "sam-{status}"
            type = "sam"
            every = "1h"
            api_key = "${{SAM_API_KEY}}"
            daily_quota = 1000
            base_url = "{e}/sam{status}"
            """
            for status in (401, 403, 429, 500)
        )
        mails = "".join(
            f"""
            [[notifiers]]
            name = "mail-{name}"
            type = "email"
            to = ["{to}"]
            from = "noticewatch@example.org"
            smtp_host = "127.0.0.1"
            smtp_port = {self.smtp.port}
            ca_file = "{self.smtp.ca_file}"
            username = "{USERNAME}"
            password = "${{{var}}}"
            timeout = "5s"
            """
            for name, to, var in (
                ("bad-auth", "team@example.org", "SMTP_BAD"),
                ("refused", "nobody@refused.example", "SMTP_GOOD"),
                ("ok", "team@example.org", "SMTP_GOOD"),
            )
        )
        hooks = "".join(
            f"""
            [[notifiers]]
            name = "hook-{status}"
            type = "webhook"
            url = "{e}/hook{status}"
            secret = "${{{var}}}"
            allow_private = true
            timeout = "2s"
            """
            for status, var in ((500, "HOOK_SECRET"), (401, "HOOK_SECRET_2"), (200, "HOOK_SECRET"))
        )
        text = f"""
            [monitor]
            database = "sqlite:///{self.db}"
            baseline = false
            http_port = {http_port}
            max_attempts = 2

            [[sources]]
            name = "feed"
            type = "rss"
            url = "{e}/feed.xml"
            every = "1h"

            [[sources]]
            name = "tls"
            type = "rss"
            url = "{e.replace("http://", "https://")}/feed.xml"
            every = "1h"
            {sams}
            [[rules]]
            name = "cv"
            query = "clearview"
            {mails}{hooks}{broken}
            """
        (self.tmp / "sources.toml").write_text(textwrap.dedent(text))

    def environ(self, canaries: Canaries, fmt: str) -> dict[str, str]:
        return {
            **self.extra,
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
            "NOTICEWATCH_CONFIG": str(self.tmp / "sources.toml"),
            "NOTICEWATCH_LOG_LEVEL": "DEBUG",
            "NOTICEWATCH_API_TOKEN": API_TOKEN,
            **canaries.env(),
        }

    def cli(
        self, canaries: Canaries, *args: str, fmt: str = "json"
    ) -> subprocess.CompletedProcess[str]:
        log_format = (
            ["--log-format", fmt]
            if args[0] in {"poll", "status", "deliveries", "notify-test"}
            else []
        )
        result = subprocess.run(
            [sys.executable, "-m", "monitor", *args, *log_format],
            cwd=self.tmp, env=self.environ(canaries, fmt),
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        self.outputs.append((f"{' '.join(args)} stdout", result.stdout))
        self.outputs.append((f"{' '.join(args)} stderr", result.stderr))
        return result


def leaks(where: str, data: bytes, forms: dict[bytes, str]) -> list[str]:
    return [f"{what} in {where}" for form, what in forms.items() if form in data]


def test_no_secret_leaks_through_failures_reloads_and_config_errors(
    tmp_path: Path, echo: EchoServer, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = Canaries.make("g1"), Canaries.make("g2")
    monkeypatch.setattr(smtp_server, "PASSWORD", first.smtp_good)
    echo.routes = {
        "/feed.xml": (200, rss(FINE, FINE2)),
        **{f"/sam{s}/opportunities/v2/search": (s, None) for s in (401, 403, 429, 500)},
        "/hook500": (500, None),
        "/hook401": (401, None),
        "/hook200": (200, b"{}"),
    }
    run = Run(tmp_path, echo, smtp)
    run.config(first)

    # 1. Poll twice through every failure, DEBUG logs in both formats; then the reports.
    assert run.cli(first, "check").returncode == 0, run.outputs[-1]
    polled = run.cli(first, "poll", fmt="json")
    assert polled.returncode == 1, polled.stderr  # failing sources
    assert run.cli(first, "poll", fmt="text").returncode == 1
    status = run.cli(first, "status")
    assert "sam-401" in status.stdout and "tls" in status.stdout
    run.cli(first, "deliveries")
    run.cli(first, "notify-test", "mail-bad-auth")
    run.cli(first, "notify-test", "hook-401")

    # The failures really happened, with the secrets in play.
    sam_queries = [s.path for s in echo.seen if s.path.startswith("/sam")]
    assert len(sam_queries) >= 4 and all(first.sam_key in q for q in sam_queries)
    assert {s.path for s in echo.seen if s.path.startswith("/hook")} >= {
        "/hook500", "/hook401", "/hook200"
    }  # fmt: skip
    assert smtp.messages, "the notifier with the right password delivered"

    # 2. Config errors next to the secrets: a broken value, a secret expanded into a
    # field that refuses it, a literal password, a bad webhook secret, a missing file.
    broken = f"""
        [[sources]]
        name = "broken"
        type = "rss"
        url = "${{SAM_API_KEY}}"
        every = "${{SMTP_GOOD}}"

        [[notifiers]]
        name = "literal"
        type = "email"
        to = ["a@example.org"]
        from = "b@example.org"
        smtp_host = "127.0.0.1"
        password = "{first.smtp_bad}"

        [[notifiers]]
        name = "bad-secret"
        type = "webhook"
        url = "https://hooks.example.org/x"
        secret = "${{SMTP_GOOD}}"
        """
    run.config(first, broken=broken)
    for command in ("check", "poll", "status"):
        result = run.cli(first, command)
        assert result.returncode == 2, (command, result.stderr)
    assert "sources[" in run.outputs[-1][1] or "sources[" in run.outputs[-5][1]

    # 3. The service: HTTP API, then reloads with a broken config and with new secrets.
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    run.config(first, http_port=port)
    # New secrets arrive by reload: the process's environment is fixed, so they come from
    # files (VAR_FILE) written later, as Docker and Kubernetes secrets do.
    files = {f"{name}2_FILE": str(tmp_path / f"{name.lower()}.txt") for name in second.env()}
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", "--log-format", "text"],
        cwd=tmp_path, env={**run.environ(first, "text"), **files},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    answers: list[tuple[str, str]] = []
    snapshots: list[tuple[str, bytes]] = []
    try:
        wait_until(lambda: (r := get(f"{base}/readyz")) is not None and r.status_code < 600)
        auth = {"Authorization": f"Bearer {API_TOKEN}"}
        wait_until(
            lambda: (
                "sam-401" in (((r := get(f"{base}/api/sources", headers=auth)) and r.text) or "")
            )
        )

        def fetch_all(tag: str) -> None:
            for path in ("/metrics", "/readyz", "/openapi.json", "/api/sources", "/api/alerts",
                         "/api/subscriptions"):  # fmt: skip
                reply = get(base + path, headers=auth)
                assert reply is not None, path
                answers.append((f"{tag} GET {path}", reply.text))
            wrong = get(f"{base}/api/sources", headers={"Authorization": f"Bearer {API_TOKEN}x"})
            assert wrong is not None and wrong.status_code == 401
            answers.append((f"{tag} GET /api/sources (bad token)", wrong.text))
            # The write-ahead log exists only while the service holds the database open.
            for path in sorted((tmp_path / "data").iterdir()):
                snapshots.append((f"{tag}: {path.name} while running", path.read_bytes()))

        fetch_all("first")
        run.config(first, http_port=port, broken=broken)
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "stale_since" in get(f"{base}/readyz").text)  # type: ignore[union-attr]
        fetch_all("broken reload")
        for name, value in second.env().items():
            Path(files[f"{name}2_FILE"]).write_text(value + "\n")
        run.config(first, http_port=port)
        text = (tmp_path / "sources.toml").read_text()
        for name in second.env():
            text = text.replace("${" + name + "}", "${" + name + "2}")
        (tmp_path / "sources.toml").write_text(text)
        monkeypatch.setattr(smtp_server, "PASSWORD", second.smtp_good)
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "stale_since" not in get(f"{base}/readyz").text)  # type: ignore[union-attr]
        fetch_all("second")
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=20)
        run.outputs.append(("run output", output))
    assert proc.returncode == 0, output[-3000:]
    # The new secrets in use: a poll and test messages with the reloaded configuration.
    run.extra = files
    echo.routes["/feed.xml"] = (200, rss(FINE, FINE2, OTHER))
    assert run.cli(second, "poll", fmt="json").returncode == 1
    run.cli(second, "notify-test", "hook-500")
    run.cli(second, "notify-test", "mail-bad-auth", fmt="text")
    last = [s for s in echo.seen if s.path == "/hook500"][-1]
    Webhook(second.hook_secret).verify(last.body, last.headers)  # signed with the new secret

    # 4. Search everywhere.
    forms: dict[bytes, str] = {}
    for generation in (first, second):
        for secret in [*generation.values(), API_TOKEN]:
            forms.update(dict.fromkeys(encodings(secret), f"canary {secret[:24]}..."))
        for key in generation.decoded_keys():
            forms.update(dict.fromkeys(key_encodings(key), f"decoded key {key[:20]!r}"))
    found: list[str] = []
    for what, text in [*run.outputs, *answers]:
        found += leaks(what, text.encode(), forms)
    stored = [(f"database file {p.name}", p.read_bytes()) for p in (tmp_path / "data").iterdir()]
    assert any("-wal" in what for what, _ in snapshots), "the WAL was searched too"
    for what, data in [*stored, *snapshots]:
        found += leaks(what, data, forms)
    for message in smtp.envelopes:
        found += leaks("an email", message.raw, forms)
    for request in echo.seen:
        if request.path.startswith("/hook"):
            headers = {k: v for k, v in request.headers.items() if k.lower() != "webhook-signature"}
            found += leaks(f"webhook {request.path} headers", json.dumps(headers).encode(), forms)
            found += leaks(f"webhook {request.path} body", request.body, forms)
    assert not found, "\n".join(sorted(set(found)))


def test_the_postgresql_password_in_the_database_url_never_shows(pg_url: str) -> None:
    """The database URL's password (set through NOTICEWATCH_DATABASE_URL) appears in no
    output: not when the server refuses the connection, not in a working poll or status at
    DEBUG. The test server trusts loopback, so any password is accepted."""
    from sqlalchemy.engine import make_url

    canary = "CANARY-pg-password-9f2c"
    good = make_url(pg_url).set(password=canary).render_as_string(hide_password=False)
    closed = make_url(good).set(port=free_port()).render_as_string(hide_password=False)
    root = Path(__file__).resolve().parents[1]
    config = root / "sources.toml"
    base = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(root),
        "NOTICEWATCH_LOG_LEVEL": "DEBUG",
        "NOTICEWATCH_WEBHOOK_URL": "https://hooks.example.org/noticewatch",
        "NOTICEWATCH_WEBHOOK_SECRET": "whsec_" + base64.b64encode(b"k" * 32).decode(),
    }
    runs = []
    for url, command, expected in (
        (closed, "status", 3),
        (good, "status", 0),
        (good, "deliveries", 0),
        (closed, "db", 3),
    ):
        args = ["db", "upgrade"] if command == "db" else [command]
        result = subprocess.run(
            [sys.executable, "-m", "monitor", *args, "--config", str(config)],
            env={**base, "NOTICEWATCH_DATABASE_URL": url},
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        runs.append((command, result))
        assert result.returncode == expected, (command, result.stderr[-2000:])
    forms = {canary, urllib.parse.quote(canary), json.dumps(canary)[1:-1]}
    found = [
        f"{form!r} in {command}" for command, r in runs for form in forms
        if form in r.stdout + r.stderr
    ]  # fmt: skip
    assert found == []
    assert "storage:" in runs[0][1].stderr  # the refused connection was reported, masked
