"""What a bounded task DAG draws: the chosen tasks, and a fair share of the tasks they list."""

from __future__ import annotations

from storehelp import workflow_start

from taskscope.store.graph_query import task_graph
from taskscope.store.messages import TaskInfo, WorkflowEnd

T0 = 1_700_000_000.0
INPUTS = 10  # each gather lists ten no-op tasks of its own


def task(run_id: str, task_id: int, app: str, depends: list[int]) -> TaskInfo:
    return TaskInfo(
        run_id, task_id, app, False, "htex", T0 + task_id, depends=depends, time_returned=T0 + 50
    )


def write_gathers(writer, run_id: str, gathers: int, shared: int | None = None) -> None:
    """`gathers` gather tasks after INPUTS no-ops each; with `shared`, every gather also lists
    no-op `shared`."""
    noops = gathers * INPUTS
    messages = [workflow_start(run_id, T0)]
    messages += [task(run_id, i, "noop", []) for i in range(noops)]
    for g in range(gathers):
        own = list(range(g * INPUTS, (g + 1) * INPUTS))
        extra = [shared] if shared is not None and shared not in own else []
        messages.append(task(run_id, noops + g, "gather", own + extra))
    messages.append(WorkflowEnd(run_id, T0 + 60, "completed", noops + gathers, 0))
    writer.write(messages)
    writer.commit()


def test_every_chosen_task_gets_its_share_of_the_tasks_it_depends_on(writer, run_id):
    write_gathers(writer, run_id, gathers=3)
    # 3 gathers chosen, room for 2 x 3 - 3 = 3 more: one input each, not three of the first's.
    graph = task_graph(writer.conn, run_id, app="gather", limit=3)
    drawn = {n.task_id for n in graph.nodes}
    assert drawn == {30, 31, 32, 0, 10, 20}
    assert sorted((e.source, e.target) for e in graph.edges) == [(0, 30), (10, 31), (20, 32)]
    assert graph.listed_links == 3 * INPUTS and graph.total_tasks == 33


def test_shares_grow_with_the_room_and_every_edge_between_drawn_tasks_is_drawn(writer, run_id):
    write_gathers(writer, run_id, gathers=3, shared=5)
    graph = task_graph(writer.conn, run_id, app="gather", limit=6)  # room for 9: three each
    drawn = {n.task_id for n in graph.nodes}
    assert drawn == {30, 31, 32, 0, 1, 2, 10, 11, 12, 20, 21, 22}
    edges = {(e.source, e.target) for e in graph.edges}
    assert {(s, t) for s in drawn for t in drawn if (s, t) in edges} == edges
    assert len(edges) == 9  # no-op 5, listed by all three, is not drawn: neither are its edges
    graph = task_graph(writer.conn, run_id, app="gather", limit=12)  # room for 21: seven each
    edges = {(e.source, e.target) for e in graph.edges}
    # 5 is among the first's seven, and the others' last: drawn, with an edge to each gather
    assert {(5, 30), (5, 31), (5, 32)} <= edges
    assert graph.listed_links == 3 * INPUTS + 2


def test_a_whole_small_run_is_drawn_whole(writer, run_id):
    write_gathers(writer, run_id, gathers=2)
    graph = task_graph(writer.conn, run_id)
    assert len(graph.nodes) == 22 and len(graph.edges) == 2 * INPUTS == graph.listed_links
