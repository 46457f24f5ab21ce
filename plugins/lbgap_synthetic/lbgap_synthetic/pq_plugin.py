"""Dataset plugin ``pq_synthetic``: the P/Q mixture of Li, Wei & Ma (2019).

See :mod:`lbgap_synthetic.pq_data` for the distribution. The test split
reports accuracy per component through ``test_groups`` named ``p_only``,
``q_only`` and ``both`` (the same names in ``train_groups``).
"""

from __future__ import annotations

import torch

from lbgap.api import InMemoryData

from .configs import PQSyntheticConfig
from .pq_data import BOTH, COMPONENT_NAMES, P_ONLY, Q_ONLY, PQSample, draw_structure, sample_pq

__all__ = ["PQSyntheticConfig", "build_pq_synthetic", "pq_structure_and_splits"]


def _balanced_components(n: int, generator: torch.Generator) -> torch.Tensor:
    codes = torch.tensor([P_ONLY, Q_ONLY, BOTH])
    comp = codes.repeat(n // 3 + 1)[:n]
    return comp[torch.randperm(n, generator=generator)]


def pq_structure_and_splits(cfg: PQSyntheticConfig, seed: int):
    """Draw the structure and both splits on the CPU: ``(structure, train, test)``."""
    gen = torch.Generator().manual_seed(int(cfg.data_seed if cfg.data_seed is not None else seed))
    structure = draw_structure(
        cfg.d,
        gamma0=cfg.gamma0_absolute,
        q_norm=cfg.q_norm,
        zeta_norm=cfg.zeta_norm,
        zeta_orthogonal=cfg.zeta_orthogonal,
        generator=gen,
    )
    kw = dict(p0=cfg.p0, q0=cfg.q0, alpha_low=cfg.alpha_low, alpha_high=cfg.alpha_high)
    train = sample_pq(cfg.n_train, structure, gen, **kw)
    comp = _balanced_components(cfg.n_test, gen) if cfg.test_sampling == "balanced" else None
    test = sample_pq(cfg.n_test, structure, gen, components=comp, **kw)
    return structure, train, test


def _groups(sample: PQSample) -> dict[str, torch.Tensor]:
    return {name: sample.component == code for code, name in COMPONENT_NAMES.items()}


def build_pq_synthetic(cfg: PQSyntheticConfig, *, seed: int, device: torch.device) -> InMemoryData:
    """Build the P/Q data set (inputs ``float32 [n, 2d]``, labels ``{0, 1}``)."""
    _, train, test = pq_structure_and_splits(cfg, seed)
    data = InMemoryData(
        train_x=train.x,
        train_y=train.y,
        test_x=test.x,
        test_y=test.y,
        num_classes=2,
        test_groups=_groups(test),
        train_groups=_groups(train),
        description=(
            f"P/Q mixture (Li, Wei & Ma 2019): d={cfg.d}, n_train={cfg.n_train}, p0={cfg.p0}, q0={cfg.q0}, "
            f"gamma0={cfg.gamma0_absolute:.4g}, |z|={cfg.q_norm}, |zeta|={cfg.zeta_norm}, "
            f"alpha~U[{cfg.alpha_low}, {cfg.alpha_high}]"
        ),
    )
    return data.to(device)
