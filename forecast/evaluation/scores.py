"""Pure score functions on one field or one contingency table (the Verifier accumulates their inputs)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["categorical_scores", "fss_counts", "safe_div"]


def safe_div(a: float, b: float) -> float:
    """``a / b``, NaN where ``b`` is 0 or not finite."""
    return a / b if b != 0 and math.isfinite(b) else math.nan


def categorical_scores(hits: float, misses: float, false_alarms: float, correct_negatives: float) -> dict:
    """Scores of one 2x2 contingency table (formulas in the module docstring; 0-denominators give NaN)."""
    h, m, f, c = (float(v) for v in (hits, misses, false_alarms, correct_negatives))
    n = h + m + f + c
    hr = safe_div((h + m) * (h + f), n)
    return {
        "pod": safe_div(h, h + m),
        "far": safe_div(f, h + f),
        "csi": safe_div(h, h + m + f),
        "ets": safe_div(h - hr, h + m + f - hr) if math.isfinite(hr) else math.nan,
        "frequency_bias": safe_div(h + f, h + m),
        "base_rate": safe_div(h + m, n),
    }


def fss_counts(
    fcst_events: np.ndarray, obs_events: np.ndarray, valid: np.ndarray, windows: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Integer FSS sums per lead and window for boolean event fields ``(lead_time, y, x)``.

    Returns ``(num, den)``, int64 arrays ``(lead_time, window)`` with, over valid centres c,
    ``num = sum_c (kf - ko)^2`` and ``den = sum_c (kf^2 + ko^2)``, where ``k`` is the number of events in
    the w x w window centred on c with zero padding beyond the grid (events must already be False where
    not valid). ``FSS = 1 - num / den`` (the window area cancels). A summed-area table over the bounding
    box of all events, widened by the largest half window, serves every window; centres farther than that
    from any event contribute nothing.
    """
    n_lead, ny, nx = valid.shape
    num = np.zeros((n_lead, len(windows)), np.int64)
    den = np.zeros((n_lead, len(windows)), np.int64)
    any_event = fcst_events | obs_events
    rows = np.flatnonzero(any_event.any(axis=(0, 2)))
    if rows.size == 0:
        return num, den
    cols = np.flatnonzero(any_event.any(axis=(0, 1)))
    big = max(windows) // 2
    r0, r1 = max(int(rows[0]) - big, 0), min(int(rows[-1]) + big, ny - 1) + 1
    c0, c1 = max(int(cols[0]) - big, 0), min(int(cols[-1]) + big, nx - 1) + 1
    hc, wc = r1 - r0, c1 - c0
    # counts reach w^2 and their squares w^4: int32 holds that up to w = 215
    work = np.int32 if max(windows) <= 215 and (hc + 2 * big) * (wc + 2 * big) < 2**31 else np.int64
    # summed-area table with `big` zero cells of padding and a leading zero row/column
    sat = np.zeros((2, n_lead, hc + 2 * big + 1, wc + 2 * big + 1), work)
    sat[0, :, big + 1 : big + 1 + hc, big + 1 : big + 1 + wc] = fcst_events[:, r0:r1, c0:c1]
    sat[1, :, big + 1 : big + 1 + hc, big + 1 : big + 1 + wc] = obs_events[:, r0:r1, c0:c1]
    np.cumsum(sat, axis=-2, out=sat)
    np.cumsum(sat, axis=-1, out=sat)
    mask = valid[:, r0:r1, c0:c1].astype(work)
    box = np.empty((2, n_lead, hc, wc), work)
    diff = np.empty((n_lead, hc, wc), work)
    for j, w in enumerate(windows):
        h = w // 2
        hi_r, lo_r = slice(big + h + 1, big + h + 1 + hc), slice(big - h, big - h + hc)
        hi_c, lo_c = slice(big + h + 1, big + h + 1 + wc), slice(big - h, big - h + wc)
        np.subtract(sat[..., hi_r, hi_c], sat[..., lo_r, hi_c], out=box)
        box -= sat[..., hi_r, lo_c]
        box += sat[..., lo_r, lo_c]
        box *= mask  # only valid centres are scored
        np.subtract(box[0], box[1], out=diff)
        diff *= diff
        num[:, j] = diff.sum(axis=(1, 2), dtype=np.int64)
        box *= box
        den[:, j] = box.sum(axis=(0, 2, 3), dtype=np.int64)
    return num, den


