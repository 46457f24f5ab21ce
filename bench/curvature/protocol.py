"""The timing protocol: warm-up, then round-robin repetitions; medians and ratios from the same run.

Every solver is called once per round, in the same order, so a change in the
load of a shared machine hits all of them alike; a solver's time is the median
of its timed calls, and a ratio divides two medians of the same run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Timed:
    """The seconds of each timed call of one solver, and what its last call returned."""

    seconds: list[float] = field(default_factory=list)
    result: Any = None

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def round_robin(
    calls: Mapping[str, Callable[[], Any]],
    repeats: int = 3,
    warmup: int = 1,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Timed]:
    """Call every entry of ``calls`` once per round, in their order: ``warmup`` untimed rounds, then ``repeats`` timed ones."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats} and {warmup}")
    out = {name: Timed() for name in calls}
    for _ in range(warmup):
        for name, fn in calls.items():
            out[name].result = fn()
    for _ in range(repeats):
        for name, fn in calls.items():
            start = clock()
            out[name].result = fn()
            out[name].seconds.append(clock() - start)
    return out


def ratios(timed: Mapping[str, Timed], ours: str) -> dict[str, float]:
    """Median time of every other entry divided by the median time of ``ours``."""
    base = timed[ours].median
    return {name: t.median / base for name, t in timed.items() if name != ours}
