"""A monitoring database whose every text field holds HTML and JavaScript: what a user gets
when a name, a path or an exception message contains markup (or when someone wrote the
database to attack whoever opens the dashboard)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from taskscope.store.analysis_rollup import (
    DEPENDS_TABLE,
    PLACE_TABLE,
    RUN_KEY_TABLE,
    TRY_TIME_TABLE,
)
from taskscope.store.synthetic import create_database, standard_runs

# Each payload sets window.__xss if it ever runs; none holds "/" where it becomes part of a
# URL path segment (app names, run ids).
APP_NAMES = {
    "generate": "<img src=x onerror=window.__xss=1>gen",
    "transform": "<a href=javascript:window.__xss=2>transform",
    "combine": "<b>combine&amp;",
    "summarize": "'\"><svg onload=window.__xss=4>summ",
    "join_all": "{{7*7}}%{x}<br>join",
}
RUN_ID = 'run"><img src=x onerror=window.__xss=5>'
TEXT = (
    "<script>window.__xss=6</script><img src=x onerror=window.__xss=7>"
    '<a href="javascript:window.__xss=8">x</a>'
)
# Columns holding app names, run ids or structure (lists of ids, states, timestamps) are
# renamed or left alone; every other text column gets TEXT appended.
# (Every table the writer keeps per app holds it in one of these columns.)
APP_COLUMNS = {"task_func_name", "app", "source_app", "target_app"}
STRUCTURAL = {
    "run_id",
    "task_depends",
    "task_joins",
    "task_status_name",
    "state",
    "status",
    "kind",
    "timestamp_convention",
    "task_memoize",
    "psutil_cpu_num",
    "psutil_process_status",
    "tbl",
    "idx",
    "stat",
}
# Tables SQLite triggers keep from the try and task tables: the hostile text reaches them
# through those triggers as the source rows change, as it would from the writer. Changing
# them directly as well would break their keys (host 'a' + TEXT meets the row the trigger
# already made). The run keys go first, so the triggers find the renamed run.
TRIGGER_KEPT = {PLACE_TABLE, TRY_TIME_TABLE, DEPENDS_TABLE}


def _text_columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [
        row[1]
        for row in conn.execute(f'PRAGMA table_info("{table}")')
        if (row[2] or "").upper() == "TEXT"
    ]


def create_hostile_database(path: Path) -> Path:
    outputs = path.parent / "outputs"
    outputs.mkdir(parents=True, exist_ok=True)
    create_database(path, standard_runs(outputs))
    conn = sqlite3.connect(path)
    try:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        tables.sort(key=lambda name: name != RUN_KEY_TABLE)
        for table in tables:
            if table in TRIGGER_KEPT:
                continue
            for column in _text_columns(conn, table):
                if column in APP_COLUMNS:
                    for plain, hostile in APP_NAMES.items():
                        conn.execute(
                            f'UPDATE "{table}" SET "{column}" = ? WHERE "{column}" = ?',
                            (hostile, plain),
                        )
                elif column == "run_id":
                    conn.execute(
                        f'UPDATE "{table}" SET run_id = ? WHERE run_id = ?',
                        (RUN_ID, "run-completed"),
                    )
                elif column not in STRUCTURAL:
                    conn.execute(
                        f'UPDATE "{table}" SET "{column}" = coalesce("{column}", \'\') || ?',
                        (TEXT,),
                    )
        conn.commit()
    finally:
        conn.close()
    return path
