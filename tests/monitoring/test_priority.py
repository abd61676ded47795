"""The writer's priority follows how far behind it is."""

from __future__ import annotations

from taskscope.monitoring.priority import WriterPriority, message_time
from taskscope.store.messages import TaskInfo, TryRun


def test_priority_rises_when_behind_and_drops_when_caught_up():
    calls: list[int] = []
    priority = WriterPriority(set_group_nice=lambda v: calls.append(v) or True)
    priority.observe(0.05)
    assert calls == [] and priority.low
    priority.observe(2.0)  # a reader would wait: normal priority
    assert calls == [0] and not priority.low
    priority.observe(0.3)  # still catching up: no flapping
    assert calls == [0]
    priority.observe(0.01)
    assert calls == [0, 19] and priority.low


def test_no_autogroups_keeps_trying_nothing_else():
    priority = WriterPriority(set_group_nice=lambda v: False)
    priority.observe(5.0)
    assert priority.low  # nothing changed, so it is still (process-)niced


def test_message_time_is_the_events_not_the_tasks_start():
    final_row = TaskInfo("r", 1, "f", False, "x", time_invoked=100.0, time_returned=500.0)
    assert message_time(final_row) == 500.0
    assert message_time(TryRun("r", 1, 0, "h", "0", 200.0)) == 200.0
    assert message_time(TryRun("r", 1, 0, "h", "0", 200.0, 201.0)) == 201.0
