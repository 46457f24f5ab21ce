"""Seed derivation: every random stream of a trial is derived from the trial seed by one rule.

A trial has one seed (``seeds:`` in a study). Each independent random stream the engine needs
(the hook generator, the batch order, augmentation, evaluation draws) gets its own generator,
seeded with :func:`derive_seed` of the trial seed and a *stream* number::

    derive_seed(seed, stream) == seed * 1_000_003 + stream

The multiplier is a prime; for stream numbers below it the derived seeds of two trials never
coincide, and they stay far inside torch's 64-bit generator seeds for every admissible trial seed
(below ``2**32``). The stream numbers are fixed: changing one changes every trial's numbers.

Streams used by lbgap itself (do not reuse them for other draws):

* ``17`` (``TRIAL_STREAM``): ``TrialContext.generator``, shared by every data-parallel process
  (noise hooks draw from it);
* ``29`` (``BATCH_ORDER_STREAM``): the order of training examples in each epoch;
* ``41 + 7919 * rank`` (``AUGMENT_STREAM``): data augmentation of data-parallel process ``rank``;
* ``53 + 7919 * rank`` (``LOCAL_STREAM``): ``TrialContext.local_generator`` of process ``rank``
  (with more than one process; otherwise it is ``generator``);
* ``67 + 7919 * epoch`` (``VALIDATION_STREAM``): evaluation draws on the validation split;
* ``61 + 7919 * step`` (``TARGET_STREAM``): draws of the target check after optimizer ``step``;
* ``1 + 7919 * epoch`` (``EVAL_STREAM``): evaluation draws after ``epoch`` (``epoch`` 0: the
  throughput probe).

``7919`` (``RANK_STRIDE``) is the stride between processes and between epochs. A plugin that
needs a stream of its own, reproducible from the seed and independent of the engine's, derives
it with a stream number of its own (for instance ``derive_seed(ctx.seed, 1009)``) or draws from
the trial's generators, which lifecycle hooks receive.
"""

from __future__ import annotations

from typing import Optional

import torch

__all__ = [
    "AUGMENT_STREAM",
    "BATCH_ORDER_STREAM",
    "EVAL_STREAM",
    "LOCAL_STREAM",
    "RANK_STRIDE",
    "SEED_STRIDE",
    "TARGET_STREAM",
    "VALIDATION_STREAM",
    "TRIAL_STREAM",
    "derive_seed",
    "seeded_generator",
]

#: multiplier of the trial seed in :func:`derive_seed` (a prime)
SEED_STRIDE = 1_000_003
#: stride between data-parallel processes (and between epochs) of one stream family
RANK_STRIDE = 7919

#: the trial's shared generator (``TrialContext.generator``)
TRIAL_STREAM = 17
#: the batch order
BATCH_ORDER_STREAM = 29
#: augmentation, plus ``RANK_STRIDE * rank``
AUGMENT_STREAM = 41
#: a process's own generator (``TrialContext.local_generator``), plus ``RANK_STRIDE * rank``
LOCAL_STREAM = 53
#: evaluation draws, plus ``RANK_STRIDE * epoch``
EVAL_STREAM = 1
#: draws of a target check (steps to target), plus ``RANK_STRIDE * step``
TARGET_STREAM = 61
#: draws of the validation evaluation, plus ``RANK_STRIDE * epoch``
VALIDATION_STREAM = 67


def derive_seed(seed: int, stream: int) -> int:
    """The seed of random stream ``stream`` of the trial seeded ``seed``: ``seed * 1_000_003 + stream``.

    >>> derive_seed(3, TRIAL_STREAM)
    3000026
    >>> derive_seed(3, AUGMENT_STREAM + RANK_STRIDE * 2)
    3015888
    """
    return int(seed) * SEED_STRIDE + int(stream)


def seeded_generator(seed: int, stream: int, device: Optional[torch.device | str] = None) -> torch.Generator:
    """A ``torch.Generator`` on ``device`` (CPU by default) seeded with ``derive_seed(seed, stream)``."""
    gen = torch.Generator(device=device) if device is not None else torch.Generator()
    gen.manual_seed(derive_seed(seed, stream))
    return gen
