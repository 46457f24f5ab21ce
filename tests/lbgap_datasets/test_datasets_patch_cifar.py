"""patch_cifar10 against the authors' data code (cwein3/large-lr-code, data_util.py + train_patches.py).

References computed here independently of the plugin:

* patterns: ``torch.manual_seed(2)``; ``z = 1.25 * torch.randn(3, 7, 7)``;
  ``zeta = torch.zeros(10, 1, 3, 7, 7).uniform_(-0.1, 0.1)`` (``pm_sym_pattern``);
* fixed patched sets: ``np.random.seed(2)``; ``np.random.random(N_train) < 0.8``,
  then ``np.random.random(N_test) < 0.8`` (``FixedAugmentDataset``, train first);
* clean images: ``ToTensor`` + ``Normalize((125.3, 123.0, 113.9)/255, (63.0, 62.1, 66.7)/255)``.

Every transformed image is classified against these: clean (unchanged),
image + patch (pixels outside rows/cols 12..18 unchanged, patch = z ± ζ_y),
patch only (everything outside the patch zero, patch = z + c·ζ_y, |c| ≤ 1.75).
"""

from __future__ import annotations

import math

import fake_vision_files
import numpy as np
import pytest
import torch

from lbgap_datasets.patch_cifar import PatchCIFAR10Config, PatchTransform, build_patch_cifar10

MEAN = torch.tensor([125.3, 123.0, 113.9]).view(1, 3, 1, 1) / 255
STD = torch.tensor([63.0, 62.1, 66.7]).view(1, 3, 1, 1) / 255
S, E = 12, 19  # int(16 - 7/2) = 12: rows and columns 12..18


def authors_patterns(seed=2):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        pattern = torch.randn(3, 7, 7)
        z = 1.25 * pattern
        small = torch.zeros((10, 1, 3, 7, 7))
        small.uniform_(-0.1, 0.1)
    return z, small


def authors_masks(n_train, n_test, seed=2):
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        train = np.random.random((n_train,)) < 0.8
        test = np.random.random((n_test,)) < 0.8
    finally:
        np.random.set_state(state)
    return torch.from_numpy(train), torch.from_numpy(test)


def clean_images(data_rows):
    pixels = torch.from_numpy(fake_vision_files.cifar_rows_to_images(data_rows)).float() / 255
    return (pixels - MEAN) / STD


def outside(x):
    keep = torch.ones(32, 32, dtype=torch.bool)
    keep[S:E, S:E] = False
    return x[:, :, keep]


def classify(out, clean, labels, z, zeta):
    """Per row: kind (0 clean, 1 image+patch, 2 patch only), the coefficient c of ζ_y in the
    patch, and whether every patched row's patch is exactly z + c·ζ_y."""
    area = out[:, :, S:E, S:E] - z
    zy = zeta[labels, 0]
    c = (area * zy).flatten(1).sum(1) / (zy * zy).flatten(1).sum(1)
    residual = (area - c.view(-1, 1, 1, 1) * zy).flatten(1).abs().amax(1)
    untouched = ((out - clean).abs() < 1e-5).flatten(1).all(1)
    image_kept = ((outside(out) - outside(clean)).abs() < 1e-5).flatten(1).all(1)
    zeroed = (outside(out) == 0).flatten(1).all(1)
    kind = torch.full((len(out),), -1)
    kind[untouched] = 0
    kind[~untouched & image_kept] = 1
    kind[~untouched & zeroed] = 2
    fits = bool((residual[kind > 0] < 1e-5).all())
    return kind, c, fits


@pytest.fixture(scope="module")
def patch_data(fake_patch_cifar10):
    root, arrays = fake_patch_cifar10
    cfg = PatchCIFAR10Config(root=str(root), verify_md5=False, patch_probe_size=300)
    data = build_patch_cifar10(cfg, seed=0, device=torch.device("cpu"))
    return data, arrays


def run_epochs(transform, x, epochs, seed, batch=128):
    """Transform the whole set in shuffled index-gathered batches, as the engine batches."""
    gen = torch.Generator().manual_seed(seed)
    outs = []
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        out = torch.empty_like(x)
        for i in range(0, len(x), batch):
            idx = perm[i : i + batch]
            out[idx] = transform(x[idx], gen)
        outs.append(out)
    return outs


def test_patterns_and_fixed_sets_equal_the_authors_draws(patch_data):
    data, arrays = patch_data
    z, zeta = authors_patterns()
    writer = data.train_transform
    assert isinstance(writer, PatchTransform)
    torch.testing.assert_close(writer.patterns.z, z, rtol=0, atol=0)
    torch.testing.assert_close(writer.patterns.zeta, zeta, rtol=0, atol=0)
    assert writer.start == 12 and writer.size == 7
    train_mask, test_mask = authors_masks(len(arrays["train_labels"]), len(arrays["test_labels"]))
    assert torch.equal(data.train_groups["patched"], train_mask)
    assert torch.equal(data.train_groups["clean"], ~train_mask)
    n = len(arrays["test_labels"])
    assert torch.equal(data.test_groups["patched"][n : 2 * n], test_mask)
    # ζ per class lies in [-0.1, 0.1] and differs between classes
    assert zeta.abs().max() <= 0.1 and len({tuple(zeta[c].flatten().tolist()) for c in range(10)}) == 10


def test_training_mix_is_20_16_64_and_patch_statistics(patch_data):
    data, arrays = patch_data
    z, zeta = authors_patterns()
    clean = clean_images(arrays["train_data"])
    labels = torch.from_numpy(arrays["train_labels"]).long()
    train_mask, _ = authors_masks(len(labels), len(arrays["test_labels"]))
    epochs = run_epochs(data.train_transform, data.train_x, epochs=10, seed=0)
    kinds, coefs = [], []
    for out in epochs:
        kind, c, fits = classify(out, clean, labels, z, zeta)
        assert fits  # every patch is z + c * ζ_y: overwritten pixels, the label's own ζ
        assert (kind >= 0).all()
        assert torch.equal(kind > 0, train_mask)  # the same images are patched at every epoch
        kinds.append(kind)
        coefs.append(c)
    kind, c = torch.cat(kinds), torch.cat(coefs)
    n = len(kind)
    frac = [(kind == k).float().mean().item() for k in range(3)]
    # the fixed set: Binomial(1000, 0.8) for clean vs patched; per-load draws: 10 x ~800
    assert abs(frac[0] - 0.2) < 4 * math.sqrt(0.16 / 1000)
    patched = kind > 0
    only_share = (kind[patched] == 2).float().mean().item()
    assert abs(only_share - 0.2) < 4 * math.sqrt(0.16 / patched.sum().item())
    assert abs(frac[1] - 0.64) < 0.06 and abs(frac[2] - 0.16) < 0.04
    # image + patch: c = ±1 with equal probability
    both = c[kind == 1]
    torch.testing.assert_close(both.abs(), torch.ones_like(both), atol=1e-4, rtol=0)
    assert abs((both > 0).float().mean().item() - 0.5) < 4 * math.sqrt(0.25 / len(both))
    # patch only: c = s * 1.75 * U(0, 1), sign symmetric, |c|/1.75 uniform
    only = c[kind == 2]
    u = (only.abs() / 1.75).sort().values
    assert u.max() <= 1.0
    ks = (u - torch.arange(1, len(u) + 1) / len(u)).abs().max().item()
    assert ks < 1.63 / math.sqrt(len(u))  # Kolmogorov-Smirnov, 1% level
    assert abs((only > 0).float().mean().item() - 0.5) < 4 * math.sqrt(0.25 / len(only))
    assert n == 10 * len(labels)


def test_draws_change_between_epochs_but_not_for_one_generator_seed(patch_data):
    data, _ = patch_data
    a1, a2 = run_epochs(data.train_transform, data.train_x, epochs=2, seed=3)
    (b1,) = run_epochs(data.train_transform, data.train_x, epochs=1, seed=3)
    assert torch.equal(a1, b1)
    mask = data.train_groups["patched"]
    changed = ~(a1[mask] == a2[mask]).flatten(1).all(1)
    # P(same sign and same kind) = 0.5 * (0.8^2 + 0.2^2) = 0.34 (scaled patches always change)
    assert changed.float().mean().item() > 0.55
    assert torch.equal(a1[~mask], a2[~mask])


def test_data_are_the_same_across_trial_seeds(fake_patch_cifar10):
    root, _ = fake_patch_cifar10
    cfg = PatchCIFAR10Config(root=str(root), verify_md5=False, patch_probe_size=10)
    a = build_patch_cifar10(cfg, seed=0, device=torch.device("cpu"))
    b = build_patch_cifar10(cfg, seed=123, device=torch.device("cpu"))
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_x, b.test_x)
    c = build_patch_cifar10(
        cfg.model_copy(update={"data_seed": "trial"}), seed=123, device=torch.device("cpu")
    )
    assert not torch.equal(a.train_groups["patched"], c.train_groups["patched"])


def test_test_groups_clean_mixed_patched_and_probe(patch_data):
    data, arrays = patch_data
    z, zeta = authors_patterns()
    n = len(arrays["test_labels"])
    labels = torch.from_numpy(arrays["test_labels"]).long()
    _, test_mask = authors_masks(len(arrays["train_labels"]), n)
    groups = data.test_groups
    assert [int(groups[g].sum()) for g in ("clean", "mixed", "patch_only")] == [n, n, 300]
    assert int(groups["patched"].sum()) == int(test_mask.sum())
    assert torch.equal(data.test_y[:n], labels) and torch.equal(data.test_y[n : 2 * n], labels)
    out = data.eval_transform(data.test_x, torch.Generator().manual_seed(0))
    clean = clean_images(arrays["test_data"])
    torch.testing.assert_close(out[:n], clean, rtol=0, atol=1e-6)  # clean rows untouched
    kind, _, fits = classify(out[n : 2 * n], clean, labels, z, zeta)
    assert fits and torch.equal(kind > 0, test_mask) and (kind >= 0).all()
    # the probe: all-zero images through the patch process (TransformOnlyDataset)
    probe = out[2 * n :]
    probe_y = data.test_y[2 * n :]
    kind, c, fits = classify(probe, torch.zeros_like(probe), probe_y, z, zeta)
    assert fits and (outside(probe) == 0).all()
    full = torch.isclose(c.abs(), torch.ones_like(c), atol=1e-4)
    assert abs(full.float().mean().item() - 0.8) < 4 * math.sqrt(0.16 / 300)
    assert set(probe_y.unique().tolist()) <= set(range(10))
    # redrawn at every evaluation (the authors redraw val_aug and the probe per pass)
    again = data.eval_transform(data.test_x, torch.Generator().manual_seed(1))
    assert not torch.equal(again[n:], out[n:]) and torch.equal(again[:n], out[:n])


def test_fixed_draws_when_resampling_is_off(fake_patch_cifar10):
    root, arrays = fake_patch_cifar10
    z, zeta = authors_patterns()
    cfg = PatchCIFAR10Config(
        root=str(root), verify_md5=False, patch_probe_size=50, resample_train=False, resample_test=False
    )
    data = build_patch_cifar10(cfg, seed=0, device=torch.device("cpu"))
    assert data.train_transform is None and data.eval_transform is None
    labels = torch.from_numpy(arrays["train_labels"]).long()
    kind, c, fits = classify(data.train_x, clean_images(arrays["train_data"]), labels, z, zeta)
    assert fits and torch.equal(kind > 0, data.train_groups["patched"])
    share = (kind[kind > 0] == 2).float().mean().item()
    assert abs(share - 0.2) < 4 * math.sqrt(0.16 / int((kind > 0).sum()))
    # a fixed test set next to per-load training draws: evaluation leaves the test rows alone
    mixed = build_patch_cifar10(
        cfg.model_copy(update={"resample_train": True}), seed=0, device=torch.device("cpu")
    )
    assert mixed.eval_transform is not None
    torch.testing.assert_close(
        mixed.eval_transform(mixed.test_x, torch.Generator().manual_seed(5)), mixed.test_x
    )
    assert torch.equal(mixed.test_x, data.test_x)


def test_patch_settings_are_config_fields():
    cfg = PatchCIFAR10Config()
    assert (cfg.patch_size, cfg.z_scale, cfg.patch_sep, cfg.num_patterns) == (7, 1.25, 0.1, 1)
    assert (cfg.patch_only_prob, cfg.patch_only_scale, cfg.prop_augment, cfg.patch_loc) == (
        0.2,
        1.75,
        0.8,
        "center",
    )
    assert cfg.data_seed == 2 and cfg.normalization == "dataset"
    with pytest.raises(ValueError):
        PatchCIFAR10Config(patch_size=40)
    with pytest.raises(ValueError):
        PatchCIFAR10Config(pad_crop=4)  # the patch experiment has no augmentation


def test_corner_location_and_several_patterns(fake_patch_cifar10):
    root, arrays = fake_patch_cifar10
    cfg = PatchCIFAR10Config(
        root=str(root), verify_md5=False, patch_loc="corner", num_patterns=3, patch_probe_size=0, n_train=200
    )
    data = build_patch_cifar10(cfg, seed=0, device=torch.device("cpu"))
    assert "patch_only" not in data.test_groups
    writer = data.train_transform
    assert writer.start == 0
    out = writer(data.train_x, torch.Generator().manual_seed(0))
    clean = clean_images(arrays["train_data"][:200])
    mask = data.train_groups["patched"]
    both = mask & ((out[:, :, 7:, :] - clean[:, :, 7:, :]).abs() < 1e-5).flatten(1).all(1)
    # image + patch rows differ only in rows/cols 0..6, and use one of the three patterns of their class
    zeta = writer.patterns.zeta
    d = out[both][:, :, :7, :7] - writer.patterns.z
    y = data.train_y[both]
    match = torch.stack([(d.abs() - zeta[y, j].abs()).flatten(1).abs().amax(1) < 1e-5 for j in range(3)], 1)
    assert match.any(1).all()
    assert (match.float().mean(0) > 0.15).all()  # each pattern is drawn


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_patch_transform_on_the_device(fake_patch_cifar10):
    root, arrays = fake_patch_cifar10
    dev = torch.device("cuda")
    cfg = PatchCIFAR10Config(root=str(root), verify_md5=False, patch_probe_size=20)
    data = build_patch_cifar10(cfg, seed=0, device=dev)
    assert data.train_x.device.type == "cuda" and data.test_groups["clean"].device.type == "cuda"
    z, zeta = authors_patterns()
    out = data.train_transform(data.train_x, torch.Generator(device=dev).manual_seed(0)).cpu()
    labels = torch.from_numpy(arrays["train_labels"]).long()
    kind, _, fits = classify(out, clean_images(arrays["train_data"]), labels, z, zeta)
    assert fits and torch.equal(kind > 0, data.train_groups["patched"].cpu()) and (kind >= 0).all()
