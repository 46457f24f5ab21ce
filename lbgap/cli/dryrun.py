"""Print a dry run's findings: one table row per probed configuration, then notes and errors."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..driver.dryrun import CheckResult, DryRunReport, format_bytes, metric_names

__all__ = ["print_dry_run", "format_duration"]


def format_duration(seconds: float) -> str:
    """``0.012 s``, ``3.4 s``, ``12 min``, ``3.5 h``, ``2.1 d``."""
    if seconds < 1:
        return f"{seconds:.3f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _bytes(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def _row(r: CheckResult, search: bool, cuda: bool) -> list[str]:
    trials = "" if search else str(r.check.trials)
    if r.result is None:
        return [escape(r.check.label), trials, *[""] * (9 if cuda else 8), f"[red]failed ({r.stage})[/]"]
    p = r.result
    capped = "≤ " if r.check.config.stopping else ""
    step = format_duration(p.step_seconds) + (" *" if p.steps == 1 else "")
    row = [
        escape(r.check.label),
        trials,
        f"{p.n_params:,}",
        f"{p.n_train:,} / {p.n_test:,}",
        f"{p.batch_size:,}",
        f"{p.steps_per_epoch:,}",
        step,
        f"{p.train_loss:.4g} / {p.eval_loss:.4g}",
        format_duration(p.epoch_seconds),
        f"{capped}{format_duration(p.trial_seconds)} ({p.epochs:,} ep)",
    ]
    if cuda:
        row.append(_bytes(p.peak_memory or 0))
    row.append("[green]ok[/]")
    return row


def print_dry_run(
    report: DryRunReport, out: Console, err: Console, threads: int, jobs: int = 1, out_dir: Optional[Path] = None
) -> None:
    """The table on ``out``; errors (one line each, the variants named) on ``err``. ``jobs``:
    the worker processes the run would use (``--jobs``), for the estimate of the whole study."""
    search = report.search_trials is not None
    cuda = report.device.type == "cuda"
    table = Table(title=f"dry run of {report.study.name} on {report.device}", title_justify="left")
    for col in (
        "variant",
        "trials",
        "parameters",
        "train / test",
        "batch",
        "steps/epoch",
        "s/step",
        "loss train / eval",
        "epoch ≈",
        "trial ≈",
    ):
        table.add_column(col, justify="left" if col in ("variant", "loss train / eval") else "right")
    if cuda:
        table.add_column("peak memory", justify="right")
    table.add_column("status")
    for r in report.results:
        table.add_row(*_row(r, search, cuda))
    out.print(table)

    where = f"{report.device}" + ("" if cuda else f", {threads} thread{'s' if threads > 1 else ''}")
    timing = "the first, a warm-up, not timed" if report.steps > 1 else "its time includes the warm-up"
    lines = [
        f"Estimates from {report.steps} training step(s) per row ({timing}) and one evaluation batch, "
        f"on this device ({where}). epoch ≈: the steps of an epoch and one evaluation; trial ≈: every "
        "epoch and evaluation of the trial."
    ]
    if report.steps > 1 and any(r.result is not None and r.result.steps == 1 for r in report.results):
        lines.append("*: an epoch of one step, whose time includes the warm-up.")
    if any(len(r.check.groups) > 1 for r in report.results):
        lines.append(
            "A row also stands for the grid points that differ from it only in floating-point settings "
            "(learning rates, momenta, scales); trials counts them all."
        )
    for size, factor in report.groups.values():
        lines.append(
            f"Vectorized groups of {size} trials: one stacked step takes {factor:.2f}× the time of "
            f"{size} single steps (timed here; --vectorize off trains one at a time)."
        )
    metrics = metric_names(report.study)
    if metrics:
        lines.append(
            f"Metrics ({', '.join(metrics)}) are not measured in a dry run and not in the estimates."
        )
    if any(r.ok and r.check.config.stopping for r in report.results):
        lines.append("≤: stopping rules may end a trial before its last epoch.")
    for r in report.results:
        lines.extend(f"{r.check.label}: {note}" for note in r.notes)
    total = report.study_seconds()
    if total is not None:
        low, high = total
        n = report.search_trials if search else sum(r.check.trials for r in report.results)
        span = format_duration(low) if low == high else f"{format_duration(low)} to {format_duration(high)}"
        capped = " at most" if any(r.check.config.stopping for r in report.results) else ""
        lines.append(f"Whole study ≈{capped} {span} for {n} trial(s) in one process (without metrics).")
        if jobs > 1 and not search:
            parallel = format_duration(report.study_seconds(jobs)[0])
            lines.append(
                f"With --jobs {jobs}: ≈{capped} {parallel}, {jobs} workers at {threads} thread"
                f"{'s' if threads > 1 else ''} each, each taking the next trial when free (if the machine "
                "has a core for every thread; a warm-started trial may wait for its source)."
            )
        elif jobs > 1:
            lines.append(f"--jobs {jobs} does not apply: a search trains one trial at a time.")
    disk = report.disk_estimate()
    if disk is not None:
        lines.append(
            f"Disk: about {format_bytes(disk.total)} written ({format_bytes(disk.weights)} in {disk.weights_files} "
            f"weights files, {format_bytes(disk.trial_files)} of trial files, {format_bytes(disk.results)} results.nc)."
        )
    for line in lines:
        out.print(escape(line), highlight=False)
    warning = report.disk_warning(out_dir) if out_dir is not None and disk is not None else None
    if warning:
        err.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)

    # one line per distinct error, naming every configuration that hit it
    grouped: dict[tuple[str, str], list[str]] = {}
    for r in report.failed:
        grouped.setdefault((r.stage or "", r.error or ""), []).append(r.check.label)
    for (stage, error), labels in grouped.items():
        what = {
            "build": "building failed",
            "train": "training failed",
            "evaluate": "evaluation failed",
            "config": "invalid configuration",
        }.get(stage, "failed")
        err.print(
            f"[red]error:[/] {escape(', '.join(labels))}: {what}: {escape(error)}",
            highlight=False,
            soft_wrap=True,
        )


def _finite(x):
    """JSON has no NaN or infinity: those are null."""
    import math

    return None if isinstance(x, float) and not math.isfinite(x) else x


def dry_run_json(report: DryRunReport, threads: int, jobs: int = 1) -> dict:
    """A dry run's findings as JSON-ready data (``lbgap study run --dry-run --json``): one entry
    per probed configuration, the estimate of the whole study (seconds; null if a probe failed),
    and the errors."""
    search = report.search_trials is not None
    rows = []
    for r in report.results:
        row = {
            "label": r.check.label,
            "variant": r.check.variant,
            "point": {dim: value for dim, value in r.check.point},
            "trials": None if search else r.check.trials,
            "ok": r.ok,
            "stage": r.stage,
            "error": r.error,
            "notes": list(r.notes),
        }
        p = r.result
        if p is not None:
            row.update({
                "parameters": p.n_params,
                "train_samples": p.n_train,
                "test_samples": p.n_test,
                "batch_size": p.batch_size,
                "epochs": p.epochs,
                "steps_per_epoch": p.steps_per_epoch,
                "step_seconds": _finite(p.step_seconds),
                "train_loss": _finite(p.train_loss),
                "eval_loss": _finite(p.eval_loss),
                "epoch_seconds": _finite(p.epoch_seconds),
                "trial_seconds": _finite(p.trial_seconds),
                "peak_memory_bytes": p.peak_memory,
                "stopping": bool(r.check.config.stopping),
            })
        rows.append(row)
    total = report.study_seconds()
    n = report.search_trials if search else sum(r.check.trials for r in report.results)
    return {
        "study": report.study.name,
        "spec_sha256": report.study.spec_hash,
        "device": str(report.device),
        "threads": threads,
        "jobs": jobs,
        "steps": report.steps,
        "trials": n,
        "ok": not report.failed,
        "study_seconds": None if total is None else {"low": total[0], "high": total[1]},
        "study_seconds_with_jobs": (
            report.study_seconds(jobs)[0] if total is not None and jobs > 1 and not search else None
        ),
        "vectorized_groups": [{"size": size, "step_ratio": factor} for size, factor in report.groups.values()],
        "disk_bytes": report.disk_bytes,
        "metrics_not_measured": metric_names(report.study),
        "results": rows,
    }
