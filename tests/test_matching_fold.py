"""Folding and tokenizing: case, accents, compatibility forms, and original offsets."""

from __future__ import annotations

import random
import unicodedata

import pytest

from monitor.matching.fold import Token, fold, tokenize, words

FOLDS = [
    ("AMENDE", "amende"),
    ("Café", "cafe"),
    ("cafe\u0301", "cafe"),
    ("Straße", "strasse"),
    ("STRASSE", "strasse"),
    ("ẞ", "ss"),
    ("ﬁne", "fine"),
    ("Ångström", "angstrom"),
    ("İstanbul", "istanbul"),
    ("ΣΊΣΥΦΟΣ", "σισυφοσ"),
    ("σίσυφος", "σισυφοσ"),
    ("Ｃｌｅａｒｖｉｅｗ", "clearview"),
    ("①", "1"),
    ("plain ascii", "plain ascii"),
]


@pytest.mark.parametrize(("text", "folded"), FOLDS)
def test_fold(text: str, folded: str) -> None:
    assert fold(text) == folded


def test_words_split_on_everything_but_letters_and_digits() -> None:
    assert words("Sole-Source, sole_source; sole source!") == ["sole", "source"] * 3
    assert words("FAR 6.302-1(c)") == ["far", "6", "302", "1", "c"]
    assert words("🔥Clearview🔥 fined €5m") == ["clearview", "fined", "5m"]
    assert words("") == []
    assert words(" -- ... ") == []


def test_ascii_tokens_keep_their_offsets() -> None:
    assert tokenize("Sole-Source award") == [
        Token("sole", 0, 4),
        Token("source", 5, 11),
        Token("award", 12, 17),
    ]


def test_expanding_characters_map_back_to_the_whole_original_character() -> None:
    text = "Die Straße ist groß"
    assert tokenize(text) == [
        Token("die", 0, 3),
        Token("strasse", 4, 10),
        Token("ist", 11, 14),
        Token("gross", 15, 19),
    ]
    assert text[4:10] == "Straße"


def test_decomposed_accents_stay_inside_the_token_span() -> None:
    text = "un cafe\u0301 noir"
    cafe = tokenize(text)[1]
    assert cafe == Token("cafe", 3, 8)
    assert text[cafe.start : cafe.end] == "cafe\u0301"


def test_precomposed_and_decomposed_fold_alike() -> None:
    composed = unicodedata.normalize("NFC", "Élysée café")
    decomposed = unicodedata.normalize("NFD", "Élysée café")
    assert composed != decomposed
    assert words(composed) == words(decomposed) == ["elysee", "cafe"]


def test_emoji_separate_tokens_and_keep_offsets() -> None:
    text = "👍🏽fine👍🏽"
    (token,) = tokenize(text)
    assert token.text == "fine"
    assert text[token.start : token.end] == "fine"


# Pieces whose folding changes length or splits: the random texts mix them.
_PIECES = [
    "Straße",
    "cafe\u0301",
    "Café",
    "ﬁne",
    "İ",
    "½",
    "🔥",
    "👍🏽",
    " ",
    "-",
    ".",
    "word",
    "ÉTÉ",
    "\u0301",
    "ǅ",
    "Ω",
    "㎏",
    "x",
]


def test_token_spans_always_cover_text_that_folds_to_the_token() -> None:
    rng = random.Random(20261122)
    for _ in range(500):
        text = "".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 12)))
        tokens = tokenize(text)
        assert [t.text for t in tokens] == words(text)
        previous_start = 0
        for token in tokens:
            assert previous_start <= token.start < token.end <= len(text)
            # "½" folds to "1⁄2": two tokens can share one original character.
            assert token.text in fold(text[token.start : token.end]), (text, token)
            previous_start = token.start
