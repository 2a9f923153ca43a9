"""The nowcasting baselines every forecast is compared against: persistence, climatology, extrapolation, S-PROG.

One registry in the style of pysteps: ``get_method(name, **options)`` returns a fresh `Nowcaster`.
Every method takes the k most recent observation slots up to the init time and returns a deterministic
forecast with dims (lead_time, y, x). pysteps (and through it OpenCV and matplotlib) is imported only
inside the methods that need it, so ``import forecast.model.baselines`` stays light.

Example::

    from forecast.nowcast.baselines import get_method

    obs = ds["precipitation_rate"].sel(time=slice(None, init_time))[-6:]
    usable = usable_mask(ds["precipitation_rate_qc"], ds["precipitation_rate_qc_tests"])
    fcst = get_method("extrapolation").predict(obs, n_leads=12, step=np.timedelta64(5, "m"),
                                               mask=usable.sel(time=obs.time))
    fcst.attrs.get("fallback")  # None, or why persistence was used instead
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import io
import logging
import sys
import threading
import time as _time
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

import numpy as np
import xarray as xr

from forecast.errors import BadInputError, ForecastError

logger = logging.getLogger(__name__)

__all__ = [
    "Climatology",
    "Extrapolation",
    "NotFittedError",
    "Nowcaster",
    "Persistence",
    "SProg",
    "available_methods",
    "get_method",
]

#: Rain rate (mm h-1) below which a cell counts as dry: the usual radar detection limit, and the
#: threshold of the dB transform used for motion estimation and S-PROG.
WET_THRESHOLD = 0.1
#: dB value given to dry cells (pysteps' examples use threshold - 5 dB, i.e. -15 dB for 0.1 mm h-1).
DB_ZEROVALUE = -15.0


class NotFittedError(ForecastError, RuntimeError):
    """A method that learns from training data was asked to predict before `fit`."""


@runtime_checkable
class Nowcaster(Protocol):
    """What every baseline (and later the learned model) offers.

    ``inputs`` are the k most recent slots up to and including the init time, dims (time, y, x), NaN
    where missing; cells where ``mask`` is False (unusable by QC) are treated as missing. The result
    has dims (lead_time, y, x), lead_time = step, 2 step, ..., n_leads step (timedelta64), float32, with
    coordinates ``valid_time`` (along lead_time) and ``init_time`` (scalar), attrs ``method`` and, when
    the method could not run as designed, ``fallback`` (the reason) and ``fallback_method``.
    Inputs are never modified. Bad observations never raise; bad arguments raise `BadInputError`
    (a ValueError) naming the argument.
    """

    name: str

    def fit(self, obs: xr.DataArray) -> Nowcaster: ...

    def predict(self, inputs: xr.DataArray, *, n_leads: int, step: np.timedelta64,
                mask: xr.DataArray | None = None) -> xr.DataArray: ...


# --------------------------------------------------------------------------------------------------
# argument checks and the shared input / output handling


def _check_n_leads(n_leads: Any) -> int:
    if isinstance(n_leads, bool) or not isinstance(n_leads, (int, np.integer)):
        raise BadInputError(f"n_leads must be a positive integer, got {n_leads!r}")
    if n_leads <= 0:
        raise BadInputError(f"n_leads must be a positive integer, got {n_leads}")
    return int(n_leads)


def _check_step(step: Any) -> np.timedelta64:
    if isinstance(step, _dt.timedelta):  # also pandas.Timedelta
        step = np.timedelta64(int(round(step.total_seconds() * 1e9)), "ns")
    if not isinstance(step, np.timedelta64) or np.datetime_data(step.dtype)[0] == "generic":
        raise BadInputError(f"step must be a np.timedelta64 with a unit (e.g. np.timedelta64(5, 'm')), got {step!r}")
    step = step.astype("timedelta64[ns]")
    if step <= np.timedelta64(0, "ns"):
        raise BadInputError(f"step must be positive, got {step}")
    return step


class _Prepared:
    """The inputs as a float64 copy with unusable cells set to NaN, plus what the output needs."""

    def __init__(self, inputs: xr.DataArray, values: np.ndarray, times: np.ndarray):
        self.inputs = inputs
        self.values = values  # (time, y, x), our own copy
        self.times = times  # datetime64[ns]

    @property
    def init_time(self) -> np.datetime64:
        return self.times[-1]

    def spacing(self, last: int) -> np.timedelta64:
        """The regular spacing of the last ``last`` slots (they feed a motion or AR model)."""
        t = self.times[-last:]
        d = np.diff(t)
        if len(d) == 0:
            raise BadInputError("inputs need at least 2 time slots to define a time spacing")
        if np.any(d != d[0]) or d[0] <= np.timedelta64(0, "ns"):
            raise BadInputError(
                f"the last {last} time slots of inputs must be evenly spaced (got {', '.join(str(x) for x in t)}); "
                "pass consecutive slots, with NaN for missing ones, instead of dropping them")
        return d[0]


def _validated(inputs: Any, *, min_slots: int, method: str, what: str = "inputs") -> tuple[xr.DataArray, np.ndarray]:
    """``inputs`` as (time, y, x) and its times, or a BadInputError naming ``what`` is wrong."""
    if not isinstance(inputs, xr.DataArray):
        raise BadInputError(f"{what} must be an xarray.DataArray with dims (time, y, x), got {type(inputs).__name__}")
    if set(inputs.dims) != {"time", "y", "x"}:
        raise BadInputError(f"{what} must have dims (time, y, x), got {inputs.dims}")
    inputs = inputs.transpose("time", "y", "x")
    if inputs.sizes["time"] < min_slots:
        raise BadInputError(
            f"{what} has {inputs.sizes['time']} time slot(s); {method} needs at least {min_slots} "
            f"(the most recent slots up to the init time)")
    if "time" not in inputs.coords or not np.issubdtype(inputs["time"].dtype, np.datetime64):
        raise BadInputError(f"{what} needs a datetime64 'time' coordinate")
    times = inputs["time"].values.astype("datetime64[ns]")
    if np.any(np.isnat(times)) or np.any(np.diff(times) <= np.timedelta64(0, "ns")):
        raise BadInputError(f"the 'time' coordinate of {what} must be strictly increasing and free of NaT")
    return inputs, times


def _load(inputs: xr.DataArray, mask_values: np.ndarray | None) -> np.ndarray:
    """A float64 copy of ``inputs`` with non-finite and masked-out cells set to NaN."""
    # np.array copies, so nothing below can write into the caller's (possibly shared) buffer
    values = np.array(inputs.values, dtype=np.float64)
    values[~np.isfinite(values)] = np.nan
    if mask_values is not None:
        values[~mask_values] = np.nan
    return values


def _prepare(inputs: Any, mask: Any, *, min_slots: int, method: str) -> _Prepared:
    inputs, times = _validated(inputs, min_slots=min_slots, method=method)
    values = _load(inputs, None if mask is None else _mask_values(_check_mask(mask, inputs), inputs))
    return _Prepared(inputs, values, times)


def _check_mask(mask: Any, inputs: xr.DataArray, what: str = "inputs") -> xr.DataArray:
    """``mask`` checked against ``inputs`` (dims, sizes, coordinates, dtype), without computing it."""
    if not isinstance(mask, xr.DataArray):
        raise BadInputError(f"mask must be an xarray.DataArray of booleans or None, got {type(mask).__name__}")
    extra = set(mask.dims) - set(inputs.dims)
    if extra:
        raise BadInputError(f"mask has dims {mask.dims}; they must be among the dims of {what} {inputs.dims}")
    for d in mask.dims:
        if mask.sizes[d] != inputs.sizes[d]:
            raise BadInputError(f"mask has {mask.sizes[d]} entries along {d!r}, {what} has {inputs.sizes[d]}")
    if mask.dtype != bool:
        raise BadInputError(f"mask must hold booleans (True = usable), got dtype {mask.dtype}")
    try:
        xr.align(inputs, mask, join="exact", copy=False)
    except ValueError as e:
        raise BadInputError(f"mask's coordinates differ from those of {what}: {e}") from None
    return mask


def _mask_values(mask: xr.DataArray, inputs: xr.DataArray) -> np.ndarray:
    return np.asarray(mask.broadcast_like(inputs).transpose(*inputs.dims).values)


def _gap_filled(values: np.ndarray) -> np.ndarray:
    """The last slot, with missing cells taken from the most recent earlier slot that has them."""
    out = values[-1].copy()
    for k in range(values.shape[0] - 2, -1, -1):
        hole = np.isnan(out)
        if not hole.any():
            break
        out[hole] = values[k][hole]
    return out


def _output(prep: _Prepared, fields: np.ndarray, *, step: np.timedelta64, method: str,
            attrs: dict[str, Any] | None = None, fallback: str | None = None) -> xr.DataArray:
    n_leads = fields.shape[0]
    lead = (np.arange(1, n_leads + 1) * step).astype("timedelta64[ns]")
    src = prep.inputs
    coords: dict[str, Any] = {
        "lead_time": ("lead_time", lead, {"standard_name": "forecast_period", "long_name": "lead time"}),
        "valid_time": ("lead_time", prep.init_time + lead, {"standard_name": "time", "long_name": "valid time"}),
        "init_time": ((), prep.init_time, {"standard_name": "forecast_reference_time",
                                           "long_name": "initialisation time (last input slot)"}),
    }
    for name, c in src.coords.items():
        if name not in coords and name != "time" and "time" not in c.dims:
            coords[name] = c.variable.copy(deep=False)
    out_attrs = {k: v for k, v in src.attrs.items() if k in ("units", "standard_name", "long_name")}
    last = prep.values[-1]
    out_attrs["method"] = method
    out_attrs["input_slots"] = int(prep.values.shape[0])
    out_attrs["input_coverage"] = float(np.isfinite(last).mean()) if last.size else 0.0
    if attrs:
        out_attrs.update(attrs)
    if fallback is not None:
        out_attrs["fallback"] = fallback
        out_attrs["fallback_method"] = "persistence"
    return xr.DataArray(fields.astype(np.float32, copy=False), dims=("lead_time", "y", "x"), coords=coords,
                        name=src.name, attrs=out_attrs)


def _persistence_fields(prep: _Prepared, n_leads: int) -> np.ndarray:
    field = _gap_filled(prep.values)
    return np.broadcast_to(field, (n_leads, *field.shape)).copy()


def _fallback(prep: _Prepared, *, n_leads: int, step: np.timedelta64, method: str, reason: str,
              attrs: dict[str, Any] | None = None) -> xr.DataArray:
    logger.info("%s fell back to persistence at %s: %s", method, prep.init_time, reason)
    return _output(prep, _persistence_fields(prep, n_leads), step=step, method=method, attrs=attrs,
                   fallback=f"persistence: {reason}")


# --------------------------------------------------------------------------------------------------
# persistence


class Persistence:
    """Eulerian persistence: the last usable field, unchanged, at every lead.

    Missing cells of the last slot are taken from the most recent earlier slot that has them (NaN if
    none does). Works for any variable; values are passed through as observed.
    """

    name = "persistence"
    min_slots = 1

    def fit(self, obs: xr.DataArray) -> Persistence:
        """Nothing to learn."""
        return self

    def predict(self, inputs: xr.DataArray, *, n_leads: int, step: np.timedelta64,
                mask: xr.DataArray | None = None) -> xr.DataArray:
        """Raises: BadInputError for bad ``n_leads``, ``step``, ``inputs`` or ``mask``."""
        n_leads, step = _check_n_leads(n_leads), _check_step(step)
        prep = _prepare(inputs, mask, min_slots=self.min_slots, method=self.name)
        return _output(prep, _persistence_fields(prep, n_leads), step=step, method=self.name)


# --------------------------------------------------------------------------------------------------
# climatology


class Climatology:
    """Hour-of-day climatology: the training-period mean for the valid time's hour (UTC).

    For each hour of the day and each cell, the mean of the usable training values of that cell in that
    hour — where the cell has at least ``min_samples_per_cell`` of them. Otherwise the mean over the
    whole domain for that hour (intermittent rain needs many samples before a per-cell mean means
    anything), and for an hour absent from the training data the domain mean over all hours.
    The default of 120 samples is ten days of 5-minute slots of that hour.

    Only `fit`'s ``obs`` are learnt from; `predict` uses its ``inputs`` for the init time and the grid
    only, so nothing of the verification period leaks in and missing or dry inputs need no fallback.
    """

    name = "climatology"
    min_slots = 1
    fit_block = 288

    def __init__(self, *, min_samples_per_cell: int = 120):
        if isinstance(min_samples_per_cell, bool) or not isinstance(min_samples_per_cell, (int, np.integer)) \
                or min_samples_per_cell < 1:
            raise BadInputError(f"min_samples_per_cell must be an integer >= 1, got {min_samples_per_cell!r}")
        self.min_samples_per_cell = int(min_samples_per_cell)
        self.table_: np.ndarray | None = None  # (24, y, x) mean per hour of day
        self.per_cell_: np.ndarray | None = None  # (24, y, x) True where the per-cell mean was used
        self._grid: dict[str, np.ndarray] = {}
        self._shape: tuple[int, int] | None = None
        self.train_period_: tuple[np.datetime64, np.datetime64] | None = None
        self.train_samples_: int = 0

    def fit(self, obs: xr.DataArray, *, mask: xr.DataArray | None = None) -> Climatology:
        """Learn the hourly means from ``obs`` (training period only; dims time, y, x; NaN = missing).

        Raises:
            BadInputError: ``obs`` is not (time, y, x) with datetime64 times, ``mask`` does not match,
                or no value of ``obs`` is usable.
        """
        obs, times = _validated(obs, min_slots=1, method=self.name, what="obs")
        ny, nx = obs.shape[1:]
        hours = ((times - times.astype("datetime64[D]")) // np.timedelta64(1, "h")).astype(int)
        if mask is not None:
            mask = _check_mask(mask, obs, "obs")
        sums = np.zeros((24, ny, nx))
        counts = np.zeros((24, ny, nx), dtype=np.int64)
        # a day of 5-minute slots at a time: months of training data never sit in memory at once
        for lo in range(0, len(times), self.fit_block):
            sl = slice(lo, lo + self.fit_block)
            part = obs.isel(time=sl)
            m = None
            if mask is not None:
                m = _mask_values(mask.isel(time=sl) if "time" in mask.dims else mask, part)
            v = _load(part, m)
            ok = np.isfinite(v)
            for h in np.unique(hours[sl]):
                sel = hours[sl] == h
                sums[h] += np.where(ok[sel], v[sel], 0.0).sum(axis=0)
                counts[h] += ok[sel].sum(axis=0)
        if not counts.any():
            raise BadInputError("obs holds no usable value (all missing or masked); climatology cannot be fitted")
        overall = sums.sum() / counts.sum()
        hour_n = counts.sum(axis=(1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            hour_mean = np.where(hour_n > 0, sums.sum(axis=(1, 2)) / hour_n, overall)
            cell_mean = sums / counts
        per_cell = counts >= self.min_samples_per_cell
        self.table_ = np.where(per_cell, cell_mean, hour_mean[:, None, None])
        self.per_cell_ = per_cell
        self._shape = (ny, nx)
        self._grid = {d: np.asarray(obs[d].values) for d in ("y", "x") if d in obs.coords}
        self.train_period_ = (times[0], times[-1])
        self.train_samples_ = int(counts.sum())
        logger.info("climatology fitted on %s .. %s: %d samples, per-cell means in %.0f%% of hour-cells",
                    times[0], times[-1], self.train_samples_, 100 * per_cell.mean())
        return self

    def predict(self, inputs: xr.DataArray, *, n_leads: int, step: np.timedelta64,
                mask: xr.DataArray | None = None) -> xr.DataArray:
        """The fitted mean for each valid time's hour of day.

        Raises:
            NotFittedError: before `fit`.
            BadInputError: bad ``n_leads`` / ``step`` / ``inputs`` / ``mask``, or a grid other than the
                fitted one.
        """
        if self.table_ is None:
            raise NotFittedError("climatology must be fitted on a training period before predict: "
                                 "call .fit(obs) with observations from before the verification period")
        n_leads, step = _check_n_leads(n_leads), _check_step(step)
        prep = _prepare(inputs, mask, min_slots=self.min_slots, method=self.name)
        if prep.values.shape[1:] != self._shape:
            raise BadInputError(f"inputs has a {prep.values.shape[1:]} grid; climatology was fitted on {self._shape}")
        for d, ref in self._grid.items():
            if d in prep.inputs.coords and not np.allclose(prep.inputs[d].values, ref):
                raise BadInputError(f"the {d!r} coordinate of inputs differs from the grid climatology was fitted on")
        start, end = self.train_period_
        if prep.init_time <= end:
            logger.warning("climatology predicts from %s, inside its training period %s .. %s: scores of this "
                           "forecast are in-sample", prep.init_time, start, end)
        lead = np.arange(1, n_leads + 1) * step
        valid = prep.init_time + lead
        hours = ((valid - valid.astype("datetime64[D]")) // np.timedelta64(1, "h")).astype(int)
        attrs = {"train_start": str(start), "train_end": str(end), "train_samples": self.train_samples_,
                 "min_samples_per_cell": self.min_samples_per_cell}
        return _output(prep, self.table_[hours], step=step, method=self.name, attrs=attrs)


# --------------------------------------------------------------------------------------------------
# pysteps-based methods


class _ThreadQuietStdout(io.TextIOBase):
    """Stands in for ``sys.stdout``: writes from a thread inside `_quiet_pysteps` go to that thread's
    buffer, every other write to the real stream. Installed once; unlike ``redirect_stdout`` it is safe
    when several threads (a threaded hindcast) run pysteps at once and never leaves stdout swapped."""

    def __init__(self, real):
        self.real = real
        self.local = threading.local()

    def _target(self):
        buf = getattr(self.local, "buf", None)
        return buf if buf is not None else self.real

    def write(self, text):
        return self._target().write(text)

    def flush(self):
        self._target().flush()

    def __getattr__(self, name):  # encoding, isatty, fileno ... of the real stream
        return getattr(self.real, name)


_stdout_lock = threading.Lock()


def _thread_quiet_stdout() -> _ThreadQuietStdout:
    with _stdout_lock:
        if not isinstance(sys.stdout, _ThreadQuietStdout):
            sys.stdout = _ThreadQuietStdout(sys.stdout)
        return sys.stdout


@contextlib.contextmanager
def _quiet_pysteps() -> Iterator[None]:
    """Run pysteps without its prints and with dask's synchronous scheduler.

    pysteps prints its configuration path on import and a banner per S-PROG run; the text goes to the
    debug log instead, for this thread only (other threads keep printing normally). S-PROG hands two
    small extrapolations to ``dask.compute``; synchronous keeps them off any distributed client that
    happens to be the default.
    """
    import dask

    proxy = _thread_quiet_stdout()
    buf = io.StringIO()
    outer = getattr(proxy.local, "buf", None)
    proxy.local.buf = buf
    try:
        with dask.config.set(scheduler="synchronous"):
            yield
    finally:
        proxy.local.buf = outer
        text = buf.getvalue().strip()
        if text:
            logger.debug("pysteps said: %s", text)


class _Motion:
    """A dense motion field in pixels per input step (x, y components), or why there is none."""

    def __init__(self, velocity: np.ndarray | None, n_vectors: int, reason: str | None = None):
        self.velocity = velocity
        self.n_vectors = n_vectors
        self.reason = reason


def _to_db(frames: np.ndarray, threshold: float) -> np.ndarray:
    from pysteps.utils import transformation

    # NaN stays NaN (NaN < threshold is False and log10(NaN) is NaN): pysteps treats it as no-data
    return transformation.dB_transform(frames, threshold=threshold, zerovalue=DB_ZEROVALUE)[0]


#: Recent motion fields by the content of their inputs (see `_estimate_motion`); a few entries suffice:
#: extrapolation and S-PROG of one init run one after the other on the same thread.
_MOTION_CACHE: OrderedDict[bytes, _Motion] = OrderedDict()
_MOTION_CACHE_SIZE = 8
_motion_lock = threading.Lock()


def _motion_key(frames_mm: np.ndarray, threshold: float, lk_options: dict[str, Any]) -> bytes:
    h = hashlib.blake2b(digest_size=20)
    h.update(repr((frames_mm.shape, str(frames_mm.dtype), float(threshold), sorted(lk_options.items(), key=str)))
             .encode())
    h.update(np.ascontiguousarray(frames_mm).view(np.uint8).data)
    return h.digest()


def _estimate_motion(frames_mm: np.ndarray, *, threshold: float, lk_options: dict[str, Any]) -> _Motion:
    """pysteps' Lucas-Kanade on dB-transformed frames (see `Extrapolation` for the handling of gaps).

    Runs LK sparse (``dense=False``) so that "no vector found" is told apart from "no motion", then
    declusters and interpolates as ``dense_lucaskanade`` itself does.

    Extrapolation and S-PROG of the same inputs need the same motion: the last few results are kept,
    keyed by the frames' bytes, threshold and options (a hit returns a copy of exactly what the
    estimate gave, so the forecasts are the same as without the cache).
    """
    key = _motion_key(frames_mm, threshold, lk_options)
    with _motion_lock:
        hit = _MOTION_CACHE.get(key)
        if hit is not None:
            _MOTION_CACHE.move_to_end(key)
    if hit is None:
        hit = _estimate_motion_uncached(frames_mm, threshold=threshold, lk_options=lk_options)
        with _motion_lock:
            _MOTION_CACHE[key] = hit
            while len(_MOTION_CACHE) > _MOTION_CACHE_SIZE:
                _MOTION_CACHE.popitem(last=False)
    return _Motion(None if hit.velocity is None else hit.velocity.copy(), hit.n_vectors, hit.reason)


def _estimate_motion_uncached(frames_mm: np.ndarray, *, threshold: float, lk_options: dict[str, Any]) -> _Motion:
    from pysteps import motion, utils
    from pysteps.utils.cleansing import decluster

    opts = dict(lk_options)
    decl_scale = opts.pop("decl_scale", 20)
    interp_method = opts.pop("interp_method", "idwinterp2d")
    interp_kwargs = opts.pop("interp_kwargs", None) or {}
    # tracking features into an entirely missing slot gives bogus vectors: use the most recent run of
    # consecutive observed slots
    observed = np.isfinite(frames_mm).any(axis=(1, 2))
    run = len(observed)
    while run > 0 and observed[run - 1]:
        run -= 1
    frames_mm = frames_mm[run:]
    if len(frames_mm) < 2:
        return _Motion(None, 0, "motion needs two consecutive observed slots ending at the init time; "
                                "a recent slot is entirely missing")
    # A hole inside rain, filled by pysteps with the minimum, is a stationary dry patch that LK's 50 px
    # windows lock onto. Holes are filled from the slot before instead (off by one step of motion, a far
    # smaller error); cells never observed stay NaN, which pysteps masks.
    frames_mm = frames_mm.copy()
    for k in range(1, len(frames_mm)):
        hole = np.isnan(frames_mm[k])
        frames_mm[k][hole] = frames_mm[k - 1][hole]
    db = _to_db(frames_mm, threshold)
    xy, uv = motion.get_method("LK")(db, dense=False, **opts)
    if xy.shape[0] == 0:
        return _Motion(None, 0, f"Lucas-Kanade found no motion vectors in the last {len(frames_mm)} inputs "
                                "(too little precipitation structure)")
    n = int(xy.shape[0])
    if decl_scale > 1:
        xy, uv = decluster(xy, uv, decl_scale, 1)
    ny, nx = frames_mm.shape[1:]
    velocity = utils.get_method(interp_method)(xy, uv, np.arange(nx), np.arange(ny), **interp_kwargs)
    if not np.all(np.isfinite(velocity)):
        return _Motion(None, n, "the interpolated motion field is not finite")
    return _Motion(np.asarray(velocity, dtype=np.float64), n)


def _motion_attrs(prep: _Prepared, mot: _Motion, dt: np.timedelta64) -> dict[str, Any]:
    attrs: dict[str, Any] = {"motion_vectors": mot.n_vectors}
    if mot.velocity is None:
        return attrs
    mx, my = (float(c) for c in mot.velocity.mean(axis=(1, 2)))
    attrs["motion_x_px_per_step"] = mx  # along the x index, per input step
    attrs["motion_y_px_per_step"] = my  # along the y index (southward for north-up grids)
    src = prep.inputs
    if all(d in src.coords and src.sizes[d] > 1 and src[d].attrs.get("units", "m") == "m" for d in ("x", "y")):
        secs = dt / np.timedelta64(1, "s")
        dx = float(src["x"].values[1] - src["x"].values[0])
        dy = float(src["y"].values[1] - src["y"].values[0])
        attrs["motion_u_m_s"] = float(mx * dx / secs)  # towards +x (east for EPSG:3035)
        attrs["motion_v_m_s"] = float(my * dy / secs)  # towards +y (north for EPSG:3035)
    return attrs


def _missing_pysteps_dependency() -> type[BaseException]:
    from pysteps.exceptions import MissingOptionalDependency

    return MissingOptionalDependency


def _advect(prep: _Prepared, velocity: np.ndarray, timesteps: int | list[float], *, outval: float,
            interp_order: int) -> np.ndarray:
    """The last slot moved along ``velocity`` by pysteps' semi-Lagrangian scheme, in mm h-1.

    Holes of the last slot are first filled from earlier slots brought forward along the same motion.
    """
    from pysteps import extrapolation

    extrapolate = extrapolation.get_method("semilagrangian")
    v = prep.values
    base = v[-1].copy()
    for k in range(1, v.shape[0]):
        hole = np.isnan(base)
        if not hole.any():
            break
        older = v[-1 - k]
        if not np.isfinite(older).any():
            continue
        moved = extrapolate(older, velocity, k, outval=np.nan, allow_nonfinite_values=True,
                            interp_order=interp_order)[-1]
        base[hole] = moved[hole]
    if not np.isfinite(base).any():
        raise ValueError("no finite cell left to advect")
    return extrapolate(base, velocity, timesteps, outval=outval, allow_nonfinite_values=True,
                       interp_order=interp_order)


#: Keywords of pysteps' ``dense_lucaskanade`` that ``lk_options`` may set.
_LK_OPTIONS = frozenset({"lk_kwargs", "fd_method", "fd_kwargs", "interp_method", "interp_kwargs", "nr_std_outlier",
                         "k_outlier", "size_opening", "decl_scale"})


class _PystepsMethod:
    """Shared checks of the motion-based methods: fall back to persistence on bad observations."""

    name = ""
    min_slots = 3

    def __init__(self, *, wet_threshold: float, n_motion_frames: int, lk_options: dict[str, Any] | None):
        if not np.isfinite(wet_threshold) or wet_threshold <= 0:
            raise BadInputError(f"wet_threshold must be a positive rain rate in mm h-1, got {wet_threshold!r}")
        if isinstance(n_motion_frames, bool) or not isinstance(n_motion_frames, (int, np.integer)) \
                or n_motion_frames < 2:
            raise BadInputError(f"n_motion_frames must be an integer >= 2, got {n_motion_frames!r}")
        if lk_options is not None and not isinstance(lk_options, dict):
            raise BadInputError(f"lk_options must be a dict of dense_lucaskanade options, got {lk_options!r}")
        unknown = sorted(set(lk_options or {}) - _LK_OPTIONS)
        if unknown:
            raise BadInputError(f"unknown lk_options {', '.join(unknown)}; allowed: {', '.join(sorted(_LK_OPTIONS))}")
        self.wet_threshold = float(wet_threshold)
        self.n_motion_frames = int(n_motion_frames)
        self.lk_options = dict(lk_options or {})

    def fit(self, obs: xr.DataArray):
        """Nothing to learn: motion and AR parameters are estimated from each forecast's own inputs."""
        return self

    def predict(self, inputs: xr.DataArray, *, n_leads: int, step: np.timedelta64,
                mask: xr.DataArray | None = None) -> xr.DataArray:
        """Raises: BadInputError for bad ``n_leads``, ``step``, ``inputs`` (too few or uneven slots) or ``mask``."""
        n_leads, step = _check_n_leads(n_leads), _check_step(step)
        prep = _prepare(inputs, mask, min_slots=self.min_slots, method=self.name)
        dt = prep.spacing(len(prep.times))  # older slots fill holes, moved by whole steps
        t0 = _time.perf_counter()
        frames = prep.values[-max(self.n_motion_frames, self.min_slots):]
        fb = dict(n_leads=n_leads, step=step, method=self.name)
        if not np.isfinite(frames).any():
            return _fallback(prep, reason=f"all cells of the last {len(frames)} inputs are missing or unusable", **fb)
        last = _gap_filled(prep.values)
        if not (last >= self.wet_threshold).any():
            return _fallback(prep, reason=f"no precipitation >= {self.wet_threshold:g} mm h-1 at the init time; "
                                          "nothing to move", **fb)
        with _quiet_pysteps():
            missing_dep = _missing_pysteps_dependency()
            try:
                mot = _estimate_motion(prep.values[-self.n_motion_frames:], threshold=self.wet_threshold,
                                       lk_options=self.lk_options)
                attrs = _motion_attrs(prep, mot, dt)
                if mot.velocity is None:
                    return _fallback(prep, reason=mot.reason, attrs=attrs, **fb)
                # in units of the input spacing; pysteps interpolates between AR steps for fractions
                timesteps: int | list[float] = (
                    n_leads if step == dt else [float((k * step) / dt) for k in range(1, n_leads + 1)])
                reason = self._precheck(prep)
                if reason:
                    # the motion is there but the method's own needs are not met: extrapolation
                    logger.info("%s fell back to extrapolation at %s: %s", self.name, prep.init_time, reason)
                    fields = _advect(prep, mot.velocity, timesteps, outval=np.nan, interp_order=1)
                    attrs.update({"fallback": f"extrapolation: {reason}", "fallback_method": "extrapolation"})
                else:
                    fields, extra = self._forecast(prep, mot.velocity, timesteps)
                    attrs.update(extra)
            except missing_dep:
                raise
            except Exception as e:  # a numerical failure on odd data must not cost the forecast
                logger.warning("%s failed at %s; using persistence", self.name, prep.init_time, exc_info=True)
                return _fallback(prep, reason=f"{self.name} failed: {type(e).__name__}: {e}", **fb)
        fields = np.where(np.isnan(fields), np.nan, np.maximum(fields, 0.0))
        attrs["wet_threshold_mm_h"] = self.wet_threshold
        attrs.update(self._attrs())
        logger.debug("%s at %s: %d leads in %.2f s", self.name, prep.init_time, n_leads, _time.perf_counter() - t0)
        return _output(prep, fields, step=step, method=self.name, attrs=attrs)

    def _precheck(self, prep: _Prepared) -> str | None:
        return None

    def _forecast(self, prep: _Prepared, velocity: np.ndarray,
                  timesteps: int | list[float]) -> tuple[np.ndarray, dict[str, Any]]:
        """The forecast fields (n_leads, y, x) in mm h-1 and attrs to add."""
        raise NotImplementedError

    def _attrs(self) -> dict[str, Any]:
        return {}


class Extrapolation(_PystepsMethod):
    """Lagrangian persistence: the last field moved along the observed motion.

    Motion: pysteps' Lucas-Kanade (``motion.get_method("LK")``) on the last ``n_motion_frames`` inputs,
    transformed to dB (``dB_transform``, threshold ``wet_threshold`` = 0.1 mm h-1, dry cells -15 dB, as
    in pysteps' examples: log-rates give the feature detector contrast in light rain as well as in
    cores). Only the most recent run of consecutive slots that are not entirely missing is used (at
    least 2). Holes in a slot are filled from the slot before it; cells missing in all of them stay NaN,
    which pysteps masks (no features on or within 5 px of them).
    LK defaults of pysteps are kept (Shi-Tomasi corners, 50x50 px window, 3 pyramid levels, outliers
    beyond 3 sd among 30 neighbours dropped, vectors declustered over 20 px, inverse-distance
    interpolation); ``lk_options`` passes other ``dense_lucaskanade`` keywords.

    Advection: pysteps' semi-Lagrangian scheme (``extrapolation.get_method("semilagrangian")``,
    linear interpolation, one midpoint iteration) applied to the rain rate in mm h-1, which conserves
    the rate better than moving dB values. Before moving, missing cells of the last slot are filled
    from earlier slots moved forward by the same motion. Cells whose source lies outside the domain
    get ``outval`` (NaN by default: no information, for the caller to fill). Rates are kept >= 0.
    """

    name = "extrapolation"
    min_slots = 3

    def __init__(self, *, wet_threshold: float = WET_THRESHOLD, n_motion_frames: int = 3,
                 outval: float = np.nan, interp_order: int = 1, lk_options: dict[str, Any] | None = None):
        super().__init__(wet_threshold=wet_threshold, n_motion_frames=n_motion_frames, lk_options=lk_options)
        if interp_order not in (0, 1, 3):
            raise BadInputError(f"interp_order must be 0, 1 or 3, got {interp_order!r}")
        self.min_slots = self.n_motion_frames
        self.outval = float(outval)
        self.interp_order = int(interp_order)

    def _forecast(self, prep: _Prepared, velocity: np.ndarray,
                  timesteps: int | list[float]) -> tuple[np.ndarray, dict[str, Any]]:
        return _advect(prep, velocity, timesteps, outval=self.outval, interp_order=self.interp_order), {}

    def _attrs(self) -> dict[str, Any]:
        return {"motion_method": "pysteps LK", "extrapolation_method": "pysteps semilagrangian"}


class SProg(_PystepsMethod):
    """S-PROG (Seed 2003): extrapolation whose small scales decay as fast as they were observed to.

    pysteps' ``nowcasts.get_method("sprog")`` with its FFT cascade decomposition: the dB field
    (threshold ``wet_threshold`` -> ``precip_thr`` = 10 log10(0.1) = -10 dB, dry cells -15 dB) is split
    into ``n_cascade_levels`` = 6 spatial scales by Gaussian band-pass filters (pysteps' default since
    its issue #385; for 256 km at 1 km the levels run from the domain size down to ~2 km), each scale
    follows its own AR(``ar_order`` = 2) process fitted to the last 3 inputs in Lagrangian coordinates,
    and the recomposed field is mapped back to the observed distribution (``probmatching_method``
    "cdf") so that rain area and intensities stay realistic while small features fade. The result is
    back-transformed to mm h-1 (below 0.1 mm h-1 becomes 0). Motion as in `Extrapolation`.

    pysteps' S-PROG takes no ``kmperpixel`` / ``timestep``: velocities are pixels per input step
    and the output steps are multiples of the input spacing (other steps are interpolated by pysteps).
    Cells missing in any of the last ``ar_order + 1`` inputs are treated by pysteps as outside the
    radar domain and come back NaN at every lead. When one of those slots is missing entirely, or the
    cascade / AR model cannot be fitted (a field that only moved has lag-1 correlation 1, which pysteps
    rejects as nonstationary), the forecast is plain `Extrapolation` with the same motion and says so
    in ``fallback``; without motion it is persistence.
    """

    name = "sprog"

    def __init__(self, *, wet_threshold: float = WET_THRESHOLD, n_cascade_levels: int = 6, ar_order: int = 2,
                 probmatching_method: str | None = "cdf", conditional: bool = False, n_motion_frames: int = 3,
                 lk_options: dict[str, Any] | None = None):
        super().__init__(wet_threshold=wet_threshold, n_motion_frames=n_motion_frames, lk_options=lk_options)
        if isinstance(n_cascade_levels, bool) or not isinstance(n_cascade_levels, (int, np.integer)) \
                or n_cascade_levels < 1:
            raise BadInputError(f"n_cascade_levels must be an integer >= 1, got {n_cascade_levels!r}")
        if isinstance(ar_order, bool) or ar_order not in (1, 2):
            raise BadInputError(f"ar_order must be 1 or 2, got {ar_order!r}")
        if probmatching_method not in ("cdf", "mean", None):
            raise BadInputError(f"probmatching_method must be 'cdf', 'mean' or None, got {probmatching_method!r}")
        self.n_cascade_levels = int(n_cascade_levels)
        self.ar_order = int(ar_order)
        self.probmatching_method = probmatching_method
        self.conditional = bool(conditional)
        self.min_slots = max(self.n_motion_frames, self.ar_order + 1)

    def _precheck(self, prep: _Prepared) -> str | None:
        ar_in = prep.values[-(self.ar_order + 1):]
        empty = [str(t) for t, f in zip(prep.times[-(self.ar_order + 1):], ar_in) if not np.isfinite(f).any()]
        if empty:
            return f"input slot(s) {', '.join(empty)} entirely missing; S-PROG needs {self.ar_order + 1} observed slots"
        return None

    def _forecast(self, prep: _Prepared, velocity: np.ndarray,
                  timesteps: int | list[float]) -> tuple[np.ndarray, dict[str, Any]]:
        from pysteps import nowcasts
        from pysteps.utils import transformation

        db = _to_db(prep.values[-(self.ar_order + 1):], self.wet_threshold)
        precip_thr = 10.0 * np.log10(self.wet_threshold)
        try:
            out = nowcasts.get_method("sprog")(
                db, velocity, timesteps,
                precip_thr=precip_thr, norain_thr=0.0, n_cascade_levels=self.n_cascade_levels,
                extrap_method="semilagrangian", decomp_method="fft", bandpass_filter_method="gaussian",
                ar_order=self.ar_order, conditional=self.conditional, probmatching_method=self.probmatching_method,
                num_workers=1, fft_method="numpy", domain="spatial")
        except _missing_pysteps_dependency():
            raise
        except Exception as e:
            # e.g. "nonstationary AR(p) process" when the field only moved and did not change at all
            # (lag-1 correlation 1): extrapolation is then what S-PROG would have converged to
            logger.warning("sprog's cascade / AR model failed at %s (%s: %s); using extrapolation",
                           prep.init_time, type(e).__name__, e)
            fields = _advect(prep, velocity, timesteps, outval=np.nan, interp_order=1)
            return fields, {"fallback": f"extrapolation: sprog failed: {type(e).__name__}: {e}",
                            "fallback_method": "extrapolation"}
        fields = transformation.dB_transform(np.asarray(out, dtype=np.float64), threshold=precip_thr,
                                             zerovalue=0.0, inverse=True)[0]
        return fields, {}

    def _attrs(self) -> dict[str, Any]:
        return {"motion_method": "pysteps LK", "n_cascade_levels": self.n_cascade_levels, "ar_order": self.ar_order,
                "probmatching_method": str(self.probmatching_method)}


# --------------------------------------------------------------------------------------------------
# the registry

_METHODS: dict[str, type] = {
    "persistence": Persistence,
    "climatology": Climatology,
    "extrapolation": Extrapolation,
    "sprog": SProg,
}


def available_methods() -> tuple[str, ...]:
    """The names `get_method` accepts."""
    return tuple(sorted(_METHODS))


def get_method(name: str, **options: Any) -> Nowcaster:
    """A new nowcaster of the method ``name`` (case-insensitive), built with ``options``.

    Raises:
        BadInputError: an unknown name (the message lists the available ones) or a bad option value.
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in _METHODS:
        raise BadInputError(f"unknown nowcasting method {name!r}; available: {', '.join(available_methods())}")
    try:
        return _METHODS[key](**options)
    except TypeError as e:
        raise BadInputError(f"bad options for nowcasting method {key!r}: {e}") from None
