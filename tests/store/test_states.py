"""One home for the task-state vocabulary: the kernel, the writer, the queries and the pages
agree because they use ``taskscope.store.states``."""

from __future__ import annotations

import re
from pathlib import Path

from taskscope.dataflow import states as kernel_states
from taskscope.store import states, write_batch, writer
from taskscope.visualize import colors

PACKAGE = Path(__file__).resolve().parents[2] / "taskscope"


def test_kernel_enum_has_exactly_the_vocabulary_and_parsl_numbers() -> None:
    assert {s.name for s in kernel_states.States} == set(states.LIFECYCLE_ORDER)
    # Parsl's numbers (parsl/dataflow/states.py): code ported from Parsl compares them.
    numbers = {s.name: int(s) for s in kernel_states.States}
    assert numbers["pending"] == 0 and numbers["exec_done"] == 3 and numbers["failed"] == 4
    assert numbers["dep_fail"] == 5 and numbers["memo_done"] == 9


def test_kernel_and_writer_use_the_same_final_sets() -> None:
    assert {s.name for s in kernel_states.FINAL_STATES} == states.FINAL_STATES
    assert {s.name for s in kernel_states.FINAL_FAILURE_STATES} == states.FAILED_FINAL_STATES
    assert write_batch.FINAL_STATES is states.FINAL_STATES
    assert states.FINAL_STATES == states.FAILED_FINAL_STATES | states.SUCCEEDED_FINAL_STATES
    assert states.FINAL_ORDER == ("exec_done", "memo_done", "failed", "dep_fail")
    # Parsl's workflow counts: a memoized or dep_fail task is in neither.
    assert set(writer.COMPLETED_STATES) == {"exec_done"}
    assert set(writer.FAILED_STATES) == {"failed"}


def test_every_state_and_run_status_has_a_colour() -> None:
    assert set(states.STATE_COLORS) == set(states.LIFECYCLE_ORDER)
    assert set(states.RUN_STATUS_COLORS) == set(states.RUN_STATUSES)
    assert colors.state_color("no-such-state") == states.UNKNOWN_STATE_COLOR
    assert colors.STATE_COLORS is states.STATE_COLORS


def test_no_module_spells_the_final_set_itself() -> None:
    # The four final names written together (in any order) outside states.py is a second home.
    names = "exec_done|memo_done|failed|dep_fail"
    quoted = rf"""["']({names})["']"""
    literal = re.compile(rf"{quoted}\s*,\s*{quoted}\s*,\s*{quoted}\s*,\s*{quoted}")
    offenders = []
    for path in PACKAGE.rglob("*"):
        if path.suffix not in (".py", ".html") or path.name == "states.py":
            continue
        for match in literal.finditer(path.read_text()):
            if len(set(match.groups())) == 4:
                offenders.append(f"{path.relative_to(PACKAGE)}: {match.group(0)}")
    assert offenders == []
