"""Webhook subscriptions made through the API: validated, stored, delivered like config ones.

A subscription is a ``type = "webhook"`` notifier whose config lives in the database:
``notifier_config`` turns the row into the same ``WebhookConfig`` a ``[[notifiers]]``
table gives, so signing, retries and the outbox are shared code.

The address check here refuses literal private, loopback and link-local IPs and host
names that resolve to them *at creation*. It overlaps with the SSRF guard in the
webhook notifier (issue 6), which also checks at delivery time (DNS can change).
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import secrets
import socket
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import httpx
from pydantic import SecretStr

from monitor.netguard import blocked_kind, host_problem, literal_address
from monitor.system import SOURCE_HEALTH
from notifiers.webhook import SECRET_PREFIX, WebhookConfig
from storage.tables import Subscription

ID_PREFIX = "sub-"
Resolver = Callable[[str], Awaitable[list[str]]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class SubscriptionError(ValueError):
    """A request the API refuses; the message names the field and what to fix."""


async def system_resolver(host: str) -> list[str]:
    """Every address ``host`` resolves to, as the notifier's HTTP client would see it."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def new_id() -> str:
    return ID_PREFIX + secrets.token_hex(6)


def check_url_syntax(url: object) -> str:
    """The URL if it is an http(s) URL with a host; SubscriptionError otherwise."""
    if not isinstance(url, str) or not url:
        raise SubscriptionError("url: required, an http:// or https:// URL")
    try:
        WebhookConfig.model_validate(
            # Syntax only: where the address points is check_public's question.
            {
                "name": "check",
                "type": "webhook",
                "url": url,
                "secret": new_secret(),
                "allow_private": True,
            }
        )
    except ValueError as e:
        detail = str(e).split("Value error, ", 1)[-1].splitlines()[0]
        raise SubscriptionError(f"url: {detail}") from None
    return url


async def check_public(url: str, resolver: Resolver) -> None:
    """Refuse a URL whose host is, or resolves to, a private or local address.

    The kinds of address come from the delivery guard (``monitor.netguard``), which
    checks again at every connection: this early check only gives the API caller a
    clear answer instead of a subscription whose deliveries are all refused.
    """
    host = httpx.URL(url).host
    literal = literal_address(host)
    if literal is not None:
        kind = blocked_kind(literal)
        if kind is not None:
            raise SubscriptionError(
                f"url: {host} is a private or local address ({kind}); not allowed"
            )
        return
    if host_problem(host) is not None:  # localhost and its subdomains
        raise SubscriptionError(f"url: {host} is a private or local address; not allowed")
    try:
        addresses = await resolver(host)
    except OSError as e:
        raise SubscriptionError(f"url: cannot resolve host {host}: {e.strerror or e}") from None
    blocked = sorted({a for a in addresses if blocked_kind(ipaddress.ip_address(a))})
    if blocked or not addresses:
        shown = ", ".join(blocked) or "nothing"
        raise SubscriptionError(
            f"url: host {host} resolves to {shown}: a private or local address; not allowed"
        )


def check_rules(rules: object, known: Sequence[str]) -> list[str] | None:
    """None (every rule) or a list of known rule names."""
    if rules is None:
        return None
    if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules) or not rules:
        raise SubscriptionError("rules: must be a non-empty list of rule names, or left out")
    unknown = [r for r in rules if r not in known]
    if unknown:
        raise SubscriptionError(
            f"rules: no rule named {', '.join(unknown)}; known rules: {', '.join(known)}"
        )
    return list(dict.fromkeys(rules))


def missing_rules(
    subscriptions: Sequence[Subscription], rules: Sequence[str]
) -> dict[str, list[str]]:
    """Subscription id -> the rules it names that the configuration no longer has.

    Rules are checked when a subscription is made, but a later edit of sources.toml may
    remove one: the subscription then stays valid but gets nothing for that rule.
    """
    known = {*rules, SOURCE_HEALTH}  # the reserved rule needs no [[rules]] entry
    found = {sub.id: [r for r in sub.rules or () if r not in known] for sub in subscriptions}
    return {ident: names for ident, names in found.items() if names}


def make_subscription(
    url: str, rules: list[str] | None, description: str, now: datetime
) -> Subscription:
    return Subscription(
        id=new_id(),
        url=url,
        secret=new_secret(),
        rules=rules,
        description=description,
        created_at=now,
    )


def notifier_config(subscription: Subscription, *, allow_private: bool) -> WebhookConfig:
    """The webhook notifier config a subscription stands for.

    ``allow_private`` is ``[monitor] subscriptions_allow_private``: the delivery guard
    then lets this subscription reach an internal receiver, as the API did.
    """
    return WebhookConfig(
        name=subscription.id,
        type="webhook",
        url=subscription.url,
        secret=SecretStr(subscription.secret),
        rules=subscription.rules,
        allow_private=allow_private,
    )
