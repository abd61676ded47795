"""The hashed sample of task ids: the same in SQL and Python, and blind to id patterns."""

import sqlite3

import pytest

from taskscope.store.sampling import (
    hashed_in_sample,
    hashed_in_sample_each,
    in_sample,
    sampled_ids,
)


@pytest.mark.parametrize("stride", [2, 3, 7, 20, 64])
def test_sample_keeps_about_one_in_stride_of_every_residue(stride):
    conn = sqlite3.connect(":memory:")
    ids = [
        row[0]
        for row in conn.execute(
            "WITH RECURSIVE n(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM n WHERE x < 99999) "
            f"SELECT x FROM n WHERE {in_sample('x', stride)}"
        )
    ]
    assert ids == [x for x in range(100_000) if hashed_in_sample(x, stride)]
    flags = hashed_in_sample_each(range(100_000), stride)
    assert ids == [x for x, kept in zip(range(100_000), flags, strict=True) if kept]
    assert len(ids) == pytest.approx(100_000 / stride, rel=0.05)
    # A workflow whose apps repeat every 10 tasks: each app keeps its share of the sample.
    for residue in range(10):
        share = sum(1 for x in ids if x % 10 == residue) / len(ids)
        assert share == pytest.approx(0.1, abs=0.03), residue


@pytest.mark.parametrize("stride", [1, 2, 7, 64])
@pytest.mark.parametrize("first,last", [(0, 9999), (37, 5000), (5, 5)])
def test_listed_ids_are_the_sample(stride, first, last):
    listed = sampled_ids(first, last, stride)
    flags = hashed_in_sample_each(range(first, last + 1), stride)
    assert [x for x, kept in zip(range(first, last + 1), flags, strict=True) if kept] == listed
    assert listed == [x for x in range(first, last + 1) if hashed_in_sample(x, stride)]
