"""The configuration models of the curvature metrics, and the settings they share.

They import no torch, numpy or scipy, so a study file is validated without loading them; the
metric classes (:mod:`.metrics`, :mod:`.reparameterized`) are imported when a metric is built.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Optional

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, model_validator

from lbgap.api import Nested, PluginConfig

__all__ = [
    "HVPMode",
    "DEFAULT_HVP_MODE",
    "SubspaceMatrix",
    "BNMode",
    "Split",
    "MeasurementConfig",
    "KeskarSharpnessConfig",
    "HessianEigenvaluesConfig",
    "HessianTraceConfig",
    "HessianSpectrumConfig",
    "InterpolationConfig",
    "MinimizerDistanceConfig",
    "AdaptiveSharpnessConfig",
    "GradientNoiseScaleConfig",
    "ReparameterizedConfig",
]


HVPMode = Literal["autograd", "func"]


#: Chosen by ``python -m bench.curvature --hvp-only``: double backward with a
#: reused graph was the fastest mode in all 4 CPU measurements of the latest run
#: (docs/performance.md, "Seconds per Hessian-vector product").
DEFAULT_HVP_MODE: HVPMode = "autograd"


SubspaceMatrix = Literal["orthonormal", "gaussian", "smoothout"]
BNMode = Literal["running", "batch"]
Split = Literal["train", "test"]
HVPModeField = Literal["autograd", "func"]


class MeasurementConfig(PluginConfig):
    """Settings shared by every curvature metric."""

    every: Optional[PositiveInt] = None
    """Measure every this many epochs during training (None: not per epoch)."""
    at_end: bool = True
    """Measure once at the end of training."""
    bn_mode: BNMode = "running"
    """BatchNorm during the measurement: 'running' (eval mode, running statistics) or 'batch' (statistics of each evaluated batch, Keras BatchNormalization mode=2 as in Keskar et al.). Dropout is off in both."""
    max_samples: Optional[PositiveInt] = None
    """Use a random subset of this many samples of the split (drawn from the metric's seed), or all when None."""
    batch_size: Optional[PositiveInt] = None
    """Batch size of the full-data passes (None: the context's eval_batch_size). With bn_mode='batch' it also sets the BatchNorm statistics."""
    seed: int = 0
    """Combined with the trial seed and the metric name to seed the metric's own random streams."""
    precision: Literal["model", "float64"] = "model"
    """Compute in the model's dtype, or on a float64 copy of model and data."""


class _SplitConfig(MeasurementConfig):
    split: Split = "train"
    """Data split the loss is measured on (Keskar et al.: the training set)."""


class _HVPConfig(_SplitConfig):
    hvp_mode: HVPModeField = DEFAULT_HVP_MODE
    """Hessian-vector products by 'autograd' (double backward) or 'func' (torch.func forward-over-reverse)."""
    reuse_graph: bool = True
    """Autograd mode: build the gradient graph of the whole measured data once and reuse it for every product (memory: activations of all measured samples)."""


class KeskarSharpnessConfig(_SplitConfig):
    """Keskar et al.'s ε-sharpness (Metric 2.1), full space and random subspace, by L-BFGS-B."""

    eps: list[PositiveFloat] = Field(default_factory=lambda: [1e-3, 5e-4], min_length=1)
    """Box sizes ε (the paper: 1e-3 and 5e-4)."""
    spaces: list[Literal["full", "random"]] = Field(default_factory=lambda: ["full", "random"], min_length=1)
    """'full' (A = I) and/or 'random' (A: a random n × subspace_dim matrix drawn as subspace_matrix says)."""
    subspace_dim: PositiveInt = 100
    """p, the random subspace dimension (the paper: 100)."""
    subspace_matrix: SubspaceMatrix = "orthonormal"
    """How the random A is drawn (the paper does not say): 'orthonormal' (a Gaussian matrix orthonormalised by QR, A⁺ = Aᵀ), 'gaussian' (i.i.d. N(0, 1) entries, unnormalised), 'smoothout' (the SmoothOut port: A⁺ with U[−1, 1] entries and unit-norm rows, A = pinv(A⁺))."""
    maxiter: PositiveInt = 10
    """L-BFGS-B iterations (the paper: 10)."""
    maxfun: Optional[PositiveInt] = None
    """Cap on loss-and-gradient evaluations (None: L-BFGS-B's default, 15000)."""
    start: Literal["center", "random"] = "center"
    """Start of the search: the measured point, or a uniform random point of the box."""
    restart_on_stall: bool = True
    """When the search finds no loss increase beyond rounding (16 ulps of f(x) in the measured dtype), search again from a uniform random point of the box (seeded) and report the larger maximum; keskar_stalled_* records it."""
    float64_below: NonNegativeFloat = 1.0
    """When φ measured in the model's dtype is below this (percent), measure again on a float64 copy of the model and data and report that (0: never); keskar_float64_* records it."""


class HessianEigenvaluesConfig(_HVPConfig):
    """Top Hessian eigenvalues by restarted Lanczos on Hessian-vector products."""

    k: PositiveInt = 5
    """How many eigenvalues."""
    which: Literal["LA", "LM"] = "LA"
    """'LA': largest algebraic; 'LM': largest magnitude."""
    tol: PositiveFloat = 1e-3
    """Relative residual ‖Hy − θy‖ ≤ tol·|θ| at which a pair counts as converged."""
    max_hvps: PositiveInt = 500
    """Budget of Hessian-vector products."""
    max_basis: Optional[PositiveInt] = None
    """Lanczos basis size that triggers a thick restart (None: max(2k + 10, 30))."""
    solver: Literal["lanczos", "eigsh"] = "lanczos"
    """'lanczos' (this package) or 'eigsh' (SciPy ARPACK)."""
    verify_residuals: bool = True
    """Measure each residual with one extra product instead of trusting the Lanczos estimate."""


class HessianTraceConfig(_HVPConfig):
    """Hessian trace by Hutchinson's estimator with Rademacher probes, with its standard error."""

    num_probes: PositiveInt = Field(100, ge=2)
    """Maximum number of probes."""
    target_rel_stderr: Optional[PositiveFloat] = None
    """Stop once stderr ≤ target·|estimate| (None: always use num_probes)."""
    min_probes: PositiveInt = Field(10, ge=2)
    """Probes before the stopping rule applies."""


class HessianSpectrumConfig(_HVPConfig):
    """Hessian eigenvalue density by stochastic Lanczos quadrature."""

    num_probes: PositiveInt = 3
    """Gaussian probe vectors (independent Lanczos runs)."""
    lanczos_steps: PositiveInt = 80
    """Lanczos steps per probe (quadrature nodes per probe)."""
    grid_points: PositiveInt = Field(512, ge=2)
    """Points of the density grid."""
    kernel_width: PositiveFloat = 0.01
    """Gaussian kernel width σ as a fraction of the spectrum's range."""
    margin: NonNegativeFloat = 0.05
    """Grid extends this fraction of the range beyond the extreme nodes."""


class InterpolationConfig(MeasurementConfig):
    """Keskar et al.'s 1-D parametric plot between this trial's and a reference trial's minimizer."""

    num_points: PositiveInt = Field(25, ge=2)
    """Number of α values (Keskar: 25)."""
    alpha_min: float = -1.0
    """First α (α = 0: this model)."""
    alpha_max: float = 2.0
    """Last α (α = 1: the reference model)."""
    path: Literal["linear", "curved"] = "linear"
    """'linear': (1−α)θ_a + αθ_b; 'curved': cos(απ/2)θ_a + sin(απ/2)θ_b (Keskar App. D)."""
    tensors: Literal["parameters", "state"] = "state"
    """Interpolate the parameters only (Keskar's Keras code: trainable weights) or also the floating buffers (BatchNorm running statistics; Keskar's PyTorch script)."""
    splits: list[Split] = Field(default_factory=lambda: ["train", "test"], min_length=1)
    """Splits evaluated at every α."""

    @model_validator(mode="after")
    def _range(self) -> InterpolationConfig:
        if self.alpha_max <= self.alpha_min:
            raise ValueError("alpha_max must exceed alpha_min")
        return self


class MinimizerDistanceConfig(MeasurementConfig):
    """Euclidean distance to the reference trial's minimizer and to this trial's initialization."""

    include: Literal["parameters", "weights"] = "parameters"
    """'parameters': every parameter; 'weights': only parameters with ≥ 2 dimensions (no biases, no BatchNorm γ/β)."""


class AdaptiveSharpnessConfig(_SplitConfig):
    """Adaptive (reparameterization-invariant) sharpness, worst or average case (Kwon et al.; Andriushchenko et al.)."""

    rho: PositiveFloat = 0.1
    """Radius ρ of the neighbourhood ‖δ / (|w| + η)‖ ≤ ρ (worst case) or noise scale (average case)."""
    kind: Literal["worst", "average"] = "worst"
    """'worst': maximum loss increase (projected ascent); 'average': mean increase under random perturbations."""
    norm: Literal["l2", "linf"] = "l2"
    """Worst case: the norm of the ball. Average case: 'l2' Gaussian u ~ N(0, ρ²), 'linf' uniform U[−ρ, ρ]."""
    eta: NonNegativeFloat = 0.0
    """η in T_w = |w| + η (0: exactly invariant to positive rescalings)."""
    steps: PositiveInt = 20
    """Ascent steps (worst case)."""
    samples: PositiveInt = Field(20, ge=2)
    """Random perturbations (average case)."""


class GradientNoiseScaleConfig(_SplitConfig):
    """McCandlish et al.'s simple gradient noise scale tr(Σ)/|G|² from per-batch gradients."""

    noise_batch_size: PositiveInt = 128
    """Size b of the batches whose gradients estimate tr(Σ)."""


class ReparameterizedConfig(MeasurementConfig):
    """Metrics measured on function-preserving α-rescalings of the model (Dinh et al.'s α-scale sweep).

    bn_mode, max_samples and batch_size apply to the function check on the test split;
    precision 'float64' transforms a float64 copy and hands the inner metrics float64 data.
    """

    transform: Literal["relu_alpha_scale", "bn_alpha_scale"] = "relu_alpha_scale"
    """'relu_alpha_scale': consecutive affine layers joined by non-negatively homogeneous activations, layer k × α^powers[k]; 'bn_alpha_scale': the layer feeding a BatchNorm × α (running statistics and eps rescaled with it)."""
    layers: list[str] = Field(min_length=1)
    """Module names: relu_alpha_scale, two or more affine layers in forward order; bn_alpha_scale, the one layer that feeds `batchnorm`."""
    powers: Optional[list[float]] = None
    """relu_alpha_scale: exponent of α for each layer, summing to 0 (None: the first layer α, the last 1/α, others unchanged)."""
    batchnorm: Optional[str] = None
    """bn_alpha_scale: the BatchNorm module fed by the layer."""
    alphas: list[PositiveFloat] = Field(default_factory=lambda: [0.01, 0.1, 1.0, 10.0, 100.0], min_length=1)
    """The values of α (1: the model itself)."""
    metrics: Annotated[list[dict[str, Any]], Nested("metric")] = Field(default_factory=list)
    """Metrics measured on every transformed copy, written as in a study's `metrics` list (their `every`/`at_end` are ignored)."""
    prefix: str = Field("reparam", pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    """Prefix of every output variable and of the α dimension (`<prefix>_alpha`)."""

    @model_validator(mode="after")
    def _consistent(self) -> ReparameterizedConfig:
        if len(set(self.alphas)) != len(self.alphas):
            raise ValueError("alphas must be distinct")
        if self.transform == "relu_alpha_scale":
            if len(self.layers) < 2:
                raise ValueError("relu_alpha_scale needs at least two layers")
            if self.batchnorm is not None:
                raise ValueError("batchnorm applies to bn_alpha_scale only")
            if self.powers is not None:
                if len(self.powers) != len(self.layers):
                    raise ValueError("give one power per layer")
                if abs(math.fsum(self.powers)) > 1e-12:
                    raise ValueError("powers must sum to 0 (the factors multiply to 1)")
        else:
            if len(self.layers) != 1 or self.batchnorm is None:
                raise ValueError("bn_alpha_scale needs one layer and the batchnorm it feeds")
            if self.powers is not None:
                raise ValueError("powers apply to relu_alpha_scale only")
        return self
