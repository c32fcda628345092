"""Money in text: ``€30.5 million``, ``30,5 miljoen euro``, ``USD 1.2bn`` -> amounts.

An amount is a number next to a currency: a symbol or ISO code before it
(``€30.5 million``, ``$224,000``, ``USD 1.2bn``, ``£7.5m``, ``EUR 20.000.000``,
``CHF 1'200'000``) or a symbol, code or currency word after it, optionally through
``de``/``d'``/``di`` (``30,5 miljoen euro``, ``5,2 millions d'euros``,
``20 millions €``, ``1,5 Mio. Euro``, ``3 millones de euros``, ``2 milioni di
euro``, ``500 k€``, ``20 000 000 EUR``). Scale words in the six languages multiply
(thousand/k/mille/duizend/Tausend/mila/mil, million/m/mn/mio/mln/miljoen/Millionen/
milioni/millones, billion/bn/milliard/miljard/Milliarden/Mrd/miliardi/mld/
mil millones).

Separators: with both ``.`` and ``,`` the last one is the decimal mark; a single
separator followed by exactly three digits groups thousands (``$224,000``,
``20.000 EUR``) unless a scale word follows (``1,250 million`` is 1.25 million);
repeated separators, spaces and ``'`` always group. A range (``€1–2 million``,
``1-2 millions d'euros``) gives both ends, sharing its scale and currency; a minus
sign that starts a word makes an amount negative (``-€500``, ``EUR -1,000``), while a
dash after a digit never does (``€10-€20``). A number glued to other digits
or dashes (``6.302-1``, ``12.03.2024``, ``2016/679``) is not an amount, and a
number without a currency next to it never is.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from monitor.matching.currencies import CODES, NAMES, SYMBOLS
from monitor.models import Item

__all__ = ["AMOUNTS_FIELD", "Amount", "extract_amounts", "parse_number", "with_amounts"]

AMOUNTS_FIELD = "amounts"
_TEXT_FIELDS = ("title", "summary", "content")


@dataclass(frozen=True, slots=True)
class Amount:
    """One amount found in a text: its value, ISO currency and original span."""

    value: float
    currency: str
    text: str
    start: int
    end: int

    def money(self) -> dict[str, Any]:
        return {"amount": self.value, "currency": self.currency}

    def as_dict(self, field: str) -> dict[str, Any]:
        """Money as Item.fields types it, plus where it was written."""
        return {"amount": self.value, "currency": self.currency, "text": self.text, "field": field}


def with_amounts(item: Item) -> Item:
    """``item`` with an ``amounts`` field listing the money in its title, summary and
    content (unchanged when there is none, or when its source already set one)."""
    if AMOUNTS_FIELD in item.fields:
        return item
    texts = item.text_fields()
    found = [
        amount.as_dict(name) for name in _TEXT_FIELDS for amount in extract_amounts(texts[name])
    ]
    if not found:
        return item
    return item.with_fields({**item.fields, AMOUNTS_FIELD: found})


_SCALES: dict[str, float] = {
    **dict.fromkeys(
        ["thousand", "thousands", "k", "mille", "duizend", "tausend", "tsd", "mila", "mil"], 1e3
    ),
    **dict.fromkeys(
        [
            "million", "millions", "m", "mn", "mm", "mio", "mln", "miljoen", "miljoenen",
            "millionen", "milione", "milioni", "millon", "millones", "millón",
        ],
        1e6,
    ),
    **dict.fromkeys(
        [
            "billion", "billions", "bn", "b", "milliard", "milliards", "md", "mds", "miljard",
            "miljarden", "milliarde", "milliarden", "mrd", "miliardo", "miliardi", "mld",
            "mil millones",
        ],
        1e9,
    ),
}  # fmt: skip


def _alternation(words: list[str]) -> str:
    # Longest first so "mil millones" wins over "mil" and "US$" over "$".
    return "|".join(re.escape(word) for word in sorted(words, key=len, reverse=True))


def _number(name: str, *, glued: bool = False) -> str:
    """A number in group ``name``; ``glued`` when it may follow a dash (a range's end)."""
    # Not the tail of 6.302, 2016/679, 6.302-1 or a word; a dash before it is a sign
    # (see _signed), unless glued to what precedes it.
    before = "" if glued else r"(?<![\w.,/'])(?<![\w.,/'\-\u2212][-\u2212])"
    body = r"\d{1,3}(?:[.,\u00a0\u202f ']\d{3})+(?:[.,]\d+)?|\d+(?:[.,]\d+)?"
    return rf"{before}(?P<{name}>{body})(?![.,]?\d)"


_NUMBER = _number("num")
_SCALE = rf"(?:[ \u00a0]?(?P<scale>(?i:{_alternation(list(_SCALES))}))\.?)?"
_CODE = rf"(?:{'|'.join(sorted(CODES))})"
_SYMBOL = _alternation(list(SYMBOLS))
_WORD = _alternation(list(NAMES))
_CURRENCY = rf"(?P<cur>{_SYMBOL}|\b{_CODE}\b)"
# After the number: no further digits, dashes or slashes (6.302-1, 2016/679).
_END = r"(?![\w-]*\d)(?!/)"
_AFTER_CURRENCY = (
    rf"[ \u00a0]?(?:(?:de|di|d['’])[ \u00a0]?)?(?P<cur>{_SYMBOL}|\b{_CODE}\b|(?i:\b(?:{_WORD})\b))"
)
# "EUR -1,000", "$-5": a minus between the currency and the number.
_BEFORE = re.compile(
    rf"{_CURRENCY}[ \u00a0]?(?P<neg>[-\u2212])?{_NUMBER}{_SCALE}(?![^\W\d_])(?!-\d){_END}"
)
_AFTER = re.compile(rf"{_NUMBER}{_SCALE}{_AFTER_CURRENCY}")
# A range "€1–2 million", "1-2 millions d'euros": the scale and currency are shared.
_DASH_CHARS = ("-", "\u2013", "\u2014")
_DASH = rf"[ \u00a0]?[{''.join(map(re.escape, _DASH_CHARS))}][ \u00a0]?"
_DASHED = re.compile(rf"\d{_DASH}\d")
_RANGE = f"{_number('num')}{_DASH}{_number('high', glued=True)}{_SCALE}"
# A _BEFORE match starts with its currency, then maybe a space and a sign, then digits.
_BEFORE_REACH = max(len(c) for c in (*SYMBOLS, *CODES)) + 2
# Where each number starts: a maximal run of digits begins where a digit follows a
# non-digit, and scanning for runs takes ~60 % of the time a lookbehind at every
# character takes.
_DIGITS = re.compile(r"\d+")
_DIGIT = re.compile(r"\d")
_RANGE_BEFORE = re.compile(rf"{_CURRENCY}[ \u00a0]?{_RANGE}(?![^\W\d_])(?!-\d){_END}")
_RANGE_AFTER = re.compile(rf"{_RANGE}{_AFTER_CURRENCY}")
# How far before a range's dash its currency and first number may start.
_RANGE_REACH = 40
# A currency before a number: a symbol or code of at most 3 characters, and a space.
_CURRENCY_REACH = 5
_NUMBER_CHARS = frozenset("0123456789.,' \u00a0\u202f")
_YEAR = re.compile(r"(?:19|20)\d\d")
# What may not come before a minus sign: "€10-€20" and "6.302-1" have dashes, not signs.
_NOT_BEFORE_SIGN = re.compile(r"[\w.,/'\-\u2212]")


def extract_amounts(text: str) -> list[Amount]:
    """Every amount in ``text``, in text order, overlapping readings removed.

    A range gives two amounts (its ends), both reporting the whole range as text.
    """
    # Every amount has a digit; 59 % of the real feeds' titles and summaries (tests/data)
    # have none.
    if _DIGIT.search(text) is None:
        return []
    # Each scan once, shared by the stages that need it: with four scans of the whole
    # text, a benchmark summary took ~40 us, now ~15 (bench/README.md, twenty-fourth
    # session).
    starts = _number_starts(text)
    dashes = list(_DASHED.finditer(text)) if _has_dash(text) else []
    found: list[Amount] = []
    taken: list[tuple[int, int]] = []
    # A currency before the number binds tighter than one after it: in "2019-2020 EUR
    # 5 million" the EUR belongs to the 5 million.
    stages = (
        _ranges(_RANGE_BEFORE, text, dashes),
        _before(text, starts),
        _ranges(_RANGE_AFTER, text, dashes),
        _after(text, starts),
    )
    for matches in stages:
        for match in matches:
            amounts = _amounts(match)
            if not amounts or any(
                amounts[0].start < stop and begin < amounts[0].end for begin, stop in taken
            ):
                continue
            found.extend(amounts)
            taken.append((amounts[0].start, amounts[0].end))
    return sorted(found, key=lambda amount: amount.start)


def _number_starts(text: str) -> list[int]:
    """Where each number of ``text`` starts: a digit after a non-digit."""
    return [number.start() for number in _DIGITS.finditer(text)]


def _before(text: str, starts: list[int]) -> Iterator[re.Match[str]]:
    """``_BEFORE.finditer(text)``, tried only where a match can start: at most
    _BEFORE_REACH characters before a number (``starts``: where each begins). A
    currency pattern of ~180 codes tried at every character was 60 % of the cost of
    finding money."""
    resume = 0
    for start in starts:
        for at in range(max(resume, start - _BEFORE_REACH), start):
            match = _BEFORE.match(text, at)
            if match is not None:
                yield match
                resume = match.end()
                break


def _after(text: str, starts: list[int]) -> Iterator[re.Match[str]]:
    """``_AFTER.finditer(text)``, tried only where a number starts: a match starts with
    its number, which no word character precedes. Tried at every character, the
    number's lookbehinds were a third of the cost of finding money in the benchmark's
    items (bench/cycle_corpus.py)."""
    resume = 0
    for start in starts:
        if start < resume:
            continue
        match = _AFTER.match(text, start)
        if match is not None:
            yield match
            resume = match.end()


def _ranges(
    pattern: re.Pattern[str], text: str, dashes: list[re.Match[str]]
) -> Iterator[re.Match[str]]:
    """Matches of a range pattern, tried only where a range can start: before a dash
    between digits. Ranges are rare; scanning every text for them would double the
    cost of finding money."""
    before = pattern is _RANGE_BEFORE
    for dash in dashes:
        for match in _range_at(pattern, text, dash, before=before):
            yield match
            break


def _range_at(
    pattern: re.Pattern[str], text: str, dash: re.Match[str], *, before: bool
) -> Iterator[re.Match[str]]:
    """The range matches whose dash is ``dash``: their first number starts at most
    _RANGE_REACH characters before it, after a non-digit, and (``before``) their
    currency and a space come right before that number."""
    low = dash.start()  # the digit before the dash; walk back over the number
    while low > 0 and dash.start() - low < _RANGE_REACH and text[low - 1] in _NUMBER_CHARS:
        low -= 1
    for first in range(low, dash.start() + 1):
        if not text[first].isdigit() or (first and text[first - 1].isdigit()):
            continue
        starts = range(first - 1, max(-1, first - _CURRENCY_REACH), -1) if before else (first,)
        for at in starts:
            match = pattern.match(text, at)
            if match is not None and match.start("high") == dash.end() - 1:
                yield match


def _has_dash(text: str) -> bool:
    """Whether ``text`` has a character a range's dash may be: a substring test is ~90
    times cheaper than scanning for a dash between digits."""
    return any(dash in text for dash in _DASH_CHARS)


def _amounts(match: re.Match[str]) -> list[Amount]:
    scale_word = match.group("scale")
    scale = _SCALES[scale_word.lower()] if scale_word else 1.0
    scaled = scale_word is not None
    values = [parse_number(match.group("num"), scaled=scaled)]
    groups = match.groupdict()
    if "high" in groups:
        values.append(parse_number(match.group("high"), scaled=scaled))
        # 6.302-1 or 2025-01 after a currency is no range: a range goes up; and
        # 2019-2020 is a span of years.
        if values[0] is None or values[1] is None or not values[0] < values[1]:
            return []
        if not scaled and all(_YEAR.fullmatch(match.group(g)) for g in ("num", "high")):
            return []
    start, end = match.span()
    negative = bool(groups.get("neg"))
    if "high" not in groups and _signed(match.string, start):
        negative, start = True, start - 1
    currency = _currency(match.group("cur"))
    sign = -1.0 if negative else 1.0
    text = match.string[start:end]
    amounts = [sign * value * scale for value in values if value is not None]
    # 400 digits, or 1e300 billion, is no float: no amount rather than an infinite one.
    return [Amount(v, currency, text, start, end) for v in amounts if math.isfinite(v)]


def _signed(text: str, start: int) -> bool:
    """Whether a minus sign that starts a word comes right before ``start``: "-€500",
    "-5 million EUR"; never the dash of "€10-€20" or "6.302-1"."""
    if start < 1 or text[start - 1] not in "-\u2212":
        return False
    return start < 2 or _NOT_BEFORE_SIGN.match(text, start - 2) is None


def _currency(text: str) -> str:
    if text in SYMBOLS:
        return SYMBOLS[text]
    if text in CODES:
        return text
    return NAMES[text.lower().replace("’", "'")]


def parse_number(raw: str, *, scaled: bool = False) -> float | None:
    """``raw`` digits with separators as a number (see the module docstring)."""
    digits = raw.replace("\u00a0", "").replace("\u202f", "").replace(" ", "").replace("'", "")
    if "." in digits and "," in digits:
        decimal = "." if digits.rfind(".") > digits.rfind(",") else ","
        group = "," if decimal == "." else "."
        digits = digits.replace(group, "").replace(decimal, ".")
    else:
        mark = "." if "." in digits else "," if "," in digits else None
        if mark is not None:
            head, _, tail = digits.rpartition(mark)
            grouped = digits.count(mark) > 1 or (len(tail) == 3 and not scaled)
            digits = digits.replace(mark, "") if grouped else f"{head.replace(mark, '')}.{tail}"
    try:
        value = float(digits)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
