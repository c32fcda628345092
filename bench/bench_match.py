"""What matching costs: items per second for 10 to 10,000 rules on 2 KB items.

Run by hand from the repository root (see bench/README.md)::

    python bench/bench_match.py                          # about 2 minutes
    python bench/bench_match.py --min-time 0.5 --repeats 1   # a quick look

Two matchers over the same rules and items:

- ``compiled``: ``Matcher(rules)``, the Aho-Corasick prefilter (``compiled.py``)
  picks the rules whose words occur and only those are evaluated;
- ``baseline``: ``Matcher(rules, prefilter=False)``, every rule evaluated on every
  item (the per-item token index is still shared by all rules).

Rules are generated from a fixed seed in the shapes users write (a name AND a
group of alternatives, phrases, NEAR, prefixes, NOT, a field scope, an amount);
their words come from a 30,000-word vocabulary of made-up names (one word in ten
from the 500 that items mention), so, as with real watch lists, an item mentions
the words of only a few rules. Items are ~2 KB of ordinary words in English,
French and Dutch (a quarter without a language); 1 in 5 also mentions four of the
500 and an amount. Both matchers must return the same matches (checked).
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from machine import cpu_model  # bench/machine.py: this script's folder is on sys.path

ROOT = Path(__file__).resolve().parent.parent
# Bench this checkout, whatever an editable install of noticewatch happens to point at.
sys.path.insert(0, str(ROOT))

from monitor.matching import Matcher, Rule, compile_rule  # noqa: E402
from monitor.models import Item  # noqa: E402

COMMON: dict[str, tuple[str, ...]] = {
    "en": (
        "the", "of", "and", "to", "in", "is", "for", "with", "that", "on", "by", "this", "are",
        "from", "was", "has", "be", "an", "contract", "services", "data", "cloud", "software",
        "department", "notice", "award", "supplier", "security", "public", "government",
        "agency", "will", "provide", "support", "system", "management", "period", "option",
        "year", "requirement", "solicitation", "amendment", "response", "deadline", "office",
        "information",
    ),
    "fr": (
        "le", "la", "les", "des", "du", "une", "est", "et", "pour", "dans", "sur", "par", "au",
        "aux", "qui", "avec", "ce", "pas", "marché", "public", "services", "données",
        "logiciel", "ministère", "avis", "attribution", "fournisseur", "sécurité", "contrat",
        "période", "option", "année", "exigence", "réponse", "date", "bureau", "information",
    ),
    "nl": (
        "de", "het", "een", "van", "en", "is", "voor", "met", "op", "aan", "dat", "niet",
        "zijn", "door", "bij", "ook", "wordt", "opdracht", "diensten", "gegevens", "software",
        "ministerie", "aankondiging", "gunning", "leverancier", "beveiliging", "contract",
        "periode", "optie", "jaar", "eis", "antwoord", "termijn", "kantoor", "informatie",
    ),
}  # fmt: skip
SYLLABLES = (
    "ka", "lo", "mi", "ne", "ru", "sa", "te", "vi", "zo", "bra", "cle", "dro", "fri", "glo",
    "pra", "sto", "tri", "vex", "quo", "zen",
)  # fmt: skip


def vocabulary(rng: random.Random, size: int) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(3, 4))))
    return sorted(words)


HOT = 500  # the first HOT words are the ones items mention


def make_rules(count: int, words: list[str], rng: random.Random) -> list[Rule]:
    def w() -> str:
        # One word in ten is one that items mention, so some rules do match.
        return rng.choice(words[:HOT] if rng.random() < 0.1 else words)

    shapes: list[Callable[[], str]] = [
        lambda: f"{w()} AND ({w()} OR {w()} OR {w()}*)",
        lambda: f'"{w()} {w()}" OR {w()}',
        lambda: f"{w()} NEAR/10 {w()}",
        lambda: f"{w()} NOT {w()}",
        lambda: f"title:{w()} OR summary:({w()} {w()})",
        lambda: f"{w()} amount>=1000000 EUR",
        lambda: w(),
    ]
    return [compile_rule(f"r{n}", rng.choice(shapes)()) for n in range(count)]


def make_items(count: int, words: list[str], rng: random.Random) -> list[Item]:
    items = []
    for number in range(count):
        language = rng.choice(["en", "fr", "nl", None])
        common = COMMON[language or "en"]
        body: list[str] = []
        while sum(len(word) + 1 for word in body) < 1950:
            body.append(rng.choice(common))
        if number % 5 == 0:
            for _ in range(4):
                body.insert(rng.randrange(len(body)), rng.choice(words[:HOT]))
            body.insert(rng.randrange(len(body)), "€2,5 million")
        title = " ".join(rng.choice(common) for _ in range(8))
        items.append(
            Item(
                source="bench",
                source_type="rss",
                key=str(number),
                content_hash=str(number),
                title=title,
                summary_html=" ".join(body),
                language=language,
            )
        )
    return items


def rate(matcher: Matcher, items: list[Item], min_time: float) -> float:
    """Items per second: whole passes over ``items`` for at least ``min_time`` seconds."""
    gc.collect()
    done, start = 0, time.perf_counter()
    while True:
        for item in items:
            matcher.match(item)
        done += len(items)
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return done / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", default="10,100,1000,10000")
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--min-time", type=float, default=1.0)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    rng = random.Random(20261122)
    words = vocabulary(rng, 30_000)
    items = make_items(args.items, words, rng)
    size = sum(len(i.title) + len(i.summary) for i in items) / len(items)
    print(f"CPU: {cpu_model()}; Python {sys.version.split()[0]}; one core")
    print(f"{len(items)} items, {size:.0f} characters each on average\n")
    print("| rules | build (s) | compiled (items/s) | baseline (items/s) | speed-up | matches |")
    print("|---:|---:|---:|---:|---:|---:|")
    for count in (int(n) for n in args.rules.split(",")):
        rules = make_rules(count, words, random.Random(count))
        start = time.perf_counter()
        compiled = Matcher(rules)
        compiled.match(items[0])  # builds the automaton of the first language
        build = time.perf_counter() - start
        baseline = Matcher(rules, prefilter=False)
        found = 0
        for item in items:
            got = compiled.match(item)
            assert got == baseline.match(item), f"matchers disagree on item {item.key}"
            found += len(got)
        fast = statistics.median(rate(compiled, items, args.min_time) for _ in range(args.repeats))
        slow = statistics.median(rate(baseline, items, args.min_time) for _ in range(args.repeats))
        print(
            f"| {count:,} | {build:.2f} | {fast:,.0f} | {slow:,.0f} | {fast / slow:.1f}x "
            f"| {found} |"
        )
    regex = Matcher([compile_rule("evil", "/(a+)+$/")])
    evil = Item("bench", "rss", "evil", "h", title="a" * 100_000 + "b")
    start = time.perf_counter()
    regex.match(evil)
    print(f"\n/(a+)+$/ on 100,000 'a' + 'b': {1000 * (time.perf_counter() - start):.1f} ms")


if __name__ == "__main__":
    main()
