"""A real monitoring database with two runs of a workflow whose failures, critical chain and
stragglers are planted (tests/store/analysis/planted_workflow.py), on HighThroughputExecutor
worker processes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

PLANTED_WORKFLOW = Path(__file__).with_name("planted_workflow.py")


@dataclass(frozen=True)
class PlantedDatabase:
    path: Path
    first_run: str
    second_run: str


def _run_variant(db: Path, folder: Path, variant: str) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(PLANTED_WORKFLOW),
            str(db),
            str(folder / f"runinfo-{variant}"),
            variant,
        ],
        check=False,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="session")
def planted(tmp_path_factory: pytest.TempPathFactory) -> PlantedDatabase:
    folder = tmp_path_factory.mktemp("planted")
    db = folder / "monitoring.db"
    _run_variant(db, folder, "first")
    _run_variant(db, folder, "second")
    conn = sqlite3.connect(db)
    try:
        runs = [r[0] for r in conn.execute("SELECT run_id FROM workflow ORDER BY time_began")]
    finally:
        conn.close()
    assert len(runs) == 2
    return PlantedDatabase(db, runs[0], runs[1])
