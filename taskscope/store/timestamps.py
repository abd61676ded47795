"""Timestamps as the databases store them: text ``YYYY-MM-DD HH:MM:SS[.ffffff]``, in UTC
(taskscope) or in the writer's local time (Parsl)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone


# SQL for the seconds between two timestamp columns; julianday() parses the stored text.
def seconds_between_sql(start: str, end: str) -> str:
    return f"((julianday({end}) - julianday({start})) * 86400.0)"


def parse_timestamp(text: str | None) -> datetime | None:
    """A naive datetime, or None for missing or unparseable text."""
    if not text:
        return None
    text = str(text).strip().replace("T", " ")
    if len(text) in (19, 26) and text[10] == " " and (len(text) == 19 or text[19] == "."):
        # The two shapes writers store (Parsl omits ".ffffff" at a whole second): parsed in
        # C, ~20x faster than strptime, which analysis calls tens of thousands of times.
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            pass
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"):
        try:
            return datetime.strptime(text[:26], fmt)
        except ValueError:
            continue
    return None


def now_in_convention(convention: str) -> datetime:
    """The current time as a naive datetime in the database's convention."""
    if convention == "utc":
        return datetime.now(timezone.utc).replace(tzinfo=None)
    return datetime.now()


def age_seconds(text: str | None, convention: str) -> float | None:
    moment = parse_timestamp(text)
    if moment is None:
        return None
    return (now_in_convention(convention) - moment).total_seconds()


def format_timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def shift(text: str, seconds: float) -> str | None:
    moment = parse_timestamp(text)
    return None if moment is None else format_timestamp(moment + timedelta(seconds=seconds))


def convention_label(convention: str) -> str:
    return "UTC" if convention == "utc" else "local time of the workflow's host"
