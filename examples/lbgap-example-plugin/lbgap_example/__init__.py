"""An example lbgap plugin package: one plugin of every kind, and a report figure.

It imports from ``lbgap.api`` only, the public API for plugins. Registered by the entry point
``example = "lbgap_example"`` (see ``pyproject.toml``), it provides

* dataset ``gaussian_clusters``: Gaussian clusters around random centres, drawn from the seed;
* model ``softmax_regression``: one linear layer, logits divided by a temperature;
* optimizer ``sign_sgd``: signSGD (each parameter moves by ``lr`` times the sign of its gradient);
* schedule ``exponential_decay``: the learning rate times ``gamma ** epoch``;
* regime ``lr_cap``: caps the learning rate left by the scaling rules;
* noise ``gradient_jitter``: Gaussian noise added to the gradient, and its size per epoch;
* metrics ``parameter_norm`` (‖w‖₂ of all parameters, per epoch or at the end) and ``parameter_count``
  (at the end), with units and long names;
* stopping ``accuracy_reached``: stops once the test accuracy reaches a target;
* report figure ``parameter_norm.png`` (hook ``lbgap_report_figures``).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Optional

import torch
from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt
from torch import nn

from lbgap.api import (
    DataInfo,
    DatasetPlugin,
    InMemoryData,
    MeasureContext,
    MetricPlugin,
    ModelPlugin,
    NoisePlugin,
    OptimizerPlugin,
    PluginConfig,
    Progress,
    RegimePlugin,
    SchedulePlugin,
    StoppingPlugin,
    TrainingPlan,
    TrialContext,
    band_over_runs,
    hookimpl,
    seeded_generator,
)

#: stream number of the data draws (``derive_seed(seed, stream)``), apart from the engine's streams
DATA_STREAM = 1009

# ------------------------------------------------------------------------------------ dataset


class GaussianClustersConfig(PluginConfig):
    """Gaussian clusters: one centre per class, drawn at random from the trial seed."""

    classes: PositiveInt = 3
    """Number of classes (one cluster each)."""
    dim: PositiveInt = 8
    """Input dimension."""
    n_train: PositiveInt = 512
    n_test: PositiveInt = 256
    spread: PositiveFloat = 1.0
    """Standard deviation of each cluster around its centre (the centres have norm about 2·√dim)."""


def build_gaussian_clusters(cfg: GaussianClustersConfig, *, seed: int, device: torch.device) -> InMemoryData:
    gen = seeded_generator(seed, DATA_STREAM)  # on the CPU: the same draws on every device
    centres = 2.0 * torch.randn(cfg.classes, cfg.dim, generator=gen)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(cfg.classes, (n,), generator=gen)
        x = centres[y] + cfg.spread * torch.randn(n, cfg.dim, generator=gen)
        return x, y

    train_x, train_y = draw(cfg.n_train)
    test_x, test_y = draw(cfg.n_test)
    return InMemoryData(
        train_x, train_y, test_x, test_y, num_classes=cfg.classes,
        description=f"{cfg.classes} Gaussian clusters in {cfg.dim} dimensions",
    ).to(device)


# -------------------------------------------------------------------------------------- model


class SoftmaxRegressionConfig(PluginConfig):
    """Softmax regression: one linear layer from the flattened input to the logits."""

    temperature: PositiveFloat = 1.0
    """Logits are divided by this."""


class SoftmaxRegression(nn.Module):
    def __init__(self, in_features: int, classes: int, temperature: float) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, classes)
        self.temperature = temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1)) / self.temperature


def build_softmax_regression(cfg: SoftmaxRegressionConfig, *, info: DataInfo) -> nn.Module:
    return SoftmaxRegression(math.prod(info.input_shape), info.num_classes, cfg.temperature)


# ---------------------------------------------------------------------------------- optimizer


class SignSGDConfig(PluginConfig):
    """signSGD: every parameter moves by ``lr`` times the sign of its gradient."""

    lr: PositiveFloat = 0.01
    """Base learning rate (regime plugins rescale it, schedules multiply it)."""
    weight_decay: NonNegativeFloat = 0.0
    """Added to the gradient as ``weight_decay * w`` before taking the sign."""


class SignSGD(torch.optim.Optimizer):
    def __init__(self, params, lr: float, weight_decay: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.add(p, alpha=group["weight_decay"]) if group["weight_decay"] else p.grad
                p.add_(grad.sign(), alpha=-group["lr"])
        return loss


def build_sign_sgd(cfg: SignSGDConfig, params) -> torch.optim.Optimizer:
    return SignSGD(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


# ----------------------------------------------------------------------------------- schedule


class ExponentialDecayConfig(PluginConfig):
    """The learning rate times ``gamma ** epoch`` (fractional epochs, stretched by regime adaptation)."""

    gamma: float = Field(0.9, gt=0, le=1)
    """Factor per epoch."""


class ExponentialDecay:
    def __init__(self, cfg: ExponentialDecayConfig) -> None:
        self.gamma = cfg.gamma

    def factor(self, progress: Progress) -> float:
        return self.gamma ** (progress.epoch / progress.time_scale)


# ------------------------------------------------------------------------------------- regime


class LRCapConfig(PluginConfig):
    """Cap the learning rate that the regime plugins listed before this one have left."""

    max_lr: PositiveFloat
    """The largest learning rate allowed."""


class LRCap:
    def __init__(self, cfg: LRCapConfig) -> None:
        self.max_lr = cfg.max_lr

    def __call__(self, plan: TrainingPlan) -> TrainingPlan:
        return replace(plan, lr=min(plan.lr, self.max_lr))


# -------------------------------------------------------------------------------------- noise


class GradientJitterConfig(PluginConfig):
    """Gaussian noise of standard deviation ``std`` added to every gradient entry before each step."""

    std: NonNegativeFloat = 0.01


class GradientJitter:
    """Lifecycle hooks of one trial: adds the noise after the backward pass, and records the mean
    norm of the noise added during each epoch (a per-epoch variable ``gradient_jitter_norm``)."""

    def __init__(self, cfg: GradientJitterConfig) -> None:
        self.std = cfg.std
        self.norms: list[float] = []

    @hookimpl
    def lbgap_after_backward(self, trial: TrialContext) -> None:
        squared = 0.0
        for p in trial.model.parameters():
            if p.grad is not None:
                # the trial's shared generator: every data-parallel process adds the same noise
                noise = torch.randn(p.grad.shape, generator=trial.generator, device=p.grad.device,
                                    dtype=p.grad.dtype) * self.std
                p.grad.add_(noise)
                squared += float(noise.pow(2).sum())
        self.norms.append(math.sqrt(squared))

    @hookimpl
    def lbgap_epoch_end(self, trial: TrialContext, record: dict[str, float]) -> dict[str, float]:
        mean = sum(self.norms) / len(self.norms) if self.norms else 0.0
        self.norms.clear()
        return {"gradient_jitter_norm": mean}  # returned values are traced to this plugin


# ------------------------------------------------------------------------------------- metric


class ParameterNormConfig(PluginConfig):
    """Euclidean norm of all parameters."""

    every: Optional[int] = Field(None, ge=1)
    """Record it every this many epochs (a per-epoch variable); None: once, at the end of training (no
    epoch dimension)."""
    at_end: bool = True
    """With ``every``: measure the last epoch too when it is not a multiple of ``every``."""


class ParameterNorm:
    #: CF units and long name of each variable: they land in results.nc
    attrs = {"parameter_norm": {"units": "1", "long_name": "Euclidean norm of all parameters"}}
    #: the names compute returns, checked against lbgap's own and other plugins' before training
    outputs = ("parameter_norm",)

    def __init__(self, cfg: ParameterNormConfig) -> None:
        self.every = cfg.every
        self.at_end = cfg.at_end

    def compute(self, ctx: MeasureContext) -> dict[str, float]:
        with torch.no_grad():
            return {"parameter_norm": math.sqrt(sum(float(p.pow(2).sum()) for p in ctx.model.parameters()))}


class ParameterCountConfig(PluginConfig):
    """Number of trainable parameters, once at the end of training."""


class ParameterCount:
    every = None  # not per epoch
    at_end = True
    attrs = {"parameter_count": {"units": "count", "long_name": "number of trainable parameters"}}

    def __init__(self, cfg: ParameterCountConfig) -> None:
        self.cfg = cfg

    def compute(self, ctx: MeasureContext) -> dict[str, float]:
        return {"parameter_count": float(sum(p.numel() for p in ctx.model.parameters() if p.requires_grad))}


# ----------------------------------------------------------------------------------- stopping


class AccuracyReachedConfig(PluginConfig):
    """Stop once the test accuracy reaches ``target``."""

    target: float = Field(0.95, gt=0, le=1)


class AccuracyReached:
    def __init__(self, cfg: AccuracyReachedConfig) -> None:
        self.target = cfg.target

    def should_stop(self, progress: Progress, history: dict[str, list[float]]) -> str | None:
        accuracy = history.get("test_accuracy", [])
        if accuracy and accuracy[-1] >= self.target:
            return f"test accuracy {accuracy[-1]:.3f} reached {self.target}"
        return None


# ------------------------------------------------------------------------------- registration


@hookimpl
def lbgap_register_datasets():
    return [DatasetPlugin(name="gaussian_clusters", config=GaussianClustersConfig, build=build_gaussian_clusters)]


@hookimpl
def lbgap_register_models():
    return [ModelPlugin(name="softmax_regression", config=SoftmaxRegressionConfig, build=build_softmax_regression)]


@hookimpl
def lbgap_register_optimizers():
    return [OptimizerPlugin(name="sign_sgd", config=SignSGDConfig, build=build_sign_sgd)]


@hookimpl
def lbgap_register_schedules():
    return [SchedulePlugin(name="exponential_decay", config=ExponentialDecayConfig, build=ExponentialDecay)]


@hookimpl
def lbgap_register_regimes():
    return [RegimePlugin(name="lr_cap", config=LRCapConfig, build=LRCap)]


@hookimpl
def lbgap_register_noise():
    return [NoisePlugin(name="gradient_jitter", config=GradientJitterConfig, build=GradientJitter)]


@hookimpl
def lbgap_register_metrics():
    return [
        MetricPlugin(name="parameter_norm", config=ParameterNormConfig, build=ParameterNorm),
        MetricPlugin(name="parameter_count", config=ParameterCountConfig, build=ParameterCount),
    ]


@hookimpl
def lbgap_register_stopping():
    return [StoppingPlugin(name="accuracy_reached", config=AccuracyReachedConfig, build=AccuracyReached)]


# ------------------------------------------------------------------------------------- report


@hookimpl
def lbgap_report_figures(results, out_dir: Path) -> list[tuple[str, Path]]:
    """``parameter_norm`` against the epoch, one line per arm (mean over seeds, band min..max)."""
    if "parameter_norm" not in results or "variant" not in results["parameter_norm"].dims:
        return []  # not this package's study: draw nothing
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    norm = results["parameter_norm"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for variant in norm["variant"].values:
        runs = norm.sel(variant=variant)
        values = runs.transpose(..., "epoch").values.reshape(-1, runs.sizes["epoch"])
        x, mean, lo, hi = band_over_runs(runs["epoch"].values, values)
        ax.plot(x, mean, label=str(variant))
        ax.fill_between(x, lo, hi, alpha=0.2)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"‖w‖₂ [{norm.attrs.get('units', '1')}]")
    ax.legend()
    path = Path(out_dir) / "parameter_norm.png"
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return [("Parameter norm", path)]
