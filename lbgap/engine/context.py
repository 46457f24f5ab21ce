"""Kept for older imports: :class:`TrialContext` lives in :mod:`lbgap.trial`."""

from ..trial import TrialContext as TrialContext  # noqa: F401
