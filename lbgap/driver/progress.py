"""Progress reporting interface between the driver and a user interface.

With ``--jobs N`` several trials run at once, one per worker process: the workers
send their events to the parent, which calls its reporter with them, so a reporter
sees interleaved events of different keys (one per running trial).
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["Reporter", "NullReporter"]


class Reporter(Protocol):
    def study_start(self, total: int, done: int) -> None: ...
    def trial_start(self, key: str, epochs: int, steps_per_epoch: int) -> None: ...
    def step(self, key: str, step: int) -> None: ...
    def epoch_end(self, key: str, epoch: int, record: dict[str, Any]) -> None: ...
    def trial_end(self, key: str, status: str, summary: str) -> None: ...
    def skipped(self, count: int) -> None:
        """``count`` planned trainings will not run (the other seeds of a pruned or failed search trial)."""

    def trial_lost(self, key: str, reason: str) -> None:
        """The trial ``key`` was started but will not end in this run (its worker died)."""


class NullReporter:
    def study_start(self, total: int, done: int) -> None:
        pass

    def trial_start(self, key: str, epochs: int, steps_per_epoch: int) -> None:
        pass

    def step(self, key: str, step: int) -> None:
        pass

    def epoch_end(self, key: str, epoch: int, record: dict[str, Any]) -> None:
        pass

    def trial_end(self, key: str, status: str, summary: str) -> None:
        pass

    def skipped(self, count: int) -> None:
        pass

    def trial_lost(self, key: str, reason: str) -> None:
        pass
