"""Config models shared by every source and notifier type (kept apart from config.py
so that source and notifier modules can import them without a cycle)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

from monitor.digest import check_digest
from monitor.durations import Duration

_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(
            f"{value!r} is not a valid name: use lowercase letters, digits and dashes "
            "(not at the start or end), at most 64 characters"
        )
    return value


Name = Annotated[str, AfterValidator(_check_name)]


class StrictModel(BaseModel):
    """Unknown keys are errors, never silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(StrictModel):
    """Keys every source type accepts."""

    name: Name
    type: str
    every: Duration
    # Overall deadline of one request; each type sets its own default. The source's
    # lease among replicas is derived from it (monitor/replicas.py).
    timeout: Duration = timedelta(seconds=30)
    language: str | None = None
    enabled: bool = True

    def identity(self) -> str:
        """What makes this the same source across config edits (a feed's URL, say).

        When it changes, the source starts afresh: its validators are dropped and its
        next fetch is a new baseline, so pointing a name at another feed cannot flood
        the notifiers with that feed's back catalogue.
        """
        return ""


class NotifierConfig(StrictModel):
    """Keys every notifier type accepts."""

    name: Name
    type: str
    rules: list[str] | None = None
    digest: Annotated[str, AfterValidator(check_digest)] = "immediate"
