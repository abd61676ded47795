"""A database holding Parsl's runs and taskscope's: each run is read by its own conventions."""

import shutil
import sqlite3

from fixture_paths import PARSL_FIXTURE_DB, PARSL_RUN

from taskscope.store import query
from taskscope.store.readonly import run_convention
from taskscope.store.synthetic import SyntheticRun, create_database


def test_parsl_runs_stay_local_time_beside_taskscope_runs(tmp_path):
    # taskscope appends its runs to a Parsl database: copy Parsl's rows into a taskscope DB.
    path = create_database(tmp_path / "mixed.db", [SyntheticRun("ts-run", tasks=20)])
    shutil.copy(PARSL_FIXTURE_DB, tmp_path / "parsl.db")
    conn = sqlite3.connect(path)
    conn.execute("ATTACH DATABASE ? AS p", (str(tmp_path / "parsl.db"),))
    for table in ("workflow", "task", "try", "status", "resource", "block"):
        conn.execute(f"INSERT INTO main.{table} SELECT * FROM p.{table}")
    conn.commit()
    conn.execute("DETACH DATABASE p")
    info = query.describe_database(conn)

    assert run_convention(conn, info, "ts-run") == "utc"
    assert run_convention(conn, info, PARSL_RUN) == "local"
    assert query.get_run(conn, "ts-run").timestamp_convention == "utc"
    parsl_run = query.get_run(conn, PARSL_RUN)
    assert parsl_run.timestamp_convention == "local"
    assert parsl_run.status in ("completed", "failed")
    summary = query.run_summary(conn, PARSL_RUN)
    assert summary.timestamp_convention == "local"
    conn.close()
