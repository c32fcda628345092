"""The band count dedupe asks of a candidate never loses a pair the threshold accepts."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from monitor.dedupe.fingerprint import (
    MIN_SHARED_BANDS,
    PERMUTATIONS,
    band_keys,
    min_shared_bands,
    similarity,
)


@given(
    st.lists(st.integers(0, PERMUTATIONS - 1), unique=True, max_size=PERMUTATIONS),
    st.integers(0, 3),
)
def test_a_pair_at_the_threshold_shares_the_bands_asked_of_candidates(
    unequal: list[int], below: int
) -> None:
    """The threshold is the pair's own similarity (or a step or three under it): the
    tightest case, reached when the unequal values fall in different bands."""
    a = tuple(range(1, PERMUTATIONS + 1))
    b = tuple(v + 1000 if i in unequal else v for i, v in enumerate(a))
    threshold = max(similarity(a, b) - below / PERMUTATIONS, 1 / PERMUTATIONS)
    if min_shared_bands(threshold) > MIN_SHARED_BANDS:
        # Above the floor of two, which candidates have always needed, the count is one
        # the threshold implies, so raising it to that costs no pair.
        assert len(band_keys(a) & band_keys(b)) >= min_shared_bands(threshold)
