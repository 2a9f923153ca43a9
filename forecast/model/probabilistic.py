"""The maths of the model's probabilistic head: a categorical distribution over intensity bins per lead and
cell, the bins edged by the catalog variable's ``thresholds`` (K thresholds -> K + 1 bins), its
cross-entropy loss, exceedance probabilities, and the deterministic detection product with its cut-offs.

Conventions (as `forecast.evaluation.probabilistic`): the event at threshold ``t_k`` is ``obs >= t_k``; bin
``j`` (0..K) holds values with exactly ``j`` thresholds at or below them, so ``P(obs >= t_k)`` is the sum of
the probabilities of bins ``k + 1 .. K``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ProbabilityHead", "bin_index", "box_mean", "clip_to_level", "detection_field", "detection_level",
           "exceedance", "expected_count_level", "fit_cutoffs", "masked_cross_entropy"]


class ProbabilityHead(nn.Module):
    """Logits of the intensity bins from the U-Net's last decoder features and the base forecast.

    logits = log(prior(base)) + conv1x1(features). The prior is softened Lagrangian persistence: the one-hot
    bin of the base forecast (the advected last field) averaged over a square window growing ``slope`` cells
    per lead step (the local Lagrangian probability of Germann and Zawadzki, as pysteps'
    ``lagrangian_probability``), mixed with ``floor`` of a smooth distribution around the base
    (``softmax(-sharpness * distance(base, bin))`` in normalised units, so that no bin is impossible). The
    convolution starts at zero: an untrained head forecasts that prior, as the deterministic head starts at
    Lagrangian persistence.

    forward(features, base):
        features: (batch, channels, y, x); base: (batch, lead_time, y, x) normalised;
        returns logits (batch, lead_time, bin, y, x).
    """

    def __init__(self, channels: int, leads: int, edges_z: Sequence[float], *, slope: float = 5.0,
                 floor: float = 0.05, sharpness: float = 3.0):
        super().__init__()
        edges = torch.as_tensor(list(edges_z), dtype=torch.float32)
        self.leads, self.bins = leads, len(edges) + 1
        self.slope, self.floor = slope, floor
        self.register_buffer("edges_z", edges)
        self.conv = nn.Conv2d(channels, leads * self.bins, 1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)
        self.log_sharpness = nn.Parameter(torch.full((leads,), math.log(sharpness)))

    def prior(self, base: torch.Tensor) -> torch.Tensor:
        """Log-probabilities (batch, lead_time, bin, y, x) of the prior."""
        return torch.stack([self.prior_lead(base[:, j], j) for j in range(base.shape[1])], dim=1)

    def prior_lead(self, base: torch.Tensor, j: int) -> torch.Tensor:
        """The prior's log-probabilities (batch, bin, y, x) at lead step ``j`` from its base (batch, y, x)."""
        inf = torch.full((1,), float("inf"), dtype=base.dtype, device=base.device)
        e = self.edges_z.to(base.dtype)
        lo = torch.cat([-inf, e]).view(1, -1, 1, 1)
        hi = torch.cat([e, inf]).view(1, -1, 1, 1)
        b = base.unsqueeze(1)
        dist = F.relu(lo - b) + F.relu(b - hi)
        smooth = torch.softmax(-self.log_sharpness[j].exp().to(base.dtype) * dist, dim=1)
        idx = torch.bucketize(base.contiguous(), e, right=True).unsqueeze(1)
        local = box_mean(torch.zeros_like(dist).scatter_(1, idx, 1.0), int((j + 1) * self.slope) // 2)
        # clamped: a bin far from the base must stay possible (a finite loss when it is observed)
        return torch.log(((1 - self.floor) * local + self.floor * smooth).clamp_min(1e-6))

    def forward(self, features: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        b, _, ny, nx = features.shape
        learned = self.conv(features).view(b, self.leads, self.bins, ny, nx)
        return self.prior(base.float()) + learned.float()

    def exceedance(self, features: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """Inference: `exceedance` of `forward`'s logits as (batch, threshold, lead_time, y, x), computed one
        lead at a time - the same numbers without the (batch, lead, bin, y, x) temporaries, a quarter of a
        gigabyte each on a 1000 x 1000 grid, that made the head cost as much as the network."""
        b, _, ny, nx = features.shape
        out = torch.empty((b, self.bins - 1, self.leads, ny, nx), dtype=torch.float32, device=features.device)
        weight = self.conv.weight.view(self.leads, self.bins, *self.conv.weight.shape[1:])
        bias = self.conv.bias.view(self.leads, self.bins)
        for j in range(self.leads):
            learned = F.conv2d(features, weight[j], bias[j]).float()
            out[:, :, j] = exceedance(self.prior_lead(base[:, j].float(), j) + learned)
        return out


def box_mean(x: torch.Tensor, r: int) -> torch.Tensor:
    """The mean of x (batch, channel, y, x) over the (2r + 1)^2 window around each cell, counting only cells
    inside the grid; by cumulative sums, so the cost does not grow with r."""
    if r <= 0:
        return x
    ny, nx = x.shape[-2:]

    def window_sum(a: torch.Tensor, dim: int, n: int) -> torch.Tensor:
        # zero-padded so that c[i + 2r + 1] - c[i] sums a[i - r .. i + r] inside the grid
        c = F.pad(a, (0, 0, r + 1, r) if dim == 2 else (r + 1, r)).cumsum(dim)
        return c.narrow(dim, 2 * r + 1, n) - c.narrow(dim, 0, n)

    i = torch.arange(ny, dtype=x.dtype, device=x.device)
    j = torch.arange(nx, dtype=x.dtype, device=x.device)
    count_y = (i + r + 1).clamp(max=ny) - (i - r).clamp(min=0)
    count_x = (j + r + 1).clamp(max=nx) - (j - r).clamp(min=0)
    return window_sum(window_sum(x, 2, ny), 3, nx) / (count_y[:, None] * count_x[None, :])


def bin_index(values: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """The bin of each value: how many thresholds are ``<= value`` (int64, same shape)."""
    return torch.bucketize(values.contiguous(), thresholds.to(values.dtype), right=True)


def masked_cross_entropy(logits: torch.Tensor, target_phys: torch.Tensor, mask: torch.Tensor,
                         thresholds: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of the observed bin over the cells where ``mask`` > 0 (a proper score).

    logits (batch, lead_time, bin, y, x); target_phys and mask (batch, lead_time, y, x). Masked cells count
    nothing, whatever their target value.
    """
    idx = bin_index(target_phys.float(), thresholds).clamp(0, logits.shape[2] - 1)
    nll = -torch.log_softmax(logits.float(), dim=2).gather(2, idx.unsqueeze(2)).squeeze(2)
    m = (mask > 0).to(nll.dtype)
    return (torch.where(m > 0, nll, torch.zeros_like(nll)) * m).sum() / m.sum().clamp_min(1.0)


def exceedance(logits: torch.Tensor) -> torch.Tensor:
    """P(value >= t_k) from bin logits (..., bin, y, x) -> (..., threshold, y, x), in [0, 1] and
    non-increasing along threshold (sums of non-negative bin probabilities)."""
    p = torch.softmax(logits.float(), dim=-3)
    tail = p.flip(-3).cumsum(-3).flip(-3)  # tail[j] = sum of bins j..K
    return tail[..., 1:, :, :].clamp(0.0, 1.0)


# -- the detection product ---------------------------------------------------------------------------------

def detection_level(prob: np.ndarray, cutoffs: np.ndarray) -> np.ndarray:
    """The detected level per lead and cell: 1 + the highest threshold k whose ``P(>= t_k) >= cutoff[lead, k]``
    (0: none). prob (threshold, lead_time, ...cells); cutoffs (lead_time, threshold), NaN = never by itself."""
    k, n = prob.shape[:2]
    cells = (1,) * (prob.ndim - 2)
    with np.errstate(invalid="ignore"):
        hit = prob >= np.moveaxis(np.asarray(cutoffs), 1, 0).reshape(k, n, *cells)
    ranks = np.arange(1, k + 1).reshape(k, 1, *cells)
    return np.max(np.where(hit, ranks, 0), axis=0)


def detection_field(fields: np.ndarray, prob: np.ndarray, cutoffs: np.ndarray,
                    thresholds: Sequence[float]) -> np.ndarray:
    """The deterministic detection product (lead_time, y, x): in each cell the detected bin (`detection_level`),
    its value the deterministic forecast ``fields`` clipped into that bin (``t_{L-1} <= v < t_L``), so that
    the field exceeds exactly the thresholds detected."""
    return clip_to_level(fields, detection_level(prob, cutoffs), thresholds)


def clip_to_level(fields: np.ndarray, level: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """``fields`` clipped into the bin of ``level`` per cell (``t_{L-1} <= v < t_L``; level 0: below the
    first threshold), so that the field exceeds exactly the thresholds of its level."""
    t = np.asarray(thresholds, dtype=np.float32)
    below = np.nextafter(t, np.float32(-np.inf))  # the largest float32 under each threshold
    lo = np.concatenate([[-np.inf], t]).astype(np.float32)[level]
    hi = np.concatenate([below, [np.inf]]).astype(np.float32)[level]
    return np.clip(np.asarray(fields, dtype=np.float32), lo, hi)


def expected_count_level(prob: np.ndarray) -> np.ndarray:
    """The detected level per lead and cell when each forecast detects, at each threshold, as many cells as
    its own probabilities expect: ``round(sum of P(>= t_k))`` over the cells, the most probable ones, from the
    highest threshold down (cells detected at a higher threshold count at the lower ones, as `fit_cutoffs`).

    Where the probabilities are calibrated the frequency bias is about 1 in any weather, without cut-offs fitted
    on a training period whose rain climate may differ from today's. prob (threshold, lead_time, ...cells),
    NaN where unknown (never detected); returns int (lead_time, ...cells), 0 = none.
    """
    k, n = prob.shape[:2]
    flat = np.asarray(prob, dtype=np.float64).reshape(k, n, -1)
    level = np.zeros((n, flat.shape[-1]), dtype=np.int64)
    for li in range(n):
        detected = np.zeros(flat.shape[-1], dtype=bool)
        for ki in range(k - 1, -1, -1):
            p = flat[ki, li]
            finite = np.isfinite(p)
            need = int(round(float(p[finite].sum()))) - int(detected.sum())
            cand = np.flatnonzero(finite & ~detected)
            if need <= 0 or cand.size == 0:
                continue
            top = cand if need >= cand.size else cand[np.argpartition(-p[cand], need - 1)[:need]]
            detected[top] = True
            level[li, top] = ki + 1
    return level.reshape(n, *prob.shape[2:])


def fit_cutoffs(prob: np.ndarray, events: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Cut-offs (lead_time, threshold) for which the detection product (`detection_level`) forecasts as many
    cells at or above each threshold as were observed there (frequency bias 1), from the highest threshold
    down: at each threshold, the cells already detected at a higher one count, and the cut-off adds the
    most probable of the others until the count is reached. NaN: no cell is detected at that threshold by its
    own probability (no event observed, or the higher thresholds' detections already reach the count).

    prob (threshold, lead_time, cell) exceedance probabilities, events (threshold, lead_time, cell) bool the
    observed ``obs >= threshold``, valid (lead_time, cell) bool; cells from any number of windows.
    """
    k, n = prob.shape[:2]
    out = np.full((n, k), np.nan, dtype=np.float64)
    for li in range(n):
        v = valid[li]
        p = prob[:, li, v].astype(np.float32)
        e = events[:, li, v]
        detected = np.zeros(p.shape[1], dtype=bool)
        for ki in range(k - 1, -1, -1):
            need = int(e[ki].sum()) - int(detected.sum())
            if need <= 0:
                continue
            cand = p[ki][~detected]
            c = 0.0 if need >= cand.size else float(np.partition(cand, cand.size - need)[cand.size - need])
            # ties (e.g. the prior's floor in every dry cell) can make p >= c far more than needed: of c, the
            # next larger value and never, keep the count nearest the need
            above = cand[cand > c]
            options = [(abs(int((cand >= c).sum()) - need), c), (need, math.nan)]
            if above.size:
                options.append((abs(above.size - need), float(above.min())))
            c = min(options, key=lambda o: o[0])[1]
            out[li, ki] = c
            if not math.isnan(c):
                detected |= p[ki] >= c
    return out
