"""digits (scikit-learn) and timit_frames (synthetic .npz files in the documented layout)."""

from __future__ import annotations

import fake_vision_files
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from lbgap_datasets.common import DatasetFilesMissing
from lbgap_datasets.digits import DigitsConfig, build_digits
from lbgap_datasets.timit import TimitFramesConfig, build_timit_frames


def test_digits_split_covers_the_data_once_and_is_stratified(cpu):
    data = build_digits(DigitsConfig(), seed=0, device=cpu)
    ref = load_digits()
    assert data.n_train + len(data.test_y) == 1797
    assert len(data.test_y) == int(np.ceil(0.25 * 1797))
    assert data.train_x.shape[1:] == (64,) and data.num_classes == 10
    assert 0.0 <= data.train_x.min() and data.train_x.max() <= 1.0
    # the (image, label) pairs are exactly scikit-learn's, each used once
    pairs = sorted(
        (tuple((x * 16).round().int().tolist()), int(y))
        for x, y in zip(
            torch.cat([data.train_x, data.test_x]), torch.cat([data.train_y, data.test_y]), strict=True
        )
    )
    assert pairs == sorted(
        (tuple(x.astype(int).tolist()), int(y)) for x, y in zip(ref.data, ref.target, strict=True)
    )
    # stratified: class proportions within one image of each other
    full = np.bincount(ref.target) / 1797
    test = torch.bincount(data.test_y, minlength=10).numpy()
    assert np.all(np.abs(test - full * len(data.test_y)) <= 1.0)


def test_digits_seeds_and_shape(cpu):
    a = build_digits(DigitsConfig(), seed=0, device=cpu)
    b = build_digits(DigitsConfig(), seed=5, device=cpu)
    assert torch.equal(a.train_x, b.train_x)
    c = build_digits(DigitsConfig(split_seed="trial"), seed=5, device=cpu)
    assert not torch.equal(a.train_y, c.train_y)
    img = build_digits(DigitsConfig(shape="image", test_fraction=0.5), seed=0, device=cpu)
    assert img.train_x.shape[1:] == (1, 8, 8) and abs(img.n_train - 898) <= 1


def test_timit_frames_load_from_the_documented_layout(tmp_path, cpu, monkeypatch):
    arrays = fake_vision_files.write_timit_frames(
        tmp_path / "timit" / "timit_frames.npz", speakers=np.arange(3)
    )
    monkeypatch.setenv("LBGAP_DATA", str(tmp_path))
    data = build_timit_frames(TimitFramesConfig(), seed=0, device=cpu)
    assert data.num_classes == 1973 and data.info.input_shape == (360,)
    torch.testing.assert_close(data.train_x, torch.from_numpy(arrays["train_x"]), rtol=0, atol=0)
    assert data.test_y.tolist() == arrays["test_y"].tolist() and data.test_y.dtype == torch.long


def test_timit_subset_and_standardize(tmp_path, cpu):
    path = tmp_path / "frames.npz"
    arrays = fake_vision_files.write_timit_frames(path, features=12, classes=7)
    cfg = TimitFramesConfig(path=str(path), num_features=12, num_classes=7, n_train=100, standardize=True)
    data = build_timit_frames(cfg, seed=0, device=cpu)
    train = torch.from_numpy(arrays["train_x"][:100])
    mean, std = train.mean(0), train.std(0)
    torch.testing.assert_close(data.train_x, (train - mean) / std, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        data.test_x, (torch.from_numpy(arrays["test_x"]) - mean) / std, atol=1e-5, rtol=0
    )
    assert "first 100 of 300" in data.description


def test_timit_missing_file_says_what_to_put_where(tmp_path, cpu):
    with pytest.raises(DatasetFilesMissing) as err:
        build_timit_frames(TimitFramesConfig(root=str(tmp_path)), seed=0, device=cpu)
    msg = str(err.value)
    assert str(tmp_path.resolve() / "timit" / "timit_frames.npz") in msg
    for key in ("train_x", "train_y", "test_x", "test_y", "LDC"):
        assert key in msg


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"features": 100}, "expected \\[N, 360\\]"),
        ({"classes": 3000}, "outside \\[0, 1973\\)"),
    ],
)
def test_timit_rejects_wrong_files(tmp_path, cpu, kwargs, match):
    path = tmp_path / f"bad{len(kwargs)}{match[:3]}.npz"
    fake_vision_files.write_timit_frames(path, **kwargs)
    with pytest.raises(ValueError, match=match):
        build_timit_frames(TimitFramesConfig(path=str(path)), seed=0, device=cpu)


def test_timit_missing_array(tmp_path, cpu):
    path = tmp_path / "partial.npz"
    np.savez(path, train_x=np.zeros((2, 360), np.float32), train_y=np.zeros(2, int))
    with pytest.raises(ValueError, match="test_x"):
        build_timit_frames(TimitFramesConfig(path=str(path)), seed=0, device=cpu)
