"""A page read from the other end is the same rows: the mirrored page of the reversed order,
turned round, is the page, a short last page included."""

import pytest

from taskscope.store.page_ends import PageSpan


@pytest.mark.parametrize("total", [0, 1, 2, 7, 10, 11])
@pytest.mark.parametrize("limit", [1, 3, 5, 10, 20])
def test_the_mirrored_page_is_the_same_rows(total, limit):
    rows = list(range(total))
    for offset in range(total + 1):
        page = PageSpan(total, offset, limit)
        wanted = rows[offset : offset + limit]
        end = page.mirrored
        assert rows[::-1][end.offset : end.offset + end.limit][::-1] == wanted
        assert page.nearer == min(offset, end.offset) + limit
