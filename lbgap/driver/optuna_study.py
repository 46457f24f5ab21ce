"""The Optuna study behind a run: its name (``<study>-<spec hash, 12 hex digits>``), its
storage and what Optuna's own tools (optuna-dashboard) show of it."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import optuna

from ..spec.load import Study
from .storage import fail_stale_trials, is_embedded, make_storage

__all__ = ["open_optuna_study", "describe_optuna_study"]


def open_optuna_study(
    study: Study,
    out_dir: Path,
    storage_url: Optional[str],
    direction: str,
    *,
    fail_stale: bool = True,
    point: Optional[str] = None,
    **kw,
) -> optuna.Study:
    """Create or load the study's Optuna study (``<study>-<spec hash, 12 hex digits>``; with
    ``point``, the search of that grid point: ``<study>-<hash>-<point>``). With the embedded storage,
    the run that holds the folder (``fail_stale``) first fails the trials that a killed run left
    RUNNING; its workers, which share the storage with it, do not."""
    storage = make_storage(out_dir, storage_url)
    name = f"{study.name}-{study.spec_hash[:12]}"
    ostudy = optuna.create_study(
        study_name=name if point is None else f"{name}-{point}",
        storage=storage,
        direction=direction,
        load_if_exists=True,
        **kw,
    )
    if fail_stale and is_embedded(storage_url):
        fail_stale_trials(ostudy)
    if fail_stale:
        describe_optuna_study(study, ostudy, point)
    return ostudy


def describe_optuna_study(study: Study, ostudy: optuna.Study, point: Optional[str] = None) -> None:
    """What optuna-dashboard and Optuna's own tools show of the study: the objective's name, the
    spec hash and lbgap's version (written once, by the run that holds the folder)."""
    from .. import __version__

    search = study.search
    objective = "test_accuracy" if search is None else search.objective
    attrs = {"lbgap_study": study.name, "spec_sha256": study.spec_hash, "lbgap_version": __version__}
    if point is not None:
        attrs["grid_point"] = point
    if ostudy.metric_names != [objective]:
        with warnings.catch_warnings():  # experimental in Optuna 4, and what the dashboard reads
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            ostudy.set_metric_names([objective])
    for name, value in attrs.items():
        if ostudy.user_attrs.get(name) != value:
            ostudy.set_user_attr(name, value)

