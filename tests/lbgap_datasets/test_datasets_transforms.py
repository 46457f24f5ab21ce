"""Batch transforms against per-sample references (hand-written loops and torchvision)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image

from lbgap_datasets.image_options import augmentation_transform, images_to_float
from lbgap_datasets.torchvision_sets import CIFAR10Config
from lbgap_datasets.transforms import Compose, Normalize, RandomHorizontalFlip, RandomPadCrop


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _loop_pad_crop(x, rows, cols, padding, fill):
    """Per-sample reference: a canvas of the fill colour, the image pasted in, a window cut out."""
    b, c, h, w = x.shape
    out = torch.empty_like(x)
    for n in range(b):
        canvas = torch.empty(c, h + 2 * padding, w + 2 * padding)
        for ch in range(c):
            canvas[ch] = fill[ch]
        canvas[:, padding : padding + h, padding : padding + w] = x[n]
        i, j = int(rows[n]), int(cols[n])
        out[n] = canvas[:, i : i + h, j : j + w]
    return out


def test_pad_crop_matches_per_sample_loop_with_per_channel_fill():
    x = torch.randn(32, 3, 9, 7, generator=_gen(0))
    fill = (0.25, -1.5, 3.0)
    crop = RandomPadCrop(3, fill=fill)
    rows, cols = crop.sample_offsets(32, _gen(5), x.device)
    out = crop(x, _gen(5))
    assert out.shape == x.shape
    torch.testing.assert_close(out, _loop_pad_crop(x, rows, cols, 3, fill), rtol=0, atol=0)


@pytest.mark.parametrize("mode", ["constant", "reflect"])
def test_pad_crop_matches_torchvision_functional(mode):
    x = torch.randn(24, 2, 8, 8, generator=_gen(1))
    crop = RandomPadCrop(4, fill=0.7, mode=mode)
    rows, cols = crop.sample_offsets(24, _gen(9), x.device)
    out = crop(x, _gen(9))
    for n in range(24):
        padded = TF.pad(x[n], [4], fill=0.7 if mode == "constant" else 0, padding_mode=mode)
        ref = TF.crop(padded, int(rows[n]), int(cols[n]), 8, 8)
        torch.testing.assert_close(out[n], ref, rtol=0, atol=0)


def test_pad_crop_offsets_cover_all_positions_uniformly():
    crop = RandomPadCrop(2)
    rows, cols = crop.sample_offsets(50_000, _gen(3), torch.device("cpu"))
    for offsets in (rows, cols):
        counts = torch.bincount(offsets, minlength=5)
        assert len(counts) == 5  # offsets lie in {0, ..., 2p}
        expected = 50_000 / 5
        # each count is Binomial(50000, 1/5): sd = 89.4; 5 sd bound
        assert (counts.float() - expected).abs().max() < 5 * math.sqrt(50_000 * 0.2 * 0.8)


def test_hoffer_cifar_pipeline_equals_torchvision_on_uint8():
    """Pad uint8 with 127, crop, ToTensor, ImageNet Normalize (Hoffer et al.) == normalise once + our crop."""
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, size=(16, 3, 32, 32), dtype=np.uint8))
    cfg = CIFAR10Config(normalization="imagenet", pad_crop=4, pad_fill=127 / 255)
    transform = augmentation_transform(cfg)
    assert isinstance(transform, RandomPadCrop)
    x = images_to_float(images, cfg, torch.device("cpu"))
    rows, cols = transform.sample_offsets(16, _gen(11), x.device)
    out = transform(x, _gen(11))
    to_tensor_norm = T.Compose([T.ToTensor(), T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    for n in range(16):
        pil = Image.fromarray(images[n].permute(1, 2, 0).numpy())
        padded = T.Pad(4, fill=127)(pil)
        ref = to_tensor_norm(TF.crop(padded, int(rows[n]), int(cols[n]), 32, 32))
        torch.testing.assert_close(out[n], ref, rtol=0, atol=2e-6)


def test_flip_flips_about_half_and_exactly_mirrors():
    x = torch.randn(20_000, 1, 2, 5, generator=_gen(4))
    flip = RandomHorizontalFlip(0.5)
    mask = flip.sample_mask(20_000, _gen(8), x.device)
    out = flip(x, _gen(8))
    flipped = (out == x.flip(-1)).flatten(1).all(1)
    unchanged = (out == x).flatten(1).all(1)
    assert torch.equal(flipped, mask) and torch.equal(unchanged, ~mask)
    # Binomial(20000, 0.5): sd of the fraction 0.0035; 5 sd bound
    assert abs(mask.float().mean().item() - 0.5) < 5 * math.sqrt(0.25 / 20_000)


def test_flip_probability_extremes_and_other_p():
    x = torch.randn(4000, 3, 4, 4, generator=_gen(2))
    assert torch.equal(RandomHorizontalFlip(0.0)(x, _gen(0)), x)
    assert torch.equal(RandomHorizontalFlip(1.0)(x, _gen(0)), x.flip(-1))
    frac = (RandomHorizontalFlip(0.2)(x, _gen(1)) != x).flatten(1).any(1).float().mean().item()
    assert abs(frac - 0.2) < 5 * math.sqrt(0.16 / 4000)


def test_transforms_are_deterministic_given_the_generator_seed():
    x = torch.randn(64, 3, 8, 8, generator=_gen(0))
    t = Compose([RandomPadCrop(2, fill=0.1), RandomHorizontalFlip()])
    a, b, c = t(x, _gen(42)), t(x, _gen(42)), t(x, _gen(43))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_compose_applies_in_order_on_one_generator():
    x = torch.randn(16, 3, 6, 6, generator=_gen(0))
    crop, flip = RandomPadCrop(1), RandomHorizontalFlip()
    g = _gen(7)
    manual = flip(crop(x, g), g)
    assert torch.equal(Compose([crop, flip])(x, _gen(7)), manual)
    assert Compose.of([]) is None and Compose.of([flip]) is flip


def test_normalize_matches_torchvision_per_sample():
    x = torch.rand(8, 3, 5, 5, generator=_gen(0))
    mean, std = (0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261)
    out = Normalize(mean, std)(x)
    ref = torch.stack([T.Normalize(mean, std)(x[n]) for n in range(8)])
    torch.testing.assert_close(out, ref)
    # one value for every channel; channel dim 1 of flat features too
    torch.testing.assert_close(Normalize([0.5], [0.5])(x), (x - 0.5) / 0.5)
    feats = torch.rand(4, 2)
    torch.testing.assert_close(
        Normalize([1.0, 2.0], [2.0, 4.0])(feats),
        (feats - torch.tensor([1.0, 2.0])) / torch.tensor([2.0, 4.0]),
    )


def test_bad_arguments_fail():
    with pytest.raises(ValueError):
        RandomPadCrop(0)
    with pytest.raises(ValueError):
        RandomHorizontalFlip(1.5)
    with pytest.raises(ValueError):
        RandomPadCrop(2)(torch.zeros(2, 8, 8), _gen(0))
    with pytest.raises(ValueError):
        Normalize([0.5, 0.5], [0.5, 0.5])(torch.zeros(2, 3, 4, 4))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_transforms_run_on_the_device_with_a_device_generator():
    dev = torch.device("cuda")
    x = torch.randn(64, 3, 8, 8, device=dev)
    crop = RandomPadCrop(2, fill=(0.1, 0.2, 0.3))
    g = torch.Generator(device=dev).manual_seed(0)
    rows, cols = crop.sample_offsets(64, torch.Generator(device=dev).manual_seed(0), dev)
    out = crop(x, g)
    assert out.device.type == "cuda"
    ref = _loop_pad_crop(x.cpu(), rows.cpu(), cols.cpu(), 2, (0.1, 0.2, 0.3))
    torch.testing.assert_close(out.cpu(), ref, rtol=0, atol=0)
    flip = RandomHorizontalFlip()
    mask = flip.sample_mask(64, torch.Generator(device=dev).manual_seed(1), dev)
    flipped = flip(x, torch.Generator(device=dev).manual_seed(1))
    torch.testing.assert_close(flipped[mask], x[mask].flip(-1), rtol=0, atol=0)
    torch.testing.assert_close(flipped[~mask], x[~mask], rtol=0, atol=0)
