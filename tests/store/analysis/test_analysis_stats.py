"""The Mann-Whitney test against its definition: U counted pair by pair."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from taskscope.store.analysis.stats import mann_whitney_greater, mann_whitney_two_sided


def _p_by_pairs(a: list[float], b: list[float]) -> float:
    """The one-sided p-value from U counted over every pair (a tie counting half)."""
    u = sum(1.0 if x > y else 0.5 if x == y else 0.0 for x in a for y in b)
    n1, n2 = len(a), len(b)
    n = n1 + n2
    ties = sum(t**3 - t for t in Counter(a + b).values())
    variance = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    z = (u - n1 * n2 / 2 - 0.5) / math.sqrt(variance)
    return 0.5 * math.erfc(z / math.sqrt(2.0))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_matches_the_pairwise_count_with_ties(seed: int) -> None:
    rng = random.Random(seed)
    # Rounded values: many ties, within and across the samples.
    a = [round(rng.gauss(1.2, 0.5), 1) for _ in range(60)]
    b = [round(rng.gauss(1.0, 0.5), 1) for _ in range(90)]
    assert mann_whitney_greater(a, b) == pytest.approx(_p_by_pairs(a, b), rel=1e-12)
    assert mann_whitney_greater(b, a) == pytest.approx(_p_by_pairs(b, a), rel=1e-12)


def test_separated_samples_are_significant_one_way_only() -> None:
    slow = [10.0 + i for i in range(20)]
    fast = [1.0 + i / 10 for i in range(20)]
    assert mann_whitney_greater(slow, fast) < 1e-6
    assert mann_whitney_greater(fast, slow) > 0.999
    assert mann_whitney_two_sided(slow, fast) < 1e-6


def test_empty_or_constant_samples_say_nothing() -> None:
    assert mann_whitney_greater([], [1.0]) == 1.0
    assert mann_whitney_greater([2.0, 2.0], [2.0, 2.0]) == 1.0


def test_id_lists_read_by_the_fast_path_as_by_the_careful_one():
    """id_list parses "3,4" by one split; anything else part by part (brackets, spaces,
    empty parts, signs, words): both ways give what the part-by-part reading gives."""
    from taskscope.store.id_lists import id_list

    def careful(text):
        ids = []
        for part in (text or "").replace("[", "").replace("]", "").split(","):
            part = part.strip()
            if part.lstrip("-").isdigit():
                ids.append(int(part))
        return ids

    texts = [
        "",
        None,
        "3",
        "3,4",
        "10,200,3000",
        "[1, 2]",
        "3,,4",
        ",5",
        "6,",
        "+3,4",
        "-2,7",
        "3_000,4",
        "x,9",
        " 8 ,9",
        "٣,4",
        "0007,08",
    ]
    for text in texts:
        assert id_list(text) == careful(text), text
