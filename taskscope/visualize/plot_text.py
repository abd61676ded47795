"""Text from the database drawn by Plotly as text, never as markup.

Plotly.js renders a subset of HTML in every label it draws (trace names, tick labels,
hover text, titles, annotations): `<a href=...>` becomes a clickable link, `<b>` bold. App
names, task labels and run names come from the monitoring database, which anyone who could
write to it controls. So every string of a figure is entity-escaped before it leaves the
server (Plotly decodes `&lt;` back to `<` when it draws), except the templates the dashboard
writes itself, whose `%{...}` placeholders are filled from the escaped values, the labels it
writes with `markup()` (its own line breaks, the values in them escaped), and the relative
links our own script follows on click. Text past MAX_LABEL characters is cut.
"""

from __future__ import annotations

from typing import Any

OWN_MARKUP_KEYS = frozenset({"hovertemplate", "texttemplate"})
LINK_KEYS = frozenset({"customdata"})  # relative URLs, quoted when built; never drawn


# No label is read past this; a 1 MB app name on 200 Gantt rows made a 330 MB page.
MAX_LABEL = 2000


def plain(text: str) -> str:
    if len(text) > MAX_LABEL:
        text = f"{text[:MAX_LABEL]}… [{len(text) - MAX_LABEL:,} more characters]"
    if "<" not in text and ">" not in text and "&" not in text:
        return text
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Markup(str):
    """A label the dashboard wrote in Plotly's markup, every value in it escaped: drawn as is."""


def markup(template: str, *values: object) -> Markup:
    """`template` (``{}`` placeholders, our own ``<br>`` between them) filled with `values`
    escaped: a hover label of several lines. Escaped whole, the line breaks showed as
    ``<br>`` text in every DAG and task-stream tooltip."""
    return Markup(template.format(*(plain(str(value)) for value in values)))


_NUMBERS = frozenset({int, float, bool, type(None)})


def _walk(value: Any) -> Any:
    if isinstance(value, Markup):
        return value
    if isinstance(value, str):
        return plain(value)
    if isinstance(value, dict):
        return {
            key: item if key in OWN_MARKUP_KEYS or key in LINK_KEYS else _walk(item)
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        # A figure's long lists are of numbers, or of a few labels repeated (a lane per bar):
        # tested by type in one pass, and each distinct label escaped once.
        kinds = set(map(type, value))
        if kinds <= _NUMBERS or kinds == {Markup}:
            return list(value)
        if kinds == {str}:
            escaped = {text: plain(text) for text in set(value)}
            return [escaped[text] for text in value]
        return [_walk(item) for item in value]
    return value


def plain_figures(figures: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """`figures` with every string Plotly would draw escaped."""
    return {name: _walk(figure) for name, figure in figures.items()}
