"""Verification of exceedance probabilities (and ensembles): the mergeable `ProbabilisticVerifier`.

In the style of `forecast.evaluation.metrics.Verifier`: per (init time, method) a forecast of exceedance
probabilities ``(threshold, lead_time, y, x)`` and the verifying observations ``(lead_time, y, x)`` with a
boolean ``valid`` mask are reduced at once to small sums, exact across inits (integers; floats as exact
binary fixed-point integers), so merging partial results of hindcast workers in any order gives the same
bits as one pass. The scores themselves are those of the `scores` package (the tests check each to 1e-6);
they are recomputed here from accumulated sums only because `scores` works on whole arrays, which a
hindcast over weeks of 256 x 256 grids cannot hold, and its results cannot be merged.

Conventions (also returned as ``summary()["conventions"]``)
-----------------------------------------------------------
*Sample.* A cell counts only where ``valid`` is true and the observation and every threshold's
probability are finite (QC-invalid cells never count). Event: ``obs >= threshold`` (as the deterministic
scores). Probabilities must lie in [0, 1].

*Brier score* per threshold and lead: ``BS = sum (p - o)^2 / n`` with ``o`` in {0, 1}
(`scores.probability.brier_score`). *Brier skill score* against the sample climatology of the verifying
period: ``BSS = 1 - BS / (obar (1 - obar))``, ``obar = events / n`` (the base rate); against a named
reference method: ``BSS_ref = 1 - BS / BS_ref``.

*Reliability* in 10 bins of forecast probability ``[0, 0.1), ..., [0.8, 0.9), [0.9, 1]``: count, mean
forecast probability, observed frequency; ``ECE = sum_b n_b / N |obs_freq_b - mean_p_b|``.

*ROC* at probability cut-offs ``0, 0.05, ..., 1`` (event forecast when ``p >= cut-off``), plus the point
(0, 0) of an infinite cut-off: hit rate ``POD`` and false alarm rate ``POFD``; ``AUC`` by the trapezoid
rule over those points, as `scores.probability.roc_curve_data` with the same cut-offs.

*CRPS* of an ensemble (where members are given), the **fair** (unbiased for the ensemble size) form of
`scores.probability.crps_for_ensemble(method="fair")` per cell, averaged over the valid cells::

    CRPS = sum_i |x_i - y| / M - sum_{i,j} |x_i - x_j| / (2 M (M - 1))

*Bootstrap.* Paired moving-block bootstrap over the inits both methods have (the scheme of
`forecast.evaluation.bootstrap`): statistic ``BSS(method) - BSS(reference)`` per threshold and lead, each
from the replicate's summed squared errors, events and counts; percentile interval.

*Division by zero* gives NaN (``null`` in JSON): BSS with a base rate of 0 or 1, an empty bin, POD without
events, POFD without non-events, AUC when either is missing, every score at a lead with ``n = 0``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from forecast.errors import BadInputError
from forecast.evaluation.accumulate import (
    MethodSums,
    check_leads,
    check_thresholds,
    from_fixed,
    init_seconds,
    score_key,
    to_fixed,
)
from forecast.evaluation.bootstrap import block_weights, check_bootstrap_args
from forecast.serialize import jsonable
from forecast.timeutil import iso as _iso

__all__ = ["PROBABILISTIC_CONVENTIONS", "ROC_CUTOFFS", "RELIABILITY_BINS", "STATE_VERSION", "ProbabilisticVerifier"]

STATE_VERSION = 1
#: probability cut-offs of the ROC curve; k / 20 is the float nearest each decimal
ROC_CUTOFFS = tuple(k / 20 for k in range(21))
#: number of reliability bins (each two ROC cut-off intervals wide)
RELIABILITY_BINS = 10

PROBABILISTIC_CONVENTIONS: dict[str, str] = {
    "sample": "cells where valid (observation QC-usable and finite) and every threshold's probability finite",
    "event": "obs >= threshold",
    "brier": "BS = sum (p - o)^2 / n (scores.probability.brier_score)",
    "bss": "1 - BS / (obar (1 - obar)), obar = sample base rate of the verifying period; bss_reference = "
    "1 - BS / BS_reference",
    "reliability": "10 bins [0,0.1) ... [0.9,1]: n, mean forecast probability, observed frequency; "
    "ECE = sum n_b / N |obs_freq_b - mean_p_b|",
    "roc": "POD and POFD at p >= cut-off for cut-offs 0, 0.05, ..., 1 and inf; AUC by trapezoid "
    "(scores.probability.roc_curve_data with these cut-offs)",
    "crps": "fair ensemble CRPS (scores.probability.crps_for_ensemble, method='fair') averaged over the valid "
    "cells where every member is finite",
    "bootstrap": "paired moving-block bootstrap over common inits of BSS(method) - BSS(reference) per "
    "threshold and lead; percentile interval; numpy default_rng(seed)",
    "division_by_zero": "NaN (null in JSON)",
}

_NB = len(ROC_CUTOFFS)  # histogram bins: index k holds cut-off[k] <= p < cut-off[k+1]; k = 20 holds p >= 1


class _Acc:
    """Sums of one method; integers (floats in fixed point), so merging is exact and order-free."""

    __slots__ = ("cells", "n", "events", "sse", "hist_n", "hist_ev", "hist_p", "crps_n", "crps", "records")

    def __init__(self, n_thr: int, n_lead: int):
        self.cells = np.zeros(n_lead, np.int64)
        self.n = np.zeros(n_lead, np.int64)
        self.events = np.zeros((n_thr, n_lead), np.int64)
        self.sse = [[0] * n_lead for _ in range(n_thr)]  # fixed point
        self.hist_n = np.zeros((n_thr, n_lead, _NB), np.int64)
        self.hist_ev = np.zeros((n_thr, n_lead, _NB), np.int64)
        self.hist_p = [[[0] * _NB for _ in range(n_lead)] for _ in range(n_thr)]  # fixed point
        self.crps_n = np.zeros(n_lead, np.int64)
        self.crps = [0] * n_lead  # fixed point
        # init (epoch s) -> (n (lead,), sse (thr, lead) float64, events (thr, lead))
        self.records: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def absorb(self, o: _Acc) -> None:
        self.cells += o.cells
        self.n += o.n
        self.events += o.events
        self.hist_n += o.hist_n
        self.hist_ev += o.hist_ev
        self.crps_n += o.crps_n
        for k, row in enumerate(o.sse):
            for i, v in enumerate(row):
                self.sse[k][i] += v
        for k, rows in enumerate(o.hist_p):
            for i, row in enumerate(rows):
                for b, v in enumerate(row):
                    self.hist_p[k][i][b] += v
        for i, v in enumerate(o.crps):
            self.crps[i] += v
        self.records.update(o.records)


def _div(a: float, b: float) -> float:
    return a / b if b else math.nan


class ProbabilisticVerifier(MethodSums[_Acc]):
    """Accumulates probabilistic verification sums per method over init times (formulas: module docstring).

    Args:
        lead_times: the forecasts' lead times, strictly increasing (``np.timedelta64`` or seconds).
        thresholds: the exceedance thresholds, strictly increasing (units of the field); the forecasts'
            ``threshold`` axis must hold these, in this order.

    Raises:
        BadInputError: naming the argument that is empty, unsorted or not finite.

    Example::

        pv = ProbabilisticVerifier(np.arange(1, 13) * np.timedelta64(5, "m"), [0.1, 1, 5, 10, 30])
        pv.add(init, "steps", probs, obs, usable, members=ensemble)
        pv.summary(reference="steps", compare=("model",))
    """

    def __init__(self, lead_times: Sequence[Any], thresholds: Sequence[float]):
        self.lead_times = check_leads(lead_times)
        self.thresholds = check_thresholds(thresholds, "thresholds")
        if not self.thresholds:
            raise BadInputError("thresholds must name at least one threshold")
        super().__init__()

    # ---------------------------------------------------------------- adding data

    def add(self, init_time: Any, method: str, prob: Any, obs: Any, valid: Any, *, members: Any = None) -> None:
        """Add one forecast of ``method`` made at ``init_time``.

        Args:
            prob: exceedance probabilities ``(threshold, lead_time, y, x)`` in [0, 1] (NaN: no forecast).
            obs: verifying observations ``(lead_time, y, x)``.
            valid: bool ``(lead_time, y, x)``: where the observation is verifiable (QC-usable).
            members: optional ensemble ``(member, lead_time, y, x)`` (at least 2 members) for the CRPS.

        Raises:
            BadInputError: naming the argument whose shape, dtype or values are wrong, or an (init, method)
                pair added before.
        """
        init = self._check_new(method, init_time)
        p = np.asarray(prob)
        o = np.asarray(obs)
        v = np.asarray(valid)
        n_thr, n_lead = len(self.thresholds), len(self.lead_times)
        if p.ndim != 4 or p.shape[:2] != (n_thr, n_lead):
            raise BadInputError(f"prob must have dims (threshold, lead_time, y, x) with {n_thr} thresholds and "
                                f"{n_lead} lead times, got shape {p.shape}")
        for name, arr in (("obs", o), ("valid", v)):
            if arr.shape != p.shape[1:]:
                raise BadInputError(f"{name} must have dims (lead_time, y, x) of shape {p.shape[1:]}, got {arr.shape}")
        if v.dtype != np.bool_:
            raise BadInputError(f"valid must be a boolean array, got dtype {v.dtype}")
        if not (np.issubdtype(p.dtype, np.number) and np.issubdtype(o.dtype, np.number)):
            raise BadInputError(f"prob and obs must be numeric, got dtypes {p.dtype} and {o.dtype}")
        if self.grid_shape is not None and p.shape[2:] != self.grid_shape:
            raise BadInputError(f"prob grid {p.shape[2:]} differs from the grid added before {self.grid_shape}")
        p = p.astype(np.float64, copy=False)
        with np.errstate(invalid="ignore"):
            if np.any((p < 0) | (p > 1)):
                raise BadInputError("prob must lie in [0, 1]; got values outside it")
        ens = None
        if members is not None:
            ens = np.asarray(members)
            if ens.ndim != 4 or ens.shape[1:] != o.shape or ens.shape[0] < 2:
                raise BadInputError(f"members must have dims (member, lead_time, y, x) with at least 2 members and "
                                    f"the grid of obs {o.shape}, got shape {ens.shape}")
            if not np.issubdtype(ens.dtype, np.number):
                raise BadInputError(f"members must be numeric, got dtype {ens.dtype}")
        self._keep(method, self._reduce(init, p, o.astype(np.float64, copy=False), v, ens), p.shape[2:])

    def _reduce(self, init: int, p: np.ndarray, o: np.ndarray, v: np.ndarray, ens: np.ndarray | None) -> _Acc:
        n_thr, n_lead = p.shape[:2]
        part = _Acc(n_thr, n_lead)
        v = v & np.isfinite(o) & np.isfinite(p).all(axis=0)
        n = np.count_nonzero(v, axis=(1, 2)).astype(np.int64)
        cut = np.asarray(ROC_CUTOFFS)
        sse = np.zeros((n_thr, n_lead))
        for k, t in enumerate(self.thresholds):
            for i in range(n_lead):
                pv = p[k, i][v[i]]
                ev = o[i][v[i]] >= t
                part.events[k, i] = np.count_nonzero(ev)
                d = pv - ev
                sse[k, i] = float(np.dot(d, d))
                b = np.searchsorted(cut, pv, side="right") - 1
                part.hist_n[k, i] = np.bincount(b, minlength=_NB)
                part.hist_ev[k, i] = np.bincount(b[ev], minlength=_NB)
                part.hist_p[k][i] = [to_fixed(x) for x in np.bincount(b, weights=pv, minlength=_NB).tolist()]
        part.sse = [[to_fixed(x) for x in row] for row in sse.tolist()]
        if ens is not None:
            e = np.sort(ens.astype(np.float64), axis=0)  # NaN sorts last
            ok = v & np.isfinite(e).all(axis=0)
            m = e.shape[0]
            spread_w = (2 * np.arange(m) - m + 1).astype(np.float64)  # sum_{i<j} |x_i - x_j| of sorted members
            for i in range(n_lead):
                x = e[:, i][:, ok[i]]
                y = o[i][ok[i]]
                crps = np.abs(x - y).sum(axis=0) / m - 2 * (spread_w @ x) / (2 * m * (m - 1))
                part.crps_n[i] = x.shape[1]
                part.crps[i] = to_fixed(float(crps.sum()))
        part.cells[:] = p.shape[2] * p.shape[3]
        part.n[:] = n
        part.records[init] = (n, sse, part.events.copy())
        return part

    # ---------------------------------------------------------------- merge and state

    def _config(self) -> dict:
        return {"lead_time_s": [int(s) for s in self.lead_times], "thresholds": [float(t) for t in self.thresholds]}

    def merge(self, other: ProbabilisticVerifier) -> ProbabilisticVerifier:
        """Add the sums of ``other`` (other inits) into this one; exact and order-independent. Returns self.

        Raises:
            BadInputError: other lead times, thresholds or grid, or an (init, method) pair in both.
        """
        self._check_merge(other)
        self._absorb_all(other, lambda acc: _Acc(len(self.thresholds), len(self.lead_times)))
        return self

    def to_state(self) -> dict:
        """A JSON-serialisable dict of everything accumulated (fixed-point sums as hex strings)."""
        hx = lambda xs: [format(x, "x") for x in xs]  # noqa: E731
        methods = {}
        for name in self.methods:
            a = self._acc[name]
            inits = sorted(a.records)
            methods[name] = {
                "cells": a.cells.tolist(), "n": a.n.tolist(), "events": a.events.tolist(),
                "sse": [hx(r) for r in a.sse], "hist_n": a.hist_n.tolist(), "hist_ev": a.hist_ev.tolist(),
                "hist_p": [[hx(r) for r in rows] for rows in a.hist_p], "crps_n": a.crps_n.tolist(),
                "crps": hx(a.crps),
                "per_init": {"init_time": [_iso(i) for i in inits], "n": [a.records[i][0].tolist() for i in inits],
                             "sse": [a.records[i][1].tolist() for i in inits],
                             "events": [a.records[i][2].tolist() for i in inits]},
            }
        return {"state_version": STATE_VERSION, "kind": "probabilistic", **self._config(),
                "grid_shape": list(self.grid_shape) if self.grid_shape else None, "methods": methods}

    @classmethod
    def from_state(cls, state: dict) -> ProbabilisticVerifier:
        """Rebuild from `to_state` output.

        Raises:
            BadInputError: the state is of another kind or version, or malformed.
        """
        if not isinstance(state, dict) or state.get("kind") != "probabilistic" \
                or state.get("state_version") != STATE_VERSION:
            raise BadInputError(f"state must be a ProbabilisticVerifier state of version {STATE_VERSION}")
        try:
            self = cls(np.array(state["lead_time_s"], dtype="int64").astype("timedelta64[s]"), state["thresholds"])
            self.grid_shape = tuple(state["grid_shape"]) if state["grid_shape"] else None
            n_thr, n_lead = len(self.thresholds), len(self.lead_times)
            unhex = lambda xs: [int(x, 16) for x in xs]  # noqa: E731
            for name, m in state["methods"].items():
                a = _Acc(n_thr, n_lead)
                a.cells[:] = m["cells"]
                a.n[:] = m["n"]
                a.events[:] = np.array(m["events"], dtype=np.int64).reshape(n_thr, n_lead)
                a.sse = [unhex(r) for r in m["sse"]]
                a.hist_n[:] = np.array(m["hist_n"], dtype=np.int64).reshape(a.hist_n.shape)
                a.hist_ev[:] = np.array(m["hist_ev"], dtype=np.int64).reshape(a.hist_ev.shape)
                a.hist_p = [[unhex(r) for r in rows] for rows in m["hist_p"]]
                a.crps_n[:] = m["crps_n"]
                a.crps = unhex(m["crps"])
                per = m["per_init"]
                for t, n, sse, ev in zip(per["init_time"], per["n"], per["sse"], per["events"]):
                    a.records[init_seconds(t)] = (np.array(n, dtype=np.int64),
                                                   np.array(sse, dtype=np.float64).reshape(n_thr, n_lead),
                                                   np.array(ev, dtype=np.int64).reshape(n_thr, n_lead))
                self._acc[name] = a
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, BadInputError):
                raise
            raise BadInputError(f"state is malformed: {exc!r}") from exc
        return self

    # ---------------------------------------------------------------- scores

    def _scores(self, a: _Acc) -> dict:
        n_lead = len(self.lead_times)
        out: dict[str, Any] = {}
        for k, t in enumerate(self.thresholds):
            brier, base, bss, ece, auc = [], [], [], [], []
            rel_n, rel_p, rel_o, pods, pofds = [], [], [], [], []
            for i in range(n_lead):
                n = int(a.n[i])
                bs = from_fixed(a.sse[k][i]) / n if n else math.nan
                obar = a.events[k, i] / n if n else math.nan
                brier.append(bs)
                base.append(obar)
                bss.append(1.0 - _div(bs, obar * (1 - obar)) if n else math.nan)
                hn, he = a.hist_n[k, i], a.hist_ev[k, i]
                hp = a.hist_p[k][i]
                # reliability bin j holds ROC bins 2j, 2j+1 (and the p = 1 bin for the last)
                groups = [[2 * j, 2 * j + 1] + ([_NB - 1] if j == RELIABILITY_BINS - 1 else [])
                          for j in range(RELIABILITY_BINS)]
                cnt = [int(sum(hn[g] for g in gs)) for gs in groups]
                evs = [int(sum(he[g] for g in gs)) for gs in groups]
                psum = [from_fixed(sum(hp[g] for g in gs)) for gs in groups]
                mp = [_div(s, c) for s, c in zip(psum, cnt)]
                of = [_div(e, c) for e, c in zip(evs, cnt)]
                rel_n.append(cnt)
                rel_p.append(mp)
                rel_o.append(of)
                ece.append(sum(c / n * abs(f - m) for c, f, m in zip(cnt, of, mp) if c) if n else math.nan)
                # ROC: POD / POFD at p >= cut-off, then the (0, 0) point of an infinite cut-off
                ev_ge = np.cumsum(he[::-1])[::-1]
                non_ge = np.cumsum((hn - he)[::-1])[::-1]
                n_ev, n_non = int(ev_ge[0]), int(non_ge[0])
                pod = [_div(int(x), n_ev) for x in ev_ge] + ([0.0] if n_ev else [math.nan])
                pofd = [_div(int(x), n_non) for x in non_ge] + ([0.0] if n_non else [math.nan])
                pods.append(pod)
                pofds.append(pofd)
                auc.append(float(-np.trapezoid(pod, pofd)) if n_ev and n_non else math.nan)
            out[score_key(t)] = {"brier": brier, "base_rate": base, "bss": bss, "ece": ece, "auc": auc,
                            "events": a.events[k].tolist(),
                            "reliability": {"n": rel_n, "mean_p": rel_p, "obs_freq": rel_o},
                            "roc": {"pod": pods, "pofd": pofds}}
        crps = [(from_fixed(a.crps[i]) / int(a.crps_n[i])) if a.crps_n[i] else math.nan for i in range(n_lead)]
        inits = sorted(a.records)
        return {"n_inits": len(inits), "first_init": _iso(inits[0]) if inits else None,
                "last_init": _iso(inits[-1]) if inits else None, "n": a.n.tolist(),
                "valid_fraction": [_div(int(x), int(c)) for x, c in zip(a.n, a.cells)],
                "thresholds": out, "crps": crps if a.crps_n.any() else None}

    def bootstrap(self, method: str, reference: str, *, n_boot: int = 1000, block: int | None = None,
                  seed: int = 0, confidence: float = 0.95) -> dict:
        """Paired block bootstrap of ``BSS(method) - BSS(reference)`` (climatological BSS, each from the
        replicate's own sums) per threshold and lead, over the inits both have.

        Returns ``{"n_inits", "block", "n_boot", "seed", "confidence", "bss_diff": {threshold: {"method",
        "reference", "diff", "lower", "upper", "better"}}}`` with per-lead lists; ``better``: lower > 0.

        Raises:
            BadInputError: an unknown method, ``n_boot < 1``, ``block < 1`` or a confidence outside (0, 1).
        """
        check_bootstrap_args(self.methods, method, reference, n_boot=n_boot, block=block, confidence=confidence)
        a, b = self._acc[method], self._acc[reference]
        common = sorted(set(a.records) & set(b.records))
        n_thr, n_lead = len(self.thresholds), len(self.lead_times)

        def stack(acc: _Acc) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            if not common:
                return (np.zeros((0, n_lead)), np.zeros((0, n_thr, n_lead)), np.zeros((0, n_thr, n_lead)))
            return tuple(np.stack([acc.records[i][j] for i in common]).astype(np.float64)
                         for j in range(3))  # type: ignore[return-value]

        def bss(n: np.ndarray, sse: np.ndarray, ev: np.ndarray) -> np.ndarray:
            # n (..., lead), sse / ev (..., thr, lead)
            with np.errstate(invalid="ignore", divide="ignore"):
                nn = n[..., None, :]
                obar = ev / nn
                return 1.0 - (sse / nn) / (obar * (1.0 - obar))

        (na, sa, ea), (nb, sb, eb) = stack(a), stack(b)
        n_init = len(common)
        blk = min(int(block) if block is not None else max(1, math.ceil(n_init ** (1 / 3))), max(n_init, 1))
        point_a, point_b = bss(na.sum(0), sa.sum(0), ea.sum(0)), bss(nb.sum(0), sb.sum(0), eb.sum(0))
        reps = np.full((int(n_boot), n_thr, n_lead), np.nan)
        if n_init >= 2:
            for start, w in block_weights(n_init, int(n_boot), blk, int(seed)):
                w = w.astype(np.float64)
                def resampled(n, sse, ev):
                    return bss(np.einsum("bn,nl->bl", w, n), np.einsum("bn,ntl->btl", w, sse),
                               np.einsum("bn,ntl->btl", w, ev))

                ra, rb = resampled(na, sa, ea), resampled(nb, sb, eb)
                reps[start:start + len(w)] = ra - rb
        alpha = (1 - confidence) / 2
        if n_init >= 2:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                lo, hi = np.nanpercentile(reps, [100 * alpha, 100 * (1 - alpha)], axis=0)
        else:
            lo = hi = np.full((n_thr, n_lead), np.nan)
        with np.errstate(invalid="ignore"):
            better = lo > 0
        diff = point_a - point_b
        return {"n_inits": n_init, "block": blk, "n_boot": int(n_boot), "seed": int(seed),
                "confidence": float(confidence),
                "bss_diff": {score_key(t): {"method": point_a[k].tolist(), "reference": point_b[k].tolist(),
                                       "diff": diff[k].tolist(), "lower": lo[k].tolist(), "upper": hi[k].tolist(),
                                       "better": better[k].tolist()}
                             for k, t in enumerate(self.thresholds)}}

    def summary(self, *, reference: str | None = None, compare: Sequence[str] = (), n_boot: int = 1000,
                block: int | None = None, seed: int = 0, confidence: float = 0.95) -> dict:
        """Every score as a JSON-ready dict (NaN as None).

        Args:
            reference: a method (e.g. "steps") to compute ``bss_reference`` against; None: only the BSS
                against the sample climatology.
            compare: methods bootstrapped (`bootstrap`) against every other method present.

        Returns:
            ``{"conventions", "lead_time_s", "thresholds", "roc_cutoffs", "reliability_bins", "grid_shape",
            "reference", "methods": {name: {"n_inits", "first_init", "last_init", "n", "valid_fraction",
            "crps" (per lead, or None without members), "thresholds": {thr: {"brier", "base_rate", "bss",
            "bss_reference" (with a reference), "ece", "auc", "events", "reliability": {"n", "mean_p",
            "obs_freq"} (lead x bin), "roc": {"pod", "pofd"} (lead x cut-off, the last the inf cut-off)}}}},
            "bootstrap": {method: {other: ...}}}``.

        Raises:
            BadInputError: ``reference`` or a ``compare`` method has no data.
        """
        known = ", ".join(self.methods) or "none"
        if reference is not None and reference not in self._acc:
            raise BadInputError(f"reference {reference!r} has no data; known methods: {known}")
        for m in compare:
            if m not in self._acc:
                raise BadInputError(f"compare method {m!r} has no data; known methods: {known}")
        scores = {m: self._scores(self._acc[m]) for m in self.methods}
        if reference is not None:
            for m in self.methods:
                for t, blk in scores[m]["thresholds"].items():
                    ref = scores[reference]["thresholds"][t]["brier"]
                    blk["bss_reference"] = [1.0 - _div(x, y) for x, y in zip(blk["brier"], ref)]
        boot = {m: {r: self.bootstrap(m, r, n_boot=n_boot, block=block, seed=seed, confidence=confidence)
                    for r in self.methods if r != m} for m in compare}
        return jsonable({"conventions": dict(PROBABILISTIC_CONVENTIONS), **self._config(),
                         "roc_cutoffs": list(ROC_CUTOFFS) + [math.inf], "reliability_bins": RELIABILITY_BINS,
                         "grid_shape": list(self.grid_shape) if self.grid_shape else None,
                         "reference": reference, "methods": scores, "bootstrap": boot})
