"""The rollups' shortcuts: a second's minute is the minute of every instant in it, and the
record of counted transitions."""

import math
import random

import pytest

from taskscope.store.state_flow import SeenTransitions
from taskscope.store.states import LIFECYCLE_ORDER
from taskscope.store.worker_rollup import BUCKET_SECONDS, MINUTE_SECONDS, TEN_MINUTE_SECONDS


@pytest.mark.parametrize("width", [MINUTE_SECONDS, TEN_MINUTE_SECONDS])
def test_a_seconds_minute_is_the_minute_of_every_instant_in_it(width):
    """The writer counts a transition, or a try within one second, in its second floor(ts)
    and takes that second's minute (ten minutes) as second // 60 (600): that must be
    floor(ts / 60.0), the bucket of the float division, for every float, most of all the last
    floats before a minute begins (a quotient rounded up to the next integer would put it a
    minute late). It holds because the division's error is below the distance to the next
    integer for any width that is not a power of two (those divide exactly)."""
    assert BUCKET_SECONDS == 1.0
    rng = random.Random(5)
    instants = []
    for _ in range(20_000):
        boundary = width * rng.randrange(-(10**8), 10**8)  # also before 1970
        below = boundary
        for _ in range(4):
            below = math.nextafter(below, -math.inf)
            instants += [below, math.nextafter(boundary, math.inf)]
        instants.append(boundary)
        instants.append(rng.uniform(-1e10, 1e10))
    instants += [math.nextafter(width * k, -math.inf) for k in range(1, 10_000)]
    for ts in instants:
        assert math.floor(ts) // int(width) == math.floor(ts / width), ts


def test_a_transition_is_seen_once_and_only_its_own():
    seen = SeenTransitions()
    keys = [(task, try_id, state) for task in (0, 3, 70) for try_id in (0, 1, 4, 9)
            for state in LIFECYCLE_ORDER[:4] + ("a state of a later version",)]  # fmt: skip
    for n, key in enumerate(keys):
        assert not seen.has(*key), key
        seen.update([key])
        assert all(seen.has(*k) for k in keys[: n + 1])
        assert not any(seen.has(*k) for k in keys[n + 1 :])


def test_a_transition_kept_aside_for_a_far_task_stays_seen_once_the_array_reaches_it():
    """A task id far beyond the others is kept in the set (the array must not grow to it);
    once nearer tasks have grown the array past it, it is still seen."""
    seen = SeenTransitions()
    far = 100_000
    seen.update([(far, 0, "running")])
    seen.update([(task, 0, "pending") for task in range(0, far + 10, 50_000)])
    assert seen.has(far, 0, "running")
    assert not seen.has(far, 0, "launched")
    assert not seen.has(-1, 0, "running")
    seen.update([(-1, 0, "running")])
    assert seen.has(-1, 0, "running")


def test_an_ended_try_kept_aside_for_a_far_task_stays_counted_once_the_array_reaches_it():
    """The same for the record of tries whose end was counted in the worker occupancy: a
    report of that try again (a TryRun sent twice) must not be counted a second time."""
    from taskscope.store.worker_rollup import EndedTries

    ended = EndedTries()
    far = 100_000
    ended.add((far, 0))
    for task in range(0, far + 10, 50_000):
        ended.add((task, 0))
    assert (far, 0) in ended
    assert (far, 1) not in ended
    assert (far - 1, 0) not in ended
