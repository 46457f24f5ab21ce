"""GhostBatchNorm against Hoffer's way: a loop over chunks through ordinary BatchNorm layers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lbgap_models.ghost_batchnorm as gbn_module
from lbgap.nn import batchnorm_layers, bn_eval_mode
from lbgap_models.bench_gbn import compare_gbn
from lbgap_models.ghost_batchnorm import GhostBatchNorm, GhostBatchNorm1d, GhostBatchNorm2d
from lbgap_models.norm import make_norm

TOL = dict(rtol=1e-6, atol=1e-6)
C = 5


def _input(dims: int, n: int, gen: torch.Generator) -> torch.Tensor:
    shape = (n, C) if dims == 1 else (n, C, 3, 4)
    # per-channel offsets and scales so the running statistics move visibly
    loc = torch.linspace(-2.0, 3.0, C).view(1, C, *([1] * (len(shape) - 2)))
    return torch.randn(shape, generator=gen) * 2.5 + loc


def _pair(dims: int, ghost: int, policy: str, momentum: float = 0.1, ref_momentum: float | None = None):
    """A GhostBatchNorm and a plain BatchNorm with the same (random) affine parameters."""
    gcls, bcls = (GhostBatchNorm1d, nn.BatchNorm1d) if dims == 1 else (GhostBatchNorm2d, nn.BatchNorm2d)
    g = gcls(C, ghost_size=ghost, momentum_policy=policy, momentum=momentum)
    b = bcls(C, momentum=momentum if ref_momentum is None else ref_momentum)
    with torch.no_grad():
        g.weight.uniform_(0.5, 1.5)
        g.bias.uniform_(-1.0, 1.0)
        b.weight.copy_(g.weight)
        b.bias.copy_(g.bias)
    return g, b


def _looped(bn: nn.Module, x: torch.Tensor, ghost: int) -> torch.Tensor:
    """Hoffer's main_gbn.py: each chunk through the BatchNorm on its own, in order."""
    return torch.cat([bn(chunk) for chunk in x.split(ghost)], dim=0)


@pytest.mark.parametrize("dims", [1, 2])
def test_per_ghost_matches_hoffer_loop_over_several_steps(dims):
    gen = torch.Generator().manual_seed(0)
    ghost, n = 16, 64
    g, b = _pair(dims, ghost, "per_ghost")
    for _ in range(4):
        x = _input(dims, n, gen)
        torch.testing.assert_close(g(x), _looped(b, x, ghost), **TOL)
    torch.testing.assert_close(g.running_mean, b.running_mean, **TOL)
    torch.testing.assert_close(g.running_var, b.running_var, **TOL)
    assert int(g.num_batches_tracked) == int(b.num_batches_tracked) == 4 * n // ghost
    # the statistics did move away from their initial values
    assert (g.running_mean - torch.zeros(C)).abs().max() > 0.5


@pytest.mark.parametrize("dims", [1, 2])
def test_scaled_policy_matches_loop_with_momentum_over_ghost_count(dims):
    gen = torch.Generator().manual_seed(1)
    ghost, n, eta = 8, 64, 0.2
    g, b = _pair(dims, ghost, "scaled", momentum=eta, ref_momentum=eta / (n // ghost))
    for _ in range(3):
        x = _input(dims, n, gen)
        torch.testing.assert_close(g(x), _looped(b, x, ghost), **TOL)
    torch.testing.assert_close(g.running_mean, b.running_mean, **TOL)
    torch.testing.assert_close(g.running_var, b.running_var, **TOL)


@pytest.mark.parametrize("dims", [1, 2])
def test_mean_policy_is_one_update_with_mean_ghost_statistics(dims):
    gen = torch.Generator().manual_seed(2)
    ghost, n, eta = 16, 48, 0.3
    g, _ = _pair(dims, ghost, "mean", momentum=eta)
    rm, rv = torch.zeros(C, dtype=torch.float64), torch.ones(C, dtype=torch.float64)
    for _ in range(3):
        x = _input(dims, n, gen)
        g(x)
        reduce = [0] + list(range(2, x.dim()))
        chunks = x.double().split(ghost)
        means = torch.stack([c.mean(reduce) for c in chunks])
        variances = torch.stack([c.var(reduce, unbiased=True) for c in chunks])
        rm = (1 - eta) * rm + eta * means.mean(0)
        rv = (1 - eta) * rv + eta * variances.mean(0)
    torch.testing.assert_close(g.running_mean.double(), rm, **TOL)
    torch.testing.assert_close(g.running_var.double(), rv, **TOL)
    assert int(g.num_batches_tracked) == 3


@pytest.mark.parametrize("dims", [1, 2])
def test_gradients_match_hoffer_loop(dims):
    gen = torch.Generator().manual_seed(3)
    ghost, n = 8, 32
    g, b = _pair(dims, ghost, "per_ghost")
    x = _input(dims, n, gen)
    w = torch.randn(x.shape, generator=gen)  # a loss whose input gradient is not zero
    xg, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    (g(xg) * w).sum().backward()
    (_looped(b, xb, ghost) * w).sum().backward()
    torch.testing.assert_close(xg.grad, xb.grad, **TOL)
    torch.testing.assert_close(g.weight.grad, b.weight.grad, **TOL)
    torch.testing.assert_close(g.bias.grad, b.bias.grad, **TOL)


def test_one_native_batch_norm_call_per_forward(monkeypatch):
    calls = []
    real = F.batch_norm

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(gbn_module.F, "batch_norm", counting)
    g = GhostBatchNorm2d(C, ghost_size=4)
    g(torch.randn(32, C, 2, 2))
    assert calls == [torch.Size([4, 8 * C, 2, 2])]  # 8 ghost batches folded into the channels


@pytest.mark.parametrize("dims", [1, 2])
def test_strided_layout_matches_loop_over_strided_ghost_batches(dims):
    gen = torch.Generator().manual_seed(9)
    ghost, n = 8, 32
    G = n // ghost
    g, b = _pair(dims, ghost, "per_ghost")
    g.ghost_layout = "strided"
    for _ in range(3):
        x = _input(dims, n, gen)
        xg, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        out = g(xg)
        ref = torch.empty_like(out)
        for ell in range(G):  # ghost batch ell is rows ell, ell + G, ell + 2G, ...
            ref[ell::G] = b(xb[ell::G])
        torch.testing.assert_close(out, ref, **TOL)
        w = torch.randn(x.shape, generator=gen)
        (out * w).sum().backward()
        (ref * w).sum().backward()
        torch.testing.assert_close(xg.grad, xb.grad, **TOL)
    torch.testing.assert_close(g.running_mean, b.running_mean, **TOL)
    torch.testing.assert_close(g.running_var, b.running_var, **TOL)
    torch.testing.assert_close(g.weight.grad, b.weight.grad, **TOL)


def test_strided_layout_folds_without_copying(monkeypatch):
    seen = []
    real = F.batch_norm

    def recording(*args, **kwargs):
        seen.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(gbn_module.F, "batch_norm", recording)
    x = torch.randn(32, C)
    GhostBatchNorm1d(C, ghost_size=4, ghost_layout="strided")(x)
    (folded,) = seen
    assert folded.shape == (4, 8 * C) and folded.data_ptr() == x.data_ptr()


@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_partial_last_ghost_batch_is_normalised_on_its_own(layout):
    gen = torch.Generator().manual_seed(4)
    ghost, n = 16, 70  # 4 ghost batches of 16 and one of the last 6 rows
    g, b = _pair(1, ghost, "per_ghost")
    g.ghost_layout = layout
    for _ in range(2):
        x = _input(1, n, gen)
        if layout == "contiguous":
            ref = _looped(b, x, ghost)
        else:
            ref = torch.empty_like(x)
            for ell in range(4):
                ref[ell:64:4] = b(x[ell:64:4])
            ref[64:] = b(x[64:])
        torch.testing.assert_close(g(x), ref, **TOL)
    torch.testing.assert_close(g.running_mean, b.running_mean, **TOL)
    torch.testing.assert_close(g.running_var, b.running_var, **TOL)
    assert int(g.num_batches_tracked) == 2 * 5


def test_single_sample_last_ghost_batch_raises_clearly():
    g = GhostBatchNorm1d(C, ghost_size=8)
    with pytest.raises(ValueError, match="last ghost batch of 1 sample"):
        g(torch.randn(17, C))


def test_batch_not_larger_than_ghost_size_is_plain_batchnorm():
    gen = torch.Generator().manual_seed(5)
    g, b = _pair(2, 64, "scaled")
    x = _input(2, 40, gen)
    torch.testing.assert_close(g(x), b(x), **TOL)
    torch.testing.assert_close(g.running_var, b.running_var, **TOL)


@pytest.mark.parametrize("dims", [1, 2])
def test_eval_uses_running_statistics(dims):
    gen = torch.Generator().manual_seed(6)
    g, _ = _pair(dims, 8, "per_ghost")
    for _ in range(3):
        g(_input(dims, 32, gen))
    g.eval()
    before = g.running_mean.clone(), g.running_var.clone(), int(g.num_batches_tracked)
    x = _input(dims, 32, gen)
    view = (1, C) + (1,) * (x.dim() - 2)
    expected = (x - g.running_mean.view(view)) / torch.sqrt(g.running_var.view(view) + g.eps)
    expected = expected * g.weight.view(view) + g.bias.view(view)
    torch.testing.assert_close(g(x), expected, **TOL)
    assert torch.equal(g.running_mean, before[0]) and torch.equal(g.running_var, before[1])
    assert int(g.num_batches_tracked) == before[2]


def test_bn_eval_mode_batch_uses_whole_batch_statistics():
    gen = torch.Generator().manual_seed(7)
    g, _ = _pair(2, 8, "per_ghost")
    model = nn.Sequential(nn.Identity(), g)
    for _ in range(2):
        model(_input(2, 32, gen))
    assert batchnorm_layers(model) == [g]
    rm, rv = g.running_mean.clone(), g.running_var.clone()
    x = _input(2, 32, gen)
    with bn_eval_mode(model, "batch"):
        out = model(x)
        assert not g.training
    mean = x.mean((0, 2, 3), keepdim=True)
    var = x.var((0, 2, 3), unbiased=False, keepdim=True)
    expected = (x - mean) / torch.sqrt(var + g.eps) * g.weight.view(1, C, 1, 1) + g.bias.view(1, C, 1, 1)
    torch.testing.assert_close(out, expected, **TOL)
    assert torch.equal(g.running_mean, rm) and torch.equal(g.running_var, rv)
    assert g.training and g.track_running_stats  # restored
    with bn_eval_mode(model, "running"):
        torch.testing.assert_close(
            model(x), F.batch_norm(x, rm, rv, g.weight, g.bias, False, 0.0, g.eps), **TOL
        )


def test_model_with_ghost_norm_matches_hoffer_chunked_training_step():
    """A whole network: GBN layers vs main_gbn.py's chunked forward/backward with plain BN."""
    torch.manual_seed(8)
    ghost, n = 16, 64

    def net(kind: str) -> nn.Sequential:
        return nn.Sequential(
            nn.Linear(10, 12), make_norm(kind, 12, 1, ghost_size=ghost), nn.ReLU(),
            nn.Linear(12, 12), make_norm(kind, 12, 1, ghost_size=ghost), nn.ReLU(),
            nn.Linear(12, 3),
        )  # fmt: skip

    ghost_net, plain = net("ghost"), net("batchnorm")
    plain.load_state_dict(ghost_net.state_dict())
    x, y = torch.randn(n, 10), torch.randint(0, 3, (n,))
    loss = F.cross_entropy(ghost_net(x), y)
    loss.backward()
    # main_gbn.py: backward per chunk, then divide the gradients by the number of chunks
    chunks = list(zip(x.split(ghost), y.split(ghost), strict=True))
    ref_loss = 0.0
    for xc, yc in chunks:
        lc = F.cross_entropy(plain(xc), yc)
        lc.backward()
        ref_loss += lc.item() / len(chunks)
    for p in plain.parameters():
        p.grad /= len(chunks)
    assert loss.item() == pytest.approx(ref_loss, rel=1e-6)
    for (name, p), q in zip(ghost_net.named_parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, **TOL, msg=name)
    for a, b in zip(batchnorm_layers(ghost_net), batchnorm_layers(plain), strict=True):
        torch.testing.assert_close(a.running_mean, b.running_mean, **TOL)
        torch.testing.assert_close(a.running_var, b.running_var, **TOL)


def test_is_a_torch_batchnorm_and_rejects_bad_settings():
    assert isinstance(GhostBatchNorm1d(3), nn.modules.batchnorm._BatchNorm)
    assert "ghost_size=128" in repr(GhostBatchNorm2d(3))
    with pytest.raises(ValueError, match="momentum"):
        GhostBatchNorm(3, momentum=None)
    with pytest.raises(ValueError, match="momentum_policy"):
        GhostBatchNorm(3, momentum_policy="sometimes")
    with pytest.raises(ValueError, match="ghost_size"):
        GhostBatchNorm(3, ghost_size=0)
    with pytest.raises(ValueError, match="ghost_layout"):
        GhostBatchNorm(3, ghost_layout="random")
    with pytest.raises(ValueError, match="4D"):
        GhostBatchNorm2d(3)(torch.randn(4, 3))


def test_make_norm_kinds():
    assert isinstance(make_norm("none", 4, 1), nn.Identity)
    assert type(make_norm("batchnorm", 4, 2, momentum=0.01, eps=1e-3)) is nn.BatchNorm2d
    layer = make_norm(
        "ghost", 4, 1, ghost_size=32, momentum_policy="mean", ghost_layout="strided", momentum=0.05, eps=1e-4
    )
    assert isinstance(layer, GhostBatchNorm1d)
    settings = (layer.ghost_size, layer.momentum_policy, layer.ghost_layout, layer.momentum, layer.eps)
    assert settings == (32, "mean", "strided", 0.05, 1e-4)
    with pytest.raises(ValueError):
        make_norm("layernorm", 4, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        make_norm("batchnorm", 4, 3)


def test_benchmark_runs_and_reports_ratios():
    result = compare_gbn(batch=64, ghost=16, width=8, repeats=2, warmup=1, threads=1)
    assert result["ghost_ratio"] == pytest.approx(result["ghost_s"] / result["plain_s"])
    assert result["ghost_strided_ratio"] == pytest.approx(result["ghost_strided_s"] / result["plain_s"])
    assert result["loop_ratio"] == pytest.approx(result["loop_s"] / result["plain_s"])
    assert min(result["plain_s"], result["ghost_s"], result["loop_s"]) > 0
