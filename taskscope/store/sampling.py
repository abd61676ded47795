"""Bounded samples of a run's tasks, for statistics that would otherwise read every row.

A task is in a 1-in-k sample when a multiplicative (Knuth) hash of its id is divisible by k.
The hash spreads consecutive ids, so the sample does not follow the periodic id patterns that
workflows produce (every tenth task being the same app). `hashed_in_sample` is the same test in
Python. The test needs only the task id, so
it runs on index entries before any table row is read.
"""

from __future__ import annotations

# The high 16 bits of the 32-bit product: its low bits keep the id's low bits (the multiplier
# is odd), so "product % 20 = 0" would keep only ids divisible by 4 and miss whole apps of a
# workflow whose apps repeat every ten tasks. Knuth: take the top bits of the product.
_HASHED = "((({col} * 2654435761) % 4294967296) >> 16)"


def sample_stride(rows: int, budget: int) -> int:
    """k for a 1-in-k sample that keeps about `budget` of `rows` rows (1: keep all)."""
    return max(1, -(-int(rows) // max(1, int(budget))))


def in_sample(col: str, stride: int) -> str:
    """SQL that is true for the rows of the sample (always true when `stride` is 1)."""
    if stride <= 1:
        return "1"
    return f"({_HASHED.format(col=col)} % {int(stride)} = 0)"


def hashed_in_sample(task_id: int, stride: int) -> bool:
    """`in_sample` for one id, in Python."""
    return stride <= 1 or (((task_id * 2654435761) % 4294967296) >> 16) % stride == 0
