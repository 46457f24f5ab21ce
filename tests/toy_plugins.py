"""In-process plugins for core tests: a small Gaussian-blob data set and a
small MLP and a stop-after-N-epochs rule, independent of the first-party plugin
packages."""

from __future__ import annotations

import math

import torch
from pydantic import Field, PositiveInt
from torch import nn

from lbgap import hookimpl
from lbgap.data import InMemoryData
from lbgap.plugin import DatasetPlugin, ModelPlugin, PluginConfig, StoppingPlugin


class BlobsConfig(PluginConfig):
    """Gaussian blobs in a few dimensions."""

    n_train: PositiveInt = 256
    n_test: PositiveInt = 256
    dim: PositiveInt = 8
    classes: PositiveInt = 3
    spread: float = Field(1.5, gt=0)


def build_blobs(cfg: BlobsConfig, *, seed: int, device: torch.device) -> InMemoryData:
    g = torch.Generator().manual_seed(1234)
    centers = torch.randn(cfg.classes, cfg.dim, generator=g) * 2

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(cfg.classes, (n,), generator=g)
        return centers[y] + cfg.spread * torch.randn(n, cfg.dim, generator=g), y

    xtr, ytr = draw(cfg.n_train)
    xte, yte = draw(cfg.n_test)
    return InMemoryData(xtr, ytr, xte, yte, cfg.classes, test_groups={"even": yte % 2 == 0}, description="blobs").to(device)


class TinyMLPConfig(PluginConfig):
    """A one-hidden-layer MLP with optional BatchNorm."""

    width: PositiveInt = 16
    batchnorm: bool = False


def build_tiny(cfg: TinyMLPConfig, *, info) -> nn.Module:
    d = math.prod(info.input_shape)
    layers: list[nn.Module] = [nn.Flatten(), nn.Linear(d, cfg.width)]
    if cfg.batchnorm:
        layers.append(nn.BatchNorm1d(cfg.width))
    layers += [nn.ReLU(), nn.Linear(cfg.width, info.num_classes)]
    return nn.Sequential(*layers)


@hookimpl
def lbgap_register_datasets():
    return [DatasetPlugin(name="blobs", config=BlobsConfig, build=build_blobs)]


@hookimpl
def lbgap_register_models():
    return [ModelPlugin(name="tiny_mlp", config=TinyMLPConfig, build=build_tiny)]


class StopAfterConfig(PluginConfig):
    """Stop once this many epochs are done."""

    epochs: int = 1


class StopAfter:
    def __init__(self, cfg: StopAfterConfig) -> None:
        self.epochs = cfg.epochs

    def should_stop(self, progress, history) -> str | None:
        return f"stop_after: {self.epochs} epochs" if progress.epoch >= self.epochs else None


@hookimpl
def lbgap_register_stopping():
    return [StoppingPlugin(name="stop_after", config=StopAfterConfig, build=StopAfter)]
