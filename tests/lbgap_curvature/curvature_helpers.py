"""Small models, data and dense-Hessian oracles shared by the curvature tests."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from lbgap.data import InMemoryData
from lbgap.metric import MeasureContext
from lbgap.nn import bn_eval_mode


def make_mlp(d_in=6, hidden=(10,), d_out=3, act=nn.Tanh, bn=False, seed=0, dtype=torch.float64, dropout=0.0):
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    width = d_in
    for h in hidden:
        layers.append(nn.Linear(width, h))
        if bn:
            layers.append(nn.BatchNorm1d(h))
        layers.append(act())
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, d_out))
    model = nn.Sequential(*layers).to(dtype)
    if bn:  # non-trivial running statistics
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, nn.BatchNorm1d):
                    m.running_mean.uniform_(-0.5, 0.5)
                    m.running_var.uniform_(0.5, 2.0)
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.3, 0.3)
    return model


def make_data(n=50, d_in=6, classes=3, n_test=30, seed=1, dtype=torch.float64, regression=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d_in, generator=g, dtype=dtype)
    xt = torch.randn(n_test, d_in, generator=g, dtype=dtype)
    if regression:
        y = torch.randn(n, classes, generator=g, dtype=dtype)
        yt = torch.randn(n_test, classes, generator=g, dtype=dtype)
        return InMemoryData(x, y, xt, yt, classes, task="regression")
    y = torch.randint(0, classes, (n,), generator=g)
    yt = torch.randint(0, classes, (n_test,), generator=g)
    return InMemoryData(x, y, xt, yt, classes)


def flat_params(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def full_loss_fn(model, xs, ys, loss_fn, bn_mode="running"):
    """Oracle full-data loss as a function of the flat parameter vector (written independently)."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    n_total = sum(len(y) for y in ys)

    def f(flat):
        params, i = {}, 0
        for name, shape in zip(names, shapes, strict=True):
            k = shape.numel()
            params[name] = flat[i : i + k].reshape(shape)
            i += k
        total = 0.0
        with bn_eval_mode(model, bn_mode):
            for x, y in zip(xs, ys, strict=True):
                total = total + loss_fn(functional_call(model, params, (x,)), y) * (len(y) / n_total)
        return total

    return f


def dense_hessian(model, xs, ys, loss_fn=F.cross_entropy, bn_mode="running"):
    f = full_loss_fn(model, xs, ys, loss_fn, bn_mode)
    return torch.autograd.functional.hessian(f, flat_params(model))


def split_batches(x, y, b):
    return [x[i : i + b] for i in range(0, len(x), b)], [y[i : i + b] for i in range(0, len(y), b)]


def context(model, data, *, loss_fn=F.cross_entropy, seed=0, eval_batch_size=16, **kw):
    return MeasureContext(
        model=model,
        data=data,
        loss_fn=loss_fn,
        device=torch.device("cpu"),
        eval_batch_size=eval_batch_size,
        seed=seed,
        **kw,
    )
