"""From the observation store to model-ready numpy arrays (no torch here: tensors appear in the DataModule).

- `load_series` reads one variable of a pinned store snapshot (optionally as known at a time) with its
  QC usability mask: FAIL, rejected and missing values are unusable, never altered.
- `split_windows` cuts the slot axis into training and validation windows (k inputs + n leads) by time,
  with a gap of at least one window between them, so that no validation target lies in any training
  window (no leakage).
- `Normaliser` is the value transform (log1p for non-negative variables) plus standardisation, with
  statistics computed on the training window only; it travels inside the checkpoint.
- `model_inputs` builds the input channels of one sample: k gap-filled normalised fields, k QC masks,
  the time of day (sine, cosine) and the last field advected to each lead with the motion estimated by
  phase correlation (`estimate_motion`, `advect`): the network learns the residual over that Lagrangian
  persistence. Training and prediction share it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from forecast.errors import BadInputError

log = logging.getLogger(__name__)


@dataclass
class Series:
    """One variable over consecutive slots: values (NaN where missing), the QC usability mask, metadata."""

    dataset: str
    variable: str
    times: np.ndarray  # (time,) datetime64[s]
    values: np.ndarray  # (time, y, x) float32, as observed (NaN where nothing arrived)
    usable: np.ndarray  # (time, y, x) bool: finite and usable by QC
    revisions: np.ndarray  # (time,) int16, -1 where nothing was available
    available_at: np.ndarray  # (time,) datetime64[s], NaT where nothing was available
    step: np.timedelta64
    coords: dict[str, Any] = field(default_factory=dict)  # y, x, lat, lon as (dims, values, attrs)
    attrs: dict[str, Any] = field(default_factory=dict)  # units, standard_name, physical_range...
    snapshot: str | None = None
    catalog_hash: str | None = None

    @property
    def n(self) -> int:
        return len(self.times)


def load_series(store, dataset: str, variable: str, *, snapshot: str | None = None,
                start: datetime | str | None = None, end: datetime | str | None = None,
                as_of: datetime | str | None = None, include_unreviewed_suspect: bool = True) -> Series:
    """Read ``variable`` of ``dataset`` over [start, end] from the store (a pinned ``snapshot``, and
    ``as_of`` for what was known at a time) into memory, with its QC usability mask.

    Raises:
        BadInputError: unknown variable, or no slot in the range.
    """
    from forecast.stores import open_observations
    from qc.flags import usable_mask

    ds = open_observations(dataset, store=store, snapshot=snapshot, start=start, end=end, as_of=as_of)
    if variable not in ds.data_vars:
        known = ", ".join(v for v in ds.data_vars if not v.endswith(("_qc", "_qc_tests")))
        raise BadInputError(f"dataset {dataset!r} has no variable {variable!r}; it has: {known}")
    if ds.sizes["time"] == 0:
        raise BadInputError(f"dataset {dataset!r} has no observations between {start} and {end}")
    values = np.asarray(ds[variable].values, dtype=np.float32)
    finite = np.isfinite(values)
    if f"{variable}_qc" in ds:
        qc = np.asarray(ds[f"{variable}_qc"].values)
        tests = np.asarray(ds[f"{variable}_qc_tests"].values)
        usable = np.asarray(usable_mask(qc, tests, include_unreviewed_suspect=include_unreviewed_suspect)) & finite
    else:
        usable = finite
    times = ds["time"].values.astype("datetime64[s]")
    step = np.diff(times[:2])[0] if len(times) > 1 else _step_of(ds.attrs.get("time_step", "5min"))
    coords = {name: (ds[name].dims, ds[name].values, dict(ds[name].attrs)) for name in ("y", "x", "lat", "lon") if name in ds.coords}
    attrs = dict(ds[variable].attrs)
    return Series(dataset=dataset, variable=variable, times=times, values=values, usable=usable,
                  revisions=np.asarray(ds[f"{variable}_revision"].values),
                  available_at=ds[f"{variable}_available_at"].values.astype("datetime64[s]"),
                  step=step, coords=coords, attrs=attrs, snapshot=ds.attrs.get("snapshot"),
                  catalog_hash=ds.attrs.get("catalog_hash"))


def _step_of(step: str) -> np.timedelta64:
    import pandas as pd

    return np.timedelta64(int(pd.Timedelta(step).total_seconds()), "s")


# -- windows --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Split:
    """Window start indices for training and validation, and where the validation period begins."""

    train: np.ndarray
    val: np.ndarray
    val_first_slot: int
    gap: int

    def to_json(self, times: np.ndarray) -> dict[str, Any]:
        def span(starts: np.ndarray, window: int) -> list[str] | None:
            if not len(starts):
                return None
            return [str(times[starts[0]]) + "Z", str(times[min(starts[-1] + window - 1, len(times) - 1)]) + "Z"]
        return {"train_windows": int(len(self.train)), "val_windows": int(len(self.val)), "gap_slots": self.gap,
                "val_first_slot": str(times[self.val_first_slot]) + "Z" if self.val_first_slot < len(times) else None}


def usable_windows(usable: np.ndarray, k: int, n: int) -> np.ndarray:
    """Start indices s of windows [s, s + k + n) worth learning from: at least half of the k input
    slots hold usable data and at least one target cell is usable."""
    t = usable.shape[0]
    if t < k + n:
        return np.zeros(0, dtype=np.int64)
    any_slot = usable.reshape(t, -1).any(axis=1)
    starts = np.arange(0, t - k - n + 1)
    ok = np.array([any_slot[s:s + k].sum() * 2 >= k and any_slot[s + k:s + k + n].any() for s in starts], dtype=bool)
    return starts[ok]


def split_windows(usable: np.ndarray, k: int, n: int, *, val_fraction: float) -> Split:
    """Training windows from the early slots, validation windows from the latest ``val_fraction``,
    separated by a gap of k + n slots: every slot of a training window lies before the gap, every
    validation window after it, so no validation target (nor input) is seen in training.

    Raises:
        BadInputError: too few slots for both parts.
    """
    t = usable.shape[0]
    window = k + n
    starts = usable_windows(usable, k, n)
    val_first = int(round(t * (1 - val_fraction)))
    gap = window
    train = starts[starts + window <= val_first - gap]
    val = starts[starts >= val_first]
    if len(train) == 0 or len(val) == 0:
        need = 2 * window + gap
        raise BadInputError(
            f"the training period has {t} slots; with {k} inputs + {n} leads, a validation share of {val_fraction:g} "
            f"and a gap of {gap} slots it yields {len(train)} training and {len(val)} validation windows; "
            f"ingest more data (at least ~{int(need / min(val_fraction, 1 - val_fraction))} slots) or change the config")
    return Split(train=train, val=val, val_first_slot=val_first, gap=gap)


# -- transform and normalisation ---------------------------------------------------------------------

@dataclass(frozen=True)
class Normaliser:
    """z = (T(v) - mean) / std, with T = log1p (non-negative variables) or the identity."""

    transform: str
    mean: float
    std: float
    phys_scale: float  # std of the physical values (scales the physical-units loss)

    def forward(self, v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, dtype=np.float32)
        t = np.log1p(np.maximum(v, 0)) if self.transform == "log1p" else v
        return ((t - self.mean) / self.std).astype(np.float32)

    def inverse(self, z):
        """Works on numpy arrays and torch tensors alike."""
        t = z * self.std + self.mean
        if self.transform == "log1p":
            return t.expm1() if hasattr(t, "expm1") else np.expm1(t)
        return t

    @property
    def z_floor(self) -> float | None:
        """The normalised value of a physical 0 (the lower bound of non-negative variables)."""
        return (0.0 - self.mean) / self.std if self.transform == "log1p" else None

    def to_dict(self) -> dict[str, Any]:
        return {"transform": self.transform, "mean": self.mean, "std": self.std, "phys_scale": self.phys_scale}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normaliser:
        return cls(transform=d["transform"], mean=float(d["mean"]), std=float(d["std"]), phys_scale=float(d["phys_scale"]))

    @classmethod
    def fit(cls, values: np.ndarray, usable: np.ndarray, *, transform: str) -> Normaliser:
        v = values[usable].astype(np.float64)
        if v.size == 0:
            raise BadInputError("the training window holds no usable values to compute normalisation statistics from")
        t = np.log1p(np.maximum(v, 0)) if transform == "log1p" else v
        std = float(t.std()) or 1.0
        return cls(transform=transform, mean=float(t.mean()), std=std, phys_scale=float(v.std()) or 1.0)


def choose_transform(config_transform: str, attrs: dict[str, Any]) -> str:
    if config_transform != "auto":
        return config_transform
    lo = (attrs.get("physical_range") or [None])[0]
    return "log1p" if lo is not None and lo >= 0 else "none"


# -- input channels ------------------------------------------------------------------------------------

def n_channels(k: int, n: int) -> int:
    return 2 * k + 2 + n


def estimate_motion(fields: np.ndarray, usable: np.ndarray, *, pairs: int = 2) -> tuple[float, float]:
    """The domain-mean motion (rows, columns per slot) of the last ``pairs`` consecutive field pairs, by
    FFT phase correlation with a Hann window and a sub-pixel parabolic peak fit; (0, 0) when the fields
    hold too little structure to tell. Cheap (milliseconds on 256 x 256), deterministic.
    """
    k = fields.shape[0]
    ny, nx = fields.shape[1:]
    win = np.outer(np.hanning(ny), np.hanning(nx)).astype(np.float32)
    acc = None
    for i in range(max(1, k - pairs), k):
        a = np.where(usable[i - 1], fields[i - 1], 0.0) * win
        b = np.where(usable[i], fields[i], 0.0) * win
        if a.std() < 1e-6 or b.std() < 1e-6:
            continue
        fa, fb = np.fft.rfft2(a - a.mean()), np.fft.rfft2(b - b.mean())
        cross = fb * np.conj(fa)
        cross /= np.maximum(np.abs(cross), 1e-9)
        c = np.fft.irfft2(cross, s=(ny, nx))
        acc = c if acc is None else acc + c
    if acc is None:
        return 0.0, 0.0
    iy, ix = np.unravel_index(int(np.argmax(acc)), acc.shape)

    def sub(cm, c0, cp):
        d = cm - 2 * c0 + cp
        return 0.0 if d >= 0 else 0.5 * (cm - cp) / d

    dy = iy + sub(acc[iy - 1, ix], acc[iy, ix], acc[(iy + 1) % ny, ix])
    dx = ix + sub(acc[iy, ix - 1], acc[iy, ix], acc[iy, (ix + 1) % nx])
    dy = dy - ny if dy > ny / 2 else dy
    dx = dx - nx if dx > nx / 2 else dx
    limit = 0.25 * min(ny, nx)
    if abs(dy) > limit or abs(dx) > limit:
        return 0.0, 0.0
    return float(dy), float(dx)


def advect(field: np.ndarray, motion: tuple[float, float], n: int) -> np.ndarray:
    """The field moved ``motion`` (rows, columns) per slot for leads 1..n (bilinear); cells that would
    come from outside the grid keep the unmoved value (persistence at the inflow edges)."""
    from scipy import ndimage

    out = np.empty((n, *field.shape), dtype=np.float32)
    dy, dx = motion
    for j in range(n):
        moved = ndimage.shift(field, ((j + 1) * dy, (j + 1) * dx), order=1, mode="constant", cval=np.nan)
        out[j] = np.where(np.isnan(moved), field, moved)
    return out


def model_inputs(values: np.ndarray, usable: np.ndarray, init_time: np.datetime64, norm: Normaliser, n: int, *,
                 motion: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """The input channels of one sample and its base forecast, both normalised.

    Args:
        values: (k, y, x) the k slots up to the init time, as observed.
        usable: (k, y, x) their QC usability.
        n: lead slots.
        motion: rows / columns per slot (None: estimated from the inputs by `estimate_motion`).
    Returns:
        channels (2k + 2 + n, y, x) float32: k fields (unusable cells filled from the most recent earlier
        usable slot, else 0 = the training mean), k usability masks, sin and cos of the hour of day, and
        the n advected bases; base (n, y, x) float32: the gap-filled last field moved with the estimated
        motion to each lead (Lagrangian persistence; the network learns the residual over it);
        the motion used.
    """
    k = values.shape[0]
    z = norm.forward(np.where(usable, values, 0.0))
    filled = np.empty_like(z)
    last = np.full(z.shape[1:], np.nan, dtype=np.float32)
    for i in range(k):
        last = np.where(usable[i], z[i], last)
        filled[i] = last
    filled = np.where(np.isnan(filled), 0.0, filled).astype(np.float32)
    if motion is None:
        motion = estimate_motion(filled, usable)
    base = advect(filled[-1], motion, n)
    seconds = (np.datetime64(init_time, "s") - np.datetime64(init_time, "D")).astype(np.int64)
    phase = 2 * np.pi * float(seconds) / 86400.0
    ny, nx = z.shape[1:]
    clock = np.stack([np.full((ny, nx), np.sin(phase), np.float32), np.full((ny, nx), np.cos(phase), np.float32)])
    channels = np.concatenate([filled, usable.astype(np.float32), clock, base], axis=0)
    return channels, base, motion


def probability_match(fields: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Each field (lead, y, x) given the value distribution of ``reference`` (y, x; NaN ignored) by
    rank: the r-th smallest forecast value becomes the r-th smallest reference value (CDF matching, as
    pysteps does for S-PROG). Keeps the forecast's pattern, restores the observed intensities that a
    mean-square-trained model damps at long leads. NaN cells stay NaN.
    """
    ref = np.sort(reference[np.isfinite(reference)].ravel())
    out = np.array(fields, dtype=np.float32, copy=True)
    if ref.size == 0:
        return out
    for j in range(out.shape[0]):
        f = out[j]
        ok = np.isfinite(f)
        vals = f[ok]
        if vals.size == 0:
            continue
        order = np.argsort(vals, kind="stable")
        q = np.interp(np.linspace(0, 1, vals.size), np.linspace(0, 1, ref.size), ref)
        matched = np.empty_like(vals)
        matched[order] = q
        f[ok] = matched
    return out
