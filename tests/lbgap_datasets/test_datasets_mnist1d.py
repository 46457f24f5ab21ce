"""mnist1d against the mnist1d package's own generator."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from lbgap_datasets.mnist1d import MNIST1DConfig, build_mnist1d, generate_mnist1d


def package_reference(**overrides):
    from mnist1d.data import get_dataset_args, make_dataset
    from mnist1d.utils import ObjectView

    args = get_dataset_args(as_dict=True)
    args.update(overrides)
    state = np.random.get_state()
    try:
        return make_dataset(ObjectView(args))
    finally:
        np.random.set_state(state)


def test_defaults_are_the_packages():
    from mnist1d.data import get_dataset_args

    pkg = get_dataset_args(as_dict=True)
    cfg = MNIST1DConfig()
    for key in (
        "num_samples",
        "train_split",
        "template_len",
        "scale_coeff",
        "max_translation",
        "corr_noise_scale",
        "iid_noise_scale",
        "shear_scale",
        "shuffle_seq",
        "final_seq_length",
    ):
        assert getattr(cfg, key) == pkg[key], key
    assert list(cfg.padding) == pkg["padding"] and cfg.data_seed == pkg["seed"]


def test_equals_make_dataset_with_the_same_settings(cpu):
    data = build_mnist1d(MNIST1DConfig(num_samples=600, iid_noise_scale=0.05), seed=0, device=cpu)
    ref = package_reference(num_samples=600, iid_noise_scale=0.05)
    assert data.train_x.shape == (480, 40) and data.test_x.shape == (120, 40)
    torch.testing.assert_close(data.train_x, torch.tensor(ref["x"], dtype=torch.float32))
    torch.testing.assert_close(data.test_x, torch.tensor(ref["x_test"], dtype=torch.float32))
    assert data.train_y.tolist() == ref["y"].tolist() and data.test_y.tolist() == ref["y_test"].tolist()
    assert data.num_classes == 10 and data.train_y.dtype == torch.long


def test_same_data_across_trial_seeds_unless_asked(cpu):
    cfg = MNIST1DConfig(num_samples=300)
    a = build_mnist1d(cfg, seed=0, device=cpu)
    b = build_mnist1d(cfg, seed=17, device=cpu)
    assert torch.equal(a.train_x, b.train_x)
    c = build_mnist1d(MNIST1DConfig(num_samples=300, data_seed="trial"), seed=17, device=cpu)
    ref = package_reference(num_samples=300, seed=17)
    torch.testing.assert_close(c.train_x, torch.tensor(ref["x"], dtype=torch.float32))
    assert not torch.equal(a.train_x, c.train_x)


def test_global_random_state_is_left_alone(cpu):
    np.random.seed(123)
    random.seed(123)
    expected_np, expected_py = np.random.random(), random.random()
    np.random.seed(123)
    random.seed(123)
    build_mnist1d(MNIST1DConfig(num_samples=200, data_seed=5), seed=0, device=cpu)
    assert np.random.random() == expected_np and random.random() == expected_py


def test_generation_is_cached_per_configuration(cpu):
    cfg = MNIST1DConfig(num_samples=250)
    build_mnist1d(cfg, seed=0, device=cpu)
    misses = generate_mnist1d.cache_info().misses
    build_mnist1d(cfg, seed=1, device=cpu)
    build_mnist1d(cfg.model_copy(update={"standardize": True}), seed=2, device=cpu)
    assert generate_mnist1d.cache_info().misses == misses


def test_standardize_and_channel_shape(cpu):
    data = build_mnist1d(
        MNIST1DConfig(num_samples=400, standardize=True, shape="channel"), seed=0, device=cpu
    )
    assert data.train_x.shape == (320, 1, 40) and data.info.input_shape == (1, 40)
    flat = data.train_x.squeeze(1)
    torch.testing.assert_close(flat.mean(0), torch.zeros(40), atol=1e-5, rtol=0)
    torch.testing.assert_close(flat.std(0), torch.ones(40), atol=1e-5, rtol=0)


def test_validation():
    with pytest.raises(ValidationError):
        MNIST1DConfig(padding=(60, 36))
    with pytest.raises(ValidationError):
        MNIST1DConfig(train_split=1.0)
    with pytest.raises(ValidationError):
        MNIST1DConfig(num_samples=5)
