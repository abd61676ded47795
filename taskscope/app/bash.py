"""Bash apps: the function builds a command line; the task runs it with the shell."""

from __future__ import annotations

import functools
import inspect
import os
import subprocess
from collections.abc import Callable, Mapping
from typing import Any

from taskscope.app.app import AppBase
from taskscope.data_provider.files import File
from taskscope.dataflow.futures import AppFuture
from taskscope.errors import (
    AppBadFormatting,
    AppException,
    AppTimeout,
    BadStdStreamFile,
    BashAppNoReturn,
    BashExitFailure,
    MissingOutputs,
)
from taskscope.executors import commands

# Keyword arguments taskscope itself interprets; passed to the function only if it takes them.
_SPECIAL = ("stdout", "stderr", "walltime", "inputs", "outputs", "parsl_resource_specification")


def std_fname_mode(name: str, spec: Any) -> tuple[str, str]:
    """The file and open() mode of a ``stdout=``/``stderr=`` spec, as Parsl reads them.

    A path (str, PathLike or File) appends (mode ``a+``; Parsl's default); ``(path, mode)``
    opens with that mode, e.g. ``'w'`` to truncate. A spec of the wrong type raises
    TypeError, a tuple of the wrong length BadStdStreamFile (both as in Parsl).
    """
    if isinstance(spec, File):
        try:
            return spec.filepath, "w"  # Parsl writes a File target afresh
        except ValueError as e:  # a scheme taskscope does not stage (zip:, https:)
            raise BadStdStreamFile(f"{name}: {e}") from None
    if isinstance(spec, (str, os.PathLike)):
        return os.fspath(spec), "a+"
    if isinstance(spec, tuple):
        if len(spec) != 2:
            raise BadStdStreamFile(
                f"std descriptor {name} has incorrect tuple length {len(spec)}: {spec!r}"
            )
        path, mode = spec
        if not isinstance(path, (str, os.PathLike)) or not isinstance(mode, str):
            raise TypeError(f"{name}=(path, mode) needs a str path and a str mode, got {spec!r}")
        return os.fspath(path), mode
    raise TypeError(
        f"{name}= must be a path, a File or a (path, mode) tuple, got {type(spec).__name__}"
    )


def _open_std_stream(name: str, spec: Any) -> Any:
    if spec is None:
        return None
    path, mode = std_fname_mode(name, spec)
    try:
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        return open(path, mode)
    except (OSError, ValueError) as e:  # ValueError: a mode open() does not know
        raise BadStdStreamFile(f"cannot open {name} file {path!r} (mode {mode!r}): {e}") from e


def remote_side_bash_executor(func: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """Runs where the task runs: build the command, run it, map its exit to the outcome."""
    name = getattr(func, "__name__", "bash_app")
    params: Mapping[str, inspect.Parameter]
    try:
        params = inspect.signature(func).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    except (TypeError, ValueError):
        params, takes_any = {}, True
    call_kwargs = {k: v for k, v in kwargs.items() if takes_any or k in params or k not in _SPECIAL}
    try:
        command = func(*args, **call_kwargs)
    except (AttributeError, IndexError, KeyError) as e:
        raise AppBadFormatting(
            f"bash app {name!r}: building the command failed: {type(e).__name__}: {e}"
        ) from None
    if command is None:
        raise BashAppNoReturn(f"bash app {name!r} returned None instead of a command line")
    if not isinstance(command, str):
        raise AppBadFormatting(
            f"bash app {name!r} must return a str command line, got {type(command).__name__}"
        )

    stdout = _open_std_stream("stdout", kwargs.get("stdout"))
    stderr = _open_std_stream("stderr", kwargs.get("stderr"))
    walltime = kwargs.get("walltime")
    try:
        # Its own session, so a walltime kill takes the whole pipeline, not just the shell.
        proc = subprocess.Popen(
            command,
            shell=True,
            executable="/bin/bash",
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        commands.track(proc)
        try:
            returncode = proc.wait(timeout=walltime)
        except subprocess.TimeoutExpired:
            commands.kill_process_group(proc)
            raise AppTimeout(
                f"bash app {name!r} exceeded its walltime of {walltime} s; "
                "its processes were killed"
            ) from None
        except BaseException:
            commands.kill_process_group(proc)
            raise
        finally:
            commands.untrack(proc)
    except (AppTimeout, KeyboardInterrupt):
        raise
    except OSError as e:
        raise AppException(f"bash app {name!r} could not start its command: {e}") from None
    finally:
        for stream in (stdout, stderr):
            if stream is not None:
                stream.close()

    if returncode != 0:
        raise BashExitFailure(name, returncode)
    missing = [f for f in kwargs.get("outputs") or () if not os.path.exists(os.fspath(f))]
    if missing:
        raise MissingOutputs(f"bash app {name!r} did not create its outputs", missing)
    return returncode


class BashApp(AppBase):
    def __init__(self, func: Callable[..., Any], **options: Any):
        super().__init__(func, **options)
        # One partial per app, so executors that cache functions see the same object.
        self._remote = functools.partial(remote_side_bash_executor, func)

    def __call__(self, *args: Any, **kwargs: Any) -> AppFuture:
        # Defaults declared in the signature (e.g. stdout='x.out') apply to every call.
        invocation = {**self.kwargs, **kwargs}
        self._check_walltime(invocation.get("walltime"))
        return self._submit(self._remote, args, invocation)
