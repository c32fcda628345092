"""One poll cycle of a faulty source next to a healthy one of the same type, in process.

Each fetch path (``rss``, ``sam``, ``ocds``, ``ted``, ``html`` and ``html-detail``, the
detail pages of a ``follow = true`` listing) is described by a :class:`Path`: the good
body it serves, the route the fault server plays the fault on, and the ``[[sources]]``
table pointing at it. ``good-<path>`` is served without fault under ``/good``,
``bad-<path>`` under ``/bad``; both hold one notice whose title says "Clearview", which
the one rule matches, and the alerts go to a signed-webhook receiver.
"""

from __future__ import annotations

import functools
import json
import ssl
import textwrap
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any

import pytest

from tests.support.fault_server import Fault, FaultServer
from tests.support.sam_server import record
from tests.support.webhook_receiver import WEBHOOK_SECRET

SAM_KEY = "sam-canary-key-9f3e1d"  # a fake key; it must never show in an error or log
ENV = {"TEST_WEBHOOK_SECRET": WEBHOOK_SECRET, "SAM_KEY": SAM_KEY, "NOTICEWATCH_LOG_LEVEL": "INFO"}
SHORT_TIMEOUT = "500ms"  # a faulty source's deadline where it must end a slow fault
# Elsewhere generous: a faulty source must fail on its own fault (the size cap, say)
# however busy the machine, and a decoding source shares the event loop with the others.
LONG_TIMEOUT = "10s"


def _rss(side: str) -> bytes:
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item>'
        f"<title>Clearview AI fined ({side})</title><guid>{side}-1</guid>"
        f"<link>https://{side}.example.org/1</link></item></channel></rss>"
    ).encode()


def _sam(side: str) -> bytes:
    notice = record(f"{side}1", "Special Notice", "s", title=f"Clearview AI licence ({side})")
    return json.dumps({"totalRecords": 1, "opportunitiesData": [notice]}).encode()


def _ocds(side: str) -> bytes:
    release = {
        "ocid": f"ocds-{side}-1",
        "id": f"ocds-{side}-1-1",
        "date": "2026-11-20T10:00:00Z",
        "tag": ["tender"],
        "tender": {"title": f"Clearview AI licence ({side})", "description": "Software."},
    }
    return json.dumps({"releases": [release]}).encode()


def _ted(side: str) -> bytes:
    notice = {
        "publication-number": f"{side}-2026",
        "publication-date": "2026-11-20+01:00",
        "notice-title": {"eng": f"Clearview AI licence ({side})"},
        "buyer-name": {"eng": ["A buyer"]},
    }
    return json.dumps({"notices": [notice], "totalNoticeCount": 1}).encode()


def _listing(side: str) -> bytes:
    return (
        '<!DOCTYPE html><html lang="en"><body><ul class="news">'
        f'<li><a href="/{side}/detail/1">Clearview AI fined ({side})</a></li>'
        "</ul></body></html>"
    ).encode()


DETAIL = b"<!DOCTYPE html><html><body><main>The full decision text.</main></body></html>"
DESCRIPTION = json.dumps({"description": "<p>The full decision text.</p>"}).encode()


def _sam_with_description(server: FaultServer, side: str) -> bytes:
    """A search page whose notice links its description document on the same origin."""
    link = server.url(f"/{side}/desc?noticeid={side}1")
    title = f"Clearview AI licence ({side})"
    notice = record(f"{side}1", "Special Notice", "s", title=title, description=link)
    return json.dumps({"totalRecords": 1, "opportunitiesData": [notice]}).encode()


@dataclass(frozen=True)
class Path:
    """How one fetch path is configured and served."""

    name: str
    type: str
    body: Callable[[str], bytes]  # the good body of side "good" / "bad"
    route: str  # where the fault plays, under /<side>
    content_type: str
    keys: Callable[[FaultServer, str], Mapping[str, object]]
    method: str = "GET"
    rule: str = "clearview"
    # For a per-item document (a detail page, a description): what the warning says when
    # it fails, which leaves the item as it was and never fails the poll.
    degrades: str | None = None

    def source(self, server: FaultServer, side: str, timeout: str) -> str:
        keys = {"name": f"{side}-{self.name}", "type": self.type, "every": "1h"}
        keys |= {"timeout": timeout, **self.keys(server, side)}
        return "[[sources]]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in keys.items())

    def serve_good(self, server: FaultServer, side: str) -> None:
        """Everything the side needs, fault-free (a fault is defined over it after)."""
        if self.name == "html-detail":
            server.serve(f"/{side}/list.html", _listing(side), content_type="text/html")
            server.serve(f"/{side}/detail/1", DETAIL, content_type="text/html")
            return
        if self.name == "sam-description":
            page = _sam_with_description(server, side)
            server.serve(f"/{side}/opportunities/v2/search", page, content_type="application/json")
            server.serve(f"/{side}/desc", DESCRIPTION, content_type="application/json")
            return
        server.serve(f"/{side}{self.route}", self.body(side), content_type=self.content_type)

    def play(self, server: FaultServer, fault: Fault, **options: float) -> None:
        """Serve ``good`` cleanly and ``bad`` with ``fault`` on this path's route."""
        self.serve_good(server, "good")
        self.serve_good(server, "bad")
        body = {"html-detail": DETAIL, "sam-description": DESCRIPTION}.get(self.name)
        body = self.body("bad") if body is None else body
        server.fault(
            f"/bad{self.route}", fault, body=body, content_type=self.content_type, **options
        )


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)


PATHS = (
    Path("rss", "rss", _rss, "/feed.xml", "application/rss+xml",
         lambda s, side: {"url": s.url(f"/{side}/feed.xml")}),
    Path("sam", "sam", _sam, "/opportunities/v2/search", "application/json",
         lambda s, side: {"base_url": s.url(f"/{side}"), "api_key": "${SAM_KEY}",
                          "daily_quota": 100}),
    Path("ocds", "ocds", _ocds, "/releases.json", "application/json",
         lambda s, side: {"url": s.url(f"/{side}/releases.json")}),
    Path("ted", "ted", _ted, "/v3/notices/search", "application/json",
         lambda s, side: {"base_url": s.url(f"/{side}"), "query": "FT ~ clearview",
                          "max_pages": 1}, method="POST"),
    Path("html", "html", _listing, "/list.html", "text/html",
         lambda s, side: {"url": s.url(f"/{side}/list.html"), "item": "ul.news li",
                          "title": "a", "link": "a@href"}),
    Path("html-detail", "html", _listing, "/detail/1", "text/html",
         lambda s, side: {"url": s.url(f"/{side}/list.html"), "item": "ul.news li",
                          "title": "a", "link": "a@href", "follow": True,
                          "detail_selector": "main"},
         degrades="detail page skipped, item kept as listed"),
    Path("sam-description", "sam", _sam, "/desc", "application/json",
         lambda s, side: {"base_url": s.url(f"/{side}"), "api_key": "${SAM_KEY}",
                          "daily_quota": 100},
         rule='clearview OR description:"decision text"',
         degrades="description not fetched"),
)  # fmt: skip


def write_config(
    tmp: FsPath, server: FaultServer, path: Path, hook_url: str, *, bad_timeout: str
) -> FsPath:
    """sources.toml: bad and good sources of ``path``, one rule, one webhook."""
    head = textwrap.dedent(
        f"""
        [monitor]
        database = "sqlite:///{tmp / "nw.db"}"
        baseline = false

        [[rules]]
        name = "clearview"
        query = '{path.rule}'

        [[notifiers]]
        name = "newsroom"
        type = "webhook"
        url = "{hook_url}"
        secret = "${{TEST_WEBHOOK_SECRET}}"
        allow_private = true
        timeout = "5s"

        """
    )
    bad = path.source(server, "bad", bad_timeout)
    sources = bad + "\n" + path.source(server, "good", LONG_TIMEOUT)
    config = tmp / "sources.toml"
    config.write_text(head + sources)
    return config


@pytest.fixture(scope="module")
def shared_tls_contexts() -> Iterator[None]:
    """Build each kind of TLS context once for the module, not per client.

    Every in-process ``poll`` opens its HTTP clients afresh, and each client loads the CA
    bundle into a new context (~0.1 s, a third of a cycle). No test of the fault matrices
    speaks TLS, so one shared context per set of arguments changes nothing they check.
    """
    build = ssl.create_default_context

    @functools.cache
    def cached(purpose: ssl.Purpose = ssl.Purpose.SERVER_AUTH, **kwargs: Any) -> ssl.SSLContext:
        return build(purpose, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ssl, "create_default_context", cached)
        yield
