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
* ``precision="float64"`` measures a float64 copy of the model and data;
* a model with NaN or infinite parameters or buffers, or (for the metrics of
  the loss at the measured point) a non-finite loss or Hessian-vector product,
  gives the metric's usual variables filled with NaN, the reason logged, kept
  in ``nan_reason`` and in each variable's ``comment`` attribute
  (:mod:`~lbgap_curvature.numerics`), never an exception.

Variable names and their meaning are listed in ``docs/metrics.md``.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import zlib
from collections.abc import Iterator
from typing import Any, ClassVar, Optional

import numpy as np
import torch
import xarray as xr

from lbgap.api import MeasureContext

from . import distance as dist
from .adaptive import AdaptiveSharpnessResult, adaptive_average_case, adaptive_worst_case
from .configs import (
    AdaptiveSharpnessConfig,
    GradientNoiseScaleConfig,
    HessianEigenvaluesConfig,
    HessianSpectrumConfig,
    HessianTraceConfig,
    InterpolationConfig,
    KeskarSharpnessConfig,
    MeasurementConfig,
    MinimizerDistanceConfig,
)
from .flat import ParamLayout
from .hvp import HessianOperator
from .interpolation import interpolation_alphas, interpolation_curve
from .lanczos import EigenResult, eigsh_eigenpairs, top_eigenpairs
from .loss import EvalBatches, ModelObjective, select_split
from .noise_scale import NoiseScaleResult, simple_noise_scale
from .numerics import FiniteOperator, NonFiniteMeasurement, nan_like, nonfinite_tensors, require_finite
from .sharpness import KeskarResult, float64_subspace, keskar_sharpness
from .slq import SpectrumResult, slq_spectrum, smoothed_density
from .state import preserved_state
from .subspace import Subspace, random_subspace
from .trace import TraceResult, hutchinson_trace

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


def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed from integers and strings (strings hashed with CRC32)."""
    ints = [zlib.crc32(p.encode()) if isinstance(p, str) else int(p) % 2**63 for p in parts]
    state = np.random.SeedSequence(ints).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 ^ int(state[1])


def eps_tag(eps: float) -> str:
    """``1e-03`` style tag of a box or radius size used in variable names."""
    return f"{eps:.0e}"


# --------------------------------------------------------------------- metrics


def _da(values: Any, dims: tuple[str, ...], coords: dict, units: str, long_name: str) -> xr.DataArray:
    return xr.DataArray(
        np.asarray(values), dims=dims, coords=coords, attrs={"units": units, "long_name": long_name}
    )


def _parameter_count(model: torch.nn.Module) -> int:
    return ParamLayout.from_model(model).size


def _finite_grads(batch_grads: Iterator[tuple[float, torch.Tensor, int]], what: str):
    """``(gradient, batch size)`` pairs, checking that each batch loss is finite."""
    for loss, g, n in batch_grads:
        require_finite(loss, what)
        yield g, n


class _CurvatureMetric:
    """Common machinery; subclasses set ``name``, ``config_cls`` and implement ``_compute``.

    A subclass also implements ``_nan_outputs``: its variables for a model that
    cannot be measured (any values; they are replaced by NaN).
    """

    name: ClassVar[str]
    config_cls: ClassVar[type[MeasurementConfig]]

    def __init__(self, cfg: MeasurementConfig) -> None:
        self.cfg = cfg
        self.every = cfg.every
        self.at_end = cfg.at_end
        self.attrs: dict[str, dict[str, str]] = {}
        #: why the last measurement's values are NaN (None: it was measured)
        self.nan_reason: Optional[str] = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.cfg!r})"

    # -------------------------------------------------------------- helpers
    def generator(self, ctx: MeasureContext, tag: str) -> torch.Generator:
        """A CPU generator for one random stream of this metric."""
        return torch.Generator().manual_seed(derive_seed(ctx.seed, self.cfg.seed, self.name, tag))

    def model(self, ctx: MeasureContext, precision: Optional[str] = None) -> torch.nn.Module:
        if (precision or self.cfg.precision) == "float64":
            return copy.deepcopy(ctx.model).to(torch.float64)
        return ctx.model

    def batches(self, ctx: MeasureContext, split: str, precision: Optional[str] = None) -> EvalBatches:
        cfg = self.cfg
        batches = select_split(
            ctx.data,
            split,
            max_samples=cfg.max_samples,
            batch_size=cfg.batch_size or ctx.eval_batch_size,
            generator=self.generator(ctx, f"subset-{split}"),
        )
        return batches.to(torch.float64) if (precision or cfg.precision) == "float64" else batches

    def objective(self, ctx: MeasureContext, split: str, precision: Optional[str] = None) -> ModelObjective:
        return ModelObjective(
            self.model(ctx, precision),
            self.batches(ctx, split, precision),
            ctx.loss_fn,
            bn_mode=self.cfg.bn_mode,
        )

    def checked_objective(self, ctx: MeasureContext, split: str) -> tuple[ModelObjective, float]:
        """The objective and its loss at the measured point (:class:`NonFiniteMeasurement` if not finite)."""
        obj = self.objective(ctx, split)
        return obj, require_finite(obj.loss(), f"the {split} loss at the measured point")

    def hessian(self, ctx: MeasureContext) -> FiniteOperator:
        """The Hessian of the checked objective, as an operator whose products must be finite."""
        cfg = self.cfg
        obj, _ = self.checked_objective(ctx, cfg.split)
        return FiniteOperator(HessianOperator(obj, mode=cfg.hvp_mode, reuse_graph=cfg.reuse_graph))

    # ------------------------------------------------------------------ API
    def compute(self, ctx: MeasureContext) -> dict[str, Any]:
        """The metric's variables; all NaN (with the reason logged) when the model cannot be measured."""
        self.nan_reason = None
        with preserved_state(ctx.model):
            reason = nonfinite_tensors(ctx.model)
            if reason is None:
                try:
                    return self._compute(ctx)
                except NonFiniteMeasurement as err:
                    reason = str(err)
            return self._nan_result(ctx, reason)

    def _nan_result(self, ctx: MeasureContext, reason: str) -> dict[str, Any]:
        log.warning("%s: %s; its values are NaN", self.name, reason)
        self.nan_reason = reason
        out = {k: nan_like(v) for k, v in self._nan_outputs(ctx).items()}
        comment = f"NaN: {reason}"
        for k, v in out.items():
            if isinstance(v, xr.DataArray):
                v.attrs["comment"] = comment
            else:
                self.attrs.setdefault(k, {})["comment"] = comment
        return out

    def _compute(self, ctx: MeasureContext) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _nan_outputs(self, ctx: MeasureContext) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _float(self, out: dict, name: str, value: float, units: str, long_name: str) -> None:
        out[name] = float(value)
        self.attrs[name] = {"units": units, "long_name": long_name}


class KeskarSharpness(_CurvatureMetric):
    name = "keskar_sharpness"
    config_cls = KeskarSharpnessConfig
    cfg: KeskarSharpnessConfig

    def _compute(self, ctx: MeasureContext) -> dict[str, Any]:
        obj, f0 = self.checked_objective(ctx, self.cfg.split)
        out: dict[str, Any] = {}
        self._base_loss(out, f0)
        wide: list[ModelObjective] = []  # the float64 objective, built when first needed
        for space in self.cfg.spaces:
            A = self._matrix(ctx, obj, space)
            for eps in self.cfg.eps:
                res, f64 = self._measure(ctx, obj, f0, A, space, eps, wide)
                self._emit(out, space, None if A is None else A.shape[1], eps, res, f64)
        return out

    def _nan_outputs(self, ctx: MeasureContext) -> dict[str, Any]:
        p = min(self.cfg.subspace_dim, _parameter_count(ctx.model))
        out: dict[str, Any] = {}
        self._base_loss(out, np.nan)
        for space in self.cfg.spaces:
            for eps in self.cfg.eps:
                self._emit(out, space, None if space == "full" else p, eps, KeskarResult.nan(), False)
        return out

    def _matrix(self, ctx: MeasureContext, obj: ModelObjective, space: str) -> Optional[Subspace]:
        if space == "full":
            return None
        cfg = self.cfg
        x0 = obj.x0
        p = min(cfg.subspace_dim, obj.size)
        gen = self.generator(ctx, "subspace")
        return random_subspace(
            obj.size, p, matrix=cfg.subspace_matrix, generator=gen, dtype=x0.dtype, device=x0.device
        )

    def _search(
        self, ctx: MeasureContext, obj: ModelObjective, f0: Optional[float], A, space: str, eps: float
    ) -> KeskarResult:
        cfg = self.cfg
        return keskar_sharpness(
            obj.loss_and_grad,
            obj.x0,
            eps,
            A=A,
            maxiter=cfg.maxiter,
            maxfun=cfg.maxfun,
            start=cfg.start,
            generator=self.generator(ctx, f"start-{space}-{eps}"),
            base_loss=f0 if cfg.start == "random" else None,
            restart_on_stall=cfg.restart_on_stall,
        )

    def _measure(
        self,
        ctx: MeasureContext,
        obj: ModelObjective,
        f0: float,
        A: Optional[Subspace],
        space: str,
        eps: float,
        wide: list[ModelObjective],
    ) -> tuple[KeskarResult, bool]:
        """φ in the model's dtype; measured again on a float64 copy (``wide[0]``, built once) when
        below ``float64_below``. Returns the result (evaluations of both passes) and whether it is float64's."""
        res = self._search(ctx, obj, f0, A, space, eps)
        if obj.x0.dtype == torch.float64:
            return res, True
        if not res.sharpness < self.cfg.float64_below:
            return res, False
        if not wide:
            wide.append(self.objective(ctx, self.cfg.split, "float64"))
        log.info(
            "keskar %s eps=%g: %.3g%% in %s, measuring in float64", space, eps, res.sharpness, obj.x0.dtype
        )
        res64 = self._search(ctx, wide[0], None, float64_subspace(A), space, eps)
        return dataclasses.replace(res64, nfev=res64.nfev + res.nfev, nit=res64.nit + res.nit), True

    def _base_loss(self, out: dict, f0: float) -> None:
        self._float(out, "keskar_base_loss", f0, "1", f"{self.cfg.split} loss at the measured point")

    def _emit(
        self, out: dict, space: str, p: Optional[int], eps: float, res: KeskarResult, f64: bool
    ) -> None:
        cfg = self.cfg
        name = (
            space
            if space == "full" or cfg.subspace_matrix == "orthonormal"
            else f"random_{cfg.subspace_matrix}"
        )
        tag = f"{name}_eps{eps_tag(eps)}"
        where = "full space" if p is None else f"random {p}-dim subspace ({cfg.subspace_matrix} A)"
        also = f"{where}, eps={eps:g}"
        self._float(out, f"keskar_sharpness_{tag}", res.sharpness, "percent", f"Keskar sharpness, {also}")
        self._float(out, f"keskar_max_loss_{tag}", res.max_loss, "1", f"largest loss in the box, {also}")
        self._float(
            out,
            f"keskar_evaluations_{tag}",
            res.nfev,
            "1",
            "L-BFGS-B loss-and-gradient evaluations (all passes)",
        )
        self._float(
            out,
            f"keskar_stalled_{tag}",
            res.stalled,
            "1",
            f"1 if the search from the start point found no increase beyond rounding (then restarted), {also}",
        )
        self._float(
            out, f"keskar_float64_{tag}", f64, "1", f"1 if measured on a float64 model and data, {also}"
        )
        log.info("keskar %s: %.4g (%s, %d evaluations)", tag, res.sharpness, res.message, res.nfev)


class HessianEigenvalues(_CurvatureMetric):
    name = "hessian_eigenvalues"
    config_cls = HessianEigenvaluesConfig
    cfg: HessianEigenvaluesConfig

    def _compute(self, ctx: MeasureContext) -> dict[str, Any]:
        cfg = self.cfg
        op = self.hessian(ctx)
        k = min(cfg.k, op.size)
        gen = self.generator(ctx, "start")
        common = {"which": cfg.which, "tol": cfg.tol, "max_matvec": cfg.max_hvps, "generator": gen}
        if cfg.solver == "lanczos":
            res = top_eigenpairs(op, k, max_basis=cfg.max_basis, verify=cfg.verify_residuals, **common)
        else:
            res = eigsh_eigenpairs(op, k, **common)
        op.op.release()
        return self._emit(res)

    def _nan_outputs(self, ctx: MeasureContext) -> dict[str, Any]:
        nan = np.full(min(self.cfg.k, _parameter_count(ctx.model)), np.nan)
        return self._emit(EigenResult(nan, nan, np.zeros(len(nan), bool), 0))

    def _emit(self, res: EigenResult) -> dict[str, Any]:
        idx = {"eigen_index": np.arange(len(res.eigenvalues))}
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
        op = self.hessian(ctx)
        res = hutchinson_trace(
            op,
            cfg.num_probes,
            generator=self.generator(ctx, "probes"),
            target_rel_stderr=cfg.target_rel_stderr,
            min_probes=cfg.min_probes,
        )
        op.op.release()
        return self._emit(res)

    def _nan_outputs(self, ctx: MeasureContext) -> dict[str, Any]:
        return self._emit(TraceResult(np.nan, np.nan, np.empty(0), 0))

    def _emit(self, res: TraceResult) -> dict[str, Any]:
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
        op = self.hessian(ctx)
        res = slq_spectrum(
            op, num_probes=cfg.num_probes, steps=cfg.lanczos_steps, generator=self.generator(ctx, "probes")
        )
        op.op.release()
        lo, hi = res.support
        width = max(hi - lo, 1e-12 * max(abs(lo), abs(hi), 1.0))
        grid = np.linspace(lo - cfg.margin * width, hi + cfg.margin * width, cfg.grid_points)
        density = smoothed_density(res, grid, cfg.kernel_width * width)
        return self._emit(res, grid, density)

    def _nan_outputs(self, ctx: MeasureContext) -> dict[str, Any]:
        cfg = self.cfg
        nodes = np.full((cfg.num_probes, min(cfg.lanczos_steps, _parameter_count(ctx.model))), np.nan)
        grid = np.full(cfg.grid_points, np.nan)
        return self._emit(SpectrumResult(nodes, nodes, 0), grid, grid)

    def _emit(self, res: SpectrumResult, grid: np.ndarray, density: np.ndarray) -> dict[str, Any]:
        gi = {"density_grid": np.arange(len(grid))}
        qi = {"slq_probe": np.arange(res.nodes.shape[0]), "slq_node": np.arange(res.nodes.shape[1])}
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

    def _alphas(self) -> np.ndarray:
        cfg = self.cfg
        return interpolation_alphas(cfg.num_points, cfg.alpha_min, cfg.alpha_max)

    def _compute(self, ctx: MeasureContext) -> dict[str, Any]:
        cfg = self.cfg
        if ctx.reference_state is None:
            log.warning("interpolation: no reference state in the context; values are NaN")
            return self._nan_outputs(ctx)
        model = self.model(ctx)
        ref = ctx.reference_state
        if cfg.precision == "float64":
            ref = {n: (t.double() if t.is_floating_point() else t) for n, t in ref.items()}
        curve = interpolation_curve(
            model,
            ref,
            self._alphas(),
            {s: self.batches(ctx, s) for s in cfg.splits},
            ctx.loss_fn,
            bn_mode=cfg.bn_mode,
            tensors=cfg.tensors,
            path=cfg.path,
        )
        return self._emit(curve.loss, curve.accuracy)

    def _nan_outputs(self, ctx: MeasureContext) -> dict[str, Any]:
        nan = {s: np.full(self.cfg.num_points, np.nan) for s in self.cfg.splits}
        return self._emit(nan, nan)

    def _emit(self, loss: dict[str, np.ndarray], acc: dict[str, np.ndarray]) -> dict[str, Any]:
        coords = {"alpha": self._alphas()}
        out: dict[str, Any] = {}
        for s in self.cfg.splits:
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

    def _nan_outputs(self, ctx: MeasureContext) -> dict[str, Any]:
        return self._compute(ctx)  # plain arithmetic: no exception on NaN parameters


class AdaptiveSharpness(_CurvatureMetric):
    name = "adaptive_sharpness"
    config_cls = AdaptiveSharpnessConfig
    cfg: AdaptiveSharpnessConfig

    @property
    def tag(self) -> str:
        return f"{self.cfg.kind}_{self.cfg.norm}_rho{self.cfg.rho:g}"

    def _compute(self, ctx: MeasureContext) -> dict[str, Any]:
        cfg = self.cfg
        obj, f0 = self.checked_objective(ctx, cfg.split)
        gen = self.generator(ctx, "perturbation")
        common = {"norm": cfg.norm, "eta": cfg.eta, "generator": gen, "base_loss": f0}
        if cfg.kind == "worst":
            res = adaptive_worst_case(obj.loss_and_grad, obj.x0, cfg.rho, steps=cfg.steps, **common)
        else:
            res = adaptive_average_case(obj.loss, obj.x0, cfg.rho, samples=cfg.samples, **common)
        return self._emit(res, f0)

    def _nan_outputs(self, ctx: MeasureContext) -> dict[str, Any]:
        return self._emit(AdaptiveSharpnessResult(np.nan, np.nan, np.nan, np.nan, 0), np.nan)

    def _emit(self, res: AdaptiveSharpnessResult, f0: float) -> dict[str, Any]:
        cfg = self.cfg
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
        grads = _finite_grads(obj.batch_grads(), f"a {cfg.split} batch loss at the measured point")
        return self._emit(simple_noise_scale(grads, batches.n))

    def _nan_outputs(self, ctx: MeasureContext) -> dict[str, Any]:
        return self._emit(NoiseScaleResult(np.nan, np.nan, np.nan, 0, 0))

    def _emit(self, res: NoiseScaleResult) -> dict[str, Any]:
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
