"""The command line: ``noticewatch check | poll | run | status | db upgrade | healthcheck``,
the delivery commands of :mod:`monitor.cli_delivery` (deliveries, replay, enable,
notify-test) and the rule commands of :mod:`monitor.rule_commands` (test-rule, explain,
check --diff).

Exit codes: 0 success; 1 ``poll`` finished but at least one source failed; 2 the
configuration (or the command line) is wrong; 3 the database is unusable.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime

from monitor import __version__, cli_delivery, healthcheck, rule_commands
from monitor.alerts import iso_utc
from monitor.api import TOKEN_ENV
from monitor.app import App, config_secrets, open_app
from monitor.config import DATABASE_ENV, Config, config_path, load_config
from monitor.durations import format_duration
from monitor.errors import ConfigError, StorageError
from monitor.heap import settle_heap
from monitor.lease_status import leases_report
from monitor.logs import FORMATS, SecretFilter, setup_logging
from monitor.parsepool import default_workers
from monitor.pipeline import SourceRun, run_source
from monitor.quota import Metered
from monitor.reload import STATUS_KEY, ConfigStatus, ConfigWatcher
from monitor.replicas import replica_id
from monitor.scheduler import SOURCES_IN_FLIGHT, Service
from monitor.web import WebSettings, api_token, build_web, listen, serve
from storage.db import create_db_engine, init_schema
from storage.store import Store

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_STORAGE = 0, 1, 2, 3
# SIGTERM (a container stopped) or Ctrl-C while ``run`` starts (config, database,
# migrations) is held pending until the service's own handlers are in place, and then
# stops it cleanly (exit 0) instead of killing it half-started.
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})
log = logging.getLogger("noticewatch.cli")


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """The command line. Without ``argv`` (run as the program: ``noticewatch``, ``python
    -m monitor``) the process is the command's own, and ``poll`` and ``run`` tune its
    garbage collector (``monitor.heap``); a caller passing ``argv`` keeps its own."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        args = _parser().parse_args(argv)
        if args.command != "run":  # the other commands stop at once, as before
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        return _command(args, os.environ if env is None else env, own_process=argv is None)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def _command(args: argparse.Namespace, env: Mapping[str, str], *, own_process: bool) -> int:
    if args.command == "healthcheck":  # must work even while sources.toml is broken
        where = config_path(args.config, env)
        ok, line = healthcheck.check(
            healthcheck.service_port(where, env),
            host=healthcheck.service_host(where, env),
            ready=args.ready,
        )
        print(line)
        return EXIT_OK if ok else EXIT_FAILED
    try:
        config = load_config(config_path(args.config, env), env)
    except ConfigError as e:
        for problem in e.problems:
            print(f"error: {problem}", file=sys.stderr)
        if e.hint:
            print(f"hint: {e.hint}", file=sys.stderr)
        if args.command == "status":
            _status_without_config(env)
        return EXIT_CONFIG
    if args.command == "check" and not args.diff:
        return _check(config)
    scrubber = setup_logging(
        env.get("NOTICEWATCH_LOG_LEVEL", "INFO").upper(),
        config_secrets(config),
        getattr(args, "log_format", None),
    )
    try:
        if args.command in rule_commands.COMMANDS:
            return asyncio.run(rule_commands.run_command(config, args, env))
        if own_process and args.command in ("run", "poll"):
            settle_heap()  # after the config: its objects live as long as the process
        if args.command == "run":
            try:
                token = api_token(env)
            except ConfigError as e:
                print(f"error: {e}", file=sys.stderr)
                return EXIT_CONFIG
            return asyncio.run(_run(config, env, token, scrubber))
        if args.command == "poll":
            return asyncio.run(_poll(config, args.source, dry_run=args.dry_run))
        if args.command == "status":
            return asyncio.run(_status(config))
        if args.command in DELIVERY_COMMANDS:
            return asyncio.run(_delivery_command(config, args))
        return _db_upgrade(config)
    except StorageError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_STORAGE
    except ConfigError as e:  # found only when starting, e.g. a busy HTTP port
        print(f"error: {e}", file=sys.stderr)
        return EXIT_CONFIG


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
    delivery = cli_delivery.add_commands(commands)
    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_commands.add_parser(
        "upgrade", help="apply every pending schema migration (run also does this at start)"
    )
    health = commands.add_parser(
        "healthcheck", help="ask the running service whether it is alive (or --ready)"
    )
    health.add_argument(
        "--ready", action="store_true", help="ask /readyz: database, scheduler and config"
    )
    rules = rule_commands.add_commands(commands, check)
    for sub in (check, poll, run, status, upgrade, health, *delivery, *rules):
        sub.add_argument("--config", metavar="PATH", help=config_help)
    for sub in (poll, run, status, upgrade, *delivery):
        sub.add_argument(
            "--log-format",
            choices=FORMATS,
            help="json (the default when stdout is not a terminal) or text",
        )
    return parser


def _check(config: Config) -> int:
    enabled = sum(1 for s in config.sources if s.enabled)
    print(
        f"{config.path}: ok: {len(config.sources)} sources ({enabled} enabled), "
        f"{len(config.rules)} rules, {len(config.notifiers)} notifiers"
    )
    return EXIT_OK


def _db_upgrade(config: Config) -> int:
    engine = create_db_engine(config.monitor.database, upgrade=False)
    try:
        before, after = init_schema(engine)
    finally:
        engine.dispose()
    if before == after:
        print(f"database: already at the newest schema revision {after}")
    else:
        print(f"database: upgraded from {before or 'an empty database'} to {after}")
    return EXIT_OK


async def _poll(config: Config, only: Sequence[str], *, dry_run: bool) -> int:
    known = {s.name: s for s in config.sources}
    unknown = [name for name in only if name not in known]
    if unknown:
        names = ", ".join(sorted(known))
        print(f"error: --source: no source named {', '.join(unknown)}; known: {names}")
        return EXIT_CONFIG
    async with open_app(config, parse_workers=default_workers()) as app:
        wanted = [app.sources[n] for n in (only or app.sources) if n in app.sources]
        disabled = [n for n in only if n not in app.sources]
        for name in disabled:
            print(f"{name}: skipped: disabled in the configuration")
        gate = asyncio.Semaphore(SOURCES_IN_FLIGHT)

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
        # A pause met at the start of a run does not know its cause; status tells it.
        why = run.error or "still waiting (a quota or the server's Retry-After; see status)"
        return f"{run.source}: paused until {_when(run.paused_until)}: {why}"
    if run.failed:
        return f"{run.source}: FAILED: {run.error}"
    c = run.counts
    return (
        f"{run.source}: {run.outcome}: {run.items} items, {c.new} new, {c.updated} updated, "
        f"{c.alerts} alerts ({run.duration:.2f}s)"
    )


async def _run(
    config: Config, env: Mapping[str, str], token: str | None, scrubber: SecretFilter
) -> int:
    monitor = config.monitor
    listener = listen(monitor.http_host, monitor.http_port) if monitor.http_port else None
    replica = replica_id(env, socket.gethostname(), os.getpid())
    async with open_app(config, replica_id=replica) as app, contextlib.AsyncExitStack() as stack:
        # A first write now: a read-only or full data volume stops the start with a clear
        # error, instead of every fetch failing later.
        app.store.set_meta("service_started_at", iso_utc(app.clock()))
        watcher = ConfigWatcher(config.path, env, app.clock)
        service = Service(app, watcher, scrubber.update, [token] if token else [])
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, service.stop.set)
        loop.add_signal_handler(signal.SIGHUP, service.request_reload)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # a held stop lands now
        if listener is not None:
            web = build_web(service, WebSettings(token))
            await stack.enter_async_context(serve(web, listener, service.stop))
            host, port = listener.getsockname()[:2]
            log.info(
                "service=http listen=%s:%d api=%s", host, port,
                "on" if token else f"off (set {TOKEN_ENV} to enable it)",
            )  # fmt: skip
        await service.run()
    return EXIT_OK


DELIVERY_COMMANDS = ("deliveries", "replay", "enable", "notify-test")


async def _delivery_command(config: Config, args: argparse.Namespace) -> int:
    async with open_app(config) as app:
        return await cli_delivery.run_command(app, args)


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
            why = {
                "paused": "waiting for its quota",
                "error": "the server asked to wait",
            }.get(row.last_outcome or "", "the last poll was cut short by a quota or throttle")
            lines.append(f"    paused until {_when(row.paused_until)} ({why})")
        source = app.sources.get(name)
        if isinstance(source, Metered):
            lines.append(f"    {source.quota_status()}")
    lines.extend(_config_status(app.store))
    lines.append("ALERTS")
    counts = app.store.alert_counts()
    disabled = app.store.disabled_notifiers()
    notifiers = list(dict.fromkeys([n.name for n in app.config.notifiers] + [n for n, _ in counts]))
    for name in notifiers:
        pending, delivered, dead = (
            counts.get((name, st), 0) for st in ("pending", "delivered", "dead")
        )
        note = f" DISABLED: {disabled[name]}" if name in disabled else ""
        digested = counts.get((name, "digested"), 0)
        note = (f", {digested} sent in digests" if digested else "") + note
        lines.append(f"  {name}: {pending} pending, {delivered} delivered, {dead} dead{note}")
    lines.extend(_events_report(app))
    now = app.clock()
    lines.extend(leases_report(app.store.leases(now), app.store.last_holders(), now))
    return "\n".join(lines)


def _events_report(app: App, limit: int = 10) -> list[str]:
    """The latest events that arrived more than once, and where the copies came from."""
    window = app.config.monitor.dedupe_window
    events = app.store.recent_events(app.clock() - window, limit)
    if not events:
        return []
    lines = [f"EVENTS SEEN MORE THAN ONCE (last {format_duration(window)})"]
    for first, copies in events:
        title = first.title if len(first.title) <= 90 else first.title[:89] + "…"
        lines.append(f"  {first.source}: {title}")
        sources = ", ".join(dict.fromkeys(copy.source for copy in copies))
        lines.append(f"    also seen in: {sources} ({len(copies)} later copies)")
    return lines


def _status_without_config(env: Mapping[str, str]) -> None:
    """With sources.toml broken, still say what the running service does about it.

    The database URL then comes from ``NOTICEWATCH_DATABASE_URL`` (as in the image).
    """
    url = env.get(DATABASE_ENV)
    if not url:
        return
    try:
        store = Store(create_db_engine(url))
        try:
            lines = _config_status(store)
        finally:
            store.engine.dispose()
    except StorageError as e:
        print(f"error: {e}", file=sys.stderr)
        return
    print("\n".join(lines or ["CONFIG", "  no service has reported on this configuration yet"]))


def _config_status(store: Store) -> list[str]:
    """What the running service last said about sources.toml (nothing if it never ran)."""
    raw = store.get_meta(STATUS_KEY)
    if raw is None:
        return []
    status = ConfigStatus.from_json(raw)
    if not status.stale:
        return ["CONFIG", f"  {status.path}: running, loaded {_when(status.loaded_at)}"]
    lines = [
        "CONFIG",
        f"  {status.path}: STALE since {_when(status.stale_since)}: the service refused the "
        f"file and still runs the configuration loaded {_when(status.loaded_at)}",
    ]
    lines.extend(f"    {error}" for error in status.errors)
    return lines


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else "never"
