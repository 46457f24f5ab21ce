"""CIFAR-10/100: small pickled batches in the exact layout, read through torchvision's classes."""

from __future__ import annotations

import fake_vision_files
import numpy as np
import pytest
import torch
from pydantic import ValidationError

from lbgap_datasets.common import DatasetFilesMissing
from lbgap_datasets.torchvision_files import CIFAR10Unverified, load_cifar_split
from lbgap_datasets.torchvision_sets import (
    CIFAR10Config,
    CIFAR100Config,
    build_cifar10,
    build_cifar100,
)


def _pixels(data: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(fake_vision_files.cifar_rows_to_images(data)).float() / 255.0


def test_cifar10_batches_load_in_order_and_layout(fake_cifar10, cpu):
    root, arrays = fake_cifar10
    data = build_cifar10(
        CIFAR10Config(root=str(root), normalization="none", verify_md5=False), seed=0, device=cpu
    )
    assert data.train_x.shape == (300, 3, 32, 32) and data.test_x.shape == (50, 3, 32, 32)
    assert data.num_classes == 10
    torch.testing.assert_close(data.train_x, _pixels(arrays["train_data"]), rtol=0, atol=0)
    torch.testing.assert_close(data.test_x, _pixels(arrays["test_data"]), rtol=0, atol=0)
    assert data.train_y.tolist() == arrays["train_labels"].tolist()
    assert data.test_y.tolist() == arrays["test_labels"].tolist()
    assert "md5 not verified" in data.description


def test_cifar100_uses_fine_labels(tmp_path, cpu):
    arrays = fake_vision_files.write_cifar100(tmp_path, n_train=80, n_test=30, seed=5)
    data = build_cifar100(
        CIFAR100Config(root=str(tmp_path), normalization="none", verify_md5=False), seed=0, device=cpu
    )
    assert data.num_classes == 100
    assert data.train_y.tolist() == arrays["train_labels"].tolist()
    assert data.test_y.tolist() == arrays["test_labels"].tolist()
    torch.testing.assert_close(data.test_x, _pixels(arrays["test_data"]), rtol=0, atol=0)


@pytest.mark.parametrize(
    "cfg_cls, preset, mean, std",
    [
        (
            CIFAR10Config,
            "dataset",
            [125.3 / 255, 123.0 / 255, 113.9 / 255],
            [63.0 / 255, 62.1 / 255, 66.7 / 255],
        ),
        (
            CIFAR100Config,
            "dataset",
            [129.3 / 255, 124.1 / 255, 112.4 / 255],
            [68.2 / 255, 65.4 / 255, 70.4 / 255],
        ),
        (CIFAR10Config, "imagenet", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        (CIFAR100Config, "half", [0.5] * 3, [0.5] * 3),
    ],
)
def test_normalisation_constants(tmp_path, cpu, cfg_cls, preset, mean, std):
    if cfg_cls is CIFAR10Config:
        arrays = fake_vision_files.write_cifar10(tmp_path, per_batch=4, n_test=4, seed=0)
        build = build_cifar10
    else:
        arrays = fake_vision_files.write_cifar100(tmp_path, n_train=4, n_test=4, seed=0)
        build = build_cifar100
    data = build(cfg_cls(root=str(tmp_path), normalization=preset, verify_md5=False), seed=0, device=cpu)
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    torch.testing.assert_close(data.test_x, (_pixels(arrays["test_data"]) - m) / s)


def test_augmentation_off_by_default_and_hoffer_settings(fake_cifar10, cpu):
    root, _ = fake_cifar10
    plain = build_cifar10(CIFAR10Config(root=str(root), verify_md5=False), seed=0, device=cpu)
    assert plain.train_transform is None and plain.eval_transform is None
    hoffer = CIFAR10Config(
        root=str(root), verify_md5=False, normalization="imagenet", pad_crop=4, pad_fill=127 / 255, hflip=True
    )
    data = build_cifar10(hoffer, seed=0, device=cpu)
    out = data.train_transform(data.train_x, torch.Generator().manual_seed(0))
    assert out.shape == data.train_x.shape
    # padded pixels hold (127/255 - mean)/std per channel
    fill = (torch.tensor([127 / 255] * 3) - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor(
        [0.229, 0.224, 0.225]
    )
    shifted = ~(out == data.train_x).flatten(1).all(1)
    corner = out[:, :, 0, 0]
    has_fill = torch.isclose(corner, fill.view(1, 3), atol=1e-6).all(1)
    assert has_fill.any() and shifted.any()


def test_md5_check_rejects_files_that_are_not_the_official_ones(fake_cifar10, cpu):
    root, _ = fake_cifar10
    with pytest.raises(ValueError, match="md5") as err:
        build_cifar10(CIFAR10Config(root=str(root)), seed=0, device=cpu)
    assert "data_batch_1" in str(err.value) and "verify_md5: false" in str(err.value)


def test_unverified_class_is_torchvisions_class_without_md5():
    from torchvision.datasets import CIFAR10

    assert issubclass(CIFAR10Unverified, CIFAR10)
    assert [n for n, _ in CIFAR10Unverified.train_list] == [n for n, _ in CIFAR10.train_list]
    assert all(md5 is None for _, md5 in CIFAR10Unverified.train_list + CIFAR10Unverified.test_list)
    assert CIFAR10Unverified.base_folder == CIFAR10.base_folder


@pytest.mark.parametrize(
    "build, cfg_cls, folder, names",
    [
        (
            build_cifar10,
            CIFAR10Config,
            "cifar-10-batches-py",
            ["data_batch_1", "data_batch_5", "test_batch", "batches.meta", "cifar-10-python.tar.gz"],
        ),
        (
            build_cifar100,
            CIFAR100Config,
            "cifar-100-python",
            ["train", "test", "meta", "cifar-100-python.tar.gz"],
        ),
    ],
)
def test_missing_files_error(tmp_path, cpu, build, cfg_cls, folder, names):
    with pytest.raises(DatasetFilesMissing) as err:
        build(cfg_cls(root=str(tmp_path)), seed=0, device=cpu)
    msg = str(err.value)
    assert str(tmp_path.resolve() / folder) in msg
    for name in names:
        assert name in msg
    assert "download: true" in msg


def test_subsets_and_cache(fake_cifar10, cpu):
    root, arrays = fake_cifar10
    cfg = CIFAR10Config(
        root=str(root),
        verify_md5=False,
        normalization="none",
        n_train=100,
        n_test=20,
        subset="random",
        subset_seed=3,
    )
    data = build_cifar10(cfg, seed=0, device=cpu)
    idx = torch.randperm(300, generator=torch.Generator().manual_seed(3))[:100].sort().values
    assert data.train_y.tolist() == arrays["train_labels"][idx.numpy()].tolist()
    assert data.n_train == 100 and len(data.test_y) == 20
    hits = load_cifar_split.cache_info().hits
    build_cifar10(cfg, seed=1, device=cpu)
    assert load_cifar_split.cache_info().hits == hits + 2


def test_custom_normalisation_validation():
    with pytest.raises(ValidationError):
        CIFAR10Config(normalization="custom", mean=(0.5, 0.5), std=(0.2, 0.2, 0.2))
    with pytest.raises(ValidationError):
        CIFAR10Config(normalization="custom", mean=(0.5,), std=(0.0,))
    with pytest.raises(ValidationError):
        CIFAR10Config(pad_fill=127)  # pixel units are [0, 1]
    assert CIFAR10Config(normalization="custom", mean=(0.5,), std=(0.25,)).mean_std() == (
        (0.5,) * 3,
        (0.25,) * 3,
    )
