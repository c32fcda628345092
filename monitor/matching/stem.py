"""Language-aware word forms: Snowball stems, so ``fine`` also finds ``fines``.

An unquoted term matches a token when both reduce to the same Snowball stem in the
item's language: ``boete`` finds ``boetes`` in Dutch, ``amende`` finds ``amendes``
in French, ``sanzione`` finds ``sanzioni`` in Italian, ``fine`` finds ``fines`` and
``fined`` in English. Quoted phrases never use stems.

Which language:

1. the item's ``language`` (``nl``, ``fr-BE``, ``en_GB``, ``german``...) when a
   stemmer exists for it;
2. otherwise the language whose common short words (``the``, ``de``, ``le``,
   ``der``, ``il``, ``el``...) occur most often in the item's text, when at least
   :data:`MIN_VOTES` of them occur and the winner leads the runner-up clearly;
3. otherwise English, the most common language of the feeds we watch, whose
   stemmer is the most conservative of the six (``amendes`` -> ``amend``, while
   ``sanzioni`` stays ``sanzioni``): a miss at worst, never a strange match.

Guards against false positives: stems compare whole tokens, so ``fine`` can never
match ``define`` or ``refined`` (different tokens, different stems); and a term
whose stem is shorter than :data:`MIN_STEM` letters matches exactly, so French
``fine`` (stem ``fin``) does not match ``fin``, ``fins`` or ``finir``; and a token
whose ending after the shared stem is longer than an inflection's is another word
(``amende`` does not match ``amendement``, see :func:`same_word`).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import Stemmer

__all__ = [
    "FALLBACK",
    "MAX_ADDED",
    "MAX_ENDING",
    "MIN_STEM",
    "MIN_VOTES",
    "Stems",
    "guess_language",
    "same_word",
    "stemmer_name",
]

FALLBACK = "english"
MIN_STEM = 4
MIN_VOTES = 3
MAX_ENDING = 4
MAX_ADDED = 3
STEM_CACHE = 0  # words PyStemmer keeps stemmed (0: none; see Stems)

# ISO 639-1 codes of the languages PyStemmer ships a Snowball stemmer for.
_CODES = {
    "ar": "arabic",
    "ca": "catalan",
    "da": "danish",
    "de": "german",
    "el": "greek",
    "en": "english",
    "es": "spanish",
    "eu": "basque",
    "fi": "finnish",
    "fr": "french",
    "ga": "irish",
    "hu": "hungarian",
    "id": "indonesian",
    "it": "italian",
    "lt": "lithuanian",
    "nb": "norwegian",
    "ne": "nepali",
    "nl": "dutch",
    "nn": "norwegian",
    "no": "norwegian",
    "pt": "portuguese",
    "ro": "romanian",
    "ru": "russian",
    "sr": "serbian",
    "sv": "swedish",
    "ta": "tamil",
    "tr": "turkish",
}

# Short words frequent in one language and rare in the others (folded, no accents).
_STOPWORDS = {
    "english": ("the", "of", "and", "to", "in", "is", "for", "with", "that", "on", "by",
                "this", "are", "from", "was", "has", "be", "an"),
    "french": ("le", "la", "les", "des", "du", "une", "est", "et", "pour", "dans", "sur",
               "par", "au", "aux", "qui", "avec", "ce", "pas"),
    "dutch": ("de", "het", "een", "van", "en", "is", "voor", "met", "op", "aan", "dat",
              "niet", "zijn", "door", "bij", "ook", "wordt"),
    "german": ("der", "die", "das", "und", "ist", "nicht", "mit", "von", "fur", "auf",
               "den", "dem", "ein", "eine", "sich", "zu", "im"),
    "italian": ("il", "di", "che", "la", "per", "una", "con", "del", "della", "sono", "gli",
                "le", "nel", "alla", "non", "ha", "dei"),
    "spanish": ("el", "la", "los", "las", "de", "que", "en", "por", "con", "para", "una",
                "es", "del", "se", "al", "su", "no", "como"),
}  # fmt: skip


def stemmer_name(language: str | None) -> str | None:
    """The Snowball stemmer for a language tag or name, or None when there is none."""
    if not language:
        return None
    tag = language.strip().lower().replace("_", "-")
    if tag in _CODES.values():
        return tag
    return _CODES.get(tag.split("-")[0])


def guess_language(tokens: Iterable[str]) -> str | None:
    """The language whose stopwords dominate ``tokens`` (folded), or None if unclear."""
    votes = dict.fromkeys(_STOPWORDS, 0)
    lookup = _stopword_languages()
    for token in tokens:
        for language in lookup.get(token, ()):
            votes[language] += 1
    ranked = sorted(votes.items(), key=lambda pair: pair[1], reverse=True)
    (best, first), (_, second) = ranked[0], ranked[1]
    if first < MIN_VOTES or first < 2 * second:
        return None
    return best


@lru_cache(maxsize=1)
def _stopword_languages() -> dict[str, tuple[str, ...]]:
    # Built once: which languages list each stopword ("de" is Dutch, French-ish and
    # Spanish); a constant derived from a constant.
    found: dict[str, list[str]] = {}
    for language, stopwords in _STOPWORDS.items():
        for word in stopwords:
            found.setdefault(word, []).append(language)
    return {word: tuple(languages) for word, languages in found.items()}


def same_word(term: str, token: str, stem: str) -> bool:
    """Whether ``token`` is a form of the query word ``term`` (both have ``stem``).

    Snowball also strips derivational endings, so French ``amende`` (a fine) and
    ``amendement`` (an amendment) share the stem ``amend``. Inflections change at most
    :data:`MAX_ENDING` letters after the stem (``amendes``, ``sanzioni``, ``fined``,
    ``awarding``), or add at most :data:`MAX_ADDED` to the word as written
    (``requirement`` -> ``requirements``); anything longer is another word.
    """
    if _ending(term, stem) <= MAX_ENDING and _ending(token, stem) <= MAX_ENDING:
        return True
    short, long = sorted((term, token), key=len)
    return long.startswith(short) and len(long) - len(short) <= MAX_ADDED


def _ending(word: str, stem: str) -> int:
    """How many letters the stemmer took off ``word``: by length, as a stem may also
    rewrite letters (German ``aerztliche`` -> ``arztlich``, ``university`` -> ``universiti``)."""
    return max(0, len(word) - len(stem))


class Stems:
    """Stemmers by language, built on first use and kept for the owner's lifetime.

    Item words are stemmed uncached: PyStemmer's own cache held ~7 MB of ``run``'s idle
    memory at 50,000 words, for ~6 us an item. A term whose stem is shorter than
    MIN_STEM has no stem (exact match).
    """

    def __init__(self) -> None:
        self._stemmers: dict[str, Stemmer.Stemmer] = {}
        # Query terms come from a fixed rule set, so this stays as small as the rules.
        self._terms: dict[tuple[str, tuple[str, ...]], tuple[str, ...] | None] = {}

    def words(self, language: str, tokens: list[str]) -> list[str]:
        """The stems of ``tokens`` (item text) in ``language``."""
        stemmer = self._stemmers.get(language)
        if stemmer is None:
            # 60 words of a Zipf-drawn item: 12.5 us with a 50,000-word cache, 18.9 us
            # with none, 23.0 us with 10,000 (a full cache purges) (bench/README.md).
            stemmer = self._stemmers[language] = Stemmer.Stemmer(language, STEM_CACHE)
        return list(stemmer.stemWords(tokens))

    def term(self, language: str, tokens: tuple[str, ...]) -> tuple[str, ...] | None:
        """The stems of a query term's tokens, or None if any is too short to trust."""
        key = (language, tokens)
        if key not in self._terms:
            stems = tuple(self.words(language, list(tokens)))
            pairs = zip(stems, tokens, strict=True)
            short = any(len(stem) < MIN_STEM and stem != token for stem, token in pairs)
            self._terms[key] = None if short else stems
        return self._terms[key]
