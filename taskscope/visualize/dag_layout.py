"""Layered layout for a dependency graph: x is the longest path from a source, y orders each
layer by the mean position of its parents so edges cross less. Linear in nodes + edges."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Hashable, Iterable


def layered_positions(
    nodes: Iterable[Hashable], edges: Iterable[tuple[Hashable, Hashable]]
) -> dict[Hashable, tuple[float, float]]:
    order = list(dict.fromkeys(nodes))
    present = set(order)
    children: dict[Hashable, list[Hashable]] = defaultdict(list)
    parents: dict[Hashable, list[Hashable]] = defaultdict(list)
    indegree = dict.fromkeys(order, 0)
    for source, target in edges:
        if source in present and target in present and source != target:
            children[source].append(target)
            parents[target].append(source)
            indegree[target] += 1
    layer = dict.fromkeys(order, 0)
    queue = deque(n for n in order if indegree[n] == 0)
    seen = 0
    while queue:
        node = queue.popleft()
        seen += 1
        for child in children[node]:
            layer[child] = max(layer[child], layer[node] + 1)
            indegree[child] -= 1
            if indegree[child] == 0:
                queue.append(child)
    if seen < len(order):  # a cycle (possible between apps): put the rest after everything
        deepest = max(layer.values(), default=0) + 1
        for n in order:
            if indegree[n] > 0:
                layer[n] = deepest
    by_layer: dict[int, list[Hashable]] = defaultdict(list)
    for n in order:
        by_layer[layer[n]].append(n)
    y: dict[Hashable, float] = {}
    for depth in sorted(by_layer):
        members = by_layer[depth]
        first_order = {n: i - (len(members) - 1) / 2 for i, n in enumerate(members)}

        def barycentre(n: Hashable, first_order: dict[Hashable, float] = first_order) -> float:
            placed = [y[p] for p in parents[n] if p in y]
            return sum(placed) / len(placed) if placed else first_order[n]

        members.sort(key=barycentre)
        offset = (len(members) - 1) / 2
        for index, n in enumerate(members):
            y[n] = index - offset
    return {n: (float(layer[n]), y[n]) for n in order}
