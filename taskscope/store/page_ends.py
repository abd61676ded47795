"""Which end of an ordered walk a page is read from (store/id_pages.py, store/duration_pages.py).

A page is read by walking an index in its order up to the page's last row, so a page past
the middle costs less read from the other end: the same rows in the reverse order, turned
round afterwards. This is that arithmetic, once for the walks that use it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PageSpan:
    """Rows offset .. offset + limit of `total` ordered rows (the last page may be short)."""

    total: int
    offset: int
    limit: int

    @property
    def from_start(self) -> bool:
        """Whether the page ends no further from the start than it begins from the end, so
        that it is read from the start."""
        return self.offset + self.limit <= self.total - self.offset

    @property
    def mirrored(self) -> PageSpan:
        """The same rows counted from the other end: in the reverse order, where they start
        and how many of them there are (a short last page is short here too)."""
        return PageSpan(
            self.total,
            max(0, self.total - self.offset - self.limit),
            max(0, min(self.limit, self.total - self.offset)),
        )

    @property
    def nearer(self) -> int:
        """How many rows a walk from the nearer end passes to reach the page's far edge."""
        return min(self.offset, self.mirrored.offset) + self.limit
