"""The merge rules of a table: a batch's fold in Python and the upsert in SQL agree."""

import random

import pytest

from taskscope.store.database import open_for_writing
from taskscope.store.row_merge import Column, MergedTable, Rule
from taskscope.store.write_batch import TASK_TABLE, TRY_TABLE

TOY = MergedTable(
    "toy",
    ("k",),
    (
        Column("k"),
        Column("first", Rule.FIRST_KNOWN),
        Column("latest", Rule.LATEST_KNOWN, fallback=True),
        Column("big", Rule.LARGEST),
        Column("named", Rule.LATEST_KNOWN, if_unknown=""),
        Column("kept"),
    ),
)


def test_the_upsert_states_each_columns_rule():
    assert TOY.upsert_sql() == (
        "INSERT INTO toy (k, first, latest, big, named, kept)\n"
        "VALUES (?1, ?2, COALESCE(?3, ?7), ?4, COALESCE(?5, ''), ?6)\n"
        "ON CONFLICT (k) DO UPDATE SET\n"
        "    first = COALESCE(toy.first, ?2),\n"
        "    latest = COALESCE(?3, toy.latest, ?7),\n"
        "    big = MAX(toy.big, ?4),\n"
        "    named = COALESCE(?5, toy.named)"
    )


def test_the_fold_applies_each_columns_rule():
    held = [1, None, None, 5, None, "a", None]
    TOY.fold(held, (1, "f1", None, 3, "n1", "b", "fb1"))
    TOY.fold(held, (1, "f2", "l2", 9, None, "c", "fb2"))
    assert held == [1, "f1", "l2", 9, "n1", "a", "fb1"]


def test_a_fallback_needs_a_coalesce_rule():
    with pytest.raises(ValueError, match="fallback"):
        MergedTable("t", ("k",), (Column("k"), Column("n", Rule.LARGEST, fallback=True)))


def _random_row(rng: random.Random, table: MergedTable, key: tuple, i: int) -> list:
    row = []
    for c in table.columns:
        if c.name in table.key:
            row.append(key[table.key.index(c.name)])
        elif c.rule is Rule.LARGEST:
            row.append(rng.randint(0, 5))
        elif c.rule is Rule.KEEP:
            row.append(f"{c.name}-{i}")  # a value the first message of a row fixes
        else:
            row.append(rng.choice([None, f"{c.name}-{i}"]))
    return row + [rng.choice([None, f"fallback-{i}"]) for _ in table.fallbacks]


@pytest.mark.parametrize("table", [TASK_TABLE, TRY_TABLE], ids=lambda t: t.table)
def test_folding_a_batch_then_upserting_equals_upserting_each_message(tmp_path, table):
    """However the messages about a row are cut into batches, the row is the same."""
    conn = open_for_writing(tmp_path / "m.db")
    rng = random.Random(3)
    run_column = [c.name for c in table.columns].index("run_id")
    for trial in range(200):
        key = tuple({"task_id": trial, "try_id": 0, "run_id": "r"}[k] for k in table.key)
        messages = [_random_row(rng, table, key, i) for i in range(rng.randint(1, 5))]
        cut = rng.randint(1, len(messages))
        # One upsert per message, into run "a" ...
        one_by_one = [[*m] for m in messages]
        for m in one_by_one:
            m[run_column] = "a"
            conn.execute(table.upsert_sql(), m)
        # ... and, into run "b", the messages folded in two batches.
        for batch in (messages[:cut], messages[cut:]):
            if not batch:
                continue
            held = list(batch[0])
            for m in batch[1:]:
                table.fold(held, m)
            held[run_column] = "b"
            conn.execute(table.upsert_sql(), held)
        names = ", ".join(c.name for c in table.columns if c.name != "run_id")
        where = " AND ".join(f"{k} = ?" for k in table.key if k != "run_id")
        params = [v for k, v in zip(table.key, key, strict=True) if k != "run_id"]
        got = {
            run: conn.execute(
                f"SELECT {names} FROM {table.table} WHERE run_id = ? AND {where}", (run, *params)
            ).fetchone()
            for run in ("a", "b")
        }
        assert got["a"] == got["b"], messages
    conn.close()
