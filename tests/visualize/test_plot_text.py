"""Every string a figure draws leaves the server escaped, in long lists as in short ones."""

from __future__ import annotations

from taskscope.visualize.plot_text import markup, plain_figures


def test_long_lists_of_labels_and_numbers_are_escaped_and_kept():
    lanes = ["<b>w1</b>", "w&2", "w3"] * 5000
    figure = {
        "data": [
            {
                "y": lanes,
                "x": [0.5, 1, None, True] * 3750,
                "text": ["<a href=x>t</a>", 3.0, None],
                "customdata": ["task/1", None],
                "hovertemplate": "%{y}<br>%{x}<extra></extra>",
                "name": "<i>app</i>",
            }
        ]
    }
    (trace,) = plain_figures({"f": figure})["f"]["data"]
    assert trace["y"][:3] == ["&lt;b&gt;w1&lt;/b&gt;", "w&amp;2", "w3"] and len(trace["y"]) == 15000
    assert trace["x"] == figure["data"][0]["x"]
    assert trace["text"] == ["&lt;a href=x&gt;t&lt;/a&gt;", 3.0, None]
    assert trace["customdata"] == ["task/1", None]  # our own links, never drawn
    assert trace["hovertemplate"] == "%{y}<br>%{x}<extra></extra>"  # our own markup
    assert trace["name"] == "&lt;i&gt;app&lt;/i&gt;"


def test_labels_written_with_markup_keep_their_line_breaks_and_escape_their_values():
    label = markup("app: {}<br>state: {}", "<b>x</b>", "done & dusted")
    figure = {"data": [{"text": [label, label], "hovertext": [label, "<br>"]}]}
    (trace,) = plain_figures({"f": figure})["f"]["data"]
    assert trace["text"] == ["app: &lt;b&gt;x&lt;/b&gt;<br>state: done &amp; dusted"] * 2
    # A plain string beside it is still escaped whole.
    assert trace["hovertext"] == [label, "&lt;br&gt;"]
