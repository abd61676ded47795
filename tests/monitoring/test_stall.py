"""The stall watch, without a frozen filesystem (test_frozen_filesystem.py has the real one,
where the machine lets a test mount): an append that does not return is told once, and its
return is told once."""

from __future__ import annotations

import time

from monhelp import wait_for

from taskscope.monitoring.stall import SpoolStallWatch
from taskscope.store.spool import SpoolWriter


def test_a_blocked_append_is_told_once_and_its_return_once(tmp_path):
    spool = SpoolWriter(tmp_path / "db.spool", "0000000000000000001-1-kernel-00000000")
    said: list[str] = []
    watch = SpoolStallWatch(spool, said.append, str(tmp_path / "db"), stall_s=1.0)
    watch.start()
    try:
        spool.append(b"quick")  # returns at once: nothing to tell
        time.sleep(1.5)
        assert said == []
        spool.busy_since = time.monotonic()  # as if a write were blocked in the kernel
        assert wait_for(lambda: len(said) == 1, 10)
        time.sleep(1.5)
        assert len(said) == 1  # told once per stall, not every check
        assert said[0].startswith(f"recording is delayed: the filesystem holding {tmp_path}/db")
        assert f"{tmp_path}/db.spool" in said[0]
        spool.busy_since = None
        assert wait_for(lambda: len(said) == 2, 10)
        assert "answers again" in said[1]
        spool.busy_since = time.monotonic()  # a second stall is told again
        assert wait_for(lambda: len(said) == 3, 10)
        assert said[2].startswith("recording is delayed")
        assert watch.stalls == 2
    finally:
        watch.stop()
        spool.close()
