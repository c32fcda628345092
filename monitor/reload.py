"""Hot reload of sources.toml: notice an edit, validate it, and say whether it was taken.

``ConfigWatcher.poll()`` compares the file's bytes with the last ones it read (the
service calls it every couple of seconds, and on SIGHUP with ``force``). A valid new
config is returned for the service to apply; an invalid edit or a deleted file is
refused: the running config stays, the watcher's ``status`` says it is stale, and each
problem is logged once (not again on every poll while the file stays broken).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from monitor.alerts import iso_utc
from monitor.config import Config, load_config
from monitor.errors import ConfigError

log = logging.getLogger("noticewatch.reload")

STATUS_KEY = "config_status"  # where the service leaves the status for ``noticewatch status``


@dataclass(frozen=True)
class ConfigStatus:
    path: str
    loaded_at: datetime
    stale_since: datetime | None = None
    errors: tuple[str, ...] = ()

    @property
    def stale(self) -> bool:
        return self.stale_since is not None

    def to_json(self) -> str:
        return json.dumps(
            {
                "path": self.path,
                "loaded_at": iso_utc(self.loaded_at),
                "stale_since": iso_utc(self.stale_since) if self.stale_since else None,
                "errors": list(self.errors),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> ConfigStatus:
        raw = json.loads(text)
        stale = raw.get("stale_since")
        return cls(
            path=raw["path"],
            loaded_at=datetime.fromisoformat(raw["loaded_at"]),
            stale_since=datetime.fromisoformat(stale) if stale else None,
            errors=tuple(raw.get("errors", ())),
        )


def _fingerprint(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class ConfigWatcher:
    def __init__(self, path: Path, env: Mapping[str, str], clock: Callable[[], datetime]) -> None:
        self.path = path
        self.env = env
        self.clock = clock
        self._seen = _fingerprint(path)
        self._logged: tuple[str, ...] = ()
        self.refusals = 0  # distinct refusals (the same broken file read again is not one more)
        self.status = ConfigStatus(str(path), loaded_at=clock())

    def poll(self, *, force: bool = False) -> Config | None:
        """A new valid config if the file changed (or ``force``); None otherwise."""
        seen = _fingerprint(self.path)
        if seen == self._seen and not force:
            return None
        self._seen = seen
        try:
            config = load_config(self.path, self.env)
        except ConfigError as e:
            self.refuse(list(e.problems))  # the CLI hints (--config ...) do not apply here
            return None
        return config

    def accepted(self) -> None:
        """The config from the last ``poll`` is now running."""
        self._logged = ()
        self.status = ConfigStatus(str(self.path), loaded_at=self.clock())

    def refuse(self, problems: list[str]) -> None:
        """Keep the running config; log these problems unless they were just logged."""
        errors = tuple(problems)
        if errors != self._logged:
            self.refusals += 1
            for problem in errors:
                log.error("config=%s outcome=refused error=%s", self.path, problem)
            log.error(
                "config=%s outcome=stale keeping the configuration loaded at %s; "
                "fix the file (or restore it) and it is picked up again",
                self.path, iso_utc(self.status.loaded_at),
            )  # fmt: skip
            self._logged = errors
        self.status = ConfigStatus(
            str(self.path),
            loaded_at=self.status.loaded_at,
            stale_since=self.status.stale_since or self.clock(),
            errors=errors,
        )


def needs_restart(old: Config, new: Config) -> list[str]:
    """Settings a running service cannot change; they take effect at the next start."""
    keys = ("database", "http_host", "http_port", "user_agent")
    return [
        f"monitor.{key}"
        for key in keys
        if getattr(old.monitor, key, None) != getattr(new.monitor, key, None)
    ]
