"""The notifier registry: every notifier type noticewatch knows, keyed by ``type``.

Built-in types register exactly as a plug-in would: their module exposes a
``NOTIFIER_TYPE`` and it is listed below. A name registered twice fails at import.
"""

from __future__ import annotations

from collections.abc import Mapping

from monitor.registry import make_registry
from notifiers import mail, webhook
from notifiers.base import NotifierType

NOTIFIER_TYPES: Mapping[str, NotifierType] = make_registry(
    "notifier", [webhook.NOTIFIER_TYPE, mail.NOTIFIER_TYPE]
)

__all__ = ["NOTIFIER_TYPES"]
