"""Text folding and tokenizing, with offsets back into the original text.

Folding makes comparison case- and accent-insensitive. Every character goes through
NFKD, Unicode casefold and NFKD again, then nonspacing marks (category ``Mn``: the
accents NFKD split off) are dropped. So ``Café``, ``CAFE`` and ``cafe`` + U+0301 all
fold to ``cafe``, ``Straße`` folds to ``strasse`` and the ligature ``ﬁ`` to ``fi``.

A token is a run of letters and digits in the folded text (``\\w`` without the
underscore). Everything else separates tokens: spaces, punctuation, hyphens, emoji.
``sole-source`` is the two tokens ``sole`` ``source`` and ``6.302-1`` is ``6`` ``302``
``1``. Spacing marks (``Mc``, e.g. some Indic vowel signs) are not word characters
either, so such words become several tokens; queries fold the same way, so they
still match as phrases.

Folding changes lengths (``ß`` -> ``ss``, ``é`` -> ``e``), so every token keeps the
span of the ORIGINAL text it came from: ``text[token.start:token.end]`` is what the
reader wrote. A dropped mark is attributed to the character before it, so a token
ending in a decomposed ``é`` includes the mark.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["Token", "fold", "fold_mapped", "fold_non_ascii", "tokenize", "words"]

_WORD = re.compile(r"[^\W_]+")
# Text is mostly ASCII: ASCII runs fold with str.lower() in one go and only the
# other characters take the per-character path.
_RUNS = re.compile(r"[\x00-\x7f]+|[^\x00-\x7f]+")


@dataclass(frozen=True, slots=True)
class Token:
    """One word: its folded form and the span ``[start, end)`` of the original text."""

    text: str
    start: int
    end: int


def fold(text: str) -> str:
    """``text`` casefolded, compatibility-decomposed and without accents."""
    if text.isascii():
        return text.lower()
    # Only the non-ASCII runs take the per-character path: a French or German text is
    # mostly ASCII, and folding every character of it one by one cost 40 % of a
    # dedupe fingerprint.
    return "".join(
        run.lower() if run.isascii() else "".join(map(_fold_char, run))
        for run in _RUNS.findall(text)
    )


def fold_non_ascii(text: str) -> str:
    """``text`` with only its non-ASCII characters folded (``Café\\d`` -> ``Cafe\\d``).

    For regex patterns: ASCII is syntax (``\\D`` must not become ``\\d``) and case is
    handled by the regex flag, while accented letters should match unaccented text.
    """
    if text.isascii():
        return text
    return "".join(char if char.isascii() else _fold_char(char) for char in text)


def fold_mapped(text: str) -> tuple[str, list[int], list[int]]:
    """The folded text plus, for each folded character, its original ``[start, end)``."""
    if text.isascii():
        return text.lower(), list(range(len(text))), list(range(1, len(text) + 1))
    return _fold_mapped(text)


def words(text: str) -> list[str]:
    """The folded tokens of ``text``; how a query term is split into a phrase.

    The texts of :func:`tokenize` without their spans: ``fold`` gives the same folded
    text as ``_fold_mapped``, and building no offsets makes this several times cheaper
    (dedupe fingerprints every new item's title and summary with it)."""
    return _WORD.findall(fold(text))


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text`` in order, each with its span in the original ``text``."""
    if text.isascii():
        # Folding is str.lower() and keeps every offset, so no map is needed.
        return [Token(m.group().lower(), m.start(), m.end()) for m in _WORD.finditer(text)]
    folded, starts, ends = _fold_mapped(text)
    return [Token(m.group(), starts[m.start()], ends[m.end() - 1]) for m in _WORD.finditer(folded)]


def _fold_mapped(text: str) -> tuple[str, list[int], list[int]]:
    """The folded text plus, for each folded character, its original ``[start, end)``."""
    pieces: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for run in _RUNS.finditer(text):
        begin, stop = run.span()
        if run.group().isascii():
            pieces.append(run.group().lower())
            starts.extend(range(begin, stop))
            ends.extend(range(begin + 1, stop + 1))
            continue
        for index in range(begin, stop):
            folded = _fold_char(text[index])
            if not folded:
                # A dropped mark belongs to the character before it, so the span of
                # "cafe" + U+0301 covers the accent too.
                if ends:
                    ends[-1] = index + 1
                continue
            pieces.append(folded)
            starts.extend([index] * len(folded))
            ends.extend([index + 1] * len(folded))
    return "".join(pieces), starts, ends


@lru_cache(maxsize=4096)
def _fold_char(char: str) -> str:
    # Cached because folding is a pure function of one code point and texts reuse
    # the same few hundred characters; the cache is bounded.
    decomposed = unicodedata.normalize("NFKD", char).casefold()
    decomposed = unicodedata.normalize("NFKD", decomposed)
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn")
