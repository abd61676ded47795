"""The read-side queries under the name Parsl users expect (defined in taskscope.store.query)."""

from taskscope.store.query import *  # noqa: F403 - the whole module, under Parsl's name
