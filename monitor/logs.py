"""One line per event on stdout, with every known secret scrubbed as a last line of defence.

Two formats: ``text`` for a terminal, and ``json`` (one object per line, the default
when stdout is not a terminal, e.g. in a container) where the ``source=``/``notifier=``
names of the message are also fields of their own, for log search and alerting.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TextIO

_QUIET = ("httpx", "httpcore", "apscheduler.executors", "apscheduler.scheduler", "alembic")
FORMATS = ("json", "text")
# The key=value pairs noticewatch messages start with that become JSON fields.
_FIELDS = re.compile(r"(?:^|\s)(source|notifier|alert|outcome|config|task|service|setting)=(\S+)")


class SecretFilter(logging.Filter):
    """Replaces any known secret value in a record's final message with ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets: list[str] = []
        self.update(secrets)

    def update(self, secrets: Iterable[str]) -> None:
        """Scrub these from now on (a reload or a new subscription brings new ones)."""
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        scrubbed = message
        for secret in self.secrets:
            scrubbed = scrubbed.replace(secret, "***")
        if record.exc_info and record.exc_info[1] is not None:
            # Tracebacks are rendered later by the formatter; render and scrub them now.
            text = logging.Formatter().formatException(record.exc_info)
            for secret in self.secrets:
                text = text.replace(secret, "***")
            record.exc_info = None
            record.exc_text = None
            scrubbed = f"{scrubbed}\n{text}"
        if scrubbed != message or record.args:
            record.msg, record.args = scrubbed, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the named fields."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        for key, value in _FIELDS.findall(message):
            line.setdefault(key, value)
        task = str(line.get("task", ""))
        if task.startswith(("source:", "deliver:")):  # a scheduler task names its subject
            kind, _, name = task.partition(":")
            line.setdefault("source" if kind == "source" else "notifier", name)
        line["message"] = message
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def default_format(stream: TextIO) -> str:
    """``text`` on a terminal, ``json`` otherwise (a container, a pipe, a file)."""
    return "text" if stream.isatty() else "json"


def setup_logging(
    level: str = "INFO", secrets: Iterable[str] = (), fmt: str | None = None
) -> SecretFilter:
    """Configure the root logger for the process (called once by the CLI).

    Returns the secret filter so that the service can give it new secrets later.
    """
    handler = logging.StreamHandler(sys.stdout)
    if (fmt or default_format(sys.stdout)) == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)-7s %(name)s %(message)s", "%Y-%m-%dT%H:%M:%S"
            )
        )
    scrubber = SecretFilter(secrets)
    handler.addFilter(scrubber)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request URL at INFO; URLs can carry API keys.
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    return scrubber
