"""Results: per-trial netCDF files and the combined ``results.nc``."""

from .combine import combine_grid, combine_search, open_trial, study_attrs
from .final import final_values
from .gridsearch import combine_grid_search
from .measured import merge_measured, save_measured
from .trialfile import (
    DamagedWeightsError,
    load_weights,
    save_weights,
    trial_dataset,
    weight_epochs,
    weights_dir,
    write_atomic,
)

__all__ = [
    "combine_grid",
    "combine_search",
    "combine_grid_search",
    "final_values",
    "merge_measured",
    "save_measured",
    "open_trial",
    "study_attrs",
    "save_weights",
    "load_weights",
    "weight_epochs",
    "DamagedWeightsError",
    "trial_dataset",
    "weights_dir",
    "write_atomic",
]
