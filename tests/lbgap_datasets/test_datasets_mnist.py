"""MNIST: the real partial copy, small IDX files written here, and the missing-files error."""

from __future__ import annotations

import os

import fake_vision_files
import numpy as np
import pytest
import torch
from pydantic import ValidationError

from lbgap_datasets.common import DatasetFilesMissing
from lbgap_datasets.torchvision_files import load_mnist_split
from lbgap_datasets.torchvision_sets import MNISTConfig, build_mnist

# Published facts about the official MNIST files (independent of the copy's md5):
OFFICIAL_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
OFFICIAL_FIRST_TRAIN_LABELS = [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]


def test_real_mnist_subset_loads_with_only_gz_files(mnist_subset_root, cpu):
    raw = mnist_subset_root / "MNIST" / "raw"
    before = sorted(os.listdir(raw))
    data = build_mnist(MNISTConfig(root=str(mnist_subset_root)), seed=0, device=cpu)
    assert sorted(os.listdir(raw)) == before  # nothing written next to the data
    assert data.train_x.shape == (22699, 1, 28, 28) and data.test_x.shape == (10000, 1, 28, 28)
    assert data.train_x.dtype == torch.float32 and data.train_y.dtype == torch.long
    assert data.train_y[:10].tolist() == OFFICIAL_FIRST_TRAIN_LABELS
    assert torch.bincount(data.test_y, minlength=10).tolist() == OFFICIAL_TEST_COUNTS
    assert set(data.train_y.unique().tolist()) == set(range(10))
    # normalised with (0.1307, 0.3081): background pixels (0) map to -0.1307/0.3081
    assert data.train_x.min().item() == pytest.approx(-0.1307 / 0.3081, abs=1e-6)
    assert data.train_x.max().item() == pytest.approx((1 - 0.1307) / 0.3081, abs=1e-6)
    # the test images' mean pixel is close to the training-set mean used for normalisation
    assert abs(data.test_x.mean().item()) < 0.05
    assert "22699 of the official 60000" in data.description and "partial" in data.description


def test_real_mnist_subset_n_train_and_random_subset(mnist_subset_root, cpu):
    root = str(mnist_subset_root)
    first = build_mnist(MNISTConfig(root=root, n_train=1000, n_test=500), seed=0, device=cpu)
    assert first.n_train == 1000 and len(first.test_y) == 500
    assert first.train_y[:10].tolist() == OFFICIAL_FIRST_TRAIN_LABELS
    assert "first 1000 of 22699" in first.description
    rand_a = build_mnist(MNISTConfig(root=root, n_train=1000, subset="random"), seed=0, device=cpu)
    rand_b = build_mnist(MNISTConfig(root=root, n_train=1000, subset="random"), seed=9, device=cpu)
    assert torch.equal(rand_a.train_x, rand_b.train_x)  # fixed subset_seed: same across trial seeds
    rand_t = build_mnist(
        MNISTConfig(root=root, n_train=1000, subset="random", subset_seed="trial"), seed=9, device=cpu
    )
    assert not torch.equal(rand_a.train_x, rand_t.train_x)
    with pytest.raises(ValueError, match="only 22699"):
        build_mnist(MNISTConfig(root=root, n_train=60000), seed=0, device=cpu)


@pytest.mark.parametrize("gz", [True, False])
def test_small_idx_files_load_exactly(tmp_path, cpu, gz):
    arrays = fake_vision_files.write_mnist(tmp_path, n_train=40, n_test=15, seed=3, gz=gz)
    files = os.listdir(tmp_path / "MNIST" / "raw")
    assert all(f.endswith(".gz") for f in files) == gz
    data = build_mnist(MNISTConfig(root=str(tmp_path), normalization="none"), seed=0, device=cpu)
    assert torch.equal(data.train_y, torch.from_numpy(arrays["train_labels"]).long())
    assert torch.equal(data.test_y, torch.from_numpy(arrays["test_labels"]).long())
    expected = torch.from_numpy(arrays["train_images"]).float().unsqueeze(1) / 255.0
    torch.testing.assert_close(data.train_x, expected, rtol=0, atol=0)
    assert sorted(os.listdir(tmp_path / "MNIST" / "raw")) == sorted(files)
    assert "40 of the official 60000" in data.description


def test_normalisation_presets(tmp_path, cpu):
    arrays = fake_vision_files.write_mnist(tmp_path, n_train=10, n_test=5, seed=4)
    pixels = torch.from_numpy(arrays["train_images"]).float().unsqueeze(1) / 255.0
    for cfg, (m, s) in [
        (MNISTConfig(root=str(tmp_path)), (0.1307, 0.3081)),
        (MNISTConfig(root=str(tmp_path), normalization="half"), (0.5, 0.5)),
        (MNISTConfig(root=str(tmp_path), normalization="custom", mean=(0.2,), std=(0.4,)), (0.2, 0.4)),
    ]:
        data = build_mnist(cfg, seed=0, device=cpu)
        torch.testing.assert_close(data.train_x, (pixels - m) / s)
        assert data.train_transform is None  # augmentation off by default


def test_hoffer_mnist_augmentation_settings(tmp_path, cpu):
    fake_vision_files.write_mnist(tmp_path, n_train=10, n_test=5, seed=4)
    cfg = MNISTConfig(root=str(tmp_path), normalization="half", pad_crop=2, hflip=True)
    data = build_mnist(cfg, seed=0, device=cpu)
    out = data.train_transform(data.train_x, torch.Generator().manual_seed(0))
    assert out.shape == data.train_x.shape
    # the padding fill (0 in pixel units) is -1 after Normalize(0.5, 0.5): it shows at the borders
    assert (out == -1.0).any()
    assert "pad 2" in data.description and "hflip" in data.description


def test_config_validation():
    with pytest.raises(ValidationError):
        MNISTConfig(normalization="custom")  # needs mean/std
    with pytest.raises(ValidationError):
        MNISTConfig(mean=(0.1,), std=(0.3,))  # mean/std only with custom
    with pytest.raises(ValidationError):
        MNISTConfig(normalization="imagenet")  # not a preset for one channel
    with pytest.raises(ValidationError):
        MNISTConfig(n_train=0)
    with pytest.raises(ValidationError):
        MNISTConfig(colour=True)  # unknown keys are errors


def test_missing_files_error_names_files_and_folder(tmp_path, cpu):
    with pytest.raises(DatasetFilesMissing) as err:
        build_mnist(MNISTConfig(root=str(tmp_path)), seed=0, device=cpu)
    msg = str(err.value)
    raw = tmp_path.resolve() / "MNIST" / "raw"
    assert str(raw) in msg
    for name in (
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ):
        assert name in msg
    assert "download: true" in msg
    assert isinstance(err.value, FileNotFoundError)


def test_missing_one_file_names_only_that_one(tmp_path, cpu):
    fake_vision_files.write_mnist(tmp_path, n_train=5, n_test=5)
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetFilesMissing, match="lacks t10k-labels-idx1-ubyte.gz\\b"):
        build_mnist(MNISTConfig(root=str(tmp_path)), seed=0, device=cpu)


def test_root_from_environment_and_in_process_cache(tmp_path, cpu, monkeypatch):
    fake_vision_files.write_mnist(tmp_path, n_train=12, n_test=6, seed=5)
    monkeypatch.setenv("LBGAP_DATA", str(tmp_path))
    data = build_mnist(MNISTConfig(), seed=0, device=cpu)
    assert data.n_train == 12
    hits = load_mnist_split.cache_info().hits
    build_mnist(MNISTConfig(), seed=1, device=cpu)
    assert load_mnist_split.cache_info().hits == hits + 2  # both splits came from the cache


def test_idx_writer_agrees_with_the_format():
    """Guard the test writer itself: header fields are big-endian counts."""
    payload = fake_vision_files.idx_images_bytes(np.zeros((3, 28, 28), dtype=np.uint8))
    assert payload[:4] == b"\x00\x00\x08\x03" and int.from_bytes(payload[4:8], "big") == 3
    assert len(payload) == 16 + 3 * 784
