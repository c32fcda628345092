"""The exception tree of noticewatch.

Every error the project raises on purpose derives from :class:`MonitorError`;
third-party exceptions are wrapped at the stage boundary with ``raise ... from e``::

    MonitorError
    ├── ConfigError        sources.toml or the environment is wrong (carries every problem)
    │   └── QueryError     a rule query does not parse (carries the position)
    ├── FetchError         the network stage of one source failed
    ├── ParseError         a fetched body is not what the source type expects
    ├── StorageError       the database refused or is unreachable
    ├── NotifyError        a notifier could not be built or used
    └── LeaseLost          another replica took over a source or an alert from this one

Messages read ``stage: source 'name': what happened: cause`` and a fixable one
carries a hint. No message ever contains a secret value.
"""

from __future__ import annotations


class MonitorError(Exception):
    """Base of every error noticewatch raises on purpose."""

    stage = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} (hint: {self.hint})"
        return self.message


class ConfigError(MonitorError):
    """The configuration is invalid; ``problems`` lists every problem with its place."""

    stage = "config"

    def __init__(self, problems: list[str] | str, *, hint: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        count = len(self.problems)
        head = self.problems[0] if count == 1 else f"{count} problems in the configuration"
        super().__init__(head, hint=hint)

    def __str__(self) -> str:
        if len(self.problems) == 1:
            return super().__str__()
        return "\n".join([f"{len(self.problems)} problems in the configuration:", *self.problems])


class QueryError(ConfigError):
    """A rule query does not parse; ``position`` is the 0-based offset of the problem."""

    def __init__(self, query: str, position: int, reason: str) -> None:
        self.query = query
        self.position = position
        self.reason = reason
        pointer = " " * position + "^"
        super().__init__(f"{reason} at position {position}\n    {query}\n    {pointer}")


class SourceError(MonitorError):
    """An error tied to one source; renders as ``stage: source 'name': what: cause``."""

    def __init__(self, source: str, what: str, *, hint: str | None = None) -> None:
        self.source = source
        self.what = what
        super().__init__(f"{self.stage}: source '{source}': {what}", hint=hint)


class FetchError(SourceError):
    """The network stage of a source failed (status, timeout, size cap, redirect...).

    ``retry_after`` is the server's ``Retry-After`` header, verbatim, when it asked us
    to come back later (429, 503): the source is then paused until that time.
    """

    stage = "fetch"

    def __init__(
        self, source: str, what: str, *, hint: str | None = None, retry_after: str | None = None
    ) -> None:
        super().__init__(source, what, hint=hint)
        self.retry_after = retry_after


class ParseError(SourceError):
    """A fetched body could not be turned into items."""

    stage = "parse"


class StorageError(MonitorError):
    """The database failed."""

    stage = "storage"


class NotifyError(MonitorError):
    """A notifier could not be built or could not send."""

    stage = "notify"


class SourceConfigError(SourceError):
    """A source's own settings were refused by its server (a query it cannot parse, say):
    a problem to fix in sources.toml, reported on that source only."""

    stage = "config"


class LeaseLost(MonitorError):
    """This replica's lease ran out and another replica took the work over: what this
    replica did is not recorded (the new holder records its own run)."""

    stage = "lease"
