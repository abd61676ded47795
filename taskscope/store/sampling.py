"""Bounded samples of a run's tasks, for statistics that would otherwise read every row.

A 1-in-k sample keeps one task id in every block of k consecutive ids (ids bk .. bk+k-1), at
a position in the block chosen by a multiplicative (Knuth) hash of the block number. The hash
spreads the positions, so the sample does not follow the periodic id patterns that workflows
produce (every tenth task being the same app), and it keeps exactly one id per block, so the
sample's size is known. The test needs only the task id, so it runs on index entries before
any table row is read; `in_sample` is the test in SQL, `hashed_in_sample` in Python, and
`sampled_ids` lists the sample of an id range in O(range / k) steps, so a reader can probe
an index for each sampled task instead of testing every one of a million ids.
"""

from __future__ import annotations

# The high 16 bits of the 32-bit product: its low bits keep the block's low bits (the
# multiplier is odd), so consecutive blocks would take positions in a fixed pattern. Knuth:
# take the top bits of the product.
_MULTIPLIER = 2654435761
_POSITION = "(((({block}) * 2654435761) % 4294967296) >> 16) % {k}"


def sample_stride(rows: int, budget: int) -> int:
    """k for a 1-in-k sample that keeps about `budget` of `rows` rows (1: keep all)."""
    return max(1, -(-int(rows) // max(1, int(budget))))


def _position(block: int, stride: int) -> int:
    return (((block * _MULTIPLIER) % 4294967296) >> 16) % stride


def in_sample(col: str, stride: int) -> str:
    """SQL that is true for the rows of the sample (always true when `stride` is 1). `col`
    must be a non-negative integer column (SQLite's `/` is then integer division)."""
    if stride <= 1:
        return "1"
    k = int(stride)
    return f"({_POSITION.format(block=f'{col} / {k}', k=k)} = {col} % {k})"


def hashed_in_sample(task_id: int, stride: int) -> bool:
    """`in_sample` for one id, in Python."""
    return stride <= 1 or _position(task_id // stride, stride) == task_id % stride


def sampled_ids(first: int, last: int, stride: int) -> list[int]:
    """The ids from `first` to `last` (inclusive, non-negative) that are in the sample."""
    k = max(1, int(stride))
    if k == 1:
        return list(range(first, last + 1))
    ids = (block * k + _position(block, k) for block in range(first // k, last // k + 1))
    return [i for i in ids if first <= i <= last]
