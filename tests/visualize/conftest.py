"""Databases for the dashboard tests: Parsl's fixture, a synthetic taskscope database with a
completed, a failed, a lost (crashed), a live and a resource-less run, and an empty one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from taskscope.store.synthetic import create_database, standard_runs

PARSL_FIXTURE = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "parsl-sample-small.db"
if not PARSL_FIXTURE.exists():
    PARSL_FIXTURE = Path("/work/shared/fixtures/parsl-sample-small.db")
PARSL_RUN = "85029df9-5f8e-4ab7-810a-f8db9f552f59"


@pytest.fixture(scope="session")
def parsl_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # A copy, so nothing can touch the shared fixture.
    target = tmp_path_factory.mktemp("parsl") / "monitoring.db"
    shutil.copy(PARSL_FIXTURE, target)
    return target


@pytest.fixture(scope="session")
def taskscope_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("taskscope")
    outputs = folder / "outputs"
    outputs.mkdir()
    return create_database(folder / "monitoring.db", standard_runs(outputs))


@pytest.fixture(scope="session")
def empty_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return create_database(tmp_path_factory.mktemp("empty") / "monitoring.db", [])


@pytest.fixture(scope="session")
def blank_file_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A zero-byte file: what an unrelated tool may leave behind; it has no tables at all."""
    path = tmp_path_factory.mktemp("blank") / "monitoring.db"
    path.write_bytes(b"")
    return path
