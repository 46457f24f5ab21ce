"""Learning-curve bands of ``lbgap report`` with sparse evaluation (``eval.every`` > 1)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lbgap.report.make import _band  # noqa: E402


def test_band_draws_the_evaluated_epochs_of_a_sparse_history():
    epochs = np.arange(1, 11)
    y = np.full((2, 10), np.nan)
    y[:, 1::3] = [[0.5, 0.6, 0.7], [0.7, 0.8, 0.9]]  # evaluated after epochs 2, 5, 8
    y[0, 9] = 0.75  # one seed stopped at epoch 10 and was evaluated there
    fig, ax = plt.subplots()
    _band(ax, epochs, y, "arm", "tab:blue")
    (line,) = ax.lines
    np.testing.assert_array_equal(line.get_xdata(), [2, 5, 8, 10])
    np.testing.assert_allclose(line.get_ydata(), [0.6, 0.7, 0.8, 0.75])
    (band,) = ax.collections
    assert band.get_paths()[0].vertices[:, 0].min() == 2
    plt.close(fig)
