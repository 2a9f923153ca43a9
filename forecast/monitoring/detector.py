"""The change detector on the per-init skill against persistence (pure; its state is a small dict).

Per verified init the monitor computes ``x = ln((MSE_persistence + floor) / (MSE_model + floor))`` over the
leads up to the longest key lead (`per_init_skill`): 0 when the model and persistence are equally good,
positive when the model is better, symmetric in the two; a dry init (both below ``floor``) is skipped. Skill per
init is noisy (it depends on the weather), so the detector standardises it against its own recent past:

- **baseline**: an exponentially weighted mean and variance of ``x`` (e-folding length ``memory`` inits),
  built from the first ``warmup`` inits before any judgement, and updated only while nothing is suspected
  (the statistic below half the threshold), so that a drop is not absorbed into the baseline;
- ``z = (x - mean) / sd``, clipped to +-``clip`` (one outlier cannot raise an alarm by itself);
- **CUSUM** (Page 1954), one-sided for a decrease: ``S = max(0, S - z - k)``; alarm while ``S > h``. The
  defaults ``k = 1``, ``h = 10`` and a baseline from ``warmup = 72`` inits aim at drops of 2 sd and more:
  on two simulated days of steady weather (bench/monitor.py) k = 0.5 raised two false alarms (a dry spell
  and a run of inits where persistence was hard to beat), k = 1 none, while a degraded model was still
  found 6 inits after its first forecast; on iid normal skill k = 0.5, h = 10 gave no false alarm in 60 000
  inits and found a drop of 3 sd within 6 inits; or
- **Page-Hinkley**: ``m = sum (-z - k)``, ``M = min m``; alarm while ``m - M > h`` (the same parameters).

``S`` is capped at ``2 h`` so that a recovered model clears the alarm within a bounded number of inits.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["new_state", "per_init_skill", "update"]


def new_state() -> dict[str, Any]:
    return {"n": 0, "mean": 0.0, "var": 0.0, "s": 0.0, "m": 0.0, "m_min": 0.0, "alarm": False, "alarm_since": None,
            "last_init": None, "last_x": None, "last_z": None, "alarms": 0}


def per_init_skill(sse_model: np.ndarray, n_model: np.ndarray, sse_ref: np.ndarray, n_ref: np.ndarray,
                   n_leads: int, floor: float) -> float | None:
    """``ln((MSE_ref + floor) / (MSE_model + floor))`` pooled over the first ``n_leads`` leads (None when
    nothing was verified, or when both mean square errors are below ``floor``: a dry init)."""
    nm, nr = float(np.sum(n_model[:n_leads])), float(np.sum(n_ref[:n_leads]))
    if nm <= 0 or nr <= 0:
        return None
    mse_m = float(np.sum(sse_model[:n_leads])) / nm
    mse_r = float(np.sum(sse_ref[:n_leads])) / nr
    if max(mse_m, mse_r) < floor:  # nothing to forecast (dry): says nothing of the model's skill
        return None
    return math.log((mse_r + floor) / (mse_m + floor))


def update(state: dict[str, Any], x: float | None, cfg, *, init: str | None = None) -> dict[str, Any]:
    """The detector's state after one more init's skill ``x`` (None: nothing verified at that init, skipped).
    ``cfg`` is a `forecast.catalog.monitoring.DetectorConfig`. Returns a new dict."""
    st = dict(state)
    if x is None or not math.isfinite(x):
        return st
    st["last_init"], st["last_x"] = init, float(x)
    n = st["n"]
    if n < cfg.warmup:  # building the baseline (Welford), no judgement yet
        n += 1
        d = x - st["mean"]
        st["mean"] += d / n
        st["var"] += (d * (x - st["mean"]) - st["var"]) / n
        st["n"] = n
        st["last_z"] = None
        return st
    sd = math.sqrt(max(st["var"], 1e-12))
    z = max(-cfg.clip, min(cfg.clip, (x - st["mean"]) / sd))
    st["last_z"] = z
    if cfg.method == "cusum":
        st["s"] = min(2 * cfg.h, max(0.0, st["s"] - z - cfg.k))
        stat = st["s"]
    else:  # Page-Hinkley
        st["m"] = st["m"] - z - cfg.k
        st["m_min"] = min(st["m_min"], st["m"])
        if st["m"] - st["m_min"] > 2 * cfg.h:  # cap, as for CUSUM
            st["m_min"] = st["m"] - 2 * cfg.h
        stat = st["m"] - st["m_min"]
        st["s"] = stat
    was = st["alarm"]
    st["alarm"] = stat > cfg.h
    if st["alarm"] and not was:
        st["alarm_since"] = init
        st["alarms"] = st.get("alarms", 0) + 1
    elif not st["alarm"]:
        st["alarm_since"] = None
    if stat < cfg.h / 2:  # nothing suspected: the baseline follows slow changes
        a = 1.0 / cfg.memory
        d = x - st["mean"]
        st["mean"] += a * d
        st["var"] = (1 - a) * (st["var"] + a * d * d)
        st["n"] = n + 1
    return st
