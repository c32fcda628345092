"""The command line: ``noticewatch check | poll | run | status`` and the rule commands
of :mod:`monitor.rule_commands` (test-rule, explain, check --diff).

Exit codes: 0 success; 1 ``poll`` finished but at least one source failed; 2 the
configuration (or the command line) is wrong; 3 the database is unusable.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime

from monitor import __version__, rule_commands
from monitor.app import App, config_secrets, open_app
from monitor.config import Config, config_path, load_config
from monitor.errors import ConfigError, StorageError
from monitor.logs import setup_logging
from monitor.pipeline import SourceRun, run_source
from monitor.scheduler import Service

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_STORAGE = 0, 1, 2, 3
POLL_CONCURRENCY = 8


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    args = _parser().parse_args(argv)
    try:
        config = load_config(config_path(args.config, env), env)
    except ConfigError as e:
        for problem in e.problems:
            print(f"error: {problem}", file=sys.stderr)
        if e.hint:
            print(f"hint: {e.hint}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "check" and not args.diff:
        return _check(config)
    setup_logging(env.get("NOTICEWATCH_LOG_LEVEL", "INFO").upper(), config_secrets(config))
    try:
        if args.command in rule_commands.COMMANDS:
            return asyncio.run(rule_commands.run_command(config, args, env))
        if args.command == "poll":
            return asyncio.run(_poll(config, args.source, dry_run=args.dry_run))
        if args.command == "status":
            return asyncio.run(_status(config))
        return asyncio.run(_run(config))
    except StorageError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_STORAGE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="noticewatch",
        description="Watch procurement notices, regulator pages and news; alert on matches.",
    )
    parser.add_argument("--version", action="version", version=f"noticewatch {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    config_help = "path to sources.toml (default: $NOTICEWATCH_CONFIG, then ./sources.toml)"
    check = commands.add_parser("check", help="validate the configuration and exit")
    poll = commands.add_parser("poll", help="fetch every enabled source once, deliver, exit")
    poll.add_argument("--source", action="append", default=[], metavar="NAME")
    poll.add_argument(
        "--dry-run", action="store_true", help="fetch and match but write and send nothing"
    )
    run = commands.add_parser("run", help="run the long-lived service (stops on SIGTERM)")
    status = commands.add_parser("status", help="show sources, failures and the outbox")
    rules = rule_commands.add_commands(commands, check)
    for sub in (check, poll, run, status, *rules):
        sub.add_argument("--config", metavar="PATH", help=config_help)
    return parser


def _check(config: Config) -> int:
    enabled = sum(1 for s in config.sources if s.enabled)
    print(
        f"{config.path}: ok: {len(config.sources)} sources ({enabled} enabled), "
        f"{len(config.rules)} rules, {len(config.notifiers)} notifiers"
    )
    return EXIT_OK


async def _poll(config: Config, only: Sequence[str], *, dry_run: bool) -> int:
    known = {s.name: s for s in config.sources}
    unknown = [name for name in only if name not in known]
    if unknown:
        names = ", ".join(sorted(known))
        print(f"error: --source: no source named {', '.join(unknown)}; known: {names}")
        return EXIT_CONFIG
    async with open_app(config) as app:
        wanted = [app.sources[n] for n in (only or app.sources) if n in app.sources]
        disabled = [n for n in only if n not in app.sources]
        for name in disabled:
            print(f"{name}: skipped: disabled in the configuration")
        gate = asyncio.Semaphore(POLL_CONCURRENCY)

        async def one(name: str) -> SourceRun:
            async with gate:
                return await run_source(app.sources[name], app.pipeline, dry_run=dry_run)

        runs = await asyncio.gather(*(one(s.name) for s in wanted))
        for run in runs:
            print(_describe(run))
            for draft in run.drafts:
                item = draft.data["item"]
                print(f"  would alert {draft.notifier} [{', '.join(draft.rules)}]: {item['title']}")
        if not dry_run:
            await _deliver(app)
    return EXIT_FAILED if any(run.failed for run in runs) else EXIT_OK


async def _deliver(app: App) -> None:
    rounds = await app.deliverer.deliver_all()
    for name, counts in rounds.items():
        if counts.delivered or counts.retried or counts.dead:
            print(
                f"notifier {name}: delivered {counts.delivered}, retrying {counts.retried}"
                f" (+{counts.held} held), dead {counts.dead}"
            )


def _describe(run: SourceRun) -> str:
    if run.outcome == "paused":
        return f"{run.source}: paused until {_when(run.paused_until)}: the server asked to wait"
    if run.failed:
        return f"{run.source}: FAILED: {run.error}"
    c = run.counts
    return (
        f"{run.source}: {run.outcome}: {run.items} items, {c.new} new, {c.updated} updated, "
        f"{c.alerts} alerts ({run.duration:.2f}s)"
    )


async def _run(config: Config) -> int:
    async with open_app(config) as app:
        service = Service(app)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, service.stop.set)
        await service.run()
    return EXIT_OK


async def _status(config: Config) -> int:
    async with open_app(config) as app:
        print(status_report(app))
    return EXIT_OK


def status_report(app: App) -> str:
    states = {row.name: row for row in app.store.source_states()}
    items = app.store.item_counts()
    lines = ["SOURCES"]
    names = [s.name for s in app.config.sources] + sorted(
        set(states) - set(items) - {s.name for s in app.config.sources}
    )
    for name in names:
        row = states.get(name)
        cfg = next((s for s in app.config.sources if s.name == name), None)
        flag = "" if cfg is None or cfg.enabled else " (disabled)"
        if row is None:
            lines.append(f"  {name}{flag}: never fetched")
            continue
        lines.append(
            f"  {name}{flag}: last fetch {_when(row.last_fetch_at)} ({row.last_outcome}), "
            f"last success {_when(row.last_success_at)}, {items.get(name, 0)} items, "
            f"{row.consecutive_failures} consecutive failures"
        )
        if row.last_error:
            lines.append(f"    last error: {row.last_error}")
        if row.paused_until and row.paused_until > app.clock():
            lines.append(f"    paused until {_when(row.paused_until)} (the server asked to wait)")
    lines.append("ALERTS")
    counts = app.store.alert_counts()
    disabled = app.store.disabled_notifiers()
    notifiers = list(dict.fromkeys([n.name for n in app.config.notifiers] + [n for n, _ in counts]))
    for name in notifiers:
        pending, delivered, dead = (
            counts.get((name, st), 0) for st in ("pending", "delivered", "dead")
        )
        note = f" DISABLED: {disabled[name]}" if name in disabled else ""
        lines.append(f"  {name}: {pending} pending, {delivered} delivered, {dead} dead{note}")
    return "\n".join(lines)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else "never"
