"""Input drift: are the observations the model now sees like those it was trained on?

**Features.** Every observation slot is reduced to a few numbers (`slot_features`, pure): the shares of
missing and FAIL cells; for precipitation the wet fraction (usable cells >= 0.1 mm/h), the intensity
histogram of wet cells (fixed log2 bins from 0.1 mm/h), intensity quantiles (p50, p90, p99) and the motion
speed (phase correlation with the previous slot, km/h); for other variables the mean, spatial standard
deviation, quantiles and the tendency since the previous slot. The same per region of the catalog
(``<feature>@<region>``), and each region's **edge contrast**: the median jump across its boundary between
neighbouring cells (log ratio for precipitation, difference otherwise), in slots where rain covers a good
part of the boundary. Natural fields are continuous, so it stays near 0 whatever the weather, while a
region reading 30 % low jumps by ln 0.7 = -0.36 at once: the signature of one radar out of calibration in
a composite (its neighbours see the opposite jump).

Weather-dependent features (wet fraction, intensity, motion) vary from one six-hour window to the next
far more than an instrument fault moves them; instrument features (missing and FAIL shares, edge
contrast) do not. The shipped rules therefore watch instrument features on the short window and the
climate of the inputs on the long one; `forecast monitor drift` reports every feature on both.

**Reference.** The features of the production model's training period (stored in its registry record at
registration, `reference_statistics`; computed from the store for that period when the record lacks them),
else of the configured reference period, else of the first hours of data.

**Statistics.** For the intensity histogram (counts of wet cells per bin pooled over a window's slots,
thousands of values) PSI, the population stability index ``sum (p_w - p_r) ln(p_w / p_r)`` (shares floored
at 1e-4): it reads the same for any histogram (0.1: no change, 0.25: a large one, by the usual rule) and
needs no distributional assumption. For per-slot features (one number per slot: a six-hour window holds
72, fewer when dry slots have no value) the Wasserstein distance between the window's and the reference's
values over the reference's spread (interquartile range / 1.349, robust to a wild value): PSI's quantile bins need far more values than that, while
the normalised Wasserstein distance is stable on a few dozen and reads directly as "the window moved by
this many reference standard deviations" (an edge contrast of ln 0.7 against a natural spread of ~0.1 is
~4). ``drift.statistic`` forces either for every feature.

**Thresholds** (as NannyML derives them): the reference is cut into chunks as long as the window (sliding
by a quarter chunk); each chunk is compared with the rest of the reference (leave-chunk-out, so the spread
is that of a window the reference did not contain); a feature drifts when its statistic exceeds the
chunks' mean by ``sigma`` standard deviations (widened to Student's t prediction bound when there are few
chunks), never below the statistic's floor. The weather's own variability over a
window's length thus sets the bar: a short window tolerates more than a long one.
"""

from __future__ import annotations

import math
from typing import Any
from collections.abc import Sequence

import numpy as np

from forecast.monitoring.strata import WET

__all__ = ["HIST_EDGES", "drift_report", "is_histogram", "motion_speed", "reference_statistics", "slot_features",
           "statistic", "thresholds", "window_drift"]

#: faster than this (km/h) a phase-correlation peak is spurious: precipitation does not move so fast
MAX_SPEED_KMH = 200.0
#: intensity histogram edges (mm/h): log2 bins from the wet threshold up
HIST_EDGES = np.array([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 51.2, np.inf])
_EPS = 1e-4
#: the reference keeps at most this many slots (evenly subsampled): bounded size in the model record
MAX_REFERENCE_SLOTS = 2016


#: features that are histograms (counts per bin, pooled over a window's slots); the rest are one number per slot
HISTOGRAMS = ("intensity",)


def is_histogram(name: str) -> bool:
    return name.split("@", 1)[0] in HISTOGRAMS


def _bins_of(name: str, rows: Sequence[dict]) -> int:
    for r in rows:
        v = r.get(name)
        if v is not None:
            return len(v)
    return len(HIST_EDGES) - 1


def motion_speed(prev: np.ndarray, cur: np.ndarray, km_per_px: float, step_h: float) -> float | None:
    """Speed (km/h) of the field's displacement from ``prev`` to ``cur``: the peak of their phase correlation
    (log1p of the values, unusable cells as 0), refined to sub-pixel by a parabola; None when either is
    (nearly) empty."""
    a = np.log1p(np.nan_to_num(np.maximum(prev, 0), nan=0.0)).astype(np.float64)
    b = np.log1p(np.nan_to_num(np.maximum(cur, 0), nan=0.0)).astype(np.float64)
    if (a > 0).mean() < 0.005 or (b > 0).mean() < 0.005:
        return None
    step = max(1, int(max(a.shape) // 256))  # bounded work on large grids
    a, b = a[::step, ::step], b[::step, ::step]
    win = np.outer(np.hanning(a.shape[0]), np.hanning(a.shape[1]))
    fa, fb = np.fft.rfft2((a - a.mean()) * win), np.fft.rfft2((b - b.mean()) * win)
    r = fb * np.conj(fa)
    r /= np.maximum(np.abs(r), 1e-12)
    c = np.fft.irfft2(r, s=a.shape)
    iy, ix = np.unravel_index(int(np.argmax(c)), c.shape)

    def refine(v_m, v_0, v_p):
        den = v_m - 2 * v_0 + v_p
        return 0.0 if den == 0 else 0.5 * (v_m - v_p) / den

    ny, nx = c.shape
    dy = iy + refine(c[(iy - 1) % ny, ix], c[iy, ix], c[(iy + 1) % ny, ix])
    dx = ix + refine(c[iy, (ix - 1) % nx], c[iy, ix], c[iy, (ix + 1) % nx])
    dy = dy - ny if dy > ny / 2 else dy
    dx = dx - nx if dx > nx / 2 else dx
    speed = float(math.hypot(dy, dx) * step * km_per_px / step_h)
    return speed if speed <= MAX_SPEED_KMH else None  # a spurious peak, not a motion




#: a slot's edge contrast needs wet pairs along at least this share of the region's boundary (and at least
#: MIN_EDGE_PAIRS): a rain area across the line says something of the calibration, a convective cell crossing
#: it (a handful of pairs with jumps of a factor 3) or the flank of an area lying along it does not
MIN_EDGE_SHARE = 0.1
MIN_EDGE_PAIRS = 24


def _edge_contrast(v: np.ndarray, ok: np.ndarray, region, precipitation: bool) -> float | None:
    """The median jump across the region's boundary between neighbouring cells, inside against outside:
    ``ln(inside / outside)`` over pairs that are both wet for precipitation, the difference for other
    variables (None with too few pairs: see `MIN_EDGE_SHARE`). Natural fields are continuous: it stays near 0
    whatever the weather; a region reading 30 % low shifts it by ln 0.7 = -0.36. The median, one number per
    slot: a convective core on the line moves a few pairs, not the median of a rain area across it."""
    a, b = region.edge_inside, region.edge_outside
    both = ok[a] & ok[b]
    va, vb = v[a][both], v[b][both]
    if precipitation:
        wet = (va >= WET) & (vb >= WET)
        if int(wet.sum()) < max(MIN_EDGE_PAIRS, MIN_EDGE_SHARE * len(a)):
            return None
        return float(np.median(np.log(va[wet] / vb[wet])))
    if va.size < max(MIN_EDGE_PAIRS, MIN_EDGE_SHARE * len(a)):
        return None
    return float(np.median(va - vb))


def _hist(v: np.ndarray) -> list[int]:
    return np.histogram(v[v >= WET], bins=HIST_EDGES)[0].astype(int).tolist()


def _q(v: np.ndarray, q: Sequence[float]) -> list[float | None]:
    if v.size == 0:
        return [None] * len(q)
    return [float(x) for x in np.quantile(v, q)]


def slot_features(values: np.ndarray, usable: np.ndarray, fail: np.ndarray, *, precipitation: bool,
                  regions: Sequence[Any] = (), prev: np.ndarray | None = None, km_per_px: float = 1.0,
                  step_h: float = 1 / 12) -> dict[str, Any]:
    """The features of one slot (see the module docstring). ``values`` (y, x), ``usable`` the QC-usable
    cells, ``fail`` the FAIL or rejected ones, ``prev`` the previous slot's usable values (NaN elsewhere)."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    ok = np.asarray(usable, bool) & finite
    total = max(values.size, 1)
    out: dict[str, Any] = {"missing_share": float((~finite).sum() / total),
                           "fail_share": float(np.asarray(fail, bool).sum() / total)}

    def block(v: np.ndarray, suffix: str, full: bool) -> None:
        if precipitation:
            wet = v[v >= WET]
            out["wet_fraction" + suffix] = float(wet.size / v.size) if v.size else None
            out["intensity" + suffix] = _hist(v)
            p50, p90, p99 = _q(wet, (0.5, 0.9, 0.99))
            out["intensity_p90" + suffix] = p90
            if full:
                out["intensity_p50"], out["intensity_p99"] = p50, p99
        else:
            out["mean" + suffix] = float(v.mean()) if v.size else None
            if full:
                out["spatial_sd"] = float(v.std()) if v.size else None
                out["p05"], out["p50"], out["p95"] = _q(v, (0.05, 0.5, 0.95))

    block(values[ok], "", True)
    flat_v, flat_ok = values.ravel(), ok.ravel()
    for r in regions:
        m = r.cropped_mask & r.crop(ok)
        block(r.crop(values)[m], f"@{r.name}", False)
        out[f"edge_contrast@{r.name}"] = _edge_contrast(flat_v, flat_ok, r, precipitation)
    if prev is not None:
        if precipitation:
            out["motion_speed"] = motion_speed(prev, np.where(ok, values, np.nan), km_per_px, step_h)
        else:
            both = ok & np.isfinite(prev)
            out["tendency"] = float((values[both] - prev[both]).mean()) if both.any() else None
    return out


# -- the statistic ---------------------------------------------------------------------------------------------


def _psi(p: np.ndarray, q: np.ndarray) -> float:
    p = np.maximum(p / max(p.sum(), 1e-300), _EPS)
    q = np.maximum(q / max(q.sum(), 1e-300), _EPS)
    return float(np.sum((p - q) * np.log(p / q)))


def _hist_centres(name: str, n: int) -> np.ndarray:
    """Representative values of a histogram feature's bins (log2 mm/h of the intensity bins)."""
    e = HIST_EDGES.copy()
    e[-1] = e[-2] * 2
    return np.log2(np.sqrt(e[:-1] * e[1:]))


def statistic(kind: str, window: np.ndarray, reference: np.ndarray, *, bins: int = 10, histogram: bool = False,
              name: str = "") -> float | None:
    """PSI or normalised Wasserstein between a window and the reference. Scalars: 1-D arrays of per-slot
    values (NaN dropped); histograms: 2-D (slot, bin) counts, pooled, their bins placed at
    `_hist_centres` of feature ``name``. None when either side is empty."""
    if histogram:
        w = np.atleast_2d(np.asarray(window, dtype=np.float64)).sum(axis=0)
        r = np.atleast_2d(np.asarray(reference, dtype=np.float64)).sum(axis=0)
        if w.sum() <= 0 or r.sum() <= 0 or w.shape != r.shape:
            return None
        if kind == "psi":
            return _psi(w, r)
        from scipy.stats import wasserstein_distance

        c = _hist_centres(name, w.size)
        cum = np.cumsum(r) / r.sum()
        q1, q3 = np.interp([0.25, 0.75], cum, c)
        scale = (q3 - q1) / 1.349
        if scale <= 0:
            mean = float((c * r).sum() / r.sum())
            scale = math.sqrt(max(float((r * (c - mean) ** 2).sum() / r.sum()), 1e-12))
        return float(wasserstein_distance(c, c, w, r) / scale)
    w = np.asarray(window, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    w, r = w[np.isfinite(w)], r[np.isfinite(r)]
    if w.size == 0 or r.size == 0:
        return None
    if kind == "psi":
        edges = np.unique(np.quantile(r, np.linspace(0, 1, bins + 1)[1:-1]))
        pw = np.bincount(np.searchsorted(edges, w, side="right"), minlength=len(edges) + 1).astype(float)
        pr = np.bincount(np.searchsorted(edges, r, side="right"), minlength=len(edges) + 1).astype(float)
        return _psi(pw, pr)
    from scipy.stats import wasserstein_distance

    sd = robust_sd(r)
    if sd <= 0:
        return 0.0 if np.allclose(w, r[0]) else math.inf
    return float(wasserstein_distance(w, r) / sd)


def robust_sd(r: np.ndarray) -> float:
    """The reference's spread: the interquartile range / 1.349 (the sd of a normal distribution), the sd
    when the quartiles coincide: one wild value must not inflate it."""
    q1, q3 = np.quantile(r, [0.25, 0.75])
    iqr = float(q3 - q1) / 1.349
    return iqr if iqr > 0 else float(np.std(r))


def _values(rows: Sequence[dict], name: str) -> np.ndarray:
    if is_histogram(name):
        vals = [r.get(name) for r in rows]
        vals = [v for v in vals if v is not None]
        return np.asarray(vals, dtype=np.float64).reshape(-1, _bins_of(name, rows))
    return np.asarray([np.nan if r.get(name) is None else float(r[name]) for r in rows], dtype=np.float64)


def _enough(arr: np.ndarray, name: str, min_slots: int) -> bool:
    if is_histogram(name):  # values enough to fill the bins, from enough slots
        return arr.shape[0] >= min_slots and arr.sum() >= 20 * arr.shape[1] and int((arr.sum(axis=1) > 0).sum()) \
            >= max(2, min_slots // 4)
    return int(np.isfinite(arr).sum()) >= min_slots


def _prediction_factor(sigma: float, k: int) -> float:
    """How many chunk standard deviations above the chunks' mean a new window may lie: ``sigma`` for many
    chunks, more for few (the one-sided prediction bound of Student's t with k - 1 degrees of freedom at
    the normal tail of ``sigma``, times sqrt(1 + 1/k)): a short reference gives a cautious bar, not a
    noisy one."""
    from scipy.stats import norm, t

    return float(t.ppf(norm.cdf(sigma), k - 1) * math.sqrt(1 + 1 / k))


def thresholds(ref_rows: Sequence[dict], names: Sequence[str], window_slots: int, cfg) -> dict[str, dict]:
    """Per feature: the threshold for a window of ``window_slots`` slots (see the module docstring), with
    the chunk statistics' mean, sd and count."""
    n = len(ref_rows)
    chunk = max(2, min(int(window_slots), n // 2))
    stride = max(1, chunk // 4)
    out = {}
    for name in names:
        kind = cfg.statistic_of(name)
        ref = _values(ref_rows, name)
        stats = []
        if n >= 2 * chunk:
            for a in range(0, n - chunk + 1, stride):
                inside = np.zeros(n, bool)
                inside[a:a + chunk] = True
                if is_histogram(name):
                    rows_in = [r for r, k in zip(ref_rows, inside) if k]
                    rows_out = [r for r, k in zip(ref_rows, inside) if not k]
                    w, r = _values(rows_in, name), _values(rows_out, name)
                else:
                    w, r = ref[inside], ref[~inside]
                if not _enough(w, name, max(2, cfg.min_slots // 2)):
                    continue
                s = statistic(kind, w, r, bins=cfg.bins, histogram=is_histogram(name), name=name)
                if s is not None and math.isfinite(s):
                    stats.append(s)
        mean = float(np.mean(stats)) if stats else None
        sd = float(np.std(stats, ddof=1)) if len(stats) > 2 else None
        floor = cfg.floor_of(kind)
        if mean is not None and sd is not None:
            thr = max(floor, mean + _prediction_factor(cfg.sigma, len(stats)) * sd)
        else:  # too few chunks with data to measure the spread: a conservative bar
            thr = max(2.5 * floor, 2.0 * (mean or 0.0))
        out[name] = {"statistic": kind, "threshold": thr, "chunk_mean": mean, "chunk_sd": sd, "chunks": len(stats),
                     "chunk_slots": chunk}
    return out


def feature_names(rows: Sequence[dict], cfg, patterns: Sequence[str] | None = None) -> list[str]:
    """The features of ``rows`` selected by ``patterns`` (default ``cfg.features``; none: all): shell-style
    patterns, so ``wet_fraction`` is the whole grid's and ``edge_contrast@*`` every region's."""
    from fnmatch import fnmatchcase

    names = sorted({k for r in rows for k in r})
    pats = list(patterns if patterns is not None else cfg.features)
    if pats:
        names = [n for n in names if any(fnmatchcase(n, p) for p in pats)]
    return names


def reference_statistics(rows: Sequence[dict], times: Sequence[str], *, period: Sequence[str], source: str) -> dict:
    """What a model record keeps of its training period's inputs: the per-slot features (subsampled to at
    most `MAX_REFERENCE_SLOTS` slots), the period and where they came from, and summary statistics for
    people (means and quantiles per feature, pooled histograms)."""
    rows, times = list(rows), list(times)
    if len(rows) > MAX_REFERENCE_SLOTS:
        keep = np.linspace(0, len(rows) - 1, MAX_REFERENCE_SLOTS).round().astype(int)
        rows, times = [rows[i] for i in keep], [times[i] for i in keep]
    summary: dict[str, Any] = {}
    for name in sorted({k for r in rows for k in r}):
        arr = _values(rows, name)
        if is_histogram(name):
            summary[name] = {"histogram": arr.sum(axis=0).astype(int).tolist()}
        else:
            fin = arr[np.isfinite(arr)]
            if fin.size:
                summary[name] = {"mean": float(fin.mean()), "sd": float(fin.std()),
                                 "quantiles": dict(zip(("p05", "p25", "p50", "p75", "p95"),
                                                       [float(x) for x in np.quantile(fin, [.05, .25, .5, .75, .95])]))}

    def compact(v):
        if isinstance(v, float):
            return float(f"{v:.6g}")
        return v

    return {"version": 1, "period": list(period), "source": source, "n_slots": len(rows), "times": times,
            "slots": [{k: compact(v) for k, v in r.items()} for r in rows], "summary": summary}


def drift_report(window_rows: Sequence[dict], reference: dict, window_slots: int, cfg,
                 cached_thresholds: dict | None = None) -> dict[str, Any]:
    """The drift of one window against the reference: per feature the statistic, its threshold, the ratio
    and whether it drifted; ``drifted`` lists the drifted features, most drifted first."""
    ref_rows = reference["slots"]
    names = feature_names(ref_rows, cfg)
    thr = cached_thresholds or thresholds(ref_rows, names, window_slots, cfg)
    feats = []
    for name in names:
        w, r = _values(window_rows, name), _values(ref_rows, name)
        t = thr.get(name) or {}
        kind = cfg.statistic_of(name)
        doc: dict[str, Any] = {"feature": name, "statistic": kind, "threshold": t.get("threshold"),
                               "n_slots": int(w.shape[0]) if is_histogram(name) else int(np.isfinite(w).sum())}
        if not _enough(w, name, cfg.min_slots) or not _enough(r, name, 2):
            doc.update(value=None, ratio=None, drifted=False, note="too few slots with data in the window")
        else:
            s = statistic(kind, w, r, bins=cfg.bins, histogram=is_histogram(name), name=name)
            ratio = None if s is None or not t.get("threshold") else s / t["threshold"]
            doc.update(value=s, ratio=ratio, drifted=bool(ratio is not None and ratio > 1.0))
            if not is_histogram(name):
                fw, fr = w[np.isfinite(w)], r[np.isfinite(r)]
                doc.update(window_mean=float(fw.mean()), reference_mean=float(fr.mean()))
            else:  # the histograms' typical values: the geometric mean intensity
                pw, pr = w.sum(axis=0), r.sum(axis=0)
                c = _hist_centres(name, pw.size)
                mw, mr = (c * pw).sum() / max(pw.sum(), 1), (c * pr).sum() / max(pr.sum(), 1)
                doc.update(window_mean=float(2 ** mw), reference_mean=float(2 ** mr))
        feats.append(doc)
    drifted = sorted((f for f in feats if f["drifted"]), key=lambda f: -(f["ratio"] or 0))
    return {"features": feats, "drifted": [f["feature"] for f in drifted], "n_slots": len(window_rows),
            "thresholds": thr}


def window_drift(rows: Sequence[dict], reference: dict, nominal_slots: int, cfg,
                 cache: dict | None = None) -> dict[str, Any]:
    """The drift of a window of per-slot features (`drift_report`) as the monitor judges it: only once the
    window spans ``min_fraction`` of its nominal length; thresholds for the window's length (rounded down to
    a power of two below the nominal length), cached in ``cache``."""
    n = len(rows)
    need = max(cfg.min_slots, int(cfg.min_fraction * nominal_slots))
    if n < need:
        return {"features": [], "drifted": [], "n_slots": n,
                "note": f"{n} slot(s) in the window since the reference; {need} needed"}
    bucket = nominal_slots if n >= nominal_slots else max(cfg.min_slots, int(2 ** math.floor(math.log2(n))))
    key = (bucket, reference.get("period", [None])[0], reference.get("n_slots"), id(reference))
    thr = None if cache is None else cache.get(key)
    if thr is None:
        thr = thresholds(reference["slots"], feature_names(reference["slots"], cfg), bucket, cfg)
        if cache is not None:
            cache[key] = thr
    rep = drift_report(rows, reference, bucket, cfg, cached_thresholds=thr)
    rep.pop("thresholds", None)
    return rep
