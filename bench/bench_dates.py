"""monitor.dates.parse_date against dateparser: correctness and time per date.

Run by hand from the repository root (no network; see bench/README.md)::

    pip install dateparser        # only this benchmark needs it
    python bench/bench_dates.py   # ~30 s

The cases are the dates of tests/test_dates.py (the formats the regulators print) plus
the texts that must give no date. Each parser is given the text and the page language;
a case is right when the parser returns that day (and time, for ISO with a time) or,
for the no-date texts, nothing. Times are the median of 7 repeats of the whole table,
per call, on one CPU.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from machine import cpu_model  # bench/machine.py: this script's folder is on sys.path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from monitor.dates import parse_date
from tests.test_dates import CASES, NO_DATE

Parser = Callable[[str, "str | None"], "datetime | None"]
TABLE: list[tuple[str, str | None, datetime | None]] = [
    *CASES,
    *((text, lang, None) for text, lang in NO_DATE if text),
]


def dateparser_parse() -> Parser:
    import dateparser

    def parse(text: str, language: str | None) -> datetime | None:
        lang = (language or "").split("-")[0].split("_")[0] or None
        settings = {"TIMEZONE": "UTC", "RETURN_AS_TIMEZONE_AWARE": True}
        if language and language.lower().replace("_", "-") == "en-us":
            settings["DATE_ORDER"] = "MDY"
        elif lang is not None:
            settings["DATE_ORDER"] = "DMY"
        found = dateparser.parse(text, languages=[lang] if lang else None, settings=settings)
        return found.astimezone(UTC) if found else None

    return parse


def score(parse: Parser) -> tuple[int, list[str]]:
    wrong = []
    for text, language, expected in TABLE:
        try:
            got = parse(text, language)
        except Exception as e:
            got = None
            wrong.append(f"{text!r} ({language}): raised {type(e).__name__}")
            continue
        if got != expected:
            wrong.append(f"{text!r} ({language}): {got} instead of {expected}")
    return len(TABLE) - len(wrong), wrong


def per_call(parse: Parser, repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for text, language, _ in TABLE:
            parse(text, language)
        times.append((time.perf_counter() - started) / len(TABLE))
    return statistics.median(times)


def main() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    warnings.simplefilter("ignore")
    parsers: dict[str, Parser] = {"monitor.dates": parse_date}
    try:
        parsers["dateparser"] = dateparser_parse()
    except ImportError:
        print("dateparser is not installed; measuring monitor.dates only", file=sys.stderr)
    print(f"{len(TABLE)} cases; {cpu_model()}; Python {sys.version.split()[0]}\n")
    print("| parser | right | µs per date (median) | first call (ms) |")
    print("|---|---|---|---|")
    for name, parse in parsers.items():
        started = time.perf_counter()
        parse("20 octobre 2022", "fr")
        first = (time.perf_counter() - started) * 1000
        right, wrong = score(parse)
        micros = per_call(parse) * 1e6
        print(f"| {name} | {right}/{len(TABLE)} | {micros:.1f} | {first:.1f} |")
        for line in wrong:
            print(f"  wrong: {line}", file=sys.stderr)


if __name__ == "__main__":
    main()
