"""Failure signatures: what stays the same when the same fault hits many tasks.

A signature is the exception type, its message with the parts that vary from task to task
masked (quoted values, paths, hex ids, numbers), and the frame in user code nearest to where
the exception was raised. Ten thousand ``KeyError('sample-<i>')`` raised on the same line are
one signature; a ``KeyError`` raised on another line is another.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

# One alternation, applied in a single pass: the first branch that matches at a position wins,
# so a quoted path is masked as a quoted value and the digits inside a hex id are not masked
# again as numbers.
_MASK = re.compile(
    r"""(?P<str>'(?:[^'\\\n]|\\.){0,400}'|"(?:[^"\\\n]|\\.){0,400}")"""
    r"""|(?P<uuid>\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b)"""
    r"""|(?P<hex>\b0[xX][0-9a-fA-F]+\b|\b(?=[0-9a-fA-F]*[0-9])(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b)"""
    r"""|(?P<path>(?<![\w.<>])(?:~|\.{1,2})?/[^\s'",;:()\[\]{}<>]+|\b[A-Za-z]:\\[^\s'",;:()]+)"""
    r"""|(?P<num>\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"""
)
_PLACEHOLDER = {"str": "<str>", "uuid": "<uuid>", "hex": "<hex>", "path": "<path>", "num": "<n>"}
MESSAGE_CHARS = 300  # a masked message is cut here: a signature is a name, not a dump

_FRAME = re.compile(
    r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<func>.+?)\s*$', re.MULTILINE
)
# Frames in these places are the machinery around the user's code, not the user's code.
_FRAMEWORK = re.compile(
    r"([/\\](taskscope|parsl|site-packages|dist-packages)[/\\])|"
    r"([/\\]lib[/\\]python\d+(\.\d+)?[/\\])|^<frozen |^<string>$"
)


# Every ASCII digit read as 0. Each pattern above treats all digits alike, so a message and
# its zeroed form mask to the same text: the zeroed form is the cache key, and ten thousand
# messages that differ only in their numbers are masked once.
_ZERO_DIGITS = bytes.maketrans(b"123456789", b"000000000")
_CACHE_MAX = 50_000
_masked: dict[str, str] = {}
# Zeroed traceback -> the user frame's `Frame.short` (None: no user frame), for the names
# that hold no digit (a zeroed name with one is not the real name, so it is not kept).
_frame_names: dict[str, str | None] = {}


def _zeroed(text: str) -> str:
    # bytes.translate is a table lookup in C, about 15x faster than str.translate; UTF-8
    # never puts an ASCII byte inside a multi-byte character, so only digits change.
    return (
        text.encode("utf-8", "surrogatepass")
        .translate(_ZERO_DIGITS)
        .decode("utf-8", "surrogatepass")
    )


def digits_zeroed(text: str) -> str:
    """`text` with every ASCII digit read as 0: its shape. Texts of one shape mask to the same
    message (`mask_message`), and name the same user frame when that name holds no digit
    (`frame_name_is_shared`)."""
    return _zeroed(text)


def frame_name_is_shared(traceback: str | None) -> bool:
    """Whether `user_frame_name` is the same for every traceback of this one's shape (its user
    frame's name, if any, holds no digit)."""
    if not traceback:
        return True
    name = user_frame_name(_zeroed(traceback))
    return name is None or "0" not in name


def _mask(message: str) -> str:
    masked = _MASK.sub(lambda m: _PLACEHOLDER[m.lastgroup or "num"], message.strip())
    masked = " ".join(masked.split())
    return masked if len(masked) <= MESSAGE_CHARS else masked[: MESSAGE_CHARS - 1] + "…"


def mask_message(message: str) -> str:
    """`message` with its varying parts replaced by <str>, <path>, <hex>, <uuid>, <n>."""
    key = _zeroed(message)
    found = _masked.get(key)
    if found is None:
        if len(_masked) >= _CACHE_MAX:
            _masked.clear()
        found = _masked[key] = _mask(key)
    return found


@dataclass(frozen=True)
class Frame:
    file: str
    line: int
    function: str

    @property
    def short(self) -> str:
        """``function (file)`` without the directory and line: stable across edits elsewhere."""
        name = self.file.replace("\\", "/").rsplit("/", 1)[-1]
        return f"{self.function} ({name})"

    def __str__(self) -> str:
        return f"{self.file}:{self.line} in {self.function}"


def user_frame(traceback: str | None) -> Frame | None:
    """The frame in user code nearest to the raise: reading the traceback from its last frame
    up, the first that is not taskscope's, Parsl's, the standard library's or a package's."""
    if not traceback:
        return None
    return _find_user_frame(traceback)


def user_frame_name(traceback: str | None) -> str | None:
    """`Frame.short` of `user_frame`, cached across tracebacks that differ only in digits
    (line numbers, ids in the message) when the name itself has none."""
    if not traceback:
        return None
    key = _zeroed(traceback)
    try:
        return _frame_names[key]
    except KeyError:
        pass
    zeroed = _find_user_frame(key)
    name = zeroed.short if zeroed is not None else None
    if name is None or "0" not in name:
        if len(_frame_names) >= _CACHE_MAX:
            _frame_names.clear()
        _frame_names[key] = name
        return name
    frame = _find_user_frame(traceback)  # digits in the name: not shareable
    return frame.short if frame is not None else None


def _find_user_frame(traceback: str) -> Frame | None:
    frames = list(_FRAME.finditer(traceback))
    for match in reversed(frames):
        if not _FRAMEWORK.search(match["file"]):
            return Frame(match["file"], int(match["line"]), match["func"])
    return None


@dataclass(frozen=True)
class ParsedRepr:
    exception_type: str
    message: str


_REPR = re.compile(r"^\s*(?P<type>[A-Za-z_][\w.]*)\((?P<args>.*)\)\s*$", re.DOTALL)


def parse_exception_repr(text: str) -> ParsedRepr:
    """Parsl keeps only ``repr(exception)`` (``try.task_fail_history``): its type and message.
    ``ValueError('bad input 3')`` -> ("ValueError", "bad input 3"); arguments that are not one
    string literal are kept as written."""
    text = text.strip()
    match = _REPR.match(text)
    if match is None:
        return ParsedRepr("Exception", text)
    args = match["args"].strip()
    message = args
    try:
        value = ast.literal_eval(args) if args else ""
        if isinstance(value, str):
            message = value
        elif isinstance(value, tuple) and all(isinstance(v, (str, int, float)) for v in value):
            message = ", ".join(str(v) for v in value)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        pass
    return ParsedRepr(match["type"].rsplit(".", 1)[-1], message)


def signature(exception_type: str, masked_message: str, where: str | None) -> str:
    text = f"{exception_type}: {masked_message}" if masked_message else exception_type
    return f"{text} @ {where}" if where else text
