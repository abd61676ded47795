"""A failed try's traceback as its user wants to read it.

Two things make a raw worker traceback hard to read: it starts with taskscope's own frames
(the worker loop, the monitoring wrapper) before reaching the user's code, and cloudpickle,
which ships functions defined in a script to the workers, renames their file
``<dynamic-code>``. The kernel knows the function it sent, so it can put the real file (and
the source line, which the worker could not read) back, and drop the leading frames that are
taskscope's. Line numbers are untouched: cloudpickle keeps them.
"""

from __future__ import annotations

import inspect
import linecache
import os
import re
from typing import Any

# taskscope's own source tree (this file is taskscope/dataflow/user_traceback.py).
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
DYNAMIC = "<dynamic-code>"
_FRAME = re.compile(r'^  File "(?P<file>[^"]*)", line (?P<line>\d+), in (?P<name>.*)$')
_HEADER = "Traceback (most recent call last):"


def _code_files(func: Any) -> dict[str, str]:
    """Function name -> source file for `func` and the functions and classes of its module
    that live in the same file (the frames a user's task is likely to go through)."""
    func = inspect.unwrap(func) if callable(func) else func
    code = getattr(func, "__code__", None)
    if code is None:
        return {}
    filename = code.co_filename
    names = {code.co_name: filename}
    for value in getattr(func, "__globals__", {}).values():
        inner = getattr(value, "__code__", None)
        if inner is not None and inner.co_filename == filename:
            names.setdefault(inner.co_name, filename)
    names.setdefault("", filename)  # any other dynamic frame: most likely the same script
    return names


def _blocks(section: list[str]) -> tuple[list[str], list[list[str]], list[str]]:
    """(header lines, frame blocks, the rest) of one 'Traceback (most recent call last):'."""
    head: list[str] = []
    frames: list[list[str]] = []
    tail: list[str] = []
    for line in section:
        if tail:
            tail.append(line)
        elif _FRAME.match(line):
            frames.append([line])
        elif frames and line.startswith("    "):
            frames[-1].append(line)
        elif frames:
            tail.append(line)
        else:
            head.append(line)
    return head, frames, tail


def _fix_frame(block: list[str], files: dict[str, str]) -> list[str]:
    match = _FRAME.match(block[0])
    if match is None or match["file"] != DYNAMIC or not files:
        return block
    real = files.get(match["name"], files[""])
    fixed = [f'  File "{real}", line {match["line"]}, in {match["name"]}']
    if len(block) == 1:  # the worker had no source to show: the kernel's host may
        source = linecache.getline(real, int(match["line"])).strip()
        if source:
            fixed.append(f"    {source}")
    return fixed + block[1:]


def _is_taskscope(block: list[str]) -> bool:
    match = _FRAME.match(block[0])
    return match is not None and os.path.abspath(match["file"]).startswith(PACKAGE_DIR)


def user_traceback(text: str, func: Any = None) -> str:
    """`text` with the real file of dynamic frames and without taskscope's leading frames
    (kept when nothing else would remain)."""
    if not text:
        return text
    files = _code_files(func) if func is not None else {}
    lines = text.splitlines()
    out: list[str] = []
    section: list[str] = []

    def flush() -> None:
        if not section:
            return
        head, frames, tail = _blocks(section)
        frames = [_fix_frame(block, files) for block in frames]
        first_user = next((i for i, b in enumerate(frames) if not _is_taskscope(b)), None)
        if first_user:
            frames = frames[first_user:]
        out.extend(head)
        for block in frames:
            out.extend(block)
        out.extend(tail)
        section.clear()

    for line in lines:
        if line == _HEADER:
            flush()
        section.append(line)
    flush()
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")
