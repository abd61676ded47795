"""`taskscope export --format csv|parquet`: one file per table, row counts equal the database's."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import pytest
from fixture_paths import PARSL_FIXTURE_DB, PARSL_RUN

from taskscope.cli import main


def truth(db: Path, run: str | None) -> dict[str, int]:
    conn = sqlite3.connect(db)
    counts = {}
    for (table,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    ):
        columns = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
        if run is not None and "run_id" in columns:
            counts[table] = conn.execute(
                f'SELECT COUNT(*) FROM "{table}" WHERE run_id = ?', (run,)
            ).fetchone()[0]
        else:
            counts[table] = conn.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]
    conn.close()
    return counts


def csv_counts(folder: Path) -> dict[str, int]:
    counts = {}
    for path in folder.glob("*.csv"):
        with open(path, newline="", encoding="utf-8") as stream:
            counts[path.stem] = sum(1 for _ in csv.reader(stream)) - 1  # the header
    return counts


@pytest.mark.parametrize("run,all_runs", [("run-failed", False), ("run-live", False), (None, True)])
def test_csv_rows_equal_the_database(tmp_path: Path, taskscope_db: Path, run, all_runs):
    out = tmp_path / "csv"
    args = ["export", str(taskscope_db), "--format", "csv", "-o", str(out)]
    args += ["--all-runs"] if all_runs else ["--run", run]
    assert main(args) == 0
    expected = truth(taskscope_db, None if all_runs else run)
    assert csv_counts(out) == expected
    assert expected["task"] > 0 and not list(out.glob(".*partial"))


def test_csv_values_round_trip(tmp_path: Path):
    out = tmp_path / "csv"
    assert main(["export", str(PARSL_FIXTURE_DB), "--format", "csv", "-o", str(out)]) == 0
    with open(out / "task.csv", newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    conn = sqlite3.connect(PARSL_FIXTURE_DB)
    first = conn.execute(
        "SELECT task_func_name, task_time_invoked FROM task WHERE run_id = ? AND task_id = 0",
        (PARSL_RUN,),
    ).fetchone()
    conn.close()
    row = next(r for r in rows if r["task_id"] == "0")
    assert (row["task_func_name"], row["task_time_invoked"]) == first


def test_parquet_rows_and_types(tmp_path: Path, taskscope_db: Path):
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    out = tmp_path / "parquet"
    assert (
        main(
            [
                "export",
                str(taskscope_db),
                "--run",
                "run-failed",
                "--format",
                "parquet",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    expected = truth(taskscope_db, "run-failed")
    found = {p.stem: pq.read_metadata(p).num_rows for p in out.glob("*.parquet")}
    assert found == expected
    task = pq.read_table(out / "task.parquet")
    assert task.schema.field("task_id").type == pa.int64()
    assert task.schema.field("task_time_invoked").type == pa.timestamp("us")
    assert task.schema.metadata[b"taskscope.timestamps"] == b"utc"
    conn = sqlite3.connect(taskscope_db)
    invoked = conn.execute(
        "SELECT task_time_invoked FROM task WHERE run_id = 'run-failed' AND task_id = 3"
    ).fetchone()[0]
    conn.close()
    row = task.filter(pa.compute.equal(task["task_id"], 3)).to_pylist()[0]
    assert str(row["task_time_invoked"]) == invoked


def test_parsl_parquet_is_local_time(tmp_path: Path):
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "parquet"
    assert main(["export", str(PARSL_FIXTURE_DB), "--format", "parquet", "-o", str(out)]) == 0
    assert {p.stem: pq.read_metadata(p).num_rows for p in out.glob("*.parquet")} == truth(
        PARSL_FIXTURE_DB, PARSL_RUN
    )
    assert pq.read_schema(out / "status.parquet").metadata[b"taskscope.timestamps"] == b"local"


def test_output_that_is_a_file_is_a_clear_error(tmp_path: Path, capsys):
    target = tmp_path / "taken"
    target.write_text("")
    assert main(["export", str(PARSL_FIXTURE_DB), "--format", "csv", "-o", str(target)]) == 1
    assert "not a directory" in capsys.readouterr().err


def test_tables_cannot_go_to_stdout(capsys):
    assert main(["export", str(PARSL_FIXTURE_DB), "--format", "csv", "-o", "-"]) == 2
    assert "directory" in capsys.readouterr().err
