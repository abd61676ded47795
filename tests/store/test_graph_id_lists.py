"""The task graph reads a task's dependency and join lists (comma-separated ids, as the
writer stores them, or damaged by hand) as int() reads each piece, skipping junk."""

from __future__ import annotations

import random

import pytest

from taskscope.store.graph_query import _ids


def int_per_piece(text: str | None) -> list[int]:
    out = []
    for piece in (text or "").split(",") if text else []:
        try:
            out.append(int(piece))
        except ValueError:
            pass
    return out


@pytest.mark.parametrize(
    "text",
    [
        "1,2,3",
        "",
        None,
        "1, 2 ,3",
        "01,2",
        "a,3,-4",
        "1.5,2",
        "7",
        "1,,2",
        "[1]",
        "9" * 30,  # beyond 64 bits
        "true,1",
        "1_000,2",
        "1e3,4",
        "-0",
        "\t3\n,4",
        "null",
        "1,2]",
        "1],[2",
        "--630,5",  # crashed the tolerant parser (lstrip("-") then int())
        ",".join(str(i) for i in range(100_000)),
    ],
)
def test_id_lists_read_as_int_reads_each_piece(text):
    assert _ids(text) == int_per_piece(text)


def test_random_damaged_lists_read_as_int_reads_each_piece():
    rng = random.Random(1)
    alphabet = "0123456789,- []e.\t_+"
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 14)))
        assert _ids(text) == int_per_piece(text), repr(text)
