"""The OpenAPI 3.1 document served at ``/openapi.json`` (written out, so it is reviewed
like code; tests check that it lists exactly the routes the app serves)."""

from __future__ import annotations

from typing import Any

from monitor import __version__

_ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "A malformed request; the error names the parameter.",
        401: "Missing or wrong bearer token.",
        403: "The API is off: NOTICEWATCH_API_TOKEN is not set.",
        404: "No such subscription.",
        409: "The subscription is stored but not in use (a private URL, now not allowed).",
        422: "A field was refused; the error names it and says what to fix.",
        502: "The endpoint did not accept the test event.",
    }
    return {str(code): _json(_ERROR, text[code]) for code in codes}


_SUBSCRIPTION = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "examples": ["sub-3f9a1c0b2d4e"]},
        "url": {"type": "string", "format": "uri"},
        "rules": {"type": ["array", "null"], "items": {"type": "string"}},
        "description": {"type": "string"},
        "secret": {"type": "string", "description": "Masked, except in the answer to POST."},
        "created_at": {"type": "string", "format": "date-time"},
    },
}
_ALERT = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "description": "The webhook-id of the delivery."},
        "notifier": {"type": "string"},
        "event_type": {"type": "string"},
        "rules": {"type": "array", "items": {"type": "string"}},
        "status": {"enum": ["pending", "delivered", "dead", "digested"]},
        "attempts": {"type": "integer"},
        "created_at": {"type": "string", "format": "date-time"},
        "delivered_at": {"type": ["string", "null"], "format": "date-time"},
        "item": {"type": ["object", "null"], "description": "Null for a system message."},
        "matches": {"type": "array", "items": {"type": "object"}},
        "details": {
            "type": "object",
            "description": "Only on system messages (source.failing, source.recovered, "
            "notifier.disabled): the source or notifier and what happened.",
        },
    },
}
_SOURCE = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "type": {"type": "string"},
        "enabled": {"type": "boolean"},
        "every_seconds": {"type": "integer"},
        "health": {"enum": ["ok", "failing", "pending", "disabled"]},
        "last_fetch_at": {"type": ["string", "null"], "format": "date-time"},
        "last_success_at": {"type": ["string", "null"], "format": "date-time"},
        "last_outcome": {"type": ["string", "null"]},
        "last_error": {"type": ["string", "null"]},
        "consecutive_failures": {"type": "integer"},
        "paused_until": {"type": ["string", "null"], "format": "date-time"},
        "items": {"type": "integer"},
    },
}
_PLAIN: dict[str, Any] = {"security": []}


def openapi_document(*, api_enabled: bool) -> dict[str, Any]:
    off = "" if api_enabled else " The API is OFF on this server (no token set)."
    sub_id = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "noticewatch",
            "version": __version__,
            "description": "Health, metrics and the JSON API of `noticewatch run`." + off,
        },
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The value of NOTICEWATCH_API_TOKEN.",
                }
            },
            "schemas": {
                "Error": {"type": "object", "properties": {"error": {"type": "string"}}},
                "Subscription": _SUBSCRIPTION,
                "Alert": _ALERT,
                "Source": _SOURCE,
            },
        },
        "paths": {
            "/healthz": {"get": {**_PLAIN, "summary": "The process is alive.",
                                 "responses": {"200": {"description": "alive"}}}},
            "/readyz": {"get": {**_PLAIN, "summary": "Database, scheduler and config checks.",
                                "responses": {"200": {"description": "ready"},
                                              "503": {"description": "not ready; see checks"}}}},
            "/metrics": {"get": {**_PLAIN, "summary": "Prometheus metrics.",
                                 "responses": {"200": {"description": "text exposition"}}}},
            "/openapi.json": {"get": {**_PLAIN, "summary": "This document.",
                                      "responses": {"200": {"description": "OpenAPI 3.1"}}}},
            "/api/sources": {"get": {
                "summary": "Every configured source with its state and health.",
                "responses": {"200": _json({"type": "object", "properties": {"sources": {
                    "type": "array", "items": {"$ref": "#/components/schemas/Source"}}}},
                    "sources"), **_errors(401, 403)},
            }},
            "/api/alerts": {"get": {
                "summary": "Recent alerts, newest first, with their matches.",
                "parameters": [
                    {"name": "rule", "in": "query", "schema": {"type": "string"}},
                    {"name": "since", "in": "query", "schema": {"type": "string"},
                     "description": "ISO 8601 time, or a look-back such as 24h or 7d."},
                    {"name": "limit", "in": "query",
                     "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                ],
                "responses": {"200": _json({"type": "object", "properties": {"alerts": {
                    "type": "array", "items": {"$ref": "#/components/schemas/Alert"}}}},
                    "alerts"), **_errors(400, 401, 403)},
            }},
            "/api/subscriptions": {
                "get": {
                    "summary": "Webhook subscriptions (secrets masked).",
                    "responses": {"200": _json({"type": "object", "properties": {
                        "subscriptions": {"type": "array",
                                          "items": {"$ref": "#/components/schemas/Subscription"}}}},
                        "subscriptions"), **_errors(401, 403)},
                },
                "post": {
                    "summary": "Subscribe a webhook endpoint; the answer holds its secret, once.",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": {
                        "type": "object", "required": ["url"],
                        "properties": {
                            "url": {"type": "string", "format": "uri"},
                            "rules": {"type": "array", "items": {"type": "string"},
                                      "description": "Rule names (source_health for health "
                                      "messages); every rule when left out."},
                            "description": {"type": "string", "maxLength": 500},
                        }}}}},
                    "responses": {"201": _json({"$ref": "#/components/schemas/Subscription"},
                                               "created"), **_errors(400, 401, 403, 422)},
                },
            },
            "/api/subscriptions/{id}": {"delete": {
                "summary": "Remove a subscription; its undelivered alerts become dead.",
                "parameters": sub_id,
                "responses": {"204": {"description": "removed"}, **_errors(401, 403, 404)},
            }},
            "/api/subscriptions/{id}/test": {"post": {
                "summary": "Send a signed notifier.test event to the endpoint now.",
                "parameters": sub_id,
                "responses": {"200": {"description": "delivered"},
                              **_errors(401, 403, 404, 409, 502)},
            }},
        },
    }  # fmt: skip
