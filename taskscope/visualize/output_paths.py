"""Where a task's stdout/stderr file is, as the dashboard's host sees it.

A bash app's ``stdout="outputs/x.out"`` and Parsl's AUTO_LOGNAME (under a relative run_dir)
are relative to the directory the workflow was launched from, not to wherever the dashboard
runs nor to the run directory. taskscope records that directory per run; for runs without it
(Parsl's databases, whose paths are usually absolute) the run directory is the best guess.

Only the *resolution* lives here; whether a file may be shown, and how it is read safely, is
`taskscope.visualize.filetail`'s business.
"""

from __future__ import annotations

from pathlib import Path


def output_base(launch_dir: str | None, rundir: str | None) -> Path | None:
    """The directory relative output paths of a run are relative to."""
    if launch_dir:
        return Path(launch_dir)
    return Path(rundir) if rundir else None
