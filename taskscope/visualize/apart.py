"""Long background reads in a process of their own, so that they never slow the pages.

The run analysis of a big run is seconds of Python (tens at 10^6 tasks). Computed in a
thread of the server it held the GIL about half the time, and every page asked for
meanwhile took twice as long: on the soak's 10^6-task database the DAG of one app's tasks
took 130 ms alone, 250-390 ms beside one analysis and up to 1.1 s beside two. In a process
of its own it runs beside the server instead of inside it. Small databases keep the thread:
a process costs about a quarter of a second to start, longer than their whole analysis, and
their first view would then say "being computed" instead of showing it.

The process is ``python -m taskscope.visualize.apart``, not a `multiprocessing` child: those
re-run the server's main script on start (a user's script that serves the dashboard and
had no ``__main__`` guard would start again). Only the server and that child are at the
two ends of its pipes, which carry pickles (the action asked for, its answer); nothing from
the network does. A child outlives a server killed meanwhile by at most its read's deadline.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import taskscope
from taskscope.visualize.source import DatabaseSource

T = TypeVar("T")
# A database (with its WAL) larger than this has its background reads made apart: about
# 25,000 tasks of a taskscope run, whose analysis takes about a second.
APART_ABOVE_BYTES = 64 * 2**20
# At most this many such processes at once (further reads wait for a slot), so that a
# flood of requests for many runs does not start a process each.
MAX_PROCESSES = 2
_slots = threading.BoundedSemaphore(MAX_PROCESSES)
# The child imports the same taskscope as the server, wherever that came from.
_PACKAGE_ROOT = str(Path(taskscope.__file__).resolve().parent.parent)


class ApartFailed(RuntimeError):
    """The child process gave no answer (it could not start, or was killed)."""


def worth_a_process(path: Path) -> bool:
    size = 0
    for suffix in ("", "-wal"):
        try:
            size += os.stat(f"{path}{suffix}").st_size
        except OSError:
            pass
    return size > APART_ABOVE_BYTES


def read_apart(path: Path, action: Callable[[Any], T], deadline_s: float) -> T:
    """``DatabaseSource(path).read(action, deadline_s)`` in a fresh process: its result, or
    the error it raised. `action` must be picklable (a module-level function, or a
    functools.partial of one); raises ApartFailed when the process gives no answer."""
    try:
        request = pickle.dumps((str(path), action, deadline_s))
    except Exception as exc:  # a closure, say: this action stays in the server
        raise ApartFailed(f"the background read cannot be sent to a process: {exc}") from exc
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_ROOT, env.get("PYTHONPATH")]))
    with _slots:
        try:
            done = subprocess.run(
                [sys.executable, "-m", "taskscope.visualize.apart"],
                input=request,
                capture_output=True,
                env=env,
                timeout=deadline_s + 60.0,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ApartFailed(f"the background read's process: {exc}") from exc
    try:
        ok, payload = pickle.loads(done.stdout)
    except Exception as exc:  # no answer: killed, or could not import
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise ApartFailed(
            f"the background read's process ended without an answer "
            f"(exit code {done.returncode}) {tail[0]}"
        ) from exc
    if ok:
        return payload  # type: ignore[no-any-return]
    raise payload


def _main() -> None:
    path, action, deadline_s = pickle.loads(sys.stdin.buffer.read())
    try:
        answer: tuple[bool, Any] = (True, DatabaseSource(path).read(action, deadline_s))
    except Exception as exc:  # noqa: BLE001 - sent to the server, which raises it
        answer = (False, exc)
    try:
        out = pickle.dumps(answer)
    except Exception as exc:  # noqa: BLE001 - a result or an error that cannot be pickled
        out = pickle.dumps((False, RuntimeError(f"{type(exc).__name__}: {exc}")))
    sys.stdout.buffer.write(out)
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    _main()
