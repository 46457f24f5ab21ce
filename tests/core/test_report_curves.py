"""Learning-curve bands of ``lbgap report`` with sparse evaluation (``eval.every`` > 1)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lbgap.report.make import _band  # noqa: E402
from lbgap.results.final import hold_final  # noqa: E402


def test_band_draws_the_evaluated_epochs_of_a_sparse_history():
    epochs = np.arange(1, 11)
    y = np.full((2, 10), np.nan)
    y[:, 1::3] = [[0.5, 0.6, 0.7], [0.7, 0.8, 0.9]]  # evaluated after epochs 2, 5, 8
    y[0, 9] = 0.75  # seed 0 stopped at epoch 10 and was evaluated there; seed 1 stopped at epoch 8
    fig, ax = plt.subplots()
    _band(ax, epochs, y, "arm", "tab:blue")
    (line,) = ax.lines
    np.testing.assert_array_equal(line.get_xdata(), [2, 5, 8, 10])
    # at epoch 10 seed 1 counts with its final value, 0.9
    np.testing.assert_allclose(line.get_ydata(), [0.6, 0.7, 0.8, (0.75 + 0.9) / 2])
    (band,) = ax.collections
    assert band.get_paths()[0].vertices[:, 0].min() == 2
    plt.close(fig)


def test_hold_final_carries_each_runs_last_value_and_keeps_gaps():
    y = np.array([[[1.0, np.nan, 2.0, np.nan, np.nan], [np.nan] * 5],
                  [[0.5, 0.6, np.nan, 0.7, np.nan], [3.0, np.nan, np.nan, np.nan, np.nan]]])
    held = hold_final(y)
    np.testing.assert_array_equal(held[0, 0], [1.0, np.nan, 2.0, 2.0, 2.0])  # the gap at 2 stays
    assert np.isnan(held[0, 1]).all()  # a run with no value stays empty
    np.testing.assert_array_equal(held[1, 0], [0.5, 0.6, np.nan, 0.7, 0.7])
    np.testing.assert_array_equal(held[1, 1], [3.0] * 5)
    assert np.isnan(y[0, 0, 3])  # the input is not changed
