"""The network maths: a compact U-Net that predicts all leads at once as a residual over persistence."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from forecast.model.probabilistic import ProbabilityHead


def _groups(ch: int) -> int:
    for g in (8, 4, 2):
        if ch % g == 0:
            return g
    return 1


class ConvBlock(nn.Module):
    """Two 3x3 convolutions, each followed by GroupNorm and GELU."""

    def __init__(self, c_in: int, c_out: int, dropout: float = 0.0):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.GroupNorm(_groups(c_out), c_out), nn.GELU(),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.GroupNorm(_groups(c_out), c_out), nn.GELU(),
            nn.Dropout2d(dropout) if dropout else nn.Identity(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class UNet(nn.Module):
    """U-Net with ``depth`` 2x poolings; channels double from ``base`` at each level; the output is a
    residual over a base forecast (Lagrangian persistence), so an untrained net is that base.

    forward(x, base):
        x: (batch, channels, y, x) input channels (see `forecast.model.data.model_inputs`);
        base: (batch, lead_time, y, x) the base forecast (the advected last field) in normalised units;
        returns (batch, lead_time, y, x) = base + learned increment per lead, bounded below by
        ``z_floor`` through a softplus when the variable is non-negative.
    y and x must be multiples of 2**depth (the caller pads).

    With ``prob_edges_z`` (the thresholds in normalised units) it also has a probabilistic head
    (`forecast.model.probabilistic.ProbabilityHead`) on the same features: ``forward_both`` returns the
    deterministic forecast and the bin logits (batch, lead_time, bin, y, x) from one pass.
    """

    def __init__(self, in_channels: int, out_channels: int, *, base: int = 24, depth: int = 3,
                 dropout: float = 0.0, z_floor: float | None = None, prob_edges_z: Sequence[float] | None = None):
        super().__init__()
        chans = [base * 2 ** i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        c = in_channels
        for ch in chans[:-1]:
            self.down.append(ConvBlock(c, ch))
            c = ch
        self.bottom = ConvBlock(chans[-2], chans[-1], dropout)
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for ch_hi, ch_lo in zip(reversed(chans[:-1]), reversed(chans[1:])):
            self.up.append(nn.ConvTranspose2d(ch_lo, ch_hi, 2, stride=2))
            self.merge.append(ConvBlock(2 * ch_hi, ch_hi))
        self.head = nn.Conv2d(chans[0], out_channels, 1)
        nn.init.zeros_(self.head.weight)  # start as persistence
        nn.init.zeros_(self.head.bias)
        self.z_floor = z_floor
        self.prob_head = (ProbabilityHead(chans[0], out_channels, prob_edges_z)
                          if prob_edges_z is not None and len(prob_edges_z) else None)

    def forward(self, x: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        return self._deterministic(self._features(x), base)

    def forward_both(self, x: torch.Tensor, base: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The deterministic forecast and the bin logits (None without a probabilistic head), one pass."""
        feats = self._features(x)
        logits = self.prob_head(feats, base) if self.prob_head is not None else None
        return self._deterministic(feats, base), logits

    def forward_exceedance(self, x: torch.Tensor, base: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Inference, one pass: the deterministic forecast and the exceedance probabilities (batch, threshold,
        lead_time, y, x) (`ProbabilityHead.exceedance`; None without a probabilistic head)."""
        feats = self._features(x)
        prob = self.prob_head.exceedance(feats, base) if self.prob_head is not None else None
        return self._deterministic(feats, base), prob

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottom(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips)):
            x = merge(torch.cat([up(x), skip], dim=1))
        return x

    def _deterministic(self, feats: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        out = base + self.head(feats)
        if self.z_floor is not None:
            out = self.z_floor + F.softplus(out - self.z_floor, beta=4.0)
        return out
