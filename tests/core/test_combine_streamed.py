"""Combining trial files one at a time (``combine_grid``) writes the same ``results.nc`` as the
one-call ``xarray.combine_nested`` (``combine_grid_in_memory``): variables, values, dtypes,
attributes, and the attributes netCDF stores (docs/reliability.md, "Combining thousands of trials")."""

from __future__ import annotations

from types import SimpleNamespace

import netCDF4
import numpy as np
import pytest
import xarray as xr

from lbgap.results.attrs import variable_attrs
from lbgap.results.combine import combine_grid, combine_grid_in_memory
from lbgap.results.trialfile import coord_value, write_atomic
from lbgap.spec.load import cell_key


def _cells(variants, grid, seeds):
    cells = []
    for v in variants:
        for g in grid:
            point = (("lr", g),)
            for s in seeds:
                cells.append(SimpleNamespace(variant=v, point=point, seed=s, key=cell_key(v, point, s)))
    return cells


def _trial(cell, epochs, rng, extra=None, attrs=None):
    data = {
        "test_accuracy": xr.Variable(("epoch",), rng.random(epochs), attrs=variable_attrs("test_accuracy")),
        "step": xr.Variable(("epoch",), np.arange(epochs, dtype=np.int64) * 10, attrs={"units": "1"}),
        "wall_time": xr.Variable((), float(rng.random()), attrs=variable_attrs("wall_time")),
        "status": xr.Variable((), "completed", attrs=variable_attrs("status")),
        "status_reason": xr.Variable((), "", attrs=variable_attrs("status_reason")),
        "n_params": xr.Variable((), np.int64(1234), attrs={"units": "1", "source": "toy"}),
        **(extra or {}),
    }
    ds = xr.Dataset(data, coords={"epoch": ("epoch", np.arange(1, epochs + 1), variable_attrs("epoch"))})
    for name, value in {"variant": cell.variant, **dict(cell.point), "seed": cell.seed}.items():
        ds = ds.assign_coords({name: coord_value(value)})
        ds[name].attrs.update(variable_attrs(name))
    ds.attrs.update({"lbgap_trial_key": cell.key, "data_description": "toy", **(attrs or {})})
    return ds


def _netcdf_layout(path):
    with netCDF4.Dataset(path) as nc:
        return (
            {k: str(nc.getncattr(k)) for k in nc.ncattrs()},
            {
                name: (var.dimensions, str(var.dtype), {k: str(var.getncattr(k)) for k in var.ncattrs()},
                       var.filters(), var.chunking())
                for name, var in nc.variables.items()
            },
            list(nc.variables),
        )


def _both(tmp_path, cells, shape, streamed=True, **kw):
    import lbgap.results.combine as combine_mod

    paths = {c.key: tmp_path / "trials" / f"{c.key}.nc" for c in cells}
    attrs = {"lbgap_study": "s", "history": "now: lbgap study run s.yaml"}
    dims = ["variant", "lr", "seed"]
    calls = []
    real = combine_mod.combine_grid_in_memory
    with pytest.MonkeyPatch.context() as m:
        m.setattr(combine_mod, "combine_grid_in_memory", lambda *a, **k: calls.append(1) or real(*a, **k))
        new = combine_grid(paths, cells, dims, shape, attrs, tmp_path / "new.nc", **kw)
    assert calls == ([] if streamed else [1])
    old = combine_grid_in_memory(paths, cells, dims, shape, attrs, tmp_path / "old.nc", **kw)
    xr.testing.assert_identical(new, old)
    with xr.open_dataset(tmp_path / "new.nc") as a, xr.open_dataset(tmp_path / "old.nc") as b:
        xr.testing.assert_identical(a.load(), b.load())
        assert {k: a[k].dtype for k in a.variables} == {k: b[k].dtype for k in b.variables}
    assert _netcdf_layout(tmp_path / "new.nc") == _netcdf_layout(tmp_path / "old.nc")
    return new


@pytest.mark.parametrize("grid", [[0.1, 0.5], ["a", "bb"], [1, 2]])
def test_ragged_missing_and_failed_trials_combine_as_before(tmp_path, grid):
    rng = np.random.default_rng(0)
    cells = _cells(["sb", "lb_ra"], grid, [0, 1, 2])
    for i, cell in enumerate(cells):
        if i in (3, 7):
            continue  # 3: missing, 7: failed
        epochs = 7 if cell.variant.endswith("_ra") else 4  # regime adaptation trains longer
        extra = {"val_loss": xr.Variable(("epoch",), rng.random(epochs), attrs={"units": "1"})} if i % 2 else {}
        attrs = {"device": f"cuda:{i % 2}"} if i % 3 else {}  # a conflicting attribute is dropped
        ds = _trial(cell, epochs, rng, extra, attrs)
        if i == 5:
            ds["status"] = xr.Variable((), "diverged", attrs=variable_attrs("status"))
            ds["status_reason"] = xr.Variable((), "training loss became nan in epoch 2", attrs=ds["status_reason"].attrs)
            ds["test_accuracy"].attrs["units"] = "fraction"  # conflicting variable attribute
        write_atomic(ds, tmp_path / "trials" / f"{cell.key}.nc")
    new = _both(tmp_path, cells, (2, 2, 3), failed={cells[7].key: "RuntimeError: out of memory"})
    assert new.sizes == {"variant": 2, "lr": 2, "seed": 3, "epoch": 7}
    assert str(new["status"].values.ravel()[3]) == "missing" and str(new["status"].values.ravel()[7]) == "failed"
    assert new["step"].dtype == np.float64  # NaN where a trial has fewer epochs
    # the conflict is dropped within its group along the first dimension only, as xarray does
    assert new["test_accuracy"].attrs["units"] == "1" and "device" not in new.attrs


def test_a_complete_grid_keeps_integer_variables(tmp_path):
    rng = np.random.default_rng(1)
    cells = _cells(["sb"], [0.1], [0, 1])
    for cell in cells:
        write_atomic(_trial(cell, 3, rng), tmp_path / "trials" / f"{cell.key}.nc")
    new = _both(tmp_path, cells, (1, 1, 2))
    assert new["step"].dtype == np.int64 and new["n_params"].dtype == np.int64


def test_trials_with_other_dimensions_are_combined_as_before(tmp_path):
    """A metric's per-layer array: combined by the one-call concatenation, the same file."""
    rng = np.random.default_rng(2)
    cells = _cells(["sb", "lb"], [0.1], [0])
    for i, cell in enumerate(cells):
        layers = 2 + i
        norms = xr.DataArray(rng.random((3, layers)), dims=("epoch", "layer"), coords={"layer": np.arange(layers)})
        ds = _trial(cell, 3, rng).assign(layer_norm=norms)
        write_atomic(ds, tmp_path / "trials" / f"{cell.key}.nc")
    new = _both(tmp_path, cells, (2, 1, 1), streamed=False)
    assert new.sizes["layer"] == 3
