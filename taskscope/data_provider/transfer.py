"""Downloading a URL to a local file inside a task (HTTP, HTTPS and FTP staging)."""

from __future__ import annotations

import functools
import os
import shutil
import urllib.request
from collections.abc import Callable
from typing import Any

from taskscope.data_provider.files import File

CHUNK = 1 << 16
TIMEOUT = 60.0


def download(url: str, path: str) -> None:
    """``url`` to ``path`` (written beside it, then renamed: a failed transfer leaves no
    partial file under the final name)."""
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    partial = f"{path}.part-{os.getpid()}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response, open(partial, "wb") as f:
            shutil.copyfileobj(response, f, CHUNK)
        os.replace(partial, path)
    except BaseException:
        if os.path.exists(partial):
            os.remove(partial)
        raise


def _fetch_then_run(func: Callable[..., Any], file: File, *args: Any, **kwargs: Any) -> Any:
    assert file.local_path is not None
    download(file.url, file.local_path)
    return func(*args, **kwargs)


def in_task_download(func: Callable[..., Any], file: File) -> Callable[..., Any]:
    """``func`` preceded by downloading ``file`` to its ``local_path`` where the task runs.

    A partial of a module-level function, so it pickles to worker processes."""
    wrapped = functools.partial(_fetch_then_run, func, file)
    return functools.update_wrapper(wrapped, func) if hasattr(func, "__name__") else wrapped


def stage_in_local_path(file: File, working_dir: str) -> None:
    file.local_path = os.path.join(working_dir, file.filename)
