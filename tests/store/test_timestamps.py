"""Stored timestamps parse to what they say (store/timestamps.py)."""

from __future__ import annotations


def test_the_fast_parse_gives_what_strptime_gives_for_both_stored_shapes():
    import random
    from datetime import datetime, timedelta

    from taskscope.store.timestamps import parse_timestamp

    rng = random.Random(7)
    base = datetime(2000, 1, 1)
    for _ in range(2000):
        moment = base + timedelta(seconds=rng.uniform(0, 1e9))
        if rng.random() < 0.3:
            moment = moment.replace(microsecond=0)  # Parsl writes str(datetime): no fraction
        text = str(moment)
        assert parse_timestamp(text) == datetime.strptime(
            text, "%Y-%m-%d %H:%M:%S.%f" if moment.microsecond else "%Y-%m-%d %H:%M:%S"
        )
    assert parse_timestamp("2026-13-04 03:19:06.123456") is None  # checked, not guessed
