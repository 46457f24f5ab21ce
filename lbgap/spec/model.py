"""The study-spec models, built from the installed plugins.

:func:`trial_config_model` makes the pydantic model of one trial's resolved
configuration, with one discriminated union per plugin kind keyed on
``name``. :class:`StudyHeader` holds the parts of a study file that are not a
trial configuration (name, variants, grid, seeds, search).

Every model here, and every plugin configuration as the study model holds it,
takes finite numbers only (``allow_inf_nan=False``: ``.inf`` and ``.nan`` are
errors). Names that become parts of paths (the study, its variants) match
:data:`SAFE_NAME`; seeds lie in ``[0, MAX_SEED]``.
"""

from __future__ import annotations

import functools
import re
from typing import Annotated, Any, Literal, Optional

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    create_model,
    field_validator,
    model_validator,
)

from ..configmodel import config_union, plugin_config_model
from ..plugin import KINDS, PluginRecord
from ..registry import Registry

__all__ = [
    "EvalConfig",
    "TrialConfigBase",
    "WarmStart",
    "SearchParam",
    "SearchConfig",
    "StudyHeader",
    "trial_config_model",
    "plugin_config_model",
    "SAFE_NAME",
    "MAX_SEED",
    "Seed",
    "is_safe_name",
]

_STRICT = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True, allow_inf_nan=False)

#: names that become folder or file names (study, variants): letters, digits and ``_.-``, not starting
#: with ``.`` or ``-`` (so never ``.``, ``..``, a hidden file or an option), at most 100 characters
SAFE_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$"
_SAFE_NAME_RE = re.compile(SAFE_NAME[:-1] + r"\Z")

#: largest seed: seeds are also used by NumPy and Optuna (below 2**32), and the engine's derived seeds
#: (``seed * 1_000_003 + k``) then stay far inside torch's 64-bit generator seeds
MAX_SEED = 2**32 - 1

Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]


def is_safe_name(name: object) -> bool:
    """Whether ``name`` matches :data:`SAFE_NAME`."""
    return isinstance(name, str) and _SAFE_NAME_RE.match(name) is not None


class EvalConfig(BaseModel):
    """How and how often the model is evaluated."""

    model_config = _STRICT

    batch_size: PositiveInt = 2048
    """Batch size of evaluation passes (it matters only with bn_mode=batch)."""
    bn_mode: Literal["running", "batch"] = "running"
    """BatchNorm at evaluation: running statistics, or the statistics of each
    evaluation batch (Keras BatchNormalization mode=2, as Keskar's code)."""
    every: PositiveInt = 1
    """Evaluate every this many epochs (the last epoch, and the epoch a stopping rule or pruner ends a trial
    on, are always evaluated)."""
    train_metrics: Literal["eval_pass", "running"] = "eval_pass"
    """``eval_pass``: train loss/accuracy from a separate pass over the training
    set in evaluation mode after each epoch; ``running``: the mean over the
    epoch's training batches (cheaper, mixes weights along the epoch)."""


class TargetConfig(BaseModel):
    """A target whose first attainment a trial records (Shallue et al. 2018: steps to a target error)."""

    model_config = _STRICT

    metric: Literal["test_error", "validation_error", "train_loss"]
    """What must reach ``value``: the error (1 − accuracy) on the test set or on the validation split,
    or the mean training loss of the optimizer steps since the previous check."""
    value: float
    """The target: met at the first check where ``metric ≤ value``."""
    every_steps: PositiveInt = 100
    """Check every this many optimizer steps (and at every epoch end)."""
    stop: bool = True
    """End the trial (status ``stopped``) at the step the target is met."""


class ValidationConfig(BaseModel):
    """A validation split held out of the training set (the searches of Shallue et al. tune on it)."""

    model_config = _STRICT

    fraction: float = Field(gt=0.0, lt=1.0)
    """Fraction of the training examples held out (a seeded random subset, the same for every trial)."""
    seed: Seed = 0
    """Seed of the split (independent of the trial seeds)."""


class WarmStart(BaseModel):
    """Start from another trial's weights (piggyback, Keskar Fig. 5)."""

    model_config = _STRICT

    variant: str
    """The variant whose trial (same seed and grid point) provides the weights."""
    epochs: int = Field(ge=0)
    """Take its weights after this many epochs (0: its initial weights)."""


class TrialConfigBase(BaseModel):
    """Fields of a trial configuration that are not plugins."""

    model_config = _STRICT

    batch_size: PositiveInt
    """Global effective batch size (across accumulation steps and ranks)."""
    epochs: PositiveInt
    """Passes over the training set (regime plugins may change it)."""
    grad_clip: Optional[PositiveFloat] = None
    """Clip the global gradient norm to this value (Hoffer's code: 5.0); none if null."""
    accumulation_steps: PositiveInt = 1
    """Split each batch into this many sequential micro-batches (same update)."""
    drop_last: bool = False
    """Drop the last, smaller batch of an epoch (Hoffer's loader keeps it)."""
    shuffle: bool = True
    """Reshuffle the training set every epoch."""
    eval: EvalConfig = EvalConfig()
    """Evaluation settings."""
    weight_distance_first_param: bool = False
    """Also record ‖w_t − w_0‖ of the first parameter tensor only, as Hoffer's code logs."""
    keep_weights: Literal["all", "final", "none"] = "final"
    """Which weights each trial keeps in ``weights/<trial>/``: ``final``, its initial and final weights
    (what ``lbgap measure`` needs); ``all``, also its weights after every epoch; ``none``, only the
    checkpoints that another variant's warm start needs (and those of ``checkpoint_epochs``)."""
    checkpoint_epochs: list[int] = []
    """Also keep weights after these epochs (a warm start from epoch k needs k here in its source)."""
    warm_start: Optional[WarmStart] = None
    """Initialise from another variant's weights (the driver runs that trial first)."""
    deterministic: bool = True
    """Use deterministic kernels where PyTorch has them."""
    target: Optional[TargetConfig] = None
    """Record ``steps_to_target`` and ``examples_to_target`` (NaN when never met) and optionally stop there."""
    validation: Optional[ValidationConfig] = None
    """Hold out a validation split of the training set; every evaluation then also reports
    ``validation_loss`` and ``validation_accuracy``."""
    precision: Literal["fp32", "bf16"] = "fp32"
    """Arithmetic of the training forward pass: fp32, or bf16 autocast (matrix products and
    convolutions in bfloat16, reductions and the loss in float32). Evaluation stays in fp32."""
    channels_last: bool = False
    """Keep images and convolution weights in the channels-last memory format (faster convolutions
    on GPUs with tensor cores); no effect on networks without 4-D inputs."""

    @model_validator(mode="before")
    @classmethod
    def _save_weights_was_renamed(cls, data: Any) -> Any:
        if isinstance(data, dict) and "save_weights" in data:
            old = data["save_weights"]
            new = {True: "final", False: "none"}.get(old) if isinstance(old, bool) else None
            instead = f"write keep_weights: {new}" if new else "write keep_weights: final (or all, or none)"
            raise ValueError(
                f"save_weights was replaced by keep_weights (all | final | none): {instead} "
                "instead of save_weights: " + ("true" if old is True else "false" if old is False else repr(old))
            )
        return data

    @field_validator("checkpoint_epochs")
    @classmethod
    def _sorted_unique(cls, v: list[int]) -> list[int]:
        if any(e < 0 for e in v):
            raise ValueError("checkpoint epochs must be ≥ 0")
        return sorted(set(v))


#: spec field → (kind, holds a list, doc), derived from :data:`lbgap.plugin.KINDS`
_KIND_FIELDS: dict[str, tuple[str, bool, str]] = {k.field: (k.name, k.many, k.doc) for k in KINDS}


def trial_config_model(reg: Registry) -> type[TrialConfigBase]:
    """The model of a resolved trial config: one field per plugin kind (:data:`lbgap.plugin.KINDS`),
    a discriminated union of the registry's configurations of that kind (cached per set of
    installed plugins)."""
    return _trial_config_model(tuple(tuple(reg.of_kind(k.name).values()) for k in KINDS))


@functools.lru_cache(maxsize=32)
def _trial_config_model(records: tuple[tuple[PluginRecord, ...], ...]) -> type[TrialConfigBase]:
    reg = _Records({k.name: {r.name: r for r in recs} for k, recs in zip(KINDS, records, strict=True)})
    fields: dict[str, Any] = {}
    for kind in KINDS:
        union = config_union(reg, kind.name)
        if union is None:
            if kind.many:
                fields[kind.field] = (list[Any], Field(default_factory=list, max_length=0, description=kind.doc))
            continue
        if kind.many:
            fields[kind.field] = (list[union], Field(default_factory=list, description=kind.doc))
        elif kind.default is not None and kind.default["name"] in reg.of_kind(kind.name):
            fields[kind.field] = (
                union,
                Field(default_factory=lambda d=kind.default, u=union: _validate(u, d), description=kind.doc),
            )
        else:
            fields[kind.field] = (union, Field(description=kind.doc))
    return create_model("TrialConfig", __base__=TrialConfigBase, **fields)


class _Records:
    """Records by kind and name: what the models need of a registry."""

    def __init__(self, records: dict[str, dict[str, PluginRecord]]) -> None:
        self.records = records

    def of_kind(self, kind: str) -> dict[str, PluginRecord]:
        return self.records.get(kind, {})


def _validate(tp: Any, value: Any) -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(tp).validate_python(value)


# ----------------------------------------------------------------- the header


_POWERS_OF_TWO = [2**k for k in range(63)]


class SearchParam(BaseModel):
    """One searched parameter: a distribution over a dotted config path."""

    model_config = ConfigDict(
        **_STRICT,
        # the checks of model_post_init that JSON Schema can say (not low < high, nor labels ~ choices)
        json_schema_extra={
            "allOf": [
                {
                    "if": {"properties": {"type": {"enum": ["float", "int", "pow2"]}}},
                    "then": {
                        "required": ["low", "high"],
                        "properties": {"low": {"type": "number"}, "high": {"type": "number"}, "choices": {"type": "null"}},
                    },
                },
                {
                    "if": {"properties": {"type": {"const": "categorical"}}},
                    "then": {"required": ["choices"], "properties": {"choices": {"type": "array", "minItems": 1}}},
                },
                {
                    "if": {"required": ["log"], "properties": {"log": {"const": True}}},
                    "then": {"properties": {"low": {"exclusiveMinimum": 0}}},
                },
                {
                    "if": {"properties": {"type": {"const": "pow2"}}},
                    "then": {"properties": {"low": {"enum": _POWERS_OF_TWO}, "high": {"enum": _POWERS_OF_TWO}}},
                },
                {
                    "if": {"required": ["transform"], "properties": {"transform": {"const": "one_minus"}}},
                    "then": {"properties": {"type": {"const": "float"}}},
                },
            ]
        },
    )

    type: Literal["float", "int", "categorical", "pow2"]
    """float/int: a range; categorical: a list of choices; pow2: powers of two in [low, high]."""
    low: Optional[float] = None
    high: Optional[float] = None
    log: bool = False
    """Sample on a log scale (float/int)."""
    step: Optional[float] = None
    choices: Optional[list[Any]] = None
    """Values for ``categorical``: any YAML values (numbers, strings, lists of plugin configs)."""
    labels: Optional[list[str]] = None
    """Names for categorical choices that are not plain numbers or strings."""
    transform: Literal["none", "one_minus"] = "none"
    """``one_minus`` (float only): ``low``, ``high``, ``log`` and ``step`` describe u = 1 − value, and the
    setting gets 1 − u; ``{type: float, low: 0.001, high: 0.3, log: true, transform: one_minus}`` on
    ``optimizer.momentum`` searches 1 − momentum log-uniformly (momenta 0.7 to 0.999), as Shallue et al.
    (2018) do. Optuna names the parameter ``1-<path>`` and holds u; results hold the setting's value."""

    def value(self, sampled: Any) -> Any:
        """The setting's value for a value ``sampled`` from the distribution (``1 − sampled`` under
        ``one_minus``)."""
        return 1.0 - sampled if self.transform == "one_minus" else sampled

    def probe_values(self) -> list[Any]:
        """The setting's values a check tries: every choice, or the two ends of the range (as the
        setting gets them: integers for int and pow2, transformed for ``one_minus``)."""
        if self.type == "categorical":
            return list(self.choices or [])
        if self.type in ("int", "pow2"):
            return [int(self.low), int(self.high)]
        return [self.value(self.low), self.value(self.high)]

    def model_post_init(self, __context: Any) -> None:
        if self.type in ("float", "int", "pow2"):
            if self.low is None or self.high is None:
                raise ValueError(f"a {self.type} parameter needs low and high")
            if not self.low < self.high:
                raise ValueError("low must be below high")
            if (self.log or self.type == "pow2") and self.low <= 0:
                raise ValueError("low must be positive on a log scale")
            if self.type == "pow2":
                lo, hi = int(self.low), int(self.high)
                if lo != self.low or hi != self.high or lo & (lo - 1) or hi & (hi - 1):
                    raise ValueError("pow2 bounds must be powers of two")
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs a non-empty list of choices")
            if self.labels is not None and len(self.labels) != len(self.choices):
                raise ValueError("labels must match choices one to one")
        elif self.choices is not None:
            raise ValueError(f"choices only apply to categorical parameters, not {self.type}")
        if self.transform != "none" and self.type != "float":
            raise ValueError(f"transform {self.transform} applies to float parameters, not {self.type}")


class SamplerConfig(BaseModel):
    model_config = _STRICT

    type: Literal["tpe", "random", "grid"] = "tpe"
    """Optuna sampler (grid enumerates categorical/pow2 parameters)."""
    seed: int = Field(0, ge=0, le=2**31 - 1)
    """Sampler seed (fixed for reproducible searches; a resumed search adds the finished trials to it)."""


class PrunerConfig(BaseModel):
    model_config = _STRICT

    type: Literal["none", "median"] = "median"
    n_startup_trials: int = Field(5, ge=0)
    """Trials completed before pruning starts."""
    n_warmup_steps: int = Field(2, ge=0)
    """Epochs of a trial before it can be pruned."""


class SearchConfig(BaseModel):
    """Turns a study into a search: distributions, objective, sampler, budget."""

    model_config = _STRICT

    params: dict[str, SearchParam] = Field(min_length=1)
    """Dotted config paths (``optimizer.lr``, ``batch_size``...) and their distributions."""
    objective: Literal[
        "test_accuracy", "generalization_gap", "test_loss", "train_loss", "steps_to_target", "examples_to_target"
    ] = "test_accuracy"
    """Final-epoch value, averaged over seeds; generalization_gap = train − test accuracy. With
    ``steps_to_target`` or ``examples_to_target`` (the trial's ``target`` must be set), the value at which
    the target was first met, averaged over seeds; a trial that misses its target on any seed is a
    failed trial (it uses up one trial of the budget)."""
    direction: Optional[Literal["maximize", "minimize"]] = None
    """Default: maximize accuracy, minimize loss and gap."""
    sampler: SamplerConfig = SamplerConfig()
    pruner: PrunerConfig = PrunerConfig()
    n_trials: int = Field(20, ge=1, le=1_000_000)
    """Trial budget (over all workers)."""

    @property
    def resolved_direction(self) -> str:
        if self.direction is not None:
            return self.direction
        return "maximize" if self.objective == "test_accuracy" else "minimize"  # losses, gaps, steps


class StudyHeader(BaseModel):
    """The parts of a study file around the trial configuration."""

    model_config = _STRICT

    study: str = Field(pattern=SAFE_NAME)
    """Name of the study (letters, digits, ``_.-``; not starting with ``.`` or ``-``): the default output
    folder is ``runs/<study>``."""
    extends: Optional[str] = Field(None, exclude=True)
    """Another study file (a path relative to this one's folder) that this file overrides, with the
    same deep-merge rules as a variant has over ``base``; chains are allowed. A loaded study holds the
    resolved result (this field is then empty, and not part of the spec's hash)."""
    description: str = ""
    reproduces: str = ""
    """The paper, table or figure this study reproduces, and at what scale."""
    base: dict[str, Any]
    """The configuration every trial starts from."""
    variants: dict[str, Optional[dict[str, Any]]] = {}
    """Named arms: overrides of ``base`` (deep-merged; a plugin section with a new name replaces the old)."""
    grid: dict[str, list[Any]] = {}
    """Dotted config paths and the values to cross (each becomes a results dimension)."""
    seeds: list[Seed] = Field(default=[0], min_length=1)
    """Seeds (0 to 2³²−1); every cell of variants × grid runs once per seed."""
    search: Optional[SearchConfig] = None
    """An Optuna search; with a ``grid``, one search per grid point (its own Optuna study, budget and
    sampler seed), as when the learning rate is tuned anew for every batch size."""
    vectorize: Literal["auto", "off"] = "auto"
    """Train trials that share data set, architecture, batch size and length as one stacked model
    (``auto``: where every plugin supports it and it is faster on the device; ``off``: one at a time).
    The numbers are the same either way."""

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError("seeds must be distinct")
        if any(s < 0 for s in v):
            raise ValueError("seeds must be ≥ 0")
        return v
