"""Checkpoint files: memoized results that outlive a run (Parsl's format and layout).

A run's checkpoint is ``<run_dir>/checkpoint/tasks.pkl``, a sequence of pickled records
``{'hash': memo key, 'exception': None, 'result': value}`` appended as tasks are
checkpointed. A later run lists checkpoint directories in ``BasicMemoizer(checkpoint_files=
[...])`` (``get_all_checkpoints()`` / ``get_last_checkpoint()`` find them) and equal calls of
``cache=True`` apps return the recorded results without running. Only successful results are
written, as in Parsl, so a failed call runs again next time.

The files are pickles written by this program's own runs: load only checkpoints you made.
"""

from __future__ import annotations

import logging
import os
import pickle
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from typing import Any

from taskscope.errors import BadCheckpoint

logger = logging.getLogger(__name__)

CHECKPOINT_MODES = ("task_exit", "periodic", "dfk_exit", "manual")


def checkpoint_file(checkpoint_dir: str) -> str:
    return os.path.join(checkpoint_dir, "tasks.pkl")


def load_checkpoints(checkpoint_dirs: Sequence[str]) -> dict[str, Future]:
    """Memo key -> a done future of the recorded result, from every listed directory."""
    table: dict[str, Future] = {}
    for directory in checkpoint_dirs:
        path = checkpoint_file(os.fspath(directory))
        try:
            with open(path, "rb") as f:
                while True:
                    try:
                        record = pickle.load(f)
                    except EOFError:
                        break
                    future: Future = Future()
                    future.set_result(record["result"])
                    table[record["hash"]] = future
        except FileNotFoundError:
            raise BadCheckpoint(f"Checkpoint file was not found: {path}") from None
        except Exception as e:  # a truncated or foreign file
            raise BadCheckpoint(f"Failed to load checkpoint: {path}: {e}") from e
        logger.info("loaded checkpoint %s (%d results so far)", path, len(table))
    return table


def parse_period(period: str) -> float:
    """``'HH:MM:SS'`` -> seconds."""
    try:
        h, m, s = (int(p) for p in period.split(":"))
    except (AttributeError, ValueError):
        raise ValueError(f"invalid checkpoint_period {period!r}: expected HH:MM:SS") from None
    seconds = h * 3600 + m * 60 + s
    if seconds <= 0:
        raise ValueError(f"checkpoint_period {period!r} must be longer than 0 s")
    return seconds


class CheckpointWriter:
    """Appends checkpoint records to one run's file; thread-safe."""

    def __init__(self, run_dir: str) -> None:
        self.directory = os.path.join(run_dir, "checkpoint")
        self._lock = threading.Lock()
        self._pending: list[tuple[str, Any]] = []
        self.written = 0

    def add(self, hashsum: str, result: Any) -> None:
        with self._lock:
            self._pending.append((hashsum, result))

    def write(self, records: Iterable[tuple[str, Any]] | None = None) -> int:
        """Write ``records``, or everything added since the last write; returns how many."""
        with self._lock:
            if records is None:
                records, self._pending = self._pending, []
            count = 0
            # Opened even with nothing to write, as in Parsl: a run with a checkpoint mode
            # leaves a (maybe empty) checkpoint that a later run can list and load.
            os.makedirs(self.directory, exist_ok=True)
            with open(checkpoint_file(self.directory), "ab") as f:
                for hashsum, result in records:
                    try:
                        blob = pickle.dumps({"hash": hashsum, "exception": None, "result": result})
                    except Exception as e:  # noqa: BLE001 - an unpicklable result skips itself
                        logger.warning("result for memo key %s not checkpointed: %s", hashsum, e)
                        continue
                    f.write(blob)
                    count += 1
            self.written += count
        if count:
            logger.info("Done checkpointing %d tasks", count)
        else:
            logger.debug("No tasks checkpointed in this pass")
        return count


class PeriodicCheckpoint:
    """Calls ``write()`` every ``seconds`` until stopped."""

    def __init__(self, writer: CheckpointWriter, seconds: float) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(writer, seconds), name="taskscope-checkpoint", daemon=True
        )
        self._thread.start()

    def _run(self, writer: CheckpointWriter, seconds: float) -> None:
        while not self._stop.wait(seconds):
            try:
                writer.write()
            except Exception:
                logger.exception("periodic checkpoint failed")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def get_all_checkpoints(rundir: str = "runinfo") -> list[str]:
    """Checkpoint directories of every run under ``rundir``, oldest first."""
    if not os.path.isdir(rundir):
        return []
    found = []
    for run in sorted(os.listdir(rundir)):
        directory = os.path.abspath(os.path.join(rundir, run, "checkpoint"))
        if os.path.isdir(directory):
            found.append(directory)
    return found


def get_last_checkpoint(rundir: str = "runinfo") -> list[str]:
    """The checkpoint directory of the newest run under ``rundir`` that has one, as a list
    of 0 or 1 (runs are numbered, compared as numbers)."""
    if not os.path.isdir(rundir):
        return []
    for run in sorted((d for d in os.listdir(rundir) if d.isdigit()), key=int, reverse=True):
        directory = os.path.abspath(os.path.join(rundir, run, "checkpoint"))
        if os.path.isdir(directory):
            return [directory]
    return []
