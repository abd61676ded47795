"""Epoch seconds -> UTC text in Parsl's timestamp format, fast enough for the writer's hot path."""

from __future__ import annotations

import time

# strftime costs microseconds; messages arrive many per second within the same second, so the
# "YYYY-MM-DD HH:MM:SS." prefix is cached for the last second seen.
_last_second = -1
_last_prefix = ""

# The same instant is formatted several times per task (a try's launch is both a try column
# and a status row; a task's invocation its pending state and two task rows), so recent
# results are kept: a hit costs a dict lookup instead of ~1.3 µs.
_recent: dict[float, str] = {}
_RECENT_MAX = 8192


def utc_text(t: float) -> str:
    """Format ``t`` (seconds since the epoch) as ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC."""
    global _last_second, _last_prefix
    text = _recent.get(t)
    if text is not None:
        return text
    second, micro = divmod(int(t * 1_000_000 + 0.5), 1_000_000)
    if second != _last_second:
        _last_prefix = time.strftime("%Y-%m-%d %H:%M:%S.", time.gmtime(second))
        _last_second = second
    text = _last_prefix + str(micro).zfill(6)  # 0 <= micro < 10**6: as f"{micro:06d}", faster
    if len(_recent) >= _RECENT_MAX:
        _recent.clear()
    _recent[t] = text
    return text
