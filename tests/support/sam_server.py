"""A SAM.gov stand-in on 127.0.0.1: Get Opportunities v2 paging, API keys and a daily quota.

It serves ``/opportunities/v2/search`` from ``records`` (filtered by ``ptype``, paged by
``limit``/``offset`` with the real ``totalRecords``), ``/prod/opportunities/v1/noticedesc``
(``{"description": "<html>"}``), answers an unknown ``api_key`` with 401 and a key past
its ``quota`` with the real 429 throttle body. ``repeat_pages`` makes every page after the
first repeat the first page (a server bug the client must survive). Every request is
recorded (with its query) so tests can check what was sent, and how often::

    with SamServer(keys={"k1": 10}) as sam:
        sam.records = [record("n1", "Special Notice"), ...]
        ... base_url = sam.base_url ...
        assert sam.searches == 1
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest


def throttle_body(now: datetime) -> dict[str, str]:
    """The real gateway's 429 body, with the next UTC midnight after ``now``."""
    day = now.astimezone(UTC).date() + timedelta(days=1)
    when = f"{day:%Y-%b-%d} 00:00:00+0000 UTC"
    return {
        "code": "900804",
        "message": "Message throttled out",
        "description": f"You have exceeded your quota. You can access API after {when}",
        "nextAccessTime": when,
    }


@dataclass(frozen=True)
class Request:
    path: str
    query: dict[str, str]


@dataclass
class SamServer:
    keys: dict[str, int] = field(default_factory=lambda: {"test-key-123": 1000})
    records: list[dict[str, Any]] = field(default_factory=list)
    descriptions: dict[str, str] = field(default_factory=dict)
    repeat_pages: bool = False
    requests: list[Request] = field(default_factory=list)
    used: dict[str, int] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def searches(self) -> int:
        return sum(1 for r in self.requests if r.path.endswith("/search"))

    def description_url(self, notice_id: str) -> str:
        return f"{self.base_url}/prod/opportunities/v1/noticedesc?noticeid={notice_id}"

    def __enter__(self) -> SamServer:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    def answer(self, path: str, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        self.requests.append(Request(path, query))
        key = query.get("api_key", "")
        if key not in self.keys:
            message = "An invalid api_key was supplied. Get one at https://api.data.gov:443"
            return 401, {"error": {"code": "API_KEY_INVALID", "message": message}}
        self.used[key] = self.used.get(key, 0) + 1
        if self.used[key] > self.keys[key]:
            return 429, throttle_body(datetime.now(UTC))
        if path.endswith("/noticedesc"):
            text = self.descriptions.get(query.get("noticeid", ""))
            if text is None:
                return 404, {"error": {"code": "404", "message": "Description not found"}}
            return 200, {"description": text}
        if not path.endswith("/opportunities/v2/search"):
            return 404, {"error": {"message": "no such API"}}
        if not query.get("postedFrom") or not query.get("postedTo"):
            return 400, {"error": {"message": "PostedFrom and PostedTo are mandatory"}}
        types = {t for t in query.get("ptype", "").split(",") if t}
        chosen = [r for r in self.records if not types or r.get("_ptype") in types]
        limit, offset = int(query.get("limit", "1")), int(query.get("offset", "0"))
        start = 0 if self.repeat_pages else offset
        page = [
            {k: v for k, v in r.items() if k != "_ptype"} for r in chosen[start : start + limit]
        ]
        return 200, {"totalRecords": len(chosen), "limit": limit, "offset": offset,
                     "opportunitiesData": page, "links": []}  # fmt: skip


def _handler(sam: SamServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            status, body = sam.answer(parts.path, query)
            data = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


def record(notice_id: str, kind: str, ptype: str, **extra: Any) -> dict[str, Any]:
    """A SAM.gov v2 record shaped like the real ones (with "null" and "" where they put them)."""
    return {
        "noticeId": notice_id,
        "title": extra.pop("title", f"Notice {notice_id}"),
        "solicitationNumber": extra.pop("solicitationNumber", f" 70CMSD26{notice_id} "),
        "fullParentPathName": "HOMELAND SECURITY, DEPARTMENT OF.US IMMIGRATION AND CUSTOMS "
        "ENFORCEMENT.ICE PROCUREMENT",
        "postedDate": extra.pop("postedDate", "2026-11-20"),
        "type": kind,
        "baseType": kind,
        "typeOfSetAside": "",
        "typeOfSetAsideDescription": None,
        "responseDeadLine": extra.pop("responseDeadLine", "null"),
        "naicsCode": "541511",
        "classificationCode": "D310",
        "active": "Yes",
        "award": extra.pop("award", None),
        "description": extra.pop("description", "null"),
        "uiLink": f"https://sam.gov/opp/{notice_id}/view",
        "_ptype": ptype,
        **extra,
    }


@pytest.fixture
def sam_server() -> Iterator[SamServer]:
    with SamServer() as server:
        yield server
