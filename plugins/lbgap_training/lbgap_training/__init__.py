"""Built-in training plugins: optimizers, schedules, regimes, stopping rules.

Besides those of :mod:`.optimizers`, :mod:`.schedules`, :mod:`.regimes` and
:mod:`.stopping`: schedule ``linear_warmup`` (:mod:`.linear_warmup`, Goyal et
al.'s gradual warm-up before any base schedule) and metric ``sgd_noise_scale``
(:mod:`.noise_scale`, Smith & Le's g = εN/(B(1 − m)) per epoch); regime
``increase_batch`` (:mod:`.batch_schedule`, Smith, Kindermans, Ying & Le's batch
growth in place of learning-rate decay).
"""

from lbgap.api import MetricPlugin, SchedulePlugin, hookimpl

from .batch_schedule import INCREASE_BATCH
from .linear_warmup import LinearWarmupConfig, build_linear_warmup
from .noise_scale import SGDNoiseScaleConfig, build_sgd_noise_scale
from .optimizers import OPTIMIZERS
from .regimes import REGIMES
from .schedules import SCHEDULES
from .stopping import STOPPING

EXTRA_SCHEDULES = [SchedulePlugin(name="linear_warmup", config=LinearWarmupConfig, build=build_linear_warmup)]
METRICS = [MetricPlugin(name="sgd_noise_scale", config=SGDNoiseScaleConfig, build=build_sgd_noise_scale)]


@hookimpl
def lbgap_register_optimizers():
    return list(OPTIMIZERS)


@hookimpl
def lbgap_register_schedules():
    return list(SCHEDULES) + list(EXTRA_SCHEDULES)


@hookimpl
def lbgap_register_regimes():
    return list(REGIMES) + [INCREASE_BATCH]


@hookimpl
def lbgap_register_stopping():
    return list(STOPPING)


@hookimpl
def lbgap_register_metrics():
    return list(METRICS)
