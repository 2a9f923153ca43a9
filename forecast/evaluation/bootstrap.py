"""The paired moving-block bootstrap of score differences between two methods over the same inits
(hindcast reports, the promotion gate and the skill monitor all use it).

Per init each method contributes exact per-lead sums: valid cells ``n``, squared errors ``sse`` and the
hits / misses / false alarms per threshold. Blocks of ``block`` consecutive inits (default
``ceil(N^(1/3))``) are drawn with replacement until N inits are covered, the same draw for both methods
(paired); the statistic is RMSE(method) - RMSE(reference) per lead and CSI(method) - CSI(reference) per
lead and threshold, recomputed from the summed counts of each replicate; the interval is the percentile
interval at ``confidence``. numpy ``default_rng(seed)``; identical inputs give identical bits (einsum
without BLAS sums in a fixed order).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

import numpy as np

from forecast.errors import BadInputError

__all__ = ["block_weights", "check_bootstrap_args", "paired_block_bootstrap"]

Records = tuple[np.ndarray, np.ndarray, np.ndarray]


def check_bootstrap_args(known: Sequence[str], method: str, reference: str, *, n_boot: int, block: int | None,
                         confidence: float) -> None:
    """The arguments every bootstrap takes, checked: both methods known, ``n_boot`` and ``block`` at least 1,
    ``confidence`` inside (0, 1); else a BadInputError naming the argument."""
    for name, value in (("method", method), ("reference", reference)):
        if value not in known:
            raise BadInputError(f"{name} {value!r} has no data; known methods: {', '.join(known) or 'none'}")
    if int(n_boot) < 1:
        raise BadInputError(f"n_boot must be at least 1, got {n_boot}")
    if block is not None and int(block) < 1:
        raise BadInputError(f"block must be a positive number of inits, got {block}")
    if not 0 < confidence < 1:
        raise BadInputError(f"confidence must lie between 0 and 1, got {confidence}")


def block_weights(n_init: int, n_boot: int, block: int, seed: int, *, chunk: int = 256):
    """Yield ``(first replicate, weights (replicates, n_init) int)`` of the moving-block scheme above: per
    replicate, how often each init (in time order) was drawn. ``default_rng(seed)``; the probabilistic
    verifier resamples its per-init sums with these weights."""
    rng = np.random.default_rng(int(seed))
    blk = min(max(1, int(block)), n_init)
    n_blocks = math.ceil(n_init / blk)
    for start in range(0, int(n_boot), chunk):
        size = min(chunk, int(n_boot) - start)
        starts = rng.integers(0, n_init - blk + 1, size=(size, n_blocks))
        idx = (starts[:, :, None] + np.arange(blk)).reshape(size, -1)[:, :n_init]
        idx += (np.arange(size) * n_init)[:, None]
        yield start, np.bincount(idx.ravel(), minlength=size * n_init).reshape(size, n_init)


def paired_block_bootstrap(a: Records, b: Records, threshold_keys: Sequence[str], *, n_boot: int = 1000,
                           block: int | None = None, seed: int = 0, confidence: float = 0.95) -> dict[str, Any]:
    """Bootstrap ``a - b`` from per-init records stacked over the common inits, in time order.

    Args:
        a, b: ``(n (init, lead) int, sse (init, lead) float, counts (init, lead, threshold, 3) int)``
            for the method and the reference, the same inits in the same order.
        threshold_keys: the JSON keys of the thresholds (the ``csi`` result is keyed by them).

    Returns:
        ``{"n_inits", "block", "n_boot", "seed", "confidence", "rmse": {...}, "csi": {key: {...}}}``, each
        ``{...}`` with per-lead lists ``method``, ``reference``, ``diff``, ``lower``, ``upper`` and
        ``better`` (the interval excludes zero in the method's favour).
    """
    (na, sa, ca), (nb, sb, cb) = a, b
    n_init = len(na)
    n_lead = na.shape[1] if na.ndim == 2 else 0
    n_thr = len(threshold_keys)
    blk = min(int(block) if block is not None else max(1, math.ceil(n_init ** (1 / 3))), max(n_init, 1))
    out: dict[str, Any] = {
        "n_inits": n_init,
        "block": blk,
        "n_boot": int(n_boot),
        "seed": int(seed),
        "confidence": float(confidence),
    }

    def rmse(n: np.ndarray, sse: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, np.sqrt(sse / np.maximum(n, 1)), np.nan)

    def csi(c: np.ndarray) -> np.ndarray:
        den = c.sum(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, c[..., 0] / np.maximum(den, 1), np.nan)

    point_rmse = (rmse(na.sum(0), sa.sum(0)), rmse(nb.sum(0), sb.sum(0)))
    point_csi = (csi(ca.sum(0)), csi(cb.sum(0)))

    rep_rmse = np.full((int(n_boot), n_lead), np.nan)
    rep_csi = np.full((int(n_boot), n_lead, n_thr), np.nan)
    if n_init >= 2:
        rng = np.random.default_rng(int(seed))
        n_blocks = math.ceil(n_init / blk)
        flat_a = np.concatenate([na, ca.reshape(n_init, -1)], axis=1)
        flat_b = np.concatenate([nb, cb.reshape(n_init, -1)], axis=1)
        chunk = max(1, 4_000_000 // (n_init * (flat_a.shape[1] + n_lead)))
        for start in range(0, int(n_boot), chunk):
            size = min(chunk, int(n_boot) - start)
            starts = rng.integers(0, n_init - blk + 1, size=(size, n_blocks))
            idx = (starts[:, :, None] + np.arange(blk)).reshape(size, -1)[:, :n_init]
            idx += (np.arange(size) * n_init)[:, None]
            weights = np.bincount(idx.ravel(), minlength=size * n_init).reshape(size, n_init)
            # einsum without BLAS: a fixed summation order, so re-runs give identical bits
            ia = np.einsum("bn,nk->bk", weights, flat_a)
            ib = np.einsum("bn,nk->bk", weights, flat_b)
            wf = weights.astype(np.float64)
            ea, eb = np.einsum("bn,nl->bl", wf, sa), np.einsum("bn,nl->bl", wf, sb)
            rep_rmse[start : start + size] = rmse(ia[:, :n_lead], ea) - rmse(ib[:, :n_lead], eb)
            rep_csi[start : start + size] = csi(ia[:, n_lead:].reshape(size, n_lead, n_thr, 3)) - csi(
                ib[:, n_lead:].reshape(size, n_lead, n_thr, 3)
            )

    alpha = (1 - confidence) / 2
    q = [100 * alpha, 100 * (1 - alpha)]

    def interval(reps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if n_init < 2:
            nan = np.full(reps.shape[1:], np.nan)
            return nan, nan
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN leads stay NaN
            lo, hi = np.nanpercentile(reps, q, axis=0)
        return lo, hi

    lo, hi = interval(rep_rmse)
    out["rmse"] = {
        "method": point_rmse[0].tolist(),
        "reference": point_rmse[1].tolist(),
        "diff": (point_rmse[0] - point_rmse[1]).tolist(),
        "lower": lo.tolist(),
        "upper": hi.tolist(),
        "better": (hi < 0).tolist(),
    }
    lo, hi = interval(rep_csi)
    out["csi"] = {
        key: {
            "method": point_csi[0][:, k].tolist(),
            "reference": point_csi[1][:, k].tolist(),
            "diff": (point_csi[0][:, k] - point_csi[1][:, k]).tolist(),
            "lower": lo[:, k].tolist(),
            "upper": hi[:, k].tolist(),
            "better": (lo[:, k] > 0).tolist(),
        }
        for k, key in enumerate(threshold_keys)
    }
    return out
