"""sources.toml: strict validation into a :class:`Config`, every problem reported at once.

``load_config(path, env)`` returns a Config or raises one ConfigError whose
``problems`` list every error with its place, e.g.::

    sources[3] "cnil": every: '15 min' is not a duration like 30s, 15m, 6h or 1d

Source and notifier keys are validated by the model their ``type`` names in the
registries (``monitor.sources.SOURCE_TYPES``, ``notifiers.NOTIFIER_TYPES``).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, Field, ValidationError

from monitor.config_base import Name, NotifierConfig, SourceConfig, StrictModel
from monitor.dedupe import DEFAULT_THRESHOLD, DEFAULT_WINDOW
from monitor.durations import Duration
from monitor.env import Expansion, expand
from monitor.errors import ConfigError, QueryError
from monitor.matching import DEFAULT_FIELDS, Rule, compile_rule, parse_query
from monitor.matching.schema import TEXT
from monitor.sources import SOURCE_TYPES
from monitor.system import DEFAULT_FAILING_AFTER, SOURCE_HEALTH
from notifiers import NOTIFIER_TYPES

DATABASE_ENV = "NOTICEWATCH_DATABASE_URL"
HTTP_HOST_ENV = "NOTICEWATCH_HTTP_HOST"
HTTP_PORT_ENV = "NOTICEWATCH_HTTP_PORT"
CONFIG_ENV = "NOTICEWATCH_CONFIG"
DEFAULT_CONFIG = Path("sources.toml")
_TOP_KEYS = ("monitor", "sources", "rules", "notifiers")
M = TypeVar("M", bound=BaseModel)
V = TypeVar("V")


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{value!r} is not a known time zone; use an IANA name like Europe/Amsterdam or UTC"
        ) from None
    return value


class MonitorSettings(StrictModel):
    """The ``[monitor]`` table."""

    database: str = "sqlite:///data/noticewatch.db"
    user_agent: str = "noticewatch/0.1 (+https://github.com/noticewatch/noticewatch)"
    baseline: bool = True
    max_attempts: int = Field(default=10, ge=1, le=100)
    timezone: Annotated[str, AfterValidator(_check_timezone)] = "UTC"
    failing_after: int = Field(default=DEFAULT_FAILING_AFTER, ge=1, le=1000)
    disable_after: Duration = timedelta(days=5)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    dedupe: bool = True
    dedupe_threshold: float = Field(default=DEFAULT_THRESHOLD, gt=0, le=1)
    dedupe_window: Duration = DEFAULT_WINDOW
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)  # 0: no HTTP endpoints
    subscriptions_allow_private: bool = False


class RuleConfig(StrictModel):
    """One ``[[rules]]`` entry."""

    name: Name
    query: str
    sources: list[str] | None = None
    on_update: bool = True  # amended notices that still match send alert.updated
    exclude: str | None = None


@dataclass(frozen=True)
class Config:
    """A validated configuration. ``rules`` are compiled; secrets stay in SecretStr fields."""

    path: Path
    monitor: MonitorSettings
    sources: tuple[SourceConfig, ...]
    rules: tuple[Rule, ...]
    notifiers: tuple[NotifierConfig, ...]
    quiet_on_update: frozenset[str] = frozenset()  # rules with on_update = false

    def source(self, name: str) -> SourceConfig:
        for source in self.sources:
            if source.name == name:
                return source
        raise KeyError(name)


def config_path(explicit: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path:
    """``--config``, then ``$NOTICEWATCH_CONFIG``, then ``./sources.toml``."""
    if explicit:
        return Path(explicit)
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV])
    return DEFAULT_CONFIG


def load_config(path: Path, env: Mapping[str, str]) -> Config:
    """Read, expand and validate ``path``; raise ConfigError listing every problem."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ConfigError(
            f"config: {path}: file not found",
            hint="pass --config PATH or set NOTICEWATCH_CONFIG",
        ) from e
    except OSError as e:
        raise ConfigError(f"config: {path}: cannot read: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"config: {path}: not UTF-8 text: {e.reason}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config: {path}: not valid TOML: {e}") from e
    return parse_config(raw, env, path=path)


def parse_config(raw: dict[str, Any], env: Mapping[str, str], *, path: Path) -> Config:
    """Validate an already-parsed TOML document (see :func:`load_config`)."""
    expansion = Expansion()
    doc = expand(raw, env, "", expansion)
    checker = _Checker(expansion)
    for problem in expansion.problems:
        checker.problems.append(problem)
    for key in doc:
        if key not in _TOP_KEYS:
            checker.problems.append(
                f"{key}: unknown top-level key; expected one of {', '.join(_TOP_KEYS)}"
            )

    monitor = checker.model(MonitorSettings, doc.get("monitor", {}), "monitor", "monitor")
    source_entries = _table_list(doc, "sources", checker)
    sources = checker.sources(source_entries)
    rules = checker.rules(_table_list(doc, "rules", checker), sources)
    notifiers = checker.notifiers(_table_list(doc, "notifiers", checker), rules)
    checker.problems.extend(_literal_passwords(raw.get("notifiers")))
    if not source_entries and "sources" not in checker.failed_sections:
        checker.problems.append("sources: no [[sources]] defined; add at least one")
    if checker.problems:
        raise ConfigError([expansion.scrub(p) for p in checker.problems])
    assert monitor is not None  # no problems means every model validated
    if env.get(DATABASE_ENV):
        monitor = monitor.model_copy(update={"database": env[DATABASE_ENV]})
    if env.get(HTTP_HOST_ENV):  # the image listens on every interface, whatever the file says
        monitor = monitor.model_copy(update={"http_host": env[HTTP_HOST_ENV]})
    if env.get(HTTP_PORT_ENV, "").isdigit():
        monitor = monitor.model_copy(update={"http_port": int(env[HTTP_PORT_ENV])})
    return Config(
        path=path,
        monitor=monitor,
        sources=tuple(s for s in sources.values() if s is not None),
        rules=tuple(r for r in rules.values() if r is not None),
        notifiers=tuple(n for n in notifiers if n is not None),
        quiet_on_update=frozenset(checker.quiet_on_update),
    )


def _table_list(doc: Mapping[str, Any], key: str, checker: _Checker) -> list[Any]:
    value = doc.get(key, [])
    if not isinstance(value, list):
        checker.problems.append(f"{key}: must be an array of tables, written [[{key}]]")
        checker.failed_sections.add(key)
        return []
    return value


class _Checker:
    """Collects problems while validating each section; never stops at the first."""

    def __init__(self, expansion: Expansion) -> None:
        self.expansion = expansion
        self.problems: list[str] = []
        self.failed_sections: set[str] = set()
        self.quiet_on_update: set[str] = set()

    def model(self, model: type[M], data: Any, place: str, path: str) -> M | None:
        """Validate ``data``; ``path`` (``sources[0]``) finds places already reported."""
        if not isinstance(data, dict):
            self.problems.append(f"{place}: must be a table")
            return None
        try:
            return model.model_validate(data)
        except ValidationError as e:
            # A value whose ${VAR} is missing was already reported by name; its empty
            # stand-in failing validation too would only be noise.
            failed = {f.removeprefix(path + ".") for f in self.expansion.failed}
            self.problems.extend(_format_errors(place, e, skip=failed))
            return None

    def sources(self, entries: Sequence[Any]) -> dict[str, SourceConfig | None]:
        models = {name: t.config_model for name, t in SOURCE_TYPES.items()}
        found: dict[str, SourceConfig | None] = {}
        for i, entry in enumerate(entries):
            place = _place("sources", i, entry)
            config = self.typed(models, entry, place, f"sources[{i}]")
            self._unique(found, entry, place, config, "source")
        return found

    def rules(
        self, entries: Sequence[Any], sources: Mapping[str, SourceConfig | None]
    ) -> dict[str, Rule | None]:
        found: dict[str, Rule | None] = {}
        for i, entry in enumerate(entries):
            place = _place("rules", i, entry)
            config = self.model(RuleConfig, entry, place, f"rules[{i}]")
            self._references(entry, "sources", sources, place, "source")
            if isinstance(entry, dict) and entry.get("name") == SOURCE_HEALTH:
                self.problems.append(
                    f"{place}: name: {SOURCE_HEALTH!r} is reserved for health messages; "
                    "list it in a notifier's rules without defining it, or rename this rule"
                )
            rule = None
            if config is not None and not config.on_update:
                self.quiet_on_update.add(config.name)
            if config is not None:
                rule = self._rule(config, place, sources)
            self._unique(found, entry, place, rule if config else None, "rule")
        return found

    def _rule(
        self, config: RuleConfig, place: str, sources: Mapping[str, SourceConfig | None]
    ) -> Rule | None:
        """Compile one rule; its field names must be ones its sources provide."""
        fields = rule_fields(config.sources, sources)
        try:
            query = parse_query(config.query, fields=frozenset(fields), kinds=fields)
        except QueryError as e:
            self.problems.append(f"{place}: query: {e.message}")
            query = None
        exclude = None
        if config.exclude is not None:
            try:
                exclude = parse_query(config.exclude, fields=frozenset(fields), kinds=fields)
            except QueryError as e:
                self.problems.append(f"{place}: exclude: {e.message}")
        if query is None or (config.exclude is not None and exclude is None):
            return None
        try:
            return compile_rule(config.name, query, config.sources, exclude=exclude)
        except ConfigError as e:  # e.g. an empty sources list
            self.problems.append(f"{place}: {e}")
            return None

    def notifiers(
        self, entries: Sequence[Any], rules: Mapping[str, Rule | None]
    ) -> list[NotifierConfig | None]:
        models = {name: t.config_model for name, t in NOTIFIER_TYPES.items()}
        found: dict[str, NotifierConfig | None] = {}
        for i, entry in enumerate(entries):
            place = _place("notifiers", i, entry)
            config = self.typed(models, entry, place, f"notifiers[{i}]")
            known_rules = {**rules, SOURCE_HEALTH: None}  # reserved: needs no [[rules]] entry
            self._references(entry, "rules", known_rules, place, "rule")
            self._unique(found, entry, place, config, "notifier")
        return list(found.values())

    def typed(self, models: Mapping[str, type[M]], entry: Any, place: str, path: str) -> M | None:
        """Validate ``entry`` with the model its ``type`` names in a registry."""
        if not isinstance(entry, dict):
            self.problems.append(f"{place}: must be a table")
            return None
        kind = entry.get("type")
        model = models.get(kind) if isinstance(kind, str) else None
        if model is None:
            what = f"unknown type {kind!r}" if kind is not None else "missing key 'type'"
            known = ", ".join(sorted(models))
            self.problems.append(f"{place}: type: {what}; known types: {known}")
            return None
        return self.model(model, entry, place, path)

    def _references(
        self, entry: Any, key: str, known: Mapping[str, object], place: str, kind: str
    ) -> None:
        """Report names in ``entry[key]`` that nothing defines (even if the entry is bad)."""
        names = entry.get(key) if isinstance(entry, dict) else None
        if not isinstance(names, list):
            return
        for name in names:
            if isinstance(name, str) and name not in known:
                self.problems.append(
                    f"{place}: {key}: no {kind} named {name!r}; "
                    f"known {kind}s: {', '.join(known) or '(none)'}"
                )

    def _unique(
        self, found: dict[str, V | None], entry: Any, place: str, value: V | None, kind: str
    ) -> None:
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str):
            return
        if name in found:
            self.problems.append(f"{place}: name: duplicate {kind} name {name!r}")
            return
        found[name] = value


def _literal_passwords(entries: Any) -> list[str]:
    """A password written into the file itself (not ``${VAR}``) is refused: the file is
    copied, committed and shared; the environment is where secrets live."""
    if not isinstance(entries, list):
        return []
    return [
        f'{_place("notifiers", i, entry)}: password: write it as "${{VAR}}" and set VAR '
        "(or VAR_FILE) in the environment; it must not be in the file"
        for i, entry in enumerate(entries)
        if isinstance(entry, dict)
        and isinstance(entry.get("password"), str)
        and "${" not in entry["password"]
    ]


def rule_fields(
    names: Sequence[str] | None, sources: Mapping[str, SourceConfig | None]
) -> dict[str, str]:
    """The fields a rule may name, with their kinds: the text fields plus what its
    sources' types provide (see ``SourceType.fields``).

    A rule without ``sources`` may name any field some configured source provides.
    """
    chosen = [sources.get(n) for n in names] if names is not None else list(sources.values())
    found = dict.fromkeys(DEFAULT_FIELDS, TEXT)
    for source in chosen:
        if source is not None and source.type in SOURCE_TYPES:
            found.update(SOURCE_TYPES[source.type].fields)
    return found


def _place(section: str, index: int, entry: Any) -> str:
    name = entry.get("name") if isinstance(entry, dict) else None
    return f'{section}[{index}] "{name}"' if isinstance(name, str) else f"{section}[{index}]"


def _format_errors(place: str, error: ValidationError, *, skip: set[str]) -> list[str]:
    """One line per pydantic error, without the offending input (it may be a secret)."""
    lines = []
    for err in error.errors(include_input=False, include_url=False):
        loc = ".".join(str(part) for part in err["loc"])
        if loc in skip:
            continue
        if err["type"] == "extra_forbidden":
            message = "unknown key; check its spelling in the README's config reference"
        elif err["type"] == "missing":
            message = "required key is missing"
        else:
            message = str(err["msg"]).removeprefix("Value error, ")
        lines.append(f"{place}: {loc}: {message}" if loc else f"{place}: {message}")
    return lines
