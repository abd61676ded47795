"""The writer keeps each task's latest state in taskscope_task_state, whatever the arrival order."""

from storehelp import workflow_start

from taskscope.store.messages import TaskStatus

T0 = 1_700_000_000.0


def states(writer, run_id):
    return dict(
        writer.conn.execute(
            "SELECT task_id, state FROM taskscope_task_state WHERE run_id = ?", (run_id,)
        ).fetchall()
    )


def test_latest_state_per_task(writer, run_id):
    writer.write([workflow_start(run_id, T0)])
    writer.write(
        [
            TaskStatus(run_id, 0, 0, "pending", T0 + 1),
            TaskStatus(run_id, 0, 0, "launched", T0 + 2),
            TaskStatus(run_id, 1, 0, "pending", T0 + 1),
        ]
    )
    writer.commit()
    assert states(writer, run_id) == {0: "launched", 1: "pending"}
    writer.write([TaskStatus(run_id, 0, 0, "exec_done", T0 + 4)])
    writer.commit()
    assert states(writer, run_id) == {0: "exec_done", 1: "pending"}


def test_a_late_batch_with_an_older_transition_does_not_win(writer, run_id):
    writer.write([workflow_start(run_id, T0)])
    writer.write([TaskStatus(run_id, 0, 1, "exec_done", T0 + 9)])
    writer.commit()
    # The worker's running_ended of the same try arrives after the kernel's final state.
    writer.write([TaskStatus(run_id, 0, 1, "running_ended", T0 + 8)])
    writer.commit()
    assert states(writer, run_id) == {0: "exec_done"}
    row = writer.conn.execute(
        "SELECT try_id FROM taskscope_task_state WHERE run_id = ? AND task_id = 0", (run_id,)
    ).fetchone()
    assert row == (1,)
