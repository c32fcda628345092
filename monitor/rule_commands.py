"""The rule commands of the CLI: ``test-rule``, ``explain`` and ``check --diff``.

Each reads stored items through the App's store, runs the pure functions of
``monitor.backtest`` / ``Matcher.explain``, and prints text or ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from monitor.app import App, open_app
from monitor.backtest import Backtest, ItemRef, RuleDiff, backtest, diff_rules, highlight
from monitor.config import Config, load_config, rule_fields
from monitor.durations import parse_duration
from monitor.errors import ConfigError
from monitor.history import item_from_row
from monitor.matching import Matcher, Rule, compile_rule
from monitor.models import Item, Match
from monitor.progress import Progress

__all__ = [
    "COMMANDS",
    "add_commands",
    "check_diff",
    "choose_rule",
    "explain",
    "run_command",
    "since_window",
    "test_rule",
]

COMMANDS = ("test-rule", "explain", "check")  # check only with --diff (see cli.main)
EXAMPLES = 5  # items listed per rule by check --diff
EXIT_CONFIG = 2


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    check: argparse.ArgumentParser,
) -> list[argparse.ArgumentParser]:
    """Add test-rule and explain, and ``--diff`` to ``check``; returns the new parsers."""
    check.add_argument(
        "--diff", metavar="OLD.toml", help="report what the rules would start and stop matching"
    )
    test = commands.add_parser(
        "test-rule", help="run a rule over stored items and show what it would have matched"
    )
    which = test.add_mutually_exclusive_group(required=True)
    which.add_argument("--rule", metavar="NAME", help="a rule of the configuration")
    which.add_argument("--query", metavar="QUERY", help="an ad-hoc query")
    test.add_argument("--exclude", metavar="QUERY", help="with --query: a veto query")
    test.add_argument("--source", metavar="NAME", help="only items of this source")
    why = commands.add_parser("explain", help="which rules match a stored item, and why")
    why.add_argument("item_key", metavar="ITEM_KEY")
    why.add_argument("--source", metavar="NAME", help="when several sources have the key")
    for sub in (check, test):
        sub.add_argument("--since", metavar="DURATION", help="only items of the last 90d, 12h...")
    for sub in (check, test, why):
        sub.add_argument("--json", action="store_true", help="machine-readable output")
    return [test, why]


async def run_command(config: Config, args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """test-rule, explain or check --diff: rules against the stored items."""
    try:
        old = load_config(Path(args.diff), env) if args.command == "check" else None
        since = since_window(getattr(args, "since", None))
        rule = None
        if args.command == "test-rule":
            rule = choose_rule(config, args.rule, args.query, args.exclude)
    except ConfigError as e:
        for problem in e.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    async with open_app(config) as app:
        if old is not None:
            return check_diff(app, old, since=since, as_json=args.json)
        if rule is not None:
            return test_rule(app, rule, since=since, source=args.source, as_json=args.json)
        return explain(app, args.item_key, source=args.source, as_json=args.json)


def since_window(text: str | None) -> timedelta | None:
    """``--since 90d`` as a timedelta; ConfigError naming the option when malformed."""
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as e:
        raise ConfigError(f"--since: {e}") from e


def _cutoff(since: timedelta | None, app: App) -> datetime | None:
    return None if since is None else app.clock() - since


def _items(app: App, since: datetime | None, source: str | None) -> Iterator[Item]:
    for row in app.store.iter_items(since, source):
        yield item_from_row(row)


def _progress(
    app: App, since: datetime | None, source: str | None, *, quiet: bool, err: TextIO
) -> Progress:
    total = app.store.count_items(since, source)
    return Progress(total, err, enabled=not quiet and err.isatty())


def choose_rule(config: Config, name: str | None, query: str | None, exclude: str | None) -> Rule:
    """The named rule of the config, or an ad-hoc one from ``--query``."""
    if name is not None:
        for rule in config.rules:
            if rule.name == name:
                return rule
        known = ", ".join(rule.name for rule in config.rules) or "(none)"
        raise ConfigError(f"--rule: no rule named {name!r}; known rules: {known}")
    assert query is not None  # argparse requires one of --rule / --query
    sources = {source.name: source for source in config.sources}
    fields = rule_fields(None, dict(sources))
    return compile_rule("query", query, fields=frozenset(fields), kinds=fields, exclude=exclude)


def test_rule(
    app: App,
    rule: Rule,
    *,
    since: timedelta | None,
    source: str | None,
    as_json: bool,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    out, err = out or sys.stdout, err or sys.stderr  # resolved late: tests swap them
    stored = app.store.item_counts()
    configured = [s.name for s in app.config.sources]
    if source is not None and source not in configured and source not in stored:
        known = ", ".join(dict.fromkeys([*configured, *sorted(stored)])) or "(none)"
        err.write(f"error: --source: no source named {source!r}; known: {known}\n")
        return EXIT_CONFIG
    cutoff = _cutoff(since, app)
    progress = _progress(app, cutoff, source, quiet=as_json, err=err)
    matcher = Matcher([rule], clock=app.clock)
    result = backtest(matcher, _items(app, cutoff, source), app.clock(), progress.update)
    progress.finish()
    if as_json:
        json.dump(_backtest_json(rule, result), out, indent=2, ensure_ascii=False)
        out.write("\n")
        return 0
    for item, found in result.hits:
        out.write(_describe_item(item, found))
    out.write(f"rule {rule.name!r}: {rule.query.text}\n")
    out.write(f"matched {result.matched} of {result.scanned} stored items\n")
    for name, (scanned, matched) in sorted(result.per_source.items()):
        out.write(f"  {name}: {matched} of {scanned}\n")
    return 0


def _describe_item(item: Item, found: list[Match]) -> str:
    when = item.published.strftime("%Y-%m-%d") if item.published else "----------"
    lines = [
        f"{when}  {item.source}  {item.key}",
        f"  {highlight(item.title, _in(found, 'title'))}",
    ]
    texts = item.text_fields()
    for name in dict.fromkeys(m.field for m in found if m.field != "title"):
        lines.append(f"  {name}: {_snippet(texts.get(name), _in(found, name))}")
    return "\n".join(lines) + "\n"


def _in(found: list[Match], field: str) -> list[Match]:
    return [m for m in found if m.field == field]


def _snippet(text: str | None, found: list[Match], context: int = 60) -> str:
    """The matched part of a long text with some context, matches in [brackets]."""
    if text is None:  # a structured field: the record carries the value
        return ", ".join(m.text for m in found)
    start = max(0, min(m.start for m in found) - context)
    end = min(len(text), max(m.end for m in found) + context)
    shifted = [Match(m.rule, m.field, m.text, m.start - start, m.end - start) for m in found]
    body = highlight(text[start:end], shifted).replace("\n", " ")
    return ("…" if start else "") + body + ("…" if end < len(text) else "")


def _backtest_json(rule: Rule, result: Backtest) -> dict[str, Any]:
    return {
        "rule": rule.name,
        "query": rule.query.text,
        "scanned": result.scanned,
        "matched": result.matched,
        "per_source": {
            name: {"scanned": scanned, "matched": matched}
            for name, (scanned, matched) in sorted(result.per_source.items())
        },
        "items": [
            {
                "source": item.source,
                "key": item.key,
                "title": item.title,
                "url": item.url,
                "published": item.published.isoformat() if item.published else None,
                "matches": [m.as_dict() for m in found],
            }
            for item, found in result.hits
        ],
    }


def explain(
    app: App, key: str, *, source: str | None, as_json: bool, out: TextIO | None = None
) -> int:
    out = out or sys.stdout
    rows = app.store.items_by_key(key, source)
    if not rows:
        where = f" in source {source!r}" if source else ""
        out.write(f"no stored item with key {key!r}{where}\n")
        return 1
    matcher = Matcher(app.config.rules, clock=app.clock)
    report: list[dict[str, Any]] = []
    for row in rows:
        item = item_from_row(row)
        explanations = matcher.explain(item)
        report.append(
            {
                "source": item.source,
                "key": item.key,
                "title": item.title,
                "rules": [
                    {
                        "rule": e.rule,
                        "matched": e.matched,
                        "applies": e.applies,
                        "matches": [m.as_dict() for m in e.matches],
                        "missing": e.missing,
                        "excluded_by": [m.as_dict() for m in e.excluded_by],
                    }
                    for e in explanations
                ],
            }
        )
        if as_json:
            continue
        out.write(f"{item.source}  {item.key}\n  {item.title}\n")
        for e in explanations:
            if not e.applies:
                out.write(f"  - {e.rule}: not applied (the rule is for other sources)\n")
            elif e.matched:
                words = ", ".join(f"{m.field}: {m.text!r}" for m in e.matches)
                out.write(f"  + {e.rule}: MATCHES ({words})\n")
            elif e.excluded_by:
                words = ", ".join(f"{m.field}: {m.text!r}" for m in e.excluded_by)
                out.write(f"  - {e.rule}: vetoed by its exclude query ({words})\n")
            else:
                out.write(f"  - {e.rule}: no match; missing: {'; '.join(e.missing)}\n")
    if as_json:
        json.dump(report, out, indent=2, ensure_ascii=False)
        out.write("\n")
    return 0


def check_diff(
    app: App,
    old: Config,
    *,
    since: timedelta | None,
    as_json: bool,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    cutoff = _cutoff(since, app)
    progress = _progress(app, cutoff, None, quiet=as_json, err=err)
    before = Matcher(old.rules, clock=app.clock)
    after = Matcher(app.config.rules, clock=app.clock)
    items = _items(app, cutoff, None)
    scanned, diffs = diff_rules(before, after, items, app.clock(), progress.update)
    progress.finish()
    if as_json:
        json.dump(_diff_json(scanned, diffs), out, indent=2, ensure_ascii=False)
        out.write("\n")
        return 0
    out.write(f"{old.path} -> {app.config.path}: {scanned} stored items\n")
    for entry in diffs:
        if entry.status == "unchanged" and not (entry.started or entry.stopped):
            continue
        out.write(
            f"  {entry.rule} ({entry.status}): would start matching {len(entry.started)}, "
            f"stop matching {len(entry.stopped)}\n"
        )
        for sign, changed in (("+", entry.started), ("-", entry.stopped)):
            for item in changed[:EXAMPLES]:
                out.write(f"      {sign} {item.source}  {item.title}\n")
            if len(changed) > EXAMPLES:
                out.write(f"      {sign} … and {len(changed) - EXAMPLES} more\n")
    return 0


def _diff_json(scanned: int, diffs: list[RuleDiff]) -> Mapping[str, Any]:
    def brief(item: ItemRef) -> dict[str, Any]:
        return {"source": item.source, "key": item.key, "title": item.title}

    return {
        "scanned": scanned,
        "rules": [
            {
                "rule": entry.rule,
                "status": entry.status,
                "started": [brief(item) for item in entry.started],
                "stopped": [brief(item) for item in entry.stopped],
            }
            for entry in diffs
        ],
    }
