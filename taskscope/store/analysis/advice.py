"""One piece of advice, and the margins every piece of advice shares.

Advice is a setting to change, its current and suggested values, and the evidence it rests
on; `efficiency` (what each worker had) and `requests` (what each task asked for) make it.
"""

from __future__ import annotations

from dataclasses import dataclass

OVERUSED_CPU = 1.2  # tries keeping more than 1.2 x their cores busy compete for cores
MEMORY_MARGIN = 0.2  # a memory suggestion is the p99 peak + 20%
WALLTIME_MARGIN = 0.25  # a time suggestion is the p99 run time of successful tries + 25%
MIN_TRIES_FOR_ADVICE = 5


@dataclass(frozen=True)
class Advice:
    app: str | None  # None: the whole run
    setting: str  # what to change: "max_workers_per_node", "walltime", ...
    current: str | None
    suggested: str
    evidence: str

    @property
    def text(self) -> str:
        change = f"{self.current} → {self.suggested}" if self.current else self.suggested
        target = f" of `{self.app}`" if self.app else ""
        return f"`{self.setting}`{target} {change}: {self.evidence}"


def gib(value: float | None) -> str:
    """Bytes as GiB (from 1 GiB) or MiB, for advice sentences."""
    if value is None:
        return "?"
    if value >= 2**30:
        return f"{value / 2**30:.1f} GiB"
    return f"{value / 2**20:.0f} MiB"
