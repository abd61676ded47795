"""Which of two messages wins for a column: one rule per column, stated once.

The writer folds everything a batch says about one row in Python (one upsert per row rather
than one per message), then the upsert folds that into the stored row in SQL. The two folds
must agree, or a row would depend on where the batches happened to be cut; so both are made
here from one table. Each column of a ``MergedTable`` names its ``Rule``; each rule is written
once per language (``_SQL`` and ``MergedTable.fold``), and the upsert's text is generated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Rule(Enum):
    KEEP = "the first message's value; never updated"
    FIRST_KNOWN = "the first value that is not None"
    LATEST_KNOWN = "the latest value that is not None"
    LARGEST = "the largest value (never None)"


# The upsert's update of a column for each rule, as (function, arguments): ``stored`` is the
# row's value, ``new`` the batch's. KEEP columns are left out of the update.
_SQL = {
    Rule.FIRST_KNOWN: ("COALESCE", ("stored", "new")),
    Rule.LATEST_KNOWN: ("COALESCE", ("new", "stored")),
    Rule.LARGEST: ("MAX", ("stored", "new")),
}


@dataclass(frozen=True)
class Column:
    name: str
    rule: Rule = Rule.KEEP
    # A NOT NULL column stores this until a message knows its value (which then replaces it).
    if_unknown: str | None = None
    # A second source, used only while neither the row nor the batch knows the column: its
    # slot follows the table's columns in a batch's row and keeps its first known value.
    fallback: bool = False


@dataclass(frozen=True)
class MergedTable:
    """A table whose rows are upserted; a batch's row is a list, the columns in order, then
    one slot per fallback (see ``Column.fallback``)."""

    table: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]  # every column, the key's included, in the row's order
    # The column indices of each rule (fallback slots are FIRST_KNOWN), for ``fold``.
    _latest: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _first: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _largest: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for c in self.columns:
            if c.fallback and _SQL.get(c.rule, ("",))[0] != "COALESCE":
                raise ValueError(f"{c.name}: a fallback needs a COALESCE rule, not {c.rule}")
        by_rule = {rule: [i for i, c in enumerate(self.columns) if c.rule is rule] for rule in Rule}
        # A fallback slot keeps its first known value: while the column is unknown, the first
        # fallback stored is the column's value, and a later one would not replace it.
        by_rule[Rule.FIRST_KNOWN] += [len(self.columns) + i for i in range(len(self.fallbacks))]
        object.__setattr__(self, "_latest", tuple(by_rule[Rule.LATEST_KNOWN]))
        object.__setattr__(self, "_first", tuple(by_rule[Rule.FIRST_KNOWN]))
        object.__setattr__(self, "_largest", tuple(by_rule[Rule.LARGEST]))

    @property
    def fallbacks(self) -> tuple[int, ...]:
        """Indices of the columns that have a fallback slot, in the slots' order."""
        return tuple(i for i, c in enumerate(self.columns) if c.fallback)

    def fold(self, held: list[Any], new: Sequence[Any]) -> None:
        """Apply ``new`` (a later message's row) to ``held``, in place, by each column's rule."""
        for i in self._latest:
            value = new[i]
            if value is not None:
                held[i] = value
        for i in self._first:
            if held[i] is None:
                held[i] = new[i]
        for i in self._largest:
            if new[i] > held[i]:
                held[i] = new[i]

    def upsert_sql(self) -> str:
        """``INSERT ... ON CONFLICT DO UPDATE`` taking a batch's row as its parameters."""
        fallback_param = {c: len(self.columns) + 1 + n for n, c in enumerate(self.fallbacks)}
        values, updates = [], []
        for i, column in enumerate(self.columns):
            new = f"?{i + 1}"
            value = new
            if i in fallback_param:
                value = f"COALESCE({new}, ?{fallback_param[i]})"
            if column.if_unknown is not None:
                value = f"COALESCE({new}, '{column.if_unknown}')"
            values.append(value)
            if column.rule is Rule.KEEP:
                continue
            function, order = _SQL[column.rule]
            terms = {"stored": f"{self.table}.{column.name}", "new": new}
            args = [terms[name] for name in order]
            if i in fallback_param:
                args.append(f"?{fallback_param[i]}")  # last: only when nothing else is known
            updates.append(f"{column.name} = {function}({', '.join(args)})")
        return (
            f"INSERT INTO {self.table} ({', '.join(c.name for c in self.columns)})\n"
            f"VALUES ({', '.join(values)})\n"
            f"ON CONFLICT ({', '.join(self.key)}) DO UPDATE SET\n    " + ",\n    ".join(updates)
        )
