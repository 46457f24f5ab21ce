"""Rich progress bars for ``lbgap study run``: trials, epochs and ETA.

One bar for the study, and one per running trial: with ``--jobs N`` up to N trials
run at once, each in its own worker.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class RichReporter:
    """Implements :class:`lbgap.driver.progress.Reporter` with rich."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.study_task = None
        self.trial_tasks: dict[str, Any] = {}  # key → task of each running trial
        self.trial_totals: dict[str, int] = {}  # key → epochs its bar counts

    def __enter__(self) -> RichReporter:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def study_start(self, total: int, done: int) -> None:
        self.study_task = self.progress.add_task("trials", total=total, completed=done, info="")

    def trial_start(self, key: str, epochs: int, steps_per_epoch: int) -> None:
        self._remove(key)
        self.trial_tasks[key] = self.progress.add_task(f"  {key}", total=epochs, info="")
        self.trial_totals[key] = epochs

    def _remove(self, key: str) -> None:
        self.trial_totals.pop(key, None)
        task = self.trial_tasks.pop(key, None)
        if task is not None:
            self.progress.remove_task(task)

    def step(self, key: str, step: int) -> None:
        pass

    def epoch_end(self, key: str, epoch: int, record: dict[str, Any]) -> None:
        task_id = self.trial_tasks.get(key)
        if task_id is None:
            return
        acc = record.get("test_accuracy")
        info = f"test acc {acc:.3f}" if acc is not None and acc == acc else ""
        total = max(self.trial_totals.get(key, 0), epoch)
        self.trial_totals[key] = total
        self.progress.update(task_id, completed=epoch, total=total, info=info)

    def skipped(self, count: int) -> None:
        if self.study_task is not None and count > 0:
            self.progress.advance(self.study_task, count)

    def trial_end(self, key: str, status: str, summary: str) -> None:
        self._remove(key)
        if self.study_task is not None:
            self.progress.advance(self.study_task)
        style = {"completed": "green", "diverged": "red", "stopped": "yellow", "pruned": "yellow"}.get(status, "white")
        self.progress.console.print(f"[{style}]{status:9s}[/] {key}  {summary}")

    def trial_lost(self, key: str, reason: str) -> None:
        self._remove(key)
        self.progress.console.print(f"[red]{'lost':9s}[/] {key}  {reason}; the next run trains it again")
