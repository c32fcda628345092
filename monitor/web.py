"""The HTTP side of ``noticewatch run``: health, readiness, metrics and the JSON API.

One small Starlette app served by uvicorn inside the service's event loop. It reads
the *current* App through the runtime (the Service) on every request, so a config
reload or a new subscription shows at once. uvicorn's own signal handling is off:
the service owns SIGTERM/SIGHUP and stops the server itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from monitor.api import TOKEN_ENV, Runtime, api_routes
from monitor.errors import ConfigError, MonitorError
from monitor.metrics import CONTENT_TYPE
from monitor.openapi import openapi_document
from monitor.subscriptions import Resolver, system_resolver

log = logging.getLogger("noticewatch.http")

MIN_TOKEN_CHARS = 16


@dataclass(frozen=True)
class WebSettings:
    token: str | None  # None: the JSON API is off
    resolver: Resolver = system_resolver


def api_token(env: Mapping[str, str]) -> str | None:
    """The bearer token from ``NOTICEWATCH_API_TOKEN`` (or ``..._FILE``); None: API off."""
    token = env.get(TOKEN_ENV)
    if token is None and env.get(f"{TOKEN_ENV}_FILE"):
        path = Path(env[f"{TOKEN_ENV}_FILE"])
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ConfigError(f"{TOKEN_ENV}_FILE: cannot read {path}: {e.strerror}") from e
    if token is None or token == "":
        return None
    if len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(
            f"{TOKEN_ENV}: the API token must be at least {MIN_TOKEN_CHARS} characters",
            hint="make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'",
        )
    return token


def build_web(runtime: Runtime, settings: WebSettings) -> Starlette:
    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        checks = await readiness(runtime)
        ready = all(check["ok"] for check in checks.values())
        body = {"status": "ready" if ready else "not ready", "checks": checks}
        return JSONResponse(body, status_code=200 if ready else 503)

    async def metrics(request: Request) -> Response:
        body = await run_in_threadpool(runtime.app.metrics.render)
        return Response(body, media_type=CONTENT_TYPE)

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_document(api_enabled=settings.token is not None))

    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        Route("/openapi.json", openapi),
        *api_routes(runtime, settings.token, settings.resolver),
    ]
    return Starlette(routes=routes)


async def readiness(runtime: Runtime) -> dict[str, dict[str, Any]]:
    """Database reachable, scheduler running, config loaded and not stale."""
    checks: dict[str, dict[str, Any]] = {}
    try:
        await run_in_threadpool(runtime.app.store.ping)
        checks["database"] = {"ok": True}
    except MonitorError as e:
        checks["database"] = {"ok": False, "error": str(e)}
    checks["scheduler"] = {"ok": runtime.running}
    status = runtime.watcher.status if runtime.watcher is not None else None
    config: dict[str, Any] = {"ok": status is None or not status.stale}
    config["path"] = str(runtime.app.config.path)
    if status is not None:
        config["loaded_at"] = status.loaded_at.isoformat()
        if status.stale:
            config["stale_since"] = status.stale_since.isoformat() if status.stale_since else None
            config["errors"] = list(status.errors)
    checks["config"] = config
    return checks


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the service decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def make_server(asgi: Starlette) -> uvicorn.Server:
    """A server for sockets the caller has bound (``serve(sockets=[...])``)."""
    config = uvicorn.Config(
        asgi,
        log_config=None,  # keep noticewatch's handlers (JSON, secret scrubbing)
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=3,  # a slow API call must not hold up the 10 s stop
        server_header=False,
    )
    return _Server(config)


def listen(host: str, port: int) -> socket.socket:
    """Bind the HTTP port before anything starts, so a busy port is a clear, early error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ConfigError(
            f"monitor.http_port: cannot listen on {host}:{port}: {e.strerror}",
            hint="pick a free port, or set http_port = 0 to serve no HTTP endpoints",
        ) from e
    sock.listen(128)
    sock.setblocking(False)
    return sock


@contextlib.asynccontextmanager
async def serve(
    asgi: Starlette, listener: socket.socket, stop: asyncio.Event
) -> AsyncIterator[None]:
    """Serve ``asgi`` on ``listener`` for the duration; stop as soon as ``stop`` is set,
    alongside the service's own shutdown rather than after it."""
    server = make_server(asgi)
    serving = asyncio.create_task(server.serve(sockets=[listener]), name="http")

    async def stop_with_service() -> None:
        await stop.wait()
        server.should_exit = True

    stopper = asyncio.create_task(stop_with_service(), name="http-stop")
    try:
        yield
    finally:
        server.should_exit = True
        stopper.cancel()
        await serving
