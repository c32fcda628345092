"""The JSON API under ``/api``: sources, recent alerts and webhook subscriptions.

Every request needs ``Authorization: Bearer <NOTICEWATCH_API_TOKEN>``. Without a token
in the environment the API is off and every ``/api`` path answers 403 saying so.
Errors are ``{"error": "<field>: <what is wrong and what to do>"}``.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from monitor.alerts import iso_utc
from monitor.app import App
from monitor.durations import parse_duration
from monitor.errors import MonitorError
from monitor.reload import ConfigWatcher
from monitor.subscriptions import (
    Resolver,
    SubscriptionError,
    check_public,
    check_rules,
    check_url_syntax,
    make_subscription,
)
from monitor.system import EVENT_TEST, SOURCE_HEALTH, SYSTEM_EVENTS
from notifiers.base import Delivery, Outcome, mask_secret
from storage.tables import AlertRow, Subscription

log = logging.getLogger("noticewatch.api")

TOKEN_ENV = "NOTICEWATCH_API_TOKEN"  # noqa: S105 - a variable name, not a token
MAX_ALERTS = 500
DEFAULT_ALERTS = 100
_RULE_NAME = re.compile(r"^[a-z0-9-]{1,64}$")
Handler = Callable[[Request], Awaitable[Response]]


class Runtime(Protocol):
    """What the HTTP side needs from the running service."""

    app: App
    watcher: ConfigWatcher | None

    @property
    def running(self) -> bool: ...

    async def refresh(self) -> object: ...


def error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


def token_matches(expected: str, header: str | None) -> bool:
    """Constant-time comparison of an ``Authorization: Bearer`` header with the token."""
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer":
        given = ""
    return hmac.compare_digest(given.strip().encode(), expected.encode())


def _guarded(token: str | None, handler: Handler) -> Handler:
    async def guarded(request: Request) -> Response:
        if token is None:
            return error(
                403,
                f"the API is off: set {TOKEN_ENV} (or {TOKEN_ENV}_FILE) "
                "in the service's environment to enable it",
            )
        if not token_matches(token, request.headers.get("authorization")):
            return error(
                401,
                "authorization: send 'Authorization: Bearer <token>' with the API token",
                **{"WWW-Authenticate": 'Bearer realm="noticewatch"'},
            )
        return await handler(request)

    return guarded


def api_routes(runtime: Runtime, token: str | None, resolver: Resolver) -> list[BaseRoute]:
    api = _Api(runtime, resolver)
    table: list[tuple[str, Handler, list[str]]] = [
        ("/api/sources", api.sources, ["GET"]),
        ("/api/alerts", api.alerts, ["GET"]),
        ("/api/subscriptions", api.list_subscriptions, ["GET"]),
        ("/api/subscriptions", api.create_subscription, ["POST"]),
        ("/api/subscriptions/{id}", api.delete_subscription, ["DELETE"]),
        ("/api/subscriptions/{id}/test", api.test_subscription, ["POST"]),
    ]
    return [Route(path, _guarded(token, h), methods=methods) for path, h, methods in table]


class _Api:
    def __init__(self, runtime: Runtime, resolver: Resolver) -> None:
        self.runtime = runtime
        self.resolver = resolver

    @property
    def app(self) -> App:
        return self.runtime.app

    async def sources(self, request: Request) -> Response:
        app = self.app
        states = {s.name: s for s in await run_in_threadpool(app.store.source_states)}
        counts = await run_in_threadpool(app.store.item_counts)
        now = app.clock()
        body = []
        for source in app.config.sources:
            state = states.get(source.name)
            failures = state.consecutive_failures if state else 0
            paused = state.paused_until if state and state.paused_until else None
            body.append(
                {
                    "name": source.name,
                    "type": source.type,
                    "enabled": source.enabled,
                    "every_seconds": int(source.every.total_seconds()),
                    "health": _health(source.enabled, state is not None, failures),
                    "last_fetch_at": _iso(state.last_fetch_at if state else None),
                    "last_success_at": _iso(state.last_success_at if state else None),
                    "last_outcome": state.last_outcome if state else None,
                    "last_error": state.last_error if state else None,
                    "consecutive_failures": failures,
                    "paused_until": _iso(paused) if paused and paused > now else None,
                    "items": counts.get(source.name, 0),
                }
            )
        return JSONResponse({"sources": body})

    async def alerts(self, request: Request) -> Response:
        params = request.query_params
        try:
            since = _since(params.get("since"), self.app.clock())
            limit = _limit(params.get("limit"))
        except ValueError as e:
            return error(400, str(e))
        rule = params.get("rule") or None
        if rule is not None and rule != SOURCE_HEALTH and not _RULE_NAME.match(rule):
            return error(400, f"rule: {rule!r} is not a rule name (lowercase letters, digits, -)")
        rows = await run_in_threadpool(self.app.store.recent_alerts, since, limit, rule)
        # The SQL filter is a text match on the JSON list; this keeps it exact.
        picked = [row for row in rows if rule is None or rule in row.rules]
        return JSONResponse({"alerts": [_alert(row) for row in picked]})

    async def list_subscriptions(self, request: Request) -> Response:
        rows = await run_in_threadpool(self.app.store.subscriptions)
        return JSONResponse({"subscriptions": [_subscription(row) for row in rows]})

    async def create_subscription(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError):
            return error(400, 'body: not JSON; send {"url": "https://...", "rules": [...]}')
        if not isinstance(body, dict):
            return error(400, 'body: must be a JSON object with at least "url"')
        unknown = sorted(set(body) - {"url", "rules", "description"})
        if unknown:
            return error(422, f"{unknown[0]}: unknown field; known: url, rules, description")
        description = body.get("description", "")
        try:
            url = check_url_syntax(body.get("url"))
            if not self.app.config.monitor.subscriptions_allow_private:
                await check_public(url, self.resolver)
            # The reserved source_health rule, as a [[notifiers]] table may list it.
            known = [r.name for r in self.app.config.rules] + [SOURCE_HEALTH]
            rules = check_rules(body.get("rules"), known)
            if not isinstance(description, str) or len(description) > 500:
                raise SubscriptionError("description: must be text of at most 500 characters")
        except SubscriptionError as e:
            return error(422, str(e))
        row = make_subscription(url, rules, description, self.app.clock())
        await run_in_threadpool(self.app.store.add_subscription, row)
        await self.runtime.refresh()
        log.info("notifier=%s outcome=subscribed rules=%s", row.id, ",".join(rules or ["*"]))
        # The only time the secret is shown: the subscriber needs it to verify signatures.
        return JSONResponse({**_subscription(row), "secret": row.secret}, status_code=201)

    async def delete_subscription(self, request: Request) -> Response:
        ident = request.path_params["id"]
        removed = await run_in_threadpool(
            self.app.store.remove_subscription, ident, self.app.clock()
        )
        if not removed:
            return error(404, f"id: no subscription {ident!r}")
        await self.runtime.refresh()
        log.info("notifier=%s outcome=unsubscribed", ident)
        return Response(status_code=204)

    async def test_subscription(self, request: Request) -> Response:
        ident = request.path_params["id"]
        app = self.app
        if not any(sub.id == ident for sub in app.subscriptions):
            return error(404, f"id: no subscription {ident!r}")
        notifier = app.notifiers.get(ident)
        if notifier is None:  # stored, but the config no longer lets it be built
            return error(
                409,
                f"id: subscription {ident!r} is not in use: its URL is a private address and "
                "[monitor] subscriptions_allow_private is off; turn it on or delete it",
            )
        now = app.clock()
        delivery = Delivery(
            delivery_id="msg_test_" + secrets.token_hex(8),
            event_type=EVENT_TEST,  # the same test event as `noticewatch notify-test`
            created_at=now,
            data={
                "notifier": ident,
                "subscription": ident,
                "message": "noticewatch test message",
                "sent_at": iso_utc(now),
            },
            attempt=1,
        )
        try:
            # The notifiers' client, whose transport refuses private addresses at connect
            # time (DNS may have changed since the subscription was checked).
            result = await notifier.send(app.notify_http, delivery, now)
        except MonitorError as e:
            return error(502, f"delivery: {e}")
        body = {
            "delivered": result.outcome is Outcome.DELIVERED,
            "outcome": result.outcome.value,
            "status_code": result.status_code,
            "error": result.error,
            "webhook_id": delivery.delivery_id,
        }
        log.info("notifier=%s outcome=test_%s", ident, result.outcome.value)
        return JSONResponse(body, status_code=200 if body["delivered"] else 502)


def _health(enabled: bool, fetched: bool, failures: int) -> str:
    if not enabled:
        return "disabled"
    if not fetched:
        return "pending"
    return "failing" if failures else "ok"


def _iso(moment: datetime | None) -> str | None:
    return iso_utc(moment) if moment is not None else None


def _since(value: str | None, now: datetime) -> datetime | None:
    """``since`` as an ISO 8601 time (UTC if no offset) or a look-back like ``24h``."""
    if not value:
        return None
    try:
        return now - parse_duration(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"since: {value!r} is neither an ISO 8601 time (2026-11-22T10:00:00Z) "
            "nor a look-back like 24h or 7d"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=now.tzinfo)


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_ALERTS
    if not value.isdigit() or not 1 <= int(value) <= MAX_ALERTS:
        raise ValueError(f"limit: must be a whole number from 1 to {MAX_ALERTS}")
    return int(value)


def _alert(row: AlertRow) -> dict[str, Any]:
    data = row.data or {}
    found: dict[str, Any] = {
        "id": row.id,
        "notifier": row.notifier,
        "event_type": row.event_type,
        "rules": row.rules,
        "status": row.status,
        "attempts": row.attempts,
        "created_at": iso_utc(row.created_at),
        "delivered_at": _iso(row.delivered_at),
        "item": data.get("item"),
        "matches": data.get("matches", []),
    }
    if row.event_type in SYSTEM_EVENTS:  # about no item: what happened, to which source
        found["details"] = {k: v for k, v in data.items() if k not in ("alert_id", "rules")}
    return found


def _subscription(row: Subscription) -> dict[str, Any]:
    return {
        "id": row.id,
        "url": row.url,
        "rules": row.rules,
        "description": row.description,
        "secret": mask_secret(row.secret),
        "created_at": iso_utc(row.created_at),
    }
