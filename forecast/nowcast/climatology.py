"""Hour-of-day climatology fitted on a training period."""

from __future__ import annotations

import logging

import numpy as np
import xarray as xr

from forecast.errors import BadInputError
from forecast.nowcast.base import (
    NotFittedError,
    check_mask,
    check_n_leads,
    check_step,
    load_values,
    mask_values,
    output,
    prepare,
    validated,
)

logger = logging.getLogger(__name__)


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
        obs, times = validated(obs, min_slots=1, method=self.name, what="obs")
        ny, nx = obs.shape[1:]
        hours = ((times - times.astype("datetime64[D]")) // np.timedelta64(1, "h")).astype(int)
        if mask is not None:
            mask = check_mask(mask, obs, "obs")
        sums = np.zeros((24, ny, nx))
        counts = np.zeros((24, ny, nx), dtype=np.int64)
        # a day of 5-minute slots at a time: months of training data never sit in memory at once
        for lo in range(0, len(times), self.fit_block):
            sl = slice(lo, lo + self.fit_block)
            part = obs.isel(time=sl)
            m = None
            if mask is not None:
                m = mask_values(mask.isel(time=sl) if "time" in mask.dims else mask, part)
            v = load_values(part, m)
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
        n_leads, step = check_n_leads(n_leads), check_step(step)
        prep = prepare(inputs, mask, min_slots=self.min_slots, method=self.name)
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
        return output(prep, self.table_[hours], step=step, method=self.name, attrs=attrs)
