"""``noticewatch healthcheck``: ask the running service over HTTP whether it is well.

The image's HEALTHCHECK runs it inside the container. It deliberately does not validate
sources.toml (a stale config is the service's to report, not a reason for the check
itself to crash): it only reads the port, from ``NOTICEWATCH_HTTP_PORT``, else the
file's ``[monitor] http_port``, else 8080, and the address the same way
(``NOTICEWATCH_HTTP_HOST``, ``http_host``, 127.0.0.1); a service listening on every
interface (``0.0.0.0``, ``::``) is asked on loopback.
"""

from __future__ import annotations

import json
import tomllib
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PORT_ENV = "NOTICEWATCH_HTTP_PORT"
HOST_ENV = "NOTICEWATCH_HTTP_HOST"
DEFAULT_PORT = 8080
DEFAULT_HOST = "127.0.0.1"
_EVERY_INTERFACE = {"0.0.0.0": "127.0.0.1", "::": "::1", "": DEFAULT_HOST}  # noqa: S104


def service_port(config: Path, env: Mapping[str, str]) -> int:
    if env.get(PORT_ENV, "").isdigit():
        return int(env[PORT_ENV])
    port = _monitor_setting(config, "http_port")
    return port if isinstance(port, int) and not isinstance(port, bool) else DEFAULT_PORT


def service_host(config: Path, env: Mapping[str, str]) -> str:
    """Where to ask: the address the service listens on, loopback for every interface."""
    host = env.get(HOST_ENV) or _monitor_setting(config, "http_host")
    host = host.strip() if isinstance(host, str) else DEFAULT_HOST
    return _EVERY_INTERFACE.get(host, host)


def _monitor_setting(config: Path, key: str) -> Any:
    try:
        return tomllib.loads(config.read_text(encoding="utf-8")).get("monitor", {}).get(key)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, AttributeError):
        return None


def check(
    port: int, *, ready: bool, host: str = DEFAULT_HOST, timeout: float = 4.0
) -> tuple[bool, str]:
    """(healthy?, one line saying why) from /healthz, or /readyz with ``ready``."""
    path = "/readyz" if ready else "/healthz"
    netloc = f"[{host}]" if ":" in host else host
    url = f"http://{netloc}:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            body = json.loads(reply.read() or b"{}")
            ok = True
    except urllib.error.HTTPError as e:
        body, ok = _json(e.read()), False
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        return False, f"unhealthy: no answer from {url}: {reason}"
    return ok, describe(body, ok)


def describe(body: Any, ok: bool) -> str:
    if not isinstance(body, dict) or "checks" not in body:
        return "alive" if ok else "unhealthy"
    parts = []
    for name, result in body["checks"].items():
        state = "ok" if result.get("ok") else "FAILING"
        extra = result.get("path") or result.get("error") or ""
        if result.get("stale_since"):
            extra += f" STALE since {result['stale_since']}: " + "; ".join(result.get("errors", []))
        elif result.get("loaded_at"):
            extra += f" loaded {result['loaded_at']}"
        parts.append(f"{name} {state}" + (f" ({extra.strip()})" if extra.strip() else ""))
    return ("ready: " if ok else "not ready: ") + ", ".join(parts)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None
