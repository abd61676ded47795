"""The freshness line says when a database has events its spool holds and it does not."""

from __future__ import annotations

import shutil
import uuid

from starlette.testclient import TestClient

from taskscope.store.messages import TaskInfo, TaskStatus, encode_batch
from taskscope.store.replay import recover
from taskscope.store.spool import SpoolWriter, new_stream_id, note_delay, spool_dir
from taskscope.visualize.app import create_app


def test_the_freshness_line_names_unwritten_events_until_they_are_written(taskscope_db, tmp_path):
    db = tmp_path / "monitoring.db"
    shutil.copy(taskscope_db, db)
    client = TestClient(create_app(db))
    assert "not written yet" not in client.get("/").text
    run_id = str(uuid.uuid4())
    writer = SpoolWriter(spool_dir(db), new_stream_id("kernel"))
    writer.append(
        encode_batch(
            [
                TaskInfo(run_id, 1, "f", False, "x", 1.0e9),
                TaskStatus(run_id, 1, 0, "pending", 1.0e9),
            ]
        )
    )
    page = client.get("/").text
    assert "2 events not written yet: the monitoring writer is catching up" in page
    note_delay(spool_dir(db), "database is locked by another process")  # as the writer does
    page = client.get("/").text
    assert "recording is delayed (database is locked by another process)" in page
    note_delay(spool_dir(db), None)
    writer.close()  # its writer died: the user is told how to finish the job
    page = client.get("/").text
    assert "2 events of a stopped run are not written yet" in page
    assert "taskscope recover" in page
    recover(db)
    assert "not written yet" not in client.get("/").text
