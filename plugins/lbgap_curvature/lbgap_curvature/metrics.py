"""Metric plugins: thin wrappers that turn a :class:`lbgap.metric.MeasureContext` into numbers.

Each metric class pairs a configuration model with the pure functions of
this package. Shared behaviour (:class:`_CurvatureMetric`):

* the whole computation runs inside :func:`~lbgap_curvature.state.preserved_state`;
* BatchNorm and dropout follow ``bn_mode`` (:func:`lbgap.nn.bn_eval_mode`);
* the data are the chosen split, optionally a seeded subset of
  ``max_samples``, in batches of ``batch_size`` (default: the context's
  ``eval_batch_size``), with the data set's ``eval_transform`` applied;
* random streams come from local generators seeded by the trial seed, the
  metric's ``seed`` field and the metric's name — the global RNGs are never used;
* ``precision="float64"`` measures a float64 copy of the model and data.

Variable names and their meaning are listed in ``docs/metrics.md``.
"""

from __future__ import annotations

import copy
import logging
import zlib
from typing import Any, ClassVar, Literal, Optional

import numpy as np
import torch
import xarray as xr
from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, model_validator

from lbgap.metric import MeasureContext
from lbgap.plugin import PluginConfig

from . import distance as dist
from .adaptive import adaptive_average_case, adaptive_worst_case
from .hvp import DEFAULT_HVP_MODE, HessianOperator
from .interpolation import interpolation_alphas, interpolation_curve
from .lanczos import eigsh_eigenpairs, top_eigenpairs
from .loss import EvalBatches, ModelObjective, select_split
from .noise_scale import simple_noise_scale
from .sharpness import keskar_sharpness
from .slq import slq_spectrum, smoothed_density
from .state import preserved_state
from .subspace import SubspaceMatrix, random_subspace
from .trace import hutchinson_trace

__all__ = [
    "MeasurementConfig",
    "KeskarSharpnessConfig",
    "HessianEigenvaluesConfig",
    "HessianTraceConfig",
    "HessianSpectrumConfig",
    "InterpolationConfig",
    "MinimizerDistanceConfig",
    "AdaptiveSharpnessConfig",
    "GradientNoiseScaleConfig",
    "METRIC_CLASSES",
    "derive_seed",
    "eps_tag",
]

log = logging.getLogger(__name__)

BNMode = Literal["running", "batch"]
Split = Literal["train", "test"]
HVPModeField = Literal["autograd", "func"]


def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed from integers and strings (strings hashed with CRC32)."""
    ints = [zlib.crc32(p.encode()) if isinstance(p, str) else int(p) % 2**63 for p in parts]
    state = np.random.SeedSequence(ints).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 ^ int(state[1])


def eps_tag(eps: float) -> str:
    """``1e-03`` style tag of a box or radius size used in variable names."""
    return f"{eps:.0e}"


# --------------------------------------------------------------------- configs


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


# --------------------------------------------------------------------- metrics


def _da(values: Any, dims: tuple[str, ...], coords: dict, units: str, long_name: str) -> xr.DataArray:
    return xr.DataArray(
        np.asarray(values), dims=dims, coords=coords, attrs={"units": units, "long_name": long_name}
    )


class _CurvatureMetric:
    """Common machinery; subclasses set ``name``, ``config_cls`` and implement ``_compute``."""

    name: ClassVar[str]
    config_cls: ClassVar[type[MeasurementConfig]]

    def __init__(self, cfg: MeasurementConfig) -> None:
        self.cfg = cfg
        self.every = cfg.every
        self.at_end = cfg.at_end
        self.attrs: dict[str, dict[str, str]] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.cfg!r})"

    # -------------------------------------------------------------- helpers
    def generator(self, ctx: MeasureContext, tag: str) -> torch.Generator:
        """A CPU generator for one random stream of this metric."""
        return torch.Generator().manual_seed(derive_seed(ctx.seed, self.cfg.seed, self.name, tag))

    def model(self, ctx: MeasureContext) -> torch.nn.Module:
        if self.cfg.precision == "float64":
            return copy.deepcopy(ctx.model).to(torch.float64)
        return ctx.model

    def batches(self, ctx: MeasureContext, split: str) -> EvalBatches:
        cfg = self.cfg
        batches = select_split(
            ctx.data,
            split,
            max_samples=cfg.max_samples,
            batch_size=cfg.batch_size or ctx.eval_batch_size,
            generator=self.generator(ctx, f"subset-{split}"),
        )
        return batches.to(torch.float64) if cfg.precision == "float64" else batches

    def objective(self, ctx: MeasureContext, split: str) -> ModelObjective:
        return ModelObjective(
            self.model(ctx), self.batches(ctx, split), ctx.loss_fn, bn_mode=self.cfg.bn_mode
        )

    # ------------------------------------------------------------------ API
    def compute(self, ctx: MeasureContext) -> dict[str, Any]:
        with preserved_state(ctx.model):
            return self._compute(ctx)

    def _compute(self, ctx: MeasureContext) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _float(self, out: dict, name: str, value: float, units: str, long_name: str) -> None:
        out[name] = float(value)
        self.attrs[name] = {"units": units, "long_name": long_name}


class KeskarSharpness(_CurvatureMetric):
    name = "keskar_sharpness"
    config_cls = KeskarSharpnessConfig
    cfg: KeskarSharpnessConfig

    def _compute(self, ctx: MeasureContext) -> dict[str, Any]:
        cfg = self.cfg
        obj = self.objective(ctx, cfg.split)
        x0 = obj.x0
        out: dict[str, Any] = {}
        f0 = obj.loss()
        self._float(out, "keskar_base_loss", f0, "1", f"{cfg.split} loss at the measured point")
        for space in cfg.spaces:
            A = None
            name = space
            if space == "random":
                if cfg.subspace_matrix != "orthonormal":
                    name = f"random_{cfg.subspace_matrix}"
                p = min(cfg.subspace_dim, obj.size)
                A = random_subspace(
                    obj.size,
                    p,
                    matrix=cfg.subspace_matrix,
                    generator=self.generator(ctx, "subspace"),
                    dtype=x0.dtype,
                    device=x0.device,
                )
            for eps in cfg.eps:
                res = keskar_sharpness(
                    obj.loss_and_grad,
                    x0,
                    eps,
                    A=A,
                    maxiter=cfg.maxiter,
                    maxfun=cfg.maxfun,
                    start=cfg.start,
                    generator=self.generator(ctx, f"start-{space}-{eps}"),
                    base_loss=f0 if cfg.start == "random" else None,
                )
                tag = f"{name}_eps{eps_tag(eps)}"
                where = (
                    "full space"
                    if space == "full"
                    else f"random {A.shape[1]}-dim subspace ({cfg.subspace_matrix} A)"
                )
                self._float(
                    out,
                    f"keskar_sharpness_{tag}",
                    res.sharpness,
                    "percent",
                    f"Keskar sharpness, {where}, eps={eps:g}",
                )
                self._float(
                    out,
                    f"keskar_max_loss_{tag}",
                    res.max_loss,
                    "1",
                    f"largest loss in the box, {where}, eps={eps:g}",
                )
                self._float(
                    out, f"keskar_evaluations_{tag}", res.nfev, "1", "L-BFGS-B loss-and-gradient evaluations"
                )
                log.info("keskar %s: %.4g (%s, %d evaluations)", tag, res.sharpness, res.message, res.nfev)
        return out


class HessianEigenvalues(_CurvatureMetric):
    name = "hessian_eigenvalues"
    config_cls = HessianEigenvaluesConfig
    cfg: HessianEigenvaluesConfig

    def _compute(self, ctx: MeasureContext) -> dict[str, Any]:
        cfg = self.cfg
        obj = self.objective(ctx, cfg.split)
        op = HessianOperator(obj, mode=cfg.hvp_mode, reuse_graph=cfg.reuse_graph)
        k = min(cfg.k, obj.size)
        gen = self.generator(ctx, "start")
        if cfg.solver == "lanczos":
            res = top_eigenpairs(
                op,
                k,
                which=cfg.which,
                tol=cfg.tol,
                max_matvec=cfg.max_hvps,
                max_basis=cfg.max_basis,
                generator=gen,
                verify=cfg.verify_residuals,
            )
        else:
            res = eigsh_eigenpairs(
                op, k, which=cfg.which, tol=cfg.tol, max_matvec=cfg.max_hvps, generator=gen
            )
        op.release()
        idx = {"eigen_index": np.arange(k)}
        out: dict[str, Any] = {
            "hessian_eigenvalues": _da(
                res.eigenvalues, ("eigen_index",), idx, "1", "top Hessian eigenvalues"
            ),
            "hessian_eigenvalue_residuals": _da(
                res.residuals, ("eigen_index",), idx, "1", "residual norm ‖Hy − θy‖ of each Ritz pair"
            ),
            "hessian_eigenvalue_converged": _da(
                res.converged.astype(np.int8), ("eigen_index",), idx, "1", "1 if residual ≤ tol·|θ|"
            ),
        }
        self._float(out, "hessian_top_eigenvalue", res.eigenvalues[0], "1", "largest Hessian eigenvalue")
        self._float(out, "hessian_eigen_hvps", res.n_matvec, "1", "Hessian-vector products used")
        return out


class HessianTrace(_CurvatureMetric):
    name = "hessian_trace"
    config_cls = HessianTraceConfig
    cfg: HessianTraceConfig

    def _compute(self, ctx: MeasureContext) -> dict[str, Any]:
        cfg = self.cfg
        obj = self.objective(ctx, cfg.split)
        op = HessianOperator(obj, mode=cfg.hvp_mode, reuse_graph=cfg.reuse_graph)
        res = hutchinson_trace(
            op,
            cfg.num_probes,
            generator=self.generator(ctx, "probes"),
            target_rel_stderr=cfg.target_rel_stderr,
            min_probes=cfg.min_probes,
        )
        op.release()
        out: dict[str, Any] = {}
        self._float(out, "hessian_trace", res.estimate, "1", "Hessian trace (Hutchinson)")
        self._float(
            out, "hessian_trace_stderr", res.stderr, "1", "standard error of the Hessian trace estimate"
        )
        self._float(out, "hessian_trace_probes", res.n_matvec, "1", "Rademacher probes used")
        return out


class HessianSpectrum(_CurvatureMetric):
    name = "hessian_spectrum"
    config_cls = HessianSpectrumConfig
    cfg: HessianSpectrumConfig

    def _compute(self, ctx: MeasureContext) -> dict[str, Any]:
        cfg = self.cfg
        obj = self.objective(ctx, cfg.split)
        op = HessianOperator(obj, mode=cfg.hvp_mode, reuse_graph=cfg.reuse_graph)
        res = slq_spectrum(
            op, num_probes=cfg.num_probes, steps=cfg.lanczos_steps, generator=self.generator(ctx, "probes")
        )
        op.release()
        lo, hi = res.support
        width = max(hi - lo, 1e-12 * max(abs(lo), abs(hi), 1.0))
        grid = np.linspace(lo - cfg.margin * width, hi + cfg.margin * width, cfg.grid_points)
        density = smoothed_density(res, grid, cfg.kernel_width * width)
        steps = res.nodes.shape[1]
        gi = {"density_grid": np.arange(cfg.grid_points)}
        qi = {"slq_probe": np.arange(cfg.num_probes), "slq_node": np.arange(steps)}
        out: dict[str, Any] = {
            "hessian_spectrum_density": _da(
                density, ("density_grid",), gi, "1", "Hessian eigenvalue density (SLQ)"
            ),
            "hessian_spectrum_eigenvalue": _da(
                grid, ("density_grid",), gi, "1", "eigenvalue at each density grid point"
            ),
            "hessian_spectrum_nodes": _da(
                res.nodes, ("slq_probe", "slq_node"), qi, "1", "SLQ quadrature nodes (Ritz values)"
            ),
            "hessian_spectrum_weights": _da(
                res.weights, ("slq_probe", "slq_node"), qi, "1", "SLQ quadrature weights"
            ),
        }
        self._float(out, "hessian_spectrum_hvps", res.n_matvec, "1", "Hessian-vector products used")
        return out


class Interpolation(_CurvatureMetric):
    name = "interpolation"
    config_cls = InterpolationConfig
    cfg: InterpolationConfig

    def _compute(self, ctx: MeasureContext) -> dict[str, Any]:
        cfg = self.cfg
        alphas = interpolation_alphas(cfg.num_points, cfg.alpha_min, cfg.alpha_max)
        shape = (len(alphas),)
        loss = {s: np.full(shape, np.nan) for s in cfg.splits}
        acc = {s: np.full(shape, np.nan) for s in cfg.splits}
        if ctx.reference_state is None:
            log.warning("interpolation: no reference state in the context; values are NaN")
        else:
            model = self.model(ctx)
            ref = ctx.reference_state
            if cfg.precision == "float64":
                ref = {n: (t.double() if t.is_floating_point() else t) for n, t in ref.items()}
            curve = interpolation_curve(
                model,
                ref,
                alphas,
                {s: self.batches(ctx, s) for s in cfg.splits},
                ctx.loss_fn,
                bn_mode=cfg.bn_mode,
                tensors=cfg.tensors,
                path=cfg.path,
            )
            loss, acc = curve.loss, curve.accuracy
        coords = {"alpha": alphas}
        out: dict[str, Any] = {}
        for s in cfg.splits:
            out[f"interpolation_{s}_loss"] = _da(
                loss[s], ("alpha",), coords, "1", f"{s} loss along the path (α=0: this model, α=1: reference)"
            )
            out[f"interpolation_{s}_accuracy"] = _da(
                acc[s], ("alpha",), coords, "1", f"{s} accuracy along the path"
            )
        return out


class MinimizerDistance(_CurvatureMetric):
    name = "minimizer_distance"
    config_cls = MinimizerDistanceConfig
    cfg: MinimizerDistanceConfig

    def _compute(self, ctx: MeasureContext) -> dict[str, Any]:
        names = dist.selected_names(ctx.model, self.cfg.include)
        current = dict(ctx.model.named_parameters())
        out: dict[str, Any] = {}
        for key, other, what in (
            ("distance_to_reference", ctx.reference_state, "the reference minimizer"),
            ("distance_from_init", ctx.initial_state, "the initialization"),
        ):
            d = rel = float("nan")
            if other is not None:
                d = dist.parameter_distance(current, other, names)
                norm = dist.parameter_norm(other, names)
                rel = d / norm if norm > 0 else float("inf")
            self._float(out, key, d, "1", f"Euclidean distance to {what} ({self.cfg.include})")
            self._float(out, f"{key}_relative", rel, "1", f"distance to {what} divided by its norm")
        return out


class AdaptiveSharpness(_CurvatureMetric):
    name = "adaptive_sharpness"
    config_cls = AdaptiveSharpnessConfig
    cfg: AdaptiveSharpnessConfig

    @property
    def tag(self) -> str:
        return f"{self.cfg.kind}_{self.cfg.norm}_rho{self.cfg.rho:g}"

    def _compute(self, ctx: MeasureContext) -> dict[str, Any]:
        cfg = self.cfg
        obj = self.objective(ctx, cfg.split)
        gen = self.generator(ctx, "perturbation")
        f0 = obj.loss()
        if cfg.kind == "worst":
            res = adaptive_worst_case(
                obj.loss_and_grad,
                obj.x0,
                cfg.rho,
                norm=cfg.norm,
                eta=cfg.eta,
                steps=cfg.steps,
                generator=gen,
                base_loss=f0,
            )
        else:
            res = adaptive_average_case(
                obj.loss,
                obj.x0,
                cfg.rho,
                norm=cfg.norm,
                eta=cfg.eta,
                samples=cfg.samples,
                generator=gen,
                base_loss=f0,
            )
        out: dict[str, Any] = {}
        name = f"adaptive_sharpness_{self.tag}"
        self._float(
            out,
            name,
            res.sharpness,
            "1",
            f"adaptive sharpness ({cfg.kind} case, {cfg.norm}, rho={cfg.rho:g})",
        )
        if cfg.kind == "average":
            self._float(
                out, f"{name}_stderr", res.stderr, "1", "standard error of the average-case sharpness"
            )
        self._float(out, f"adaptive_base_loss_{self.tag}", f0, "1", f"{cfg.split} loss at the measured point")
        return out


class GradientNoiseScale(_CurvatureMetric):
    name = "gradient_noise_scale"
    config_cls = GradientNoiseScaleConfig
    cfg: GradientNoiseScaleConfig

    def _compute(self, ctx: MeasureContext) -> dict[str, Any]:
        cfg = self.cfg
        model = self.model(ctx)
        data = self.batches(ctx, cfg.split)
        x = torch.cat(data.xs)
        y = torch.cat(data.ys)
        perm = torch.randperm(len(y), generator=self.generator(ctx, "permutation")).to(x.device)
        b = min(cfg.noise_batch_size, len(y) - 1)
        batches = EvalBatches.from_tensors(x[perm], y[perm], b)
        obj = ModelObjective(model, batches, ctx.loss_fn, bn_mode=cfg.bn_mode)
        res = simple_noise_scale(((g, n) for _, g, n in obj.batch_grads()), batches.n)
        out: dict[str, Any] = {}
        self._float(
            out, "gradient_noise_scale", res.noise_scale, "samples", "simple gradient noise scale tr(Σ)/|G|²"
        )
        self._float(
            out,
            "gradient_noise_trace_cov",
            res.trace_covariance,
            "1",
            "trace of the per-example gradient covariance",
        )
        self._float(out, "gradient_sq_norm", res.grad_sq_norm, "1", "squared norm of the full-data gradient")
        return out


METRIC_CLASSES: tuple[type[_CurvatureMetric], ...] = (
    KeskarSharpness,
    HessianEigenvalues,
    HessianTrace,
    HessianSpectrum,
    Interpolation,
    MinimizerDistance,
    AdaptiveSharpness,
    GradientNoiseScale,
)
