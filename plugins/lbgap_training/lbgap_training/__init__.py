"""Built-in training plugins: optimizers, schedules, regimes, stopping rules."""

from lbgap.api import hookimpl

from .optimizers import OPTIMIZERS
from .regimes import REGIMES
from .schedules import SCHEDULES
from .stopping import STOPPING


@hookimpl
def lbgap_register_optimizers():
    return list(OPTIMIZERS)


@hookimpl
def lbgap_register_schedules():
    return list(SCHEDULES)


@hookimpl
def lbgap_register_regimes():
    return list(REGIMES)


@hookimpl
def lbgap_register_stopping():
    return list(STOPPING)
