"""Hypothesis profiles for the fuzzers.

``ci`` (the default) is bounded and derandomized, so a CI run is repeatable and the
whole fuzz set stays well under a minute on a busy machine. ``long`` runs many more,
random examples: ``NOTICEWATCH_FUZZ=long python3 -m pytest tests/fuzz``. Both keep
the 2 s deadline per input: an input that takes longer is a failure, not a slow test.
"""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, settings

PROFILE_ENV = "NOTICEWATCH_FUZZ"
DEADLINE = timedelta(seconds=2)
# Big structured inputs are the point; generating them is allowed to be slow.
_SLOW_GENERATION = [HealthCheck.too_slow, HealthCheck.data_too_large]

settings.register_profile(
    "ci",
    max_examples=100,
    deadline=DEADLINE,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=_SLOW_GENERATION,
)
settings.register_profile(
    "long",
    max_examples=2000,
    deadline=DEADLINE,
    print_blob=True,
    suppress_health_check=_SLOW_GENERATION,
)
settings.load_profile(os.environ.get(PROFILE_ENV, "ci"))
