"""One line per event on stdout, with every known secret scrubbed as a last line of defence."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

_QUIET = ("httpx", "httpcore", "apscheduler.executors", "apscheduler.scheduler")


class SecretFilter(logging.Filter):
    """Replaces any known secret value in a record's final message with ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
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


def setup_logging(level: str = "INFO", secrets: Iterable[str] = ()) -> None:
    """Configure the root logger for the process (called once by the CLI)."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-7s %(name)s %(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    handler.addFilter(SecretFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request URL at INFO; URLs can carry API keys.
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
