"""Hindcast verification: one accumulator of gridded forecast scores; every convention is pinned here.

One module on purpose (about 650 lines, a third of it this docstring): the conventions below and the
`Verifier` that implements them are one contract, read and changed together; the pure scores live in
`forecast.evaluation.scores` and the bootstrap in `forecast.evaluation.bootstrap`.

A `Verifier` takes, per (init time, method), a forecast and the verifying observations as arrays
``(lead_time, y, x)`` with a boolean ``valid`` mask of the same shape, reduces them at once to small sums
(memory does not grow with the grid or, for the aggregates, with the period) and turns the sums into
scores, skill scores and paired block-bootstrap intervals in `Verifier.summary`.

Conventions (also returned as ``summary()["conventions"]``)
-----------------------------------------------------------
*Sample.* A cell enters every metric only where ``valid`` is true, where the observation is verifiable
(QC-usable and finite) and the forecast is finite. ``valid`` is AND-ed with ``isfinite(fcst) &
isfinite(obs)`` as a guard. ``valid_fraction[lead] = n[lead] / (inits * ny * nx)`` is reported beside
every score. For a fair comparison between methods the caller passes the same mask to every method
at an init (the intersection of the methods' finite cells with the usable observations).

*Continuous, per lead* (sums over all valid cells of all inits, ``f`` forecast, ``o`` observation)::

    bias = sum(f - o) / n                     mae  = sum|f - o| / n
    rmse = sqrt(sum (f - o)^2 / n)
    corr = (n sum fo - sum f sum o) / sqrt((n sum f^2 - (sum f)^2) (n sum o^2 - (sum o)^2))   (Pearson)

*Categorical, per lead and threshold t*, event = ``value >= t`` for forecast and observation alike::

    hits H = #(f>=t & o>=t)   misses M = #(f<t & o>=t)   false alarms F = #(f>=t & o<t)
    correct negatives C = #(f<t & o<t)                    N = H + M + F + C
    POD = H / (H + M)          FAR = F / (H + F)          CSI = H / (H + M + F)
    frequency bias = (H + F) / (H + M)                    base rate = (H + M) / N
    ETS (Gilbert skill score) = (H - Hr) / (H + M + F - Hr),  Hr = (H + M)(H + F) / N

*FSS* (Roberts & Lean 2008), per lead, threshold t and odd window w (cells), event ``value >= t``.
The verification domain is the set of valid cells: an invalid cell counts like a cell outside the
grid. Event fields ``E = (value >= t) & valid`` are box-summed over the w x w window centred on each
cell with zero padding beyond the grid edge; fractions ``P = boxsum(E) / w^2``; only centres that are
valid are scored. Aggregated over all inits (not an average of per-field FSS)::

    FSS = 1 - sum_c (Pf - Po)^2 / sum_c (Pf^2 + Po^2)

The box sums are integer counts, so numerator and denominator are accumulated exactly as integers
(in units of 1/w^4).

*Division by zero.* Any ratio whose denominator is zero is NaN (``null`` in JSON): POD and frequency bias
without observed events, FAR without forecast events, CSI without any event, ETS when ``H + M + F = Hr``
(no event, or every cell an event), correlation for a constant field, FSS when neither field has an
event in the valid set (`scores` returns 0 there), RMSE/MAE skill against a perfect or undefined
reference, every score at a lead with ``n = 0``.

*Skill against a reference method* (persistence by default), from each method's aggregate::

    rmse_skill = 1 - rmse / rmse_ref     mae_skill = 1 - mae / mae_ref
    csi_diff   = csi - csi_ref           fss_diff  = fss - fss_ref           ets_diff = ets - ets_ref

*Bootstrap.* For method m against each other method r, over the inits both have (sorted by time):
moving-block bootstrap (Kunsch 1989) with blocks of ``block`` consecutive inits (default
``ceil(N ** (1/3))``), ``ceil(N / block)`` block starts drawn uniformly from ``0 .. N - block`` and the
series cut to N; the same resampled inits for m and r (paired). Statistic per replicate: ``rmse_m -
rmse_r`` per lead (from resampled sums of squared error and counts) and ``csi_m - csi_r`` per lead and
threshold. Interval: the percentile interval (2.5 %, 97.5 % for 95 %) of the replicates that are
defined. ``numpy.random.default_rng(seed)``, fresh for every pair: the same seed gives the same numbers.

*Determinism.* Floating sums per init are taken in float64 from the given arrays; across inits they are
accumulated exactly (integers; floats as exact binary fixed-point integers), per-init records are kept
sorted by init time, so the result does not depend on the order of `add` and `merge` calls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from forecast.errors import BadInputError
from forecast.evaluation.accumulate import (
    FIXED_BITS,
    FIXED_ONE,
    MethodSums,
    check_leads,
    check_thresholds,
    check_windows,
    from_fixed,
    init_seconds,
    score_key,
    to_fixed,
)
from forecast.evaluation.bootstrap import check_bootstrap_args, paired_block_bootstrap
from forecast.evaluation.scores import categorical_scores, fss_counts, safe_div
from forecast.serialize import jsonable
from forecast.timeutil import iso as _iso

__all__ = ["CONVENTIONS", "STATE_VERSION", "Verifier", "categorical_scores", "fss_counts"]

#: Version of the dict written by `Verifier.to_state`.
STATE_VERSION = 1

#: The conventions in words; copied into every summary and report.
CONVENTIONS: dict[str, str] = {
    "sample": "cells where valid (observation QC-usable and finite, forecast finite); valid_fraction = "
    "n / (inits * ny * nx) per lead is reported beside every score",
    "threshold_operator": ">= (event when value >= threshold, forecast and observation alike)",
    "continuous": "rmse = sqrt(sum (f-o)^2 / n); mae = sum |f-o| / n; bias = sum (f-o) / n; "
    "correlation = Pearson over all valid cells of all inits at that lead",
    "categorical": "POD = H/(H+M); FAR = F/(H+F); CSI = H/(H+M+F); frequency_bias = (H+F)/(H+M); "
    "base_rate = (H+M)/N; ETS = (H-Hr)/(H+M+F-Hr), Hr = (H+M)(H+F)/N",
    "fss": "events (value >= t) & valid, box-summed over a w x w window centred on each cell with zero "
    "padding beyond the grid (invalid cells count as outside the grid); fractions = count / w^2; only "
    "valid centres scored; FSS = 1 - sum (Pf-Po)^2 / sum (Pf^2+Po^2) over all scored centres of all inits",
    "division_by_zero": "NaN (null in JSON); FSS with no event in either field is null (scores returns 0)",
    "skill": "rmse_skill = 1 - rmse/rmse_ref; mae_skill = 1 - mae/mae_ref; csi_diff, ets_diff, fss_diff = "
    "score - score_ref; each from the method's own aggregate",
    "bootstrap": "paired moving-block bootstrap over the inits both methods have, sorted by time; blocks of "
    "consecutive inits (default ceil(N^(1/3))); percentile interval of (method - reference) of rmse per "
    "lead and csi per lead and threshold; numpy default_rng(seed)",
}

# Per-init float sums, in this order (index into _MethodAcc.sums).
_SUM_NAMES = ("f", "o", "ff", "oo", "fo", "ae", "se")
_SF, _SO, _SFF, _SOO, _SFO, _SAE, _SSE = range(len(_SUM_NAMES))


# --------------------------------------------------------------------------------------------------
# The accumulator
# --------------------------------------------------------------------------------------------------


class _MethodAcc:
    """Running sums of one method; every field exact (integers), so merging is order-independent."""

    __slots__ = ("cells", "n", "sums", "ctab", "fss_num", "fss_den", "records")

    def __init__(self, n_lead: int, n_thr: int, n_fss_thr: int, n_win: int):
        self.cells = np.zeros(n_lead, np.int64)  # grid cells offered per lead (valid or not)
        self.n = np.zeros(n_lead, np.int64)  # valid cells per lead
        self.sums = [[0] * n_lead for _ in _SUM_NAMES]  # fixed-point ints, see to_fixed
        self.ctab = np.zeros((n_lead, n_thr, 4), np.int64)  # hits, misses, false alarms, correct negatives
        self.fss_num = np.zeros((n_lead, n_fss_thr, n_win), np.int64)
        self.fss_den = np.zeros((n_lead, n_fss_thr, n_win), np.int64)
        # per init (epoch seconds) -> (n (lead,), sse (lead,), hits/misses/false alarms (lead, thr, 3))
        self.records: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def absorb(self, other: _MethodAcc) -> None:
        self.cells += other.cells
        self.n += other.n
        for mine, theirs in zip(self.sums, other.sums):
            for i, v in enumerate(theirs):
                mine[i] += v
        self.ctab += other.ctab
        self.fss_num += other.fss_num
        self.fss_den += other.fss_den
        self.records.update(other.records)


class Verifier(MethodSums[_MethodAcc]):
    """Accumulates verification sums per method over init times; see the module docstring for formulas.

    Args:
        lead_times: the forecasts' lead times, strictly increasing (``np.timedelta64`` or seconds).
        thresholds: event thresholds for the contingency scores, strictly increasing (units of the field).
        fss_windows: FSS window sizes in grid cells: positive, odd, strictly increasing.
        fss_thresholds: thresholds for the FSS; default: ``thresholds``.

    Raises:
        BadInputError: naming the argument that is empty, unsorted, not finite or (windows) not odd.

    Example::

        v = Verifier(np.arange(1, 13) * np.timedelta64(5, "m"), [1, 10, 30], [1, 3, 9, 17])
        v.add(np.datetime64("2026-07-15T12:00"), "model", fcst, obs, usable & np.isfinite(fcst))
        summary = v.summary(reference="persistence", compare=("model",))
    """

    def __init__(
        self,
        lead_times: Sequence[Any],
        thresholds: Sequence[float],
        fss_windows: Sequence[int],
        fss_thresholds: Sequence[float] | None = None,
    ):
        self.lead_times = check_leads(lead_times)
        self.thresholds = check_thresholds(thresholds, "thresholds")
        self.fss_thresholds = (
            self.thresholds if fss_thresholds is None else check_thresholds(fss_thresholds, "fss_thresholds")
        )
        self.fss_windows = check_windows(fss_windows)
        super().__init__()

    # ---------------------------------------------------------------- adding data

    def add(self, init_time: Any, method: str, fcst: Any, obs: Any, valid: Any) -> None:
        """Add one forecast of ``method`` made at ``init_time``.

        Args:
            init_time: the init time (``np.datetime64``; a datetime, naive taken as UTC, or ISO string).
            method: the method's name ("model", "persistence", ...).
            fcst: forecast, array ``(lead_time, y, x)``.
            obs: verifying observations at the valid times, array ``(lead_time, y, x)``.
            valid: bool array ``(lead_time, y, x)``, where the cell is verifiable (see the module docstring).

        Raises:
            BadInputError: shapes differ or do not match the lead times or earlier grids, ``valid`` is not
                boolean, the method is unnamed, or this (init, method) was added before.
        """
        init = self._check_new(method, init_time)
        f = np.asarray(fcst)
        o = np.asarray(obs)
        v = np.asarray(valid)
        want = (len(self.lead_times),)
        for name, arr in (("fcst", f), ("obs", o), ("valid", v)):
            if arr.ndim != 3 or arr.shape[0] != want[0]:
                raise BadInputError(
                    f"{name} must have dims (lead_time, y, x) with {want[0]} lead times, got shape {arr.shape}"
                )
        if f.shape != o.shape or f.shape != v.shape:
            raise BadInputError(f"fcst, obs and valid shapes differ: {f.shape}, {o.shape}, {v.shape}")
        if v.dtype != np.bool_:
            raise BadInputError(f"valid must be a boolean array, got dtype {v.dtype}")
        if not (np.issubdtype(f.dtype, np.number) and np.issubdtype(o.dtype, np.number)):
            raise BadInputError(f"fcst and obs must be numeric, got dtypes {f.dtype} and {o.dtype}")
        if self.grid_shape is not None and f.shape[1:] != self.grid_shape:
            raise BadInputError(f"fcst grid {f.shape[1:]} differs from the grid added before {self.grid_shape}")
        self._keep(method, self._reduce(init, f, o, v), f.shape[1:])

    def _reduce(self, init: int, f: np.ndarray, o: np.ndarray, v: np.ndarray) -> _MethodAcc:
        n_lead, ny, nx = f.shape
        part = _MethodAcc(n_lead, len(self.thresholds), len(self.fss_thresholds), len(self.fss_windows))
        with np.errstate(invalid="ignore", over="ignore"):
            v = v & np.isfinite(f) & np.isfinite(o)
            fz = np.where(v, f, 0).astype(np.float64, copy=False)
            oz = np.where(v, o, 0).astype(np.float64, copy=False)
            d = fz - oz
            n = np.count_nonzero(v, axis=(1, 2)).astype(np.int64)
            sums = np.stack(
                [
                    fz.sum(axis=(1, 2)),
                    oz.sum(axis=(1, 2)),
                    np.einsum("lij,lij->l", fz, fz),
                    np.einsum("lij,lij->l", oz, oz),
                    np.einsum("lij,lij->l", fz, oz),
                    np.abs(d).sum(axis=(1, 2)),
                    np.einsum("lij,lij->l", d, d),
                ]
            )
            del fz, oz, d
            events: dict[float, tuple[np.ndarray, np.ndarray]] = {}

            def events_at(t: float) -> tuple[np.ndarray, np.ndarray]:
                if t not in events:
                    events[t] = ((f >= t) & v, (o >= t) & v)
                return events[t]

            ctab = np.zeros((n_lead, len(self.thresholds), 4), np.int64)
            for k, t in enumerate(self.thresholds):
                fe, oe = events_at(t)
                hits = np.count_nonzero(fe & oe, axis=(1, 2))
                f_yes = np.count_nonzero(fe, axis=(1, 2))
                o_yes = np.count_nonzero(oe, axis=(1, 2))
                ctab[:, k] = np.stack([hits, o_yes - hits, f_yes - hits, n - o_yes - f_yes + hits], axis=-1)
            for k, t in enumerate(self.fss_thresholds):
                fe, oe = events_at(t)
                part.fss_num[:, k], part.fss_den[:, k] = fss_counts(fe, oe, v, self.fss_windows)
        part.cells[:] = ny * nx
        part.n[:] = n
        part.sums = [[to_fixed(x) for x in row] for row in sums.tolist()]
        part.ctab = ctab
        part.records[init] = (n, sums[_SSE].copy(), ctab[..., :3].copy())
        return part

    # ---------------------------------------------------------------- merge and state

    def _config(self) -> dict:
        return {
            "lead_time_s": [int(s) for s in self.lead_times],
            "thresholds": [float(t) for t in self.thresholds],
            "fss_thresholds": [float(t) for t in self.fss_thresholds],
            "fss_windows": [int(w) for w in self.fss_windows],
        }

    def merge(self, other: Verifier) -> Verifier:
        """Add the sums of ``other`` (a partial result over other inits) into this one; returns self.

        Exact and order-independent: ``a.merge(b)`` and ``b.merge(a)`` give identical summaries, equal to
        adding every init into one Verifier.

        Raises:
            BadInputError: the two differ in lead times, thresholds, windows or grid, or share an
                (init, method) pair.
        """
        self._check_merge(other)
        self._absorb_all(other, lambda acc: _MethodAcc(*acc.ctab.shape[:2], *acc.fss_num.shape[1:]))
        return self

    def to_state(self) -> dict:
        """A JSON-serialisable dict of everything accumulated (exact: fixed-point sums as hex strings)."""
        methods = {}
        for name in self.methods:
            acc = self._acc[name]
            inits = sorted(acc.records)
            methods[name] = {
                "cells": acc.cells.tolist(),
                "n": acc.n.tolist(),
                "sums": {s: [format(v, "x") for v in acc.sums[i]] for i, s in enumerate(_SUM_NAMES)},
                "contingency": acc.ctab.tolist(),
                "fss_num": acc.fss_num.tolist(),
                "fss_den": acc.fss_den.tolist(),
                "per_init": {
                    "init_time": [_iso(i) for i in inits],
                    "n": [acc.records[i][0].tolist() for i in inits],
                    "sse": [acc.records[i][1].tolist() for i in inits],
                    "hits_misses_false_alarms": [acc.records[i][2].tolist() for i in inits],
                },
            }
        return {
            "state_version": STATE_VERSION,
            **self._config(),
            "grid_shape": list(self.grid_shape) if self.grid_shape else None,
            "methods": methods,
        }

    @classmethod
    def from_state(cls, state: dict) -> Verifier:
        """Rebuild a Verifier from `to_state` output (e.g. to resume an interrupted hindcast).

        Raises:
            BadInputError: the state is of another version or malformed.
        """
        if not isinstance(state, dict) or state.get("state_version") != STATE_VERSION:
            got = state.get("state_version") if isinstance(state, dict) else type(state).__name__
            raise BadInputError(f"state must be a Verifier state of version {STATE_VERSION}, got {got!r}")
        try:
            self = cls(
                np.array(state["lead_time_s"], dtype="int64").astype("timedelta64[s]"),
                state["thresholds"],
                state["fss_windows"],
                state["fss_thresholds"],
            )
            self.grid_shape = tuple(state["grid_shape"]) if state["grid_shape"] else None
            shape = (len(self.lead_times), len(self.thresholds), len(self.fss_thresholds), len(self.fss_windows))
            for name, m in state["methods"].items():
                acc = _MethodAcc(*shape)
                acc.cells[:] = m["cells"]
                acc.n[:] = m["n"]
                acc.sums = [[int(v, 16) for v in m["sums"][s]] for s in _SUM_NAMES]
                acc.ctab[:] = np.array(m["contingency"], dtype=np.int64).reshape(acc.ctab.shape)
                acc.fss_num[:] = np.array(m["fss_num"], dtype=np.int64).reshape(acc.fss_num.shape)
                acc.fss_den[:] = np.array(m["fss_den"], dtype=np.int64).reshape(acc.fss_den.shape)
                per = m["per_init"]
                for t, n, sse, hmf in zip(per["init_time"], per["n"], per["sse"], per["hits_misses_false_alarms"]):
                    acc.records[init_seconds(t)] = (
                        np.array(n, dtype=np.int64),
                        np.array(sse, dtype=np.float64),
                        np.array(hmf, dtype=np.int64).reshape(shape[0], shape[1], 3),
                    )
                self._acc[name] = acc
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, BadInputError):
                raise
            raise BadInputError(f"state is malformed: {exc!r}") from exc
        return self

    # ---------------------------------------------------------------- scores

    def _scores(self, acc: _MethodAcc) -> dict:
        """Scores of one method, floats with NaN (converted to None by `summary`)."""
        n_lead = len(self.lead_times)
        cont: dict[str, list[float]] = {k: [] for k in ("rmse", "mae", "bias", "correlation", "fcst_mean", "obs_mean")}
        two_k = 2 * FIXED_BITS
        for i in range(n_lead):
            n = int(acc.n[i])
            sf, so, sff, soo, sfo, sae, sse = (acc.sums[s][i] for s in range(len(_SUM_NAMES)))
            cont["rmse"].append(math.sqrt(from_fixed(sse) / n) if n else math.nan)
            cont["mae"].append(from_fixed(sae) / n if n else math.nan)
            cont["bias"].append(from_fixed(sf - so) / n if n else math.nan)
            cont["fcst_mean"].append(from_fixed(sf) / n if n else math.nan)
            cont["obs_mean"].append(from_fixed(so) / n if n else math.nan)
            # exact integer numerator and variances (units 2**-2148) before the one rounding
            cov = n * sfo * FIXED_ONE - sf * so
            var_f = n * sff * FIXED_ONE - sf * sf
            var_o = n * soo * FIXED_ONE - so * so
            if n and var_f > 0 and var_o > 0:
                sd_f, sd_o = math.sqrt(from_fixed(var_f, two_k)), math.sqrt(from_fixed(var_o, two_k))
                r = from_fixed(cov, two_k) / (sd_f * sd_o)
                cont["correlation"].append(max(-1.0, min(1.0, r)))
            else:
                cont["correlation"].append(math.nan)
        cont["n"] = acc.n.tolist()
        cont["valid_fraction"] = [safe_div(float(n), float(c)) for n, c in zip(acc.n, acc.cells)]

        cat = {}
        for k, t in enumerate(self.thresholds):
            block: dict[str, list] = {
                "hits": acc.ctab[:, k, 0].tolist(),
                "misses": acc.ctab[:, k, 1].tolist(),
                "false_alarms": acc.ctab[:, k, 2].tolist(),
                "correct_negatives": acc.ctab[:, k, 3].tolist(),
                "n": acc.ctab[:, k].sum(axis=-1).tolist(),
            }
            per_lead = [categorical_scores(*acc.ctab[i, k]) for i in range(n_lead)]
            for name in ("pod", "far", "csi", "ets", "frequency_bias", "base_rate"):
                block[name] = [s[name] for s in per_lead]
            cat[score_key(t)] = block

        fss = {}
        for k, t in enumerate(self.fss_thresholds):
            fss[score_key(t)] = {
                score_key(w): [
                    1.0 - safe_div(float(acc.fss_num[i, k, j]), float(acc.fss_den[i, k, j])) for i in range(n_lead)
                ]
                for j, w in enumerate(self.fss_windows)
            }
        inits = sorted(acc.records)
        return {
            "n_inits": len(inits),
            "first_init": _iso(inits[0]) if inits else None,
            "last_init": _iso(inits[-1]) if inits else None,
            "valid_fraction": cont["valid_fraction"],
            "continuous": cont,
            "categorical": cat,
            "fss": fss,
        }

    @staticmethod
    def _skill(s: dict, ref: dict) -> dict:
        def ratio_skill(a: list, b: list) -> list:
            return [1.0 - safe_div(x, y) for x, y in zip(a, b)]

        def diff(a: list, b: list) -> list:
            return [x - y for x, y in zip(a, b)]

        return {
            "rmse_skill": ratio_skill(s["continuous"]["rmse"], ref["continuous"]["rmse"]),
            "mae_skill": ratio_skill(s["continuous"]["mae"], ref["continuous"]["mae"]),
            "csi_diff": {t: diff(b["csi"], ref["categorical"][t]["csi"]) for t, b in s["categorical"].items()},
            "ets_diff": {t: diff(b["ets"], ref["categorical"][t]["ets"]) for t, b in s["categorical"].items()},
            "fss_diff": {
                t: {w: diff(v, ref["fss"][t][w]) for w, v in ws.items()} for t, ws in s["fss"].items()
            },
        }

    def bootstrap(
        self,
        method: str,
        reference: str,
        *,
        n_boot: int = 1000,
        block: int | None = None,
        seed: int = 0,
        confidence: float = 0.95,
    ) -> dict:
        """Paired moving-block bootstrap of ``method - reference`` for RMSE per lead and CSI per lead/threshold.

        Uses the inits both methods have, in time order. See the module docstring for the scheme. Returns
        ``{"n_inits", "block", "n_boot", "seed", "confidence", "rmse": {...}, "csi": {threshold: {...}}}``
        where each ``{...}`` has per-lead lists ``method``, ``reference``, ``diff`` (point estimates over
        the common inits), ``lower``, ``upper`` (interval bounds) and ``better`` (the interval excludes zero
        in the method's favour: ``upper < 0`` for RMSE, ``lower > 0`` for CSI). NaN where undefined.

        Raises:
            BadInputError: an unknown method, ``n_boot < 1``, ``block < 1`` or a confidence outside (0, 1).
        """
        check_bootstrap_args(self.methods, method, reference, n_boot=n_boot, block=block, confidence=confidence)
        a, b = self._acc[method], self._acc[reference]
        common = sorted(set(a.records) & set(b.records))
        n_lead, n_thr = len(self.lead_times), len(self.thresholds)

        def stack(acc: _MethodAcc) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            if not common:
                empty = np.zeros((0, n_lead), np.int64)
                return empty, empty.astype(np.float64), np.zeros((0, n_lead, n_thr, 3), np.int64)
            recs = [acc.records[i] for i in common]
            return tuple(np.stack([r[j] for r in recs]) for j in range(3))  # type: ignore[return-value]

        out = paired_block_bootstrap(stack(a), stack(b), [score_key(t) for t in self.thresholds], n_boot=n_boot,
                                     block=block, seed=seed, confidence=confidence)
        return out

    def summary(
        self,
        *,
        reference: str | None = "persistence",
        compare: Sequence[str] = ("model",),
        n_boot: int = 1000,
        block: int | None = None,
        seed: int = 0,
        confidence: float = 0.95,
    ) -> dict:
        """Every score as a JSON-ready dict (NaN as None); identical for identical inputs.

        Args:
            reference: the method skill scores are computed against (None: no skill scores).
            compare: methods each bootstrapped against every other method present.
            n_boot, block, seed, confidence: the bootstrap's settings (see `bootstrap`).

        Returns:
            ``{"conventions", "lead_time_s", "thresholds", "fss_thresholds", "fss_windows", "grid_shape",
            "reference", "compare", "methods": {name: {"n_inits", "first_init", "last_init",
            "valid_fraction", "continuous": {"n", "valid_fraction", "rmse", "mae", "bias", "correlation",
            "fcst_mean", "obs_mean"}, "categorical": {thr: {"hits", "misses", "false_alarms",
            "correct_negatives", "n", "pod", "far", "csi", "ets", "frequency_bias", "base_rate"}},
            "fss": {thr: {window: [...]}}, "skill": {"rmse_skill", "mae_skill", "csi_diff": {thr},
            "ets_diff": {thr}, "fss_diff": {thr: {window}}} (only with a reference)}},
            "bootstrap": {method: {other: <`bootstrap` result>}}}``; every innermost list runs over lead times.

        Raises:
            BadInputError: ``reference`` or a ``compare`` method has no data (the message lists the known ones).
        """
        known = ", ".join(self.methods) or "none"
        if reference is not None and reference not in self._acc:
            raise BadInputError(
                f"reference {reference!r} has no data; known methods: {known} (reference=None skips skill scores)"
            )
        for m in compare:
            if m not in self._acc:
                raise BadInputError(f"compare method {m!r} has no data; known methods: {known}")
        scores = {m: self._scores(self._acc[m]) for m in self.methods}
        if reference is not None:
            for m in self.methods:
                scores[m]["skill"] = self._skill(scores[m], scores[reference])
        boot = {
            m: {
                r: self.bootstrap(m, r, n_boot=n_boot, block=block, seed=seed, confidence=confidence)
                for r in self.methods
                if r != m
            }
            for m in compare
        }
        result = {
            "conventions": dict(CONVENTIONS),
            **self._config(),
            "grid_shape": list(self.grid_shape) if self.grid_shape else None,
            "reference": reference,
            "compare": list(compare),
            "methods": scores,
            "bootstrap": boot,
        }
        return jsonable(result)
