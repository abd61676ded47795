import contextlib
import sqlite3
import uuid

import pytest

from taskscope.store.database import open_for_writing
from taskscope.store.writer import DatabaseWriter


@pytest.fixture
def run_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def writer(tmp_path):
    w = DatabaseWriter(open_for_writing(tmp_path / "monitoring.db"))
    yield w
    with contextlib.suppress(sqlite3.Error):  # a test may have closed it already
        w.close(analyze=False)
