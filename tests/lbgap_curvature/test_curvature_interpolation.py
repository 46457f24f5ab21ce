"""Parametric plot: exact end points, both tensor sets, both BatchNorm modes."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from curvature_helpers import make_data, make_mlp, split_batches

from lbgap_curvature.interpolation import (
    interpolated_buffer_names,
    interpolation_alphas,
    interpolation_curve,
    path_coefficients,
)
from lbgap_curvature.loss import EvalBatches, ModelObjective


def _pair():
    a = make_mlp(hidden=(9,), bn=True, seed=0, dtype=torch.float32)
    b = make_mlp(hidden=(9,), bn=True, seed=1, dtype=torch.float32)
    return a, b


def test_default_grid_holds_zero_and_one():
    alphas = interpolation_alphas()
    assert len(alphas) == 25 and alphas[0] == -1 and alphas[-1] == 2
    assert 0.0 in alphas and 1.0 in alphas
    for path in ("linear", "curved"):
        assert path_coefficients(0.0, path) == (1.0, 0.0)
        assert path_coefficients(1.0, path) == (0.0, 1.0)


@pytest.mark.parametrize("bn_mode", ["running", "batch"])
@pytest.mark.parametrize("path", ["linear", "curved"])
def test_end_points_bit_exact(bn_mode, path):
    data = make_data(n=45, dtype=torch.float32)
    a, b = _pair()
    batches = {"train": EvalBatches(*split_batches(data.train_x, data.train_y, 20))}
    curve = interpolation_curve(
        a, b.state_dict(), interpolation_alphas(), batches, F.cross_entropy, bn_mode=bn_mode, path=path
    )
    la = ModelObjective(a, batches["train"], F.cross_entropy, bn_mode=bn_mode).loss_and_accuracy()
    lb = ModelObjective(b, batches["train"], F.cross_entropy, bn_mode=bn_mode).loss_and_accuracy()
    i0, i1 = list(curve.alphas).index(0.0), list(curve.alphas).index(1.0)
    assert (curve.loss["train"][i0], curve.accuracy["train"][i0]) == la
    assert (curve.loss["train"][i1], curve.accuracy["train"][i1]) == lb
    assert np.all(np.isfinite(curve.loss["train"]))


def test_parameters_only_keeps_model_buffers():
    """'parameters' moves W, b, γ, β only: at α = 1 the running statistics are still model a's."""
    data = make_data(n=30, dtype=torch.float32)
    a, b = _pair()
    batches = {"test": EvalBatches([data.test_x], [data.test_y])}
    curve = interpolation_curve(
        a, b.state_dict(), np.array([1.0]), batches, F.cross_entropy, tensors="parameters"
    )
    hybrid = make_mlp(hidden=(9,), bn=True, seed=1, dtype=torch.float32)
    hybrid.load_state_dict({**b.state_dict(), **{k: v for k, v in a.state_dict().items() if "running" in k}})
    expected = ModelObjective(hybrid, batches["test"], F.cross_entropy).loss_and_accuracy()
    assert (curve.loss["test"][0], curve.accuracy["test"][0]) == expected
    assert interpolated_buffer_names(a, "parameters", "running") == []
    assert set(interpolated_buffer_names(a, "state", "running")) == {"1.running_mean", "1.running_var"}
    assert interpolated_buffer_names(a, "state", "batch") == []


def test_midpoint_matches_hand_built_model():
    data = make_data(n=30, dtype=torch.float32)
    a, b = _pair()
    mid = make_mlp(hidden=(9,), bn=True, dtype=torch.float32)
    sa, sb = a.state_dict(), b.state_dict()
    mid.load_state_dict({k: (0.5 * sa[k] + 0.5 * sb[k]) if sa[k].is_floating_point() else sa[k] for k in sa})
    batches = {"train": EvalBatches([data.train_x], [data.train_y])}
    curve = interpolation_curve(a, sb, np.array([0.5]), batches, F.cross_entropy)
    ref = ModelObjective(mid, batches["train"], F.cross_entropy).loss_and_accuracy()
    assert curve.loss["train"][0] == pytest.approx(ref[0], rel=1e-6)
    assert curve.accuracy["train"][0] == ref[1]
