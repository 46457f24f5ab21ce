"""Progress reporting interface between the driver and a user interface."""

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
