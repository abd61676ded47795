"""Every reader (the DAG, the analysis, the exports, the data frames) reads a task's
dependency and join lists through `id_lists.id_list`: as the part-by-part reading does,
whatever the text (the writer's "3,4", Parsl's brackets and spaces, damaged rows)."""

from __future__ import annotations

import random

import pytest

from taskscope.store.id_lists import id_list


def part_by_part(text: str | None) -> list[int]:
    ids = []
    for part in (text or "").replace("[", "").replace("]", "").split(","):
        part = part.strip()
        if part.lstrip("-").isdigit():
            try:
                ids.append(int(part))
            except ValueError:
                pass
    return ids


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
        "[1, 2]",
        "9" * 30,  # beyond 64 bits
        "true,1",
        "1_000,2",
        "+3,4",
        "1e3,4",
        "-0",
        "\t3\n,4",
        "null",
        "1,2]",
        "1],[2",
        "٣,4",
        "--630,5",  # crashed the part-by-part readers (lstrip("-") then int())
        ",".join(str(i) for i in range(100_000)),
    ],
)
def test_id_lists_read_as_part_by_part(text):
    assert id_list(text) == part_by_part(text)


def test_random_damaged_lists_read_as_part_by_part():
    rng = random.Random(1)
    alphabet = "0123456789,- []e.\t_+"
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 14)))
        assert id_list(text) == part_by_part(text), repr(text)
