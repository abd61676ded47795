"""Query-string parsing that never fails: malformed values fall back to a sane default."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.requests import Request


def int_param(request: Request, name: str, default: int, low: int = 0, high: int = 10**9) -> int:
    raw = request.query_params.get(name)
    try:
        value = int(raw) if raw is not None else default
    except ValueError:
        value = default
    return max(low, min(high, value))


def choice_param(request: Request, name: str, choices: Sequence[str], default: str) -> str:
    raw = request.query_params.get(name)
    return raw if raw is not None and raw in choices else default


def text_param(request: Request, name: str, max_length: int = 500) -> str | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    return raw[:max_length]


def relative_root(path: str) -> str:
    """The relative prefix from a page back to the dashboard's root, so every link is relative
    and the dashboard works behind an SSH tunnel or a proxy path."""
    depth = path.count("/") - 1
    return "../" * depth if depth > 0 else "./"
