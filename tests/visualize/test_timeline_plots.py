"""The aggregated task stream draws each lane's busy share of a column, apps stacked."""

from __future__ import annotations

from taskscope.store.timeline_query import RunSpan, StreamCell, TaskStream
from taskscope.visualize.timeline_plots import stream_plot


def test_a_columns_apps_are_stacked_from_its_start_and_capped_at_its_width():
    stream = TaskStream(
        RunSpan(1000.0, 1600.0),
        (0.0, 600.0),
        ["w1", "w2"],
        exact=False,
        cells=[
            StreamCell("w2", 1, "b", 50.0),
            StreamCell("w1", 0, "b", 100.0),
            StreamCell("w1", 0, "a", 150.0),
            StreamCell("w1", 1, "a", 500.0),  # more than the column: drawn as all of it
        ],
        column_seconds=300.0,
    )
    figure = stream_plot(stream)
    bars = {
        (t["name"], y, base, x, start)
        for t in figure["data"]
        for y, base, x, start in zip(t["y"], t["base"], t["x"], t["customdata"], strict=True)
    }
    assert bars == {
        ("a", "w1", 0.0, 150.0, 0.0),
        ("b", "w1", 150.0, 100.0, 0.0),
        ("a", "w1", 300.0, 300.0, 300.0),
        ("b", "w2", 300.0, 50.0, 300.0),
    }
    assert all("text" not in t and "%{customdata" in t["hovertemplate"] for t in figure["data"])
