"""Pre-activation WideResNet (Zagoruyko & Komodakis) as in Li, Wei & Ma's code, with noise sites.

Follows ``cwein3/large-lr-code`` ``models/wideresnet.py``:

* stem Conv 3×3 (16 channels, no bias);
* three stages of ``n = (depth − 4)/6`` pre-activation BasicBlocks with widths
  16w, 32w, 64w (stride 2 at the start of stages 2 and 3). A block computes
  ``a = relu(bn1(x))``, ``out = conv2(dropout(relu(bn2(conv1(a)))))`` and adds the
  shortcut: ``x`` itself when the channel count is unchanged, otherwise a
  1×1 conv (no bias) of ``a`` — the *activated* input, as in the code (which
  never changes the stride without changing the width; here a stride change
  alone also gets the 1×1 conv);
* final BN → ReLU → global average pooling (AvgPool 8 on 32×32 inputs) → Linear.

A :class:`lbgap.nn.NoiseSite` sits after every BN and before its ReLU (the
``bn1`` and ``bn2`` of each block and the final BN), where ``forward_noise``
adds the pre-activation noise (peers.md §3.3). Sites are identities until a
noise injector switches them on; drawing the noise (one spatial map shared by
the batch and the channels, in the authors' code) is the injector's job.

Init (``he_normal_fan_out``): conv N(0, 2/(k²·out_channels)), BN γ=1, β=0,
Linear bias 0, Linear weight at the PyTorch default. WRN-16-10 (the default,
``wideresnet16`` of the code) has 17,116,634 parameters for 10 classes.
"""

from __future__ import annotations

from torch import Tensor, nn

from lbgap.api import DataInfo, NoiseSite

from .configs import NormSettings, WRN16Config
from .init import apply_init
from .norm import norm_from_settings

__all__ = ["WRN16Config", "PreActWideResNet", "build_wrn16"]


class PreActBlock(nn.Module):
    """Pre-activation BasicBlock with noise sites before both ReLUs."""

    def __init__(self, cfg: NormSettings, in_ch: int, out_ch: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = norm_from_settings(cfg, in_ch, 2)
        self.noise1 = NoiseSite()
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn2 = norm_from_settings(cfg, out_ch, 2)
        self.noise2 = NoiseSite()
        self.relu2 = nn.ReLU()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.equal_in_out = in_ch == out_ch and stride == 1
        self.shortcut = None if self.equal_in_out else nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        a = self.relu1(self.noise1(self.bn1(x)))
        out = self.relu2(self.noise2(self.bn2(self.conv1(a))))
        out = self.conv2(self.dropout(out))
        return (x if self.shortcut is None else self.shortcut(a)) + out


class PreActWideResNet(nn.Module):
    """WRN-depth-widen_factor, pre-activation, with :class:`NoiseSite` layers."""

    def __init__(
        self,
        cfg: NormSettings,
        *,
        depth: int,
        widen_factor: int,
        dropout: float,
        in_channels: int,
        num_classes: int,
    ) -> None:
        super().__init__()
        if (depth - 4) % 6 != 0 or depth < 10:
            raise ValueError(f"WRN depth must be 6n + 4 with n ≥ 1, not {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        stages = []
        ch = widths[0]
        for i, w in enumerate(widths[1:]):
            blocks = []
            for b in range(n):
                blocks.append(
                    PreActBlock(cfg, ch, w, stride=(1 if i == 0 else 2) if b == 0 else 1, dropout=dropout)
                )
                ch = w
            stages.append(nn.Sequential(*blocks))
        self.block1, self.block2, self.block3 = stages
        self.bn1 = norm_from_settings(cfg, ch, 2)
        self.noise = NoiseSite()
        self.relu = nn.ReLU()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(ch, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = self.relu(self.noise(self.bn1(out)))
        return self.fc(self.avgpool(out).flatten(1))


def build_wrn16(cfg: WRN16Config, *, info: DataInfo) -> nn.Module:
    """The WRN of ``cfg`` for ``info``."""
    model = PreActWideResNet(
        cfg,
        depth=cfg.depth,
        widen_factor=cfg.widen_factor,
        dropout=cfg.dropout,
        in_channels=info.input_shape[0],
        num_classes=info.num_classes,
    )
    if cfg.init == "he_normal_fan_out":
        apply_init(model, "he_normal_fan_out")
        nn.init.zeros_(model.fc.bias)
    return model
