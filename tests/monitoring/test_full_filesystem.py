"""A really full filesystem under the database and its spool (ENOSPC for every write; the
disk-full test in test_faults.py limits only the writer's file size): recording stops with
one clear warning and one clear error, the database stays intact with every row written
before, and once space is freed `taskscope recover` writes what was spooled, exactly once
(docs/reliability.md)."""

from __future__ import annotations

import re
import time
import warnings

import pytest
from loop_fs import LoopFilesystem
from monhelp import rows, started_hub, wait_for
from test_durability import end, one_task

from taskscope.cli import main as cli_main
from taskscope.monitoring import MonitoringError, MonitoringWarning
from taskscope.store.spool import list_segments, spool_dir

pytestmark = [pytest.mark.attack, pytest.mark.timeout(300)]


@pytest.fixture
def loop_fs(tmp_path):
    fs = LoopFilesystem(tmp_path)
    fs.mount()
    yield fs
    fs.unmount()


def test_a_full_filesystem_stops_recording_clearly_and_recover_writes_what_was_spooled(
    tmp_path, loop_fs
):
    db = loop_fs.path / "monitoring.db"
    # The run directory (and its log) is elsewhere: only the database and spool are full.
    hub, run_id = started_hub(tmp_path, logging_endpoint=f"sqlite:///{db}")
    for task_id in range(50):
        one_task(hub, run_id, task_id)
    assert wait_for(lambda: rows(db, "SELECT count(*) FROM status") == [(250,)], 60)
    filler = loop_fs.fill()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        task_id = 50
        deadline = time.monotonic() + 60
        while not caught and time.monotonic() < deadline:
            one_task(hub, run_id, task_id)
            task_id += 1
            time.sleep(0.005)
        for more in range(task_id, task_id + 20):  # warned once, not once a message
            one_task(hub, run_id, more)
    assert len(caught) == 1 and caught[0].category is MonitoringWarning, caught
    assert re.search("No space left|full", str(caught[0].message)), caught[0].message
    with pytest.raises(MonitoringError, match="stopped recording") as error:
        end(hub, run_id, task_id)
    assert f"taskscope recover {db}" in str(error.value)
    # Intact, with every row written before the filesystem filled.
    assert rows(db, "PRAGMA integrity_check") == [("ok",)]
    done = {
        r[0] for r in rows(db, "SELECT task_id FROM status WHERE task_status_name = 'exec_done'")
    }
    assert set(range(50)) <= done
    log = (tmp_path / "run" / "monitoring.log").read_text()
    assert "cannot rollback" not in log

    filler.unlink()  # space again: what was spooled before the filesystem filled is written
    assert cli_main(["recover", str(db)]) == 0
    assert rows(db, "PRAGMA integrity_check") == [("ok",)]
    done = sorted(
        r[0] for r in rows(db, "SELECT task_id FROM status WHERE task_status_name = 'exec_done'")
    )
    written = len(done)
    assert written >= 50
    assert done == list(range(written))  # each once, and no gap: the spool kept them in order
    assert rows(db, "SELECT count(*) FROM status WHERE task_id < ?", written) == [(5 * written,)]
    assert rows(db, "SELECT tasks_completed_count FROM workflow") == [(written,)]
    assert list_segments(spool_dir(db)) == []
