"""Realistic synthetic observation feeds (`forecast sample`): one CF NetCDF file per time slot, with
operational faults planted on purpose and recorded exactly in ``manifest.json`` for the QC tests.

Every field is an analytic function of (catalog, seed, time): convective cells and stratiform rain areas
are defined by their birth time, track and life cycle, so any slot can be rendered alone, in any process,
and two samples that overlap in time agree on the overlap.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time as _time
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from forecast import __version__
from forecast.catalog.models import Catalog, units_registry
from forecast.errors import BadInputError
from forecast.timeutil import iso as _iso
from forecast.timeutil import utc

logger = logging.getLogger(__name__)

FAULTS = ("spike", "impossible", "stuck", "record_extreme", "missing", "late", "duplicate", "revised", "corrupt")
GENERATOR = f"forecast.sample {__version__}"

# Seconds since 1970 of 2000-01-01: the phase origin of every time-dependent term (wind, fronts, textures),
# so a slot's field never depends on where a sample starts.
_T_REF = 946_684_800.0
_STUCK_SLOTS = 12
_RECORD_RAMP = (0.35, 0.7, 1.0, 1.0, 1.0, 0.7, 0.35)  # intensity of the planted extreme over its slots
_N_SPIKES = 3
_N_IMPOSSIBLE = 3
_CORRUPT_FRACTION = 0.4
_TIME_UNITS = "seconds since 1970-01-01 00:00:00"
_PRECIP_THRESHOLD = 0.1  # mm/h: below this a radar reports 0

# Random-stream tags: each physical process draws from its own stream, keyed by (seed, tag, epoch).
_TAG_WIND, _TAG_CELLS, _TAG_STRAT, _TAG_TEX, _TAG_FRONT, _TAG_PLAN = 11, 12, 13, 14, 15, 16


# ---------------------------------------------------------------------------------------------- helpers


def _rng(*key: int) -> np.random.Generator:
    # Offset so that epochs before the phase origin (negative indices) are valid seed words too.
    return np.random.default_rng(np.random.SeedSequence([int(k) + (1 << 40) for k in key]))


def _month_of(t_s: float) -> int:
    """Calendar month index 0..11 of a time."""
    return datetime.fromtimestamp(t_s, tz=timezone.utc).month - 1


def _smoothstep(x: np.ndarray | float) -> np.ndarray | float:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _softcap(x: np.ndarray, cap: float, s: float) -> np.ndarray:
    """Smooth ceiling: never above ``cap`` nor above ``x``; the identity well below ``cap``."""
    return (cap - s * np.logaddexp(0.0, (cap - x) / s)).astype(np.float32)


def _softfloor(x: np.ndarray, floor: float, s: float) -> np.ndarray:
    return (floor + s * np.logaddexp(0.0, (x - floor) / s)).astype(np.float32)


def _fval(v: float) -> float:
    """A value as it lands in a float32 file, as an exact JSON number."""
    return float(np.float32(v))


# ------------------------------------------------------------------------------------------ variables


@dataclass(frozen=True)
class _VarSpec:
    vid: str
    name: str  # name in the files
    kind: str  # precipitation | air_temperature | dew_point | generic
    standard_name: str
    long_name: str
    units: str  # units written
    scale: float  # file value = native * scale + offset
    offset: float
    phys: tuple[float, float]  # native units
    rec_max: tuple[float, ...] | None  # native units, 12 months
    rec_min: tuple[float, ...] | None

    def to_file(self, v: float) -> float:
        return v * self.scale + self.offset


def _kind(standard_name: str) -> str:
    if "precipitation" in standard_name:
        return "precipitation"
    if standard_name == "air_temperature":
        return "air_temperature"
    if standard_name == "dew_point_temperature":
        return "dew_point"
    return "generic"


def _var_specs(catalog: Catalog) -> list[_VarSpec]:
    ureg = units_registry()
    specs = []
    for vid, var in catalog.variables.items():
        kind = _kind(var.standard_name)
        native = {"precipitation": "mm h-1", "air_temperature": "K", "dew_point": "K"}.get(kind, var.units)
        # The feed delivers precipitation in mm/h and temperatures in degC, so the ingest's unit conversion
        # is exercised; a unit the catalog does not accept falls back to the canonical one.
        wanted = {"precipitation": "mm h-1", "air_temperature": "degC", "dew_point": "degC"}.get(kind, var.units)
        accepted = {var.units, *var.accepted_units}
        units = wanted if wanted in accepted else var.units

        def conv(values, src, dst):
            return np.asarray(ureg.Quantity(np.asarray(values, dtype="float64"), src).to(dst).magnitude)

        try:
            a, b = conv([0.0, 1.0], native, units)
        except Exception:  # a canonical unit that is not a rate in mm/h or a temperature
            raise BadInputError(
                f"variable {vid!r} of catalog {catalog.id!r} has units {var.units!r}, which cannot hold a "
                f"{kind.replace('_', ' ')} in {native!r}; fix the catalog's units"
            ) from None
        rec = var.climatological_record
        specs.append(
            _VarSpec(
                vid=vid,
                name=catalog.source_names(vid)[0],
                kind=kind,
                standard_name=var.standard_name,
                long_name=var.long_name or var.standard_name.replace("_", " ").capitalize(),
                units=units,
                scale=float(b - a),
                offset=float(a),
                phys=tuple(float(v) for v in conv(var.physical_range, var.units, native)),
                rec_max=None if rec.max is None else tuple(float(v) for v in conv(rec.max, var.units, native)),
                rec_min=None if rec.min is None else tuple(float(v) for v in conv(rec.min, var.units, native)),
            )
        )
    return specs


# ------------------------------------------------------------------------------------------- textures


class _Texture:
    """A periodic random field on a tile larger than the grid; sampled shifted (advection) with wrap-around.

    The spectrum is a power law (slope ``beta``) flattening beyond ``l0_km`` and cut off below ``lmin_km``,
    both in km, so the texture has the same physical scales on any grid resolution.
    """

    def __init__(self, shape: tuple[int, int], km: tuple[float, float], rng: np.random.Generator,
                 *, beta: float, l0_km: float, lmin_km: float):
        ny, nx = shape
        ty = 1 << max(4, math.ceil(math.log2(2 * ny)))
        tx = 1 << max(4, math.ceil(math.log2(2 * nx)))
        white = rng.standard_normal((ty, tx)).astype(np.float32)
        spec = np.fft.rfft2(white)
        fy = np.fft.fftfreq(ty, d=km[0])[:, None]
        fx = np.fft.rfftfreq(tx, d=km[1])[None, :]
        k2 = fy * fy + fx * fx
        filt = (k2 + (1.0 / l0_km) ** 2) ** (-beta / 4.0) * np.exp(-k2 * (math.pi * lmin_km) ** 2)
        tile = np.fft.irfft2(spec * filt, s=(ty, tx))
        tile -= tile.mean()
        tile /= tile.std() + 1e-12
        self.tile = tile.astype(np.float32)

    def sample(self, oy: float, ox: float, ys: slice, xs: slice) -> np.ndarray:
        """Values at grid rows ``ys`` / columns ``xs`` of the texture shifted by (oy, ox) pixels, bilinear."""
        ty, tx = self.tile.shape
        sy, sx = -oy, -ox
        iy, ix = math.floor(sy), math.floor(sx)
        fy, fx = np.float32(sy - iy), np.float32(sx - ix)
        rows = (np.arange(ys.start, ys.stop + 1) + iy) % ty
        cols = (np.arange(xs.start, xs.stop + 1) + ix) % tx
        b = self.tile[np.ix_(rows, cols)]
        top = b[:-1, :-1] * (1 - fx) + b[:-1, 1:] * fx
        bot = b[1:, :-1] * (1 - fx) + b[1:, 1:] * fx
        return top * (1 - fy) + bot * fy


# -------------------------------------------------------------------------------------------- context


class _Context:
    """Everything a slot's rendering needs, rebuilt identically from (catalog, seed) in any process."""

    def __init__(self, catalog: Catalog, seed: int):
        from pyproj import CRS

        self.catalog = catalog
        self.seed = seed
        g = catalog.grid
        self.ny, self.nx = g.shape
        self.crs = CRS.from_user_input(g.crs)
        lat, lon = g.latlon()
        self.lat = np.asarray(lat, dtype=np.float32)
        self.lon = np.asarray(lon, dtype=np.float32)
        lat_c = float(np.nanmean(lat))
        self.lon_c = float(np.nanmean(lon))
        self.southern = lat_c < 0
        if self.crs.is_geographic:
            mx, my = 111_320.0 * math.cos(math.radians(lat_c)), 110_574.0
        else:
            mx = self.crs.axis_info[0].unit_conversion_factor if self.crs.axis_info else 1.0
            my = self.crs.axis_info[1].unit_conversion_factor if len(self.crs.axis_info) > 1 else mx
        # Signed metres per pixel step: moving east / north in metres moves the index by d / step_m.
        self.step_x_m = g.x.step * mx
        self.step_y_m = g.y.step * my
        self.km = (abs(self.step_y_m) / 1000.0, abs(self.step_x_m) / 1000.0)  # km per pixel (y, x)
        # Eastward / northward km of each column / row from the grid centre.
        self.east_km = ((np.arange(self.nx) - (self.nx - 1) / 2) * self.step_x_m / 1000.0).astype(np.float32)
        self.north_km = ((np.arange(self.ny) - (self.ny - 1) / 2) * self.step_y_m / 1000.0).astype(np.float32)
        self.specs = _var_specs(catalog)
        kinds = {s.kind for s in self.specs}
        elev = g.elevation_field()
        self.elevation = (np.full(g.shape, 300.0, np.float32) if elev is None else elev.astype(np.float32))

        # Steering wind: a mean vector of 15 m/s plus slow oscillations (periods 17-53 h), integrable exactly.
        r = _rng(seed, _TAG_WIND)
        toward = math.radians(r.uniform(-45.0, 90.0))  # mostly westerly / south-westerly flow
        self.w_mean = (15.0 * math.cos(toward), 15.0 * math.sin(toward))
        self.w_amp = r.uniform(1.2, 3.0, size=(2, 2))
        self.w_omega = 2 * math.pi / (3600.0 * np.array([[17.0, 41.0], [23.0, 53.0]]))
        self.w_phase = r.uniform(0, 2 * math.pi, size=(2, 2))

        self._cells: dict[int, dict[str, np.ndarray]] = {}
        self._strat: dict[int, dict[str, np.ndarray]] = {}
        self.tex: dict[str, _Texture] = {}
        if "precipitation" in kinds:
            self.tex["rain_a"] = _Texture(g.shape, self.km, _rng(seed, _TAG_TEX, 1), beta=3.0, l0_km=120.0, lmin_km=1.5)
            self.tex["rain_b"] = _Texture(g.shape, self.km, _rng(seed, _TAG_TEX, 2), beta=3.0, l0_km=120.0, lmin_km=1.5)
        if kinds & {"air_temperature", "dew_point"}:
            self.tex["temp"] = _Texture(g.shape, self.km, _rng(seed, _TAG_TEX, 3), beta=4.0, l0_km=80.0, lmin_km=6.0)
            self.tex["dep"] = _Texture(g.shape, self.km, _rng(seed, _TAG_TEX, 4), beta=4.0, l0_km=150.0, lmin_km=10.0)
            r = _rng(seed, _TAG_FRONT)
            self.front_dir = r.uniform(-0.25 * math.pi, 0.6 * math.pi)
            self.front_phase = r.uniform(0, 2 * math.pi)
        if "generic" in kinds:
            self.tex["generic"] = _Texture(g.shape, self.km, _rng(seed, _TAG_TEX, 5), beta=4.0, l0_km=300.0,
                                           lmin_km=20.0)

    # --- wind -------------------------------------------------------------------------------------
    def wind(self, t_s: float) -> tuple[float, float]:
        tr = t_s - _T_REF
        uv = [self.w_mean[c] + float(np.sum(self.w_amp[c] * np.sin(self.w_omega[c] * tr + self.w_phase[c])))
              for c in (0, 1)]
        return uv[0], uv[1]

    def shift_px(self, t_s, factor: float = 1.0):
        """Displacement (rows, columns) of air moving with the steering wind since the phase origin;
        ``t_s`` may be an array."""
        tr = np.asarray(t_s, dtype=np.float64)[..., None] - _T_REF
        d = []
        for c in (0, 1):
            osc = self.w_amp[c] * (np.cos(self.w_phase[c]) - np.cos(self.w_omega[c] * tr + self.w_phase[c]))
            d.append(factor * (self.w_mean[c] * tr[..., 0] + np.sum(osc / self.w_omega[c], axis=-1)))
        rows, cols = d[1] / self.step_y_m, d[0] / self.step_x_m
        if np.ndim(t_s) == 0:
            return float(rows), float(cols)
        return rows, cols

    def local_hour(self, t_s: float, lon: np.ndarray | float) -> np.ndarray | float:
        return ((t_s / 3600.0) + np.asarray(lon, dtype=np.float64) / 15.0) % 24.0

    def summerness(self, t_s: float) -> float:
        m = _month_of(t_s) + (6 if self.southern else 0)
        return 0.5 - 0.5 * math.cos(2 * math.pi * (m % 12) / 12.0)


# ----------------------------------------------------------------------------------------- precipitation

_CELL_EPOCH = 3600.0
_CELL_MAX_LIFE = 7200.0
_CLUSTER_MAX = 4  # cells per cluster
_CLUSTER_GAP = (300.0, 1500.0)  # s between successive births in a cluster (new cells on the flank)
_CLUSTER_RATE = 1.0e-4  # clusters per km^2 per hour at full activity
_CELL_LOOKBACK = math.ceil((_CELL_MAX_LIFE + _CLUSTER_MAX * _CLUSTER_GAP[1]) / _CELL_EPOCH)
_STRAT_EPOCH = 6 * 3600.0
_STRAT_MAX_LIFE = 9 * 3600.0
_STRAT_RATE = 4.0e-6  # systems per km^2 per hour
_MAX_WIND = 22.0  # m/s: bounds how far upstream a feature can be born and still reach the grid


def _cells(ctx: _Context, epoch: int, cap: Callable[[float], float]) -> dict[str, np.ndarray]:
    """Convective cells of the clusters that start during one hour: birth, place, life, peak, shape, drift."""
    if epoch in ctx._cells:
        return ctx._cells[epoch]
    r = _rng(ctx.seed, _TAG_CELLS, epoch)
    margin_km = _MAX_WIND * (_CELL_MAX_LIFE + _CLUSTER_MAX * _CLUSTER_GAP[1]) / 1000.0 + 40.0
    my, mx = margin_km / ctx.km[0], margin_km / ctx.km[1]
    area_km2 = (ctx.ny * ctx.km[0] + 2 * margin_km) * (ctx.nx * ctx.km[1] + 2 * margin_km)
    t0 = _T_REF + epoch * _CELL_EPOCH
    nc = r.poisson(_CLUSTER_RATE * area_km2 * _CELL_EPOCH / 3600.0)
    tc = t0 + r.uniform(0, _CELL_EPOCH, nc)
    # Thinning by a diurnal activity cycle: convection peaks in the afternoon, local solar time.
    hour = ctx.local_hour(tc, ctx.lon_c)
    keep = r.uniform(0, 1, nc) < 0.7 + 0.3 * np.cos(2 * np.pi * (hour - 16.0) / 24.0)
    size = np.minimum(1 + r.poisson(1.3, nc), _CLUSTER_MAX)
    gaps = r.uniform(*_CLUSTER_GAP, (nc, _CLUSTER_MAX))
    gaps[:, 0] = 0.0
    births = tc[:, None] + np.cumsum(gaps, axis=1)
    member = (np.arange(_CLUSTER_MAX)[None, :] < size[:, None]) & keep[:, None]
    cy = np.repeat(r.uniform(-my, ctx.ny + my, nc)[:, None], _CLUSTER_MAX, 1)
    cx = np.repeat(r.uniform(-mx, ctx.nx + mx, nc)[:, None], _CLUSTER_MAX, 1)
    # Members form within ~10 km of the cluster's first cell.
    cy = cy + r.normal(0, 10.0, cy.shape) / ctx.km[0]
    cx = cx + r.normal(0, 10.0, cx.shape) / ctx.km[1]
    drift_u = np.repeat(r.normal(0, 1.5, nc)[:, None], _CLUSTER_MAX, 1)  # m/s, the cluster's own motion
    drift_v = np.repeat(r.normal(0, 1.5, nc)[:, None], _CLUSTER_MAX, 1)
    n = int(member.sum())
    season = 0.6 + 0.4 * ctx.summerness(t0)  # winter convection is weaker
    peak = np.exp(r.normal(math.log(12.0), 1.0, n)) * season  # heavy-tailed: ~8 % of cores exceed 50 mm/h
    # Severe cells: at least one an hour is born over the grid itself, so every sample of a convective
    # season has cores beyond 50 mm/h (by chance alone a small grid can go hours without one).
    ns = 1 + r.poisson(ctx.ny * ctx.km[0] * ctx.nx * ctx.km[1] / 150_000.0)
    tb = np.concatenate([births[member], t0 + r.uniform(0, _CELL_EPOCH, ns)])
    peak = np.concatenate([peak, r.uniform(60.0, 130.0, ns) * season])
    # A soft cap keeps natural cores below the month's record: only planted faults may go beyond it.
    c = cap(t0 + _CELL_EPOCH)
    peak = c * np.tanh(peak / c)
    n += ns
    sy, sx = ctx.shift_px(tb)
    cells = {
        "tb": tb,
        # Positions relative to the air that carries them: the centre at t is this plus shift_px(t) + drift.
        "y": np.concatenate([cy[member], r.uniform(0, ctx.ny, ns)]) - sy,
        "x": np.concatenate([cx[member], r.uniform(0, ctx.nx, ns)]) - sx,
        "vy": np.concatenate([drift_v[member], r.normal(0, 1.5, ns)]) / ctx.step_y_m,  # pixels per second
        "vx": np.concatenate([drift_u[member], r.normal(0, 1.5, ns)]) / ctx.step_x_m,
        "life": r.uniform(1800.0, _CELL_MAX_LIFE, n),
        "peak": peak,
        "radius": r.uniform(4.0, 12.0, n),  # km, major semi-axis of the rain area at maturity
        "aspect": r.uniform(0.5, 1.0, n),
        "theta": r.uniform(0, np.pi, n),
    }
    if len(ctx._cells) > 16:
        ctx._cells.pop(next(iter(ctx._cells)))
    ctx._cells[epoch] = cells
    return cells


def _strat_systems(ctx: _Context, epoch: int) -> dict[str, np.ndarray]:
    """Stratiform rain areas born during one 6-hour epoch."""
    if epoch in ctx._strat:
        return ctx._strat[epoch]
    r = _rng(ctx.seed, _TAG_STRAT, epoch)
    margin_km = _MAX_WIND * _STRAT_MAX_LIFE / 1000.0 + 300.0
    my, mx = margin_km / ctx.km[0], margin_km / ctx.km[1]
    area_km2 = (ctx.ny * ctx.km[0] + 2 * margin_km) * (ctx.nx * ctx.km[1] + 2 * margin_km)
    n = r.poisson(_STRAT_RATE * area_km2 * _STRAT_EPOCH / 3600.0)
    tb = _T_REF + epoch * _STRAT_EPOCH + r.uniform(0, _STRAT_EPOCH, n)
    sy, sx = ctx.shift_px(tb)
    sys_ = {
        "tb": tb,
        "life": r.uniform(3 * 3600.0, _STRAT_MAX_LIFE, n),
        "y": r.uniform(-my, ctx.ny + my, n) - sy,
        "x": r.uniform(-mx, ctx.nx + mx, n) - sx,
        "a": r.uniform(40.0, 140.0, n),
        "aspect": r.uniform(0.35, 0.9, n),
        "theta": r.uniform(0, np.pi, n),
        "amp": r.uniform(0.85, 1.25, n),
    }
    if len(ctx._strat) > 8:
        ctx._strat.pop(next(iter(ctx._strat)))
    ctx._strat[epoch] = sys_
    return sys_


def _window(ctx: _Context, cy: float, cx: float, r_km: float) -> tuple[slice, slice] | None:
    ry, rx = r_km / ctx.km[0], r_km / ctx.km[1]
    y0, y1 = max(0, math.floor(cy - ry)), min(ctx.ny, math.ceil(cy + ry) + 1)
    x0, x1 = max(0, math.floor(cx - rx)), min(ctx.nx, math.ceil(cx + rx) + 1)
    if y0 >= y1 or x0 >= x1:
        return None
    return slice(y0, y1), slice(x0, x1)


def _visible(ctx: _Context, cy: np.ndarray, cx: np.ndarray, r_km: np.ndarray) -> np.ndarray:
    ry, rx = r_km / ctx.km[0], r_km / ctx.km[1]
    return (cy + ry > -1) & (cy - ry < ctx.ny) & (cx + rx > -1) & (cx - rx < ctx.nx)


def _ellipse_r2(ctx: _Context, ys: slice, xs: slice, cy: float, cx: float, a: float, b: float,
                theta: float) -> np.ndarray:
    """Squared normalised elliptical distance (km axes a, b, major axis at angle theta from east)."""
    de = ((np.arange(xs.start, xs.stop, dtype=np.float32) - np.float32(cx)) * np.float32(ctx.step_x_m / 1000.0))
    dn = ((np.arange(ys.start, ys.stop, dtype=np.float32) - np.float32(cy)) * np.float32(ctx.step_y_m / 1000.0))
    c, s = math.cos(theta), math.sin(theta)
    # Scale before the outer product so the 2-D work is two multiply-adds and a square.
    u = (de[None, :] * np.float32(c / a)) + (dn[:, None] * np.float32(s / a))
    v = (dn[:, None] * np.float32(c / b)) - (de[None, :] * np.float32(s / b))
    return u * u + v * v


def _precip_cap(spec: _VarSpec) -> Callable[[float], float]:
    def cap(t_s: float) -> float:
        if spec.rec_max is None:
            return 0.8 * spec.phys[1]
        m = _month_of(t_s)
        rec = min(spec.rec_max[m], spec.rec_max[(m + 1) % 12])  # a cell may live into the next month
        return max(5.0, min(0.8 * rec, rec - 10.0))

    return cap


def _precipitation(ctx: _Context, spec: _VarSpec, t_s: float) -> np.ndarray:
    """Rain rate (mm/h): moving convective cells with life cycles over advected stratiform areas."""
    out = np.zeros((ctx.ny, ctx.nx), np.float32)
    cap = _precip_cap(spec)
    oy, ox = ctx.shift_px(t_s)

    # Stratiform: smooth envelopes (one per system) times an advected texture that slowly changes pattern.
    env = None
    k = math.floor((t_s - _T_REF) / _STRAT_EPOCH)
    for e in range(k - math.ceil(_STRAT_MAX_LIFE / _STRAT_EPOCH), k + 1):
        sy = _strat_systems(ctx, e)
        age = t_s - sy["tb"]
        tau = np.clip(age / sy["life"], 0, 1)
        lc = _smoothstep(tau / 0.25) * _smoothstep((1.0 - tau) / 0.35)
        cy, cx = sy["y"] + oy, sy["x"] + ox
        for j in np.flatnonzero((lc > 0) & _visible(ctx, cy, cx, 2.0 * sy["a"])):
            win = _window(ctx, cy[j], cx[j], 2.0 * sy["a"][j])
            if win is None:
                continue
            if env is None:
                env = np.zeros((ctx.ny, ctx.nx), np.float32)
            r2 = _ellipse_r2(ctx, *win, cy[j], cx[j], sy["a"][j], sy["a"][j] * sy["aspect"][j], sy["theta"][j])
            np.maximum(env[win], np.float32(lc[j] * sy["amp"][j]) * np.exp(-r2), out=env[win])
    if env is not None:
        rows = np.flatnonzero(env.max(axis=1) > 0.45)
        cols = np.flatnonzero(env.max(axis=0) > 0.45)
        if rows.size and cols.size:
            ys, xs = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
            phi = 2 * math.pi * (t_s - _T_REF) / (11 * 3600.0)
            tex = ctx.tex["rain_a"].sample(oy, ox, ys, xs) * np.float32(math.cos(phi))
            tex += ctx.tex["rain_b"].sample(oy, ox, ys, xs) * np.float32(math.sin(phi))
            q = env[ys, xs] * (np.float32(0.6) + np.float32(0.4) * np.clip(tex * np.float32(0.5), -1, 1))
            x = np.clip((q - np.float32(0.45)) / np.float32(0.75), 0, 1)
            rain = np.float32(0.2) + np.float32(7.8) * x * np.sqrt(x)
            rain[q <= 0.45] = 0
            out[ys, xs] = rain

    # Convective cells, all combined by maximum (cores do not add up).
    k = math.floor((t_s - _T_REF) / _CELL_EPOCH)
    c0 = np.float32(0.15)
    g1 = np.float32(math.sqrt(1 + 0.15**2) - 0.15)
    for e in range(k - _CELL_LOOKBACK, k + 1):
        cells = _cells(ctx, e, cap)
        age = t_s - cells["tb"]
        tau = np.clip(age / cells["life"], 0, 1)
        lc = _smoothstep(tau / 0.3) * _smoothstep((1.0 - tau) / 0.45)  # grow, mature, decay
        inten = cells["peak"] * lc
        a = cells["radius"] * (0.4 + 0.6 * np.sqrt(lc))
        cy = cells["y"] + oy + cells["vy"] * age
        cx = cells["x"] + ox + cells["vx"] * age
        for j in np.flatnonzero((inten >= 2 * _PRECIP_THRESHOLD) & _visible(ctx, cy, cx, a)):
            win = _window(ctx, cy[j], cx[j], a[j])
            if win is None:
                continue
            r2 = _ellipse_r2(ctx, *win, cy[j], cx[j], a[j], a[j] * cells["aspect"][j], cells["theta"][j])
            # Rain rate falls log-linearly (like reflectivity in dB) from the core to the cell's edge, where it
            # reaches the detection threshold; the core is rounded so it does not look like a spike.
            g = (np.sqrt(r2 + c0 * c0) - c0) / g1
            val = np.float32(inten[j]) * np.exp(np.float32(math.log(_PRECIP_THRESHOLD / inten[j])) * g)
            val[r2 >= 1.0] = 0.0
            np.maximum(out[win], val, out=out[win])
    out[out < _PRECIP_THRESHOLD] = 0.0
    return out


# ------------------------------------------------------------------------------------------ temperature


def _monthly(values: tuple[float, ...], t_s: float) -> float:
    """A monthly climate value interpolated linearly between mid-months (no jumps at month ends)."""
    d = datetime.fromtimestamp(t_s, tz=timezone.utc)
    days = 30.44
    pos = d.month - 1 + (d.day - 1 + d.hour / 24.0) / days - 0.5
    m0 = math.floor(pos)
    w = pos - m0
    return (1 - w) * values[m0 % 12] + w * values[(m0 + 1) % 12]


def _record_mid(spec: _VarSpec | None, t_s: float, fallback: float) -> float:
    if spec is None:
        return fallback
    if spec.rec_max is not None and spec.rec_min is not None:
        return _monthly(tuple((a + b) / 2 for a, b in zip(spec.rec_min, spec.rec_max)), t_s)
    if spec.rec_max is not None:
        return _monthly(spec.rec_max, t_s) - 18.0
    return _monthly(spec.rec_min, t_s) + 18.0


def _diurnal(hour: np.ndarray) -> np.ndarray:
    """-1 at 05 local, +1 at 15 local: 10 hours of warming, 14 of cooling."""
    h = (hour - 5.0) % 24.0
    return np.where(h < 10.0, -np.cos(np.pi * h / 10.0), np.cos(np.pi * (h - 10.0) / 14.0)).astype(np.float32)


def _temperatures(ctx: _Context, t_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(air temperature, dew point, diurnal phase) in K: climate + diurnal + lapse rate + front + noise."""
    air = next((s for s in ctx.specs if s.kind == "air_temperature"), None)
    dew = next((s for s in ctx.specs if s.kind == "dew_point"), None)
    mid = _record_mid(air, t_s, _record_mid(dew, t_s, 285.0) + 7.0)
    summer = ctx.summerness(t_s)
    diurnal = _diurnal(ctx.local_hour(t_s, ctx.lon))
    amp = 3.0 + 2.5 * summer
    z = ctx.elevation
    lapse = np.float32(-6.5e-3) * (z - np.float32(z.mean()))
    # Alternating warm and cold fronts (square wave, ~30 km transitions) moving at 7 m/s.
    s_km = ctx.east_km[None, :] * math.cos(ctx.front_dir) + ctx.north_km[:, None] * math.sin(ctx.front_dir)
    phase = 2 * np.pi * (s_km - 7.0e-3 * (t_s - _T_REF)) / 1400.0 + ctx.front_phase
    front = np.tanh(8.0 * np.sin(phase)) / np.float32(math.tanh(8.0))
    oy, ox = ctx.shift_px(t_s, 0.5)
    full = (slice(0, ctx.ny), slice(0, ctx.nx))
    noise = ctx.tex["temp"].sample(oy, ox, *full)
    t = np.float32(mid) + lapse + np.float32(amp) * diurnal + np.float32(2.5) * front + np.float32(0.6) * noise
    if air is not None and air.rec_max is not None and air.rec_min is not None:
        m = _month_of(t_s)
        t = _softfloor(_softcap(t, air.rec_max[m] - 4.0, 1.5), air.rec_min[m] + 4.0, 1.5)
    # Dew-point depression 1..12 K: drier in the afternoon, on the cold side of fronts and where the texture says.
    dep_tex = ctx.tex["dep"].sample(oy * 0.5, ox * 0.5, *full)
    dep = 1.0 + 11.0 * (0.5 + 0.5 * np.tanh(0.9 * dep_tex + 0.7 * diurnal - 0.4 * front))
    td = t - dep.astype(np.float32)
    if dew is not None and dew.rec_max is not None and dew.rec_min is not None:
        m = _month_of(t_s)
        td = _softfloor(_softcap(td, dew.rec_max[m] - 3.0, 1.5), dew.rec_min[m] + 3.0, 1.5)
    # The soft limits above may stretch the depression a little; keep it within 1..12 K.
    td = np.clip(td, t - np.float32(12.0), t - np.float32(1.0))
    return t.astype(np.float32), td.astype(np.float32), diurnal


def _generic(ctx: _Context, spec: _VarSpec, t_s: float) -> np.ndarray:
    """Any other variable: a smooth, slowly drifting field well inside its climatological record."""
    lo, hi = spec.phys
    m = _month_of(t_s)
    rlo = spec.rec_min[m] if spec.rec_min is not None else lo
    rhi = spec.rec_max[m] if spec.rec_max is not None else hi
    mid, span = (rlo + rhi) / 2, rhi - rlo
    oy, ox = ctx.shift_px(t_s, 0.05)
    tex = ctx.tex["generic"].sample(oy, ox, slice(0, ctx.ny), slice(0, ctx.nx))
    return (np.float32(mid) + np.float32(0.25 * span) * np.tanh(0.7 * tex)).astype(np.float32)


# ------------------------------------------------------------------------------------------------ plan


@dataclass
class _Plan:
    """What to write for every slot, and which faults go where (all decided before any file is written)."""

    labels: list[int]  # slot times, seconds since 1970
    status: dict[int, str] = field(default_factory=dict)  # slot -> ok | missing | late | duplicate | revised | corrupt
    record: dict[str, Any] | None = None  # the planted extreme: variable, slots, track / centre, factors
    stuck: dict[str, Any] | None = None
    points: list[dict[str, Any]] = field(default_factory=list)  # spikes and impossible values
    revised: dict[str, Any] | None = None


def _fname(catalog: Catalog, t_s: int) -> str:
    return f"{catalog.id}_{datetime.fromtimestamp(t_s, tz=timezone.utc):%Y%m%dT%H%M%S}Z.nc"


def _base_fields(ctx: _Context, plan: _Plan, slot: int) -> dict[str, np.ndarray]:
    """Natural fields of a slot (with the planted record extreme, which is meant to look natural), file units."""
    t_s = float(plan.labels[slot])
    out: dict[str, np.ndarray] = {}
    temps = None
    rec = plan.record if plan.record is not None and slot in plan.record["slots"] else None
    for spec in ctx.specs:
        if spec.kind == "precipitation":
            v = _precipitation(ctx, spec, t_s)
        elif spec.kind in ("air_temperature", "dew_point"):
            temps = temps or _temperatures(ctx, t_s)
            v = temps[0] if spec.kind == "air_temperature" else temps[1]
        else:
            v = _generic(ctx, spec, t_s)
        if rec is not None and rec["variable"] == spec.vid:
            v = _apply_record(ctx, spec, rec, slot, t_s, v)
        out[spec.vid] = (v * np.float32(spec.scale) + np.float32(spec.offset)).astype(np.float32) if (
            spec.scale != 1.0 or spec.offset != 0.0) else v
    return out


def _apply_record(ctx: _Context, spec: _VarSpec, rec: dict, slot: int, t_s: float, v: np.ndarray) -> np.ndarray:
    """The planted extreme in native units: smooth, coherent, and beyond the record only in its core slots."""
    j = rec["slots"].index(slot)
    g = _RECORD_RAMP[j]
    cy, cx = rec["centres"][j]
    record = spec.rec_max[_month_of(t_s)]
    yy = (np.arange(ctx.ny, dtype=np.float32) - np.float32(cy))[:, None]
    xx = (np.arange(ctx.nx, dtype=np.float32) - np.float32(cx))[None, :]
    r2 = (yy * yy + xx * xx) / np.float32(rec["radius"] ** 2)
    if spec.kind == "precipitation":
        # A storm core elongated along the wind and moving with it; the ramp slots stay below the record.
        u_w, v_w = ctx.wind(t_s)
        # Unit vector of the wind in (row, column) index space.
        dr, dc = v_w / ctx.step_y_m, u_w / ctx.step_x_m
        norm = math.hypot(dr, dc) or 1.0
        dr, dc = np.float32(dr / norm), np.float32(dc / norm)
        along = (yy * dr + xx * dc) / np.float32(1.25)
        across = (xx * dr - yy * dc) / np.float32(0.8)
        q = (along * along + across * across) / np.float32(rec["radius"] ** 2)
        peak = record * (rec["factor"] if g == 1.0 else 0.3 + 0.45 * g)
        # Gaussian top (a coherent area beyond the record) with a steeper flank, so the rain area stays compact.
        storm = np.float32(peak) * np.exp(-0.5 * q - 0.08 * q * q)
        storm[storm < _PRECIP_THRESHOLD] = 0
        return np.maximum(v, storm)
    # Temperature (or generic): blend towards a hot plateau with a flat-topped (super-Gaussian) weight; the
    # plateau keeps a little of the diurnal cycle and of the field below, so no cell repeats a value.
    w = np.float32(0.97 * g) * np.exp(-(r2 * r2))
    d = _diurnal(ctx.local_hour(t_s, ctx.lon)) if spec.kind != "generic" else np.float32(1.0)
    ex = np.float32(rec["excess"])
    hot = np.float32(record) + ex * (np.float32(0.8) + np.float32(0.2) * d) + np.float32(0.4) * ex * (np.exp(-r2) - 1)
    # Keep a quarter of the terrain's imprint (relative to the centre) so the hot area is not a flat disc.
    iy, ix = int(round(min(max(cy, 0), ctx.ny - 1))), int(round(min(max(cx, 0), ctx.nx - 1)))
    hot = hot + np.float32(0.25) * (v - v[iy, ix])
    return (v + w * (hot - v)).astype(np.float32)


def _plan(ctx: _Context, catalog: Catalog, labels: list[int], faults: set[str], seed: int) -> _Plan:
    plan = _Plan(labels=labels)
    r = _rng(seed, _TAG_PLAN)
    n = len(labels)
    ny, nx = ctx.ny, ctx.nx
    specs = ctx.specs
    primary = specs[0]

    # --- time: file faults take their own slots; value faults live in clean, on-time files -------------
    n_missing = (2 + int(r.integers(0, 2))) if "missing" in faults else 0
    n_late = (2 + int(r.integers(0, 2))) if "late" in faults else 0
    singles = [k for k in ("duplicate", "revised", "corrupt") if k in faults]
    window = max(_STUCK_SLOTS if "stuck" in faults else 0, len(_RECORD_RAMP) if "record_extreme" in faults else 0)
    points = (_N_SPIKES if "spike" in faults else 0) + (_N_IMPOSSIBLE if "impossible" in faults else 0)
    need_value = max(window, 1 if points else 0)
    n_file = len(singles) + n_missing + n_late
    if n_file + need_value > n:
        # Shrink the optional third missing / late slot before giving up.
        while n_file + need_value > n and (n_missing > 2 or n_late > 2):
            if n_late > 2:
                n_late -= 1
            else:
                n_missing -= 1
            n_file = len(singles) + n_missing + n_late
    if n_file + need_value > n:
        step = catalog.time.step
        sec = catalog.time.step_seconds
        hint = f"ask for at least {(n_file + need_value) * sec / 3600:g} hours" if sec else "ask for more hours"
        raise BadInputError(
            f"the faults asked for ({', '.join(sorted(faults))}) need at least {n_file + need_value} time slots "
            f"of {step} but the sample has {n}; {hint} or fewer faults"
        )
    block = range(0, 0)
    rec_off = 0
    if window:
        b0 = int(r.integers(0, n - window + 1))
        if "record_extreme" in faults:
            # Records are broken in the afternoon (heat, convection): put the extreme's core nearest 15:30
            # local solar time that the sample allows, with a random tie-break.
            best = None
            for cb in range(n - window + 1):
                for co in range(window - len(_RECORD_RAMP) + 1):
                    hour = float(ctx.local_hour(labels[cb + co + len(_RECORD_RAMP) // 2], ctx.lon_c))
                    score = abs((hour - 15.5 + 12.0) % 24.0 - 12.0) + float(r.uniform(0, 0.5))
                    if best is None or score < best[0]:
                        best = (score, cb, co)
            _, b0, rec_off = best
        block = range(b0, b0 + window)
    free = [i for i in range(n) if i not in block]
    # Keep the first and last slots on time where the sample allows: a late file then lands behind the
    # newest slot already ingested (what the store calls late), and the sample's extent stays anchored.
    inner = [i for i in free if 0 < i < n - 1]
    if len(inner) >= n_file:
        free = inner
    file_slots = [int(i) for i in r.permutation(free)[:n_file]]
    kinds = ["missing"] * n_missing + ["late"] * n_late + singles
    for i in range(n):
        plan.status[i] = "ok"
    for i, k in zip(file_slots, kinds):
        plan.status[i] = k
    clean = [i for i in range(n) if plan.status[i] == "ok"]

    margin = max(3, min(10, min(ny, nx) // 12))
    reserved = np.zeros((ny, nx), bool)  # cells kept free of point faults (regions plus margin)

    def reserve(y0: int, y1: int, x0: int, x1: int) -> None:
        reserved[max(0, y0 - margin): y1 + margin + 1, max(0, x0 - margin): x1 + margin + 1] = True

    def too_small(what: str) -> BadInputError:
        return BadInputError(
            f"the {ny} x {nx} grid of {catalog.id!r} is too small to plant the {what} fault apart from the "
            f"others; use a larger grid or fewer faults"
        )

    # --- record extreme --------------------------------------------------------------------------------
    if "record_extreme" in faults:
        spec = next((s for s in specs if s.kind == "precipitation" and s.rec_max), None) or next(
            (s for s in specs if s.kind == "air_temperature" and s.rec_max), None) or next(
            (s for s in specs if s.rec_max), None)
        if spec is None:
            raise BadInputError(
                f"fault 'record_extreme' needs a variable with a climatological record max; catalog "
                f"{catalog.id!r} has none"
            )
        slots = list(range(block.start + rec_off, block.start + rec_off + len(_RECORD_RAMP)))
        if spec.kind == "precipitation":
            radius = 6.0 if min(ny, nx) >= 96 else max(2.5, min(ny, nx) / 16)
            track = [ctx.shift_px(float(labels[i])) for i in slots]
            off = np.array(track) - np.array(track[0])
            pad = 2.5 * radius
            lo_y, hi_y = pad - off[:, 0].min(), ny - 1 - pad - off[:, 0].max()
            lo_x, hi_x = pad - off[:, 1].min(), nx - 1 - pad - off[:, 1].max()
            if lo_y > hi_y or lo_x > hi_x:
                raise too_small("record_extreme")
            c0 = (r.uniform(lo_y, hi_y), r.uniform(lo_x, hi_x))
            centres = [(float(c0[0] + o[0]), float(c0[1] + o[1])) for o in off]
            rec = max(spec.rec_max[_month_of(labels[i])] for i in slots)
            factor = float(min(r.uniform(1.2, 1.3), (rec + 0.8 * (spec.phys[1] - rec)) / rec))
            extent = 3.6 * radius
            excess = 0.0
        else:
            radius = float(max(3.0, min(ny, nx) / 7))
            pad = 1.7 * radius
            if 2 * pad >= min(ny, nx) - 1:
                raise too_small("record_extreme")
            c = (float(r.uniform(pad, ny - 1 - pad)), float(r.uniform(pad, nx - 1 - pad)))
            centres = [c] * len(slots)
            factor = 1.0
            room = spec.phys[1] - max(spec.rec_max)
            excess = float(min(2.5, 0.45 * room))
            extent = 1.8 * radius
        plan.record = {"variable": spec.vid, "slots": slots, "centres": centres, "radius": float(radius),
                       "factor": factor, "excess": excess}
        cys = [c[0] for c in centres]
        cxs = [c[1] for c in centres]
        reserve(int(min(cys) - extent), int(max(cys) + extent) + 1, int(min(cxs) - extent), int(max(cxs) + extent) + 1)

    # --- stuck -----------------------------------------------------------------------------------------
    if "stuck" in faults:
        size = max(2, min(6, ny // 8, nx // 8))
        if min(ny, nx) < size + 2 * margin:
            raise too_small("stuck")
        for _ in range(500):
            y0, x0 = int(r.integers(margin, ny - size - margin + 1)), int(r.integers(margin, nx - size - margin + 1))
            if not reserved[y0: y0 + size, x0: x0 + size].any():
                break
        else:
            raise too_small("stuck")
        slots = list(range(block.start, block.start + _STUCK_SLOTS))
        if primary.kind == "precipitation":
            # mm/h: steady light rain, clearly not 0 (a stuck 0 would be indistinguishable from a dry spell).
            value = _fval(primary.to_file(float(r.choice([2.5, 3.0, 3.75, 4.25, 5.5]))))
        else:
            first = _base_fields(ctx, plan, slots[0])[primary.vid]
            value = round(float(first[y0: y0 + size, x0: x0 + size].mean()) * 8) / 8
        plan.stuck = {"variable": primary.vid, "slots": slots, "bbox": [y0, y0 + size - 1, x0, x0 + size - 1],
                      "value": value}
        reserve(y0, y0 + size - 1, x0, x0 + size - 1)

    # --- spikes and impossible values: isolated cells in clean slots, far from everything else ------------
    kinds_pts = ["spike"] * (_N_SPIKES if "spike" in faults else 0) + (
        ["impossible"] * _N_IMPOSSIBLE if "impossible" in faults else [])
    pt_slots = [int(i) for i in r.permutation(clean)]
    pt_slots = (pt_slots * (len(kinds_pts) // max(1, len(pt_slots)) + 1))[: len(kinds_pts)]
    edge = np.zeros((ny, nx), bool)
    edge[:3, :] = edge[-3:, :] = edge[:, :3] = edge[:, -3:] = True
    from scipy import ndimage

    for j, (kind, slot) in enumerate(zip(kinds_pts, pt_slots)):
        spec = specs[j % len(specs)]
        fields = _base_fields(ctx, plan, slot)
        v = fields[spec.vid]
        allowed = ~(reserved | edge)
        if not allowed.any():
            raise too_small(kind)
        if spec.kind == "precipitation":
            # Spikes need a dry-ish neighbourhood (< 2 mm/h) to be unambiguous; so do impossible values.
            calm = ndimage.maximum_filter(v, size=7, mode="nearest") < spec.to_file(2.0)
            cand = np.flatnonzero(allowed & calm)
            if cand.size == 0:
                cand = np.flatnonzero(allowed)
        else:
            cand = np.flatnonzero(allowed)
        iy, ix = (int(a) for a in np.unravel_index(int(cand[r.integers(0, cand.size)]), (ny, nx)))
        background = float(v[iy, ix])
        lo, hi = spec.phys
        if kind == "spike":
            if spec.kind == "precipitation":
                native = round(float(r.uniform(80.0, 150.0)) * 4) / 4
                value = _fval(spec.to_file(native))
            else:
                delta = round(float(r.uniform(12.0, 18.0)) * 4) / 4 * (1 if spec.kind != "generic" else
                                                                      (hi - lo) / 20 / 15)
                value = _fval(min(background + delta * spec.scale, spec.to_file(hi) - 0.5 * abs(spec.scale)))
        else:
            k = sum(1 for p in plan.points if p["kind"] == "impossible")
            if spec.kind == "precipitation":
                bad = (hi + 400.0) if k % 2 == 0 else (lo - 20.0)
            elif spec.kind in ("air_temperature", "dew_point"):
                bad = max(400.0, hi + 20.0) if k % 2 == 0 else lo - 30.0
            else:
                bad = hi + 0.5 * (hi - lo) if k % 2 == 0 else lo - 0.5 * (hi - lo)
            value = _fval(spec.to_file(bad))
        plan.points.append({"kind": kind, "variable": spec.vid, "slot": slot, "cell": [iy, ix], "value": value,
                            "background": _fval(background)})
        reserve(iy, iy, ix, ix)

    # --- revised: the corrected file changes one block ------------------------------------------------
    rev_slots = [i for i, s in plan.status.items() if s == "revised"]
    if rev_slots:
        slot = rev_slots[0]
        spec = primary
        size = max(4, min(24, ny // 4, nx // 4))
        v = _base_fields(ctx, plan, slot)[spec.vid]
        if spec.kind == "precipitation":
            wet = ndimage.uniform_filter((v > 0).astype(np.float32), size=size, mode="constant")
            cy, cx = np.unravel_index(int(np.argmax(wet)), v.shape)
            y0 = int(np.clip(cy - size // 2, 0, ny - size))
            x0 = int(np.clip(cx - size // 2, 0, nx - size))
            blk = v[y0: y0 + size, x0: x0 + size]
            if (blk > 0).any():
                op = {"operation": "multiply", "factor": 1.5,
                      "description": "the corrected file has the rain rates of the block multiplied by 1.5"}
            else:
                op = {"operation": "add", "amount": _fval(spec.to_file(0.5) - spec.to_file(0.0)),
                      "description": "the corrected file adds 0.5 mm/h of rain over the (dry) block"}
        else:
            y0, x0 = int(r.integers(0, ny - size + 1)), int(r.integers(0, nx - size + 1))
            amount = 2.0 * spec.scale if spec.kind != "generic" else 0.05 * (spec.phys[1] - spec.phys[0]) * spec.scale
            op = {"operation": "add", "amount": float(amount),
                  "description": f"the corrected file adds {amount:g} {spec.units} over the block"}
        plan.revised = {"variable": spec.vid, "slot": slot, "bbox": [y0, y0 + size - 1, x0, x0 + size - 1], **op}
    return plan


def _render(ctx: _Context, plan: _Plan, slot: int) -> dict[str, np.ndarray]:
    """A slot's fields as the preliminary / on-time file carries them (faults planted), file units."""
    f = _base_fields(ctx, plan, slot)
    st = plan.stuck
    if st is not None and slot in st["slots"]:
        y0, y1, x0, x1 = st["bbox"]
        f[st["variable"]][y0: y1 + 1, x0: x1 + 1] = np.float32(st["value"])
    for p in plan.points:
        if p["slot"] == slot:
            f[p["variable"]][p["cell"][0], p["cell"][1]] = np.float32(p["value"])
    return f


def _revise(plan: _Plan, fields: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    rv = plan.revised
    out = {k: v.copy() for k, v in fields.items()}
    y0, y1, x0, x1 = rv["bbox"]
    blk = out[rv["variable"]][y0: y1 + 1, x0: x1 + 1]
    if rv["operation"] == "multiply":
        blk *= np.float32(rv["factor"])
    else:
        blk += np.float32(rv["amount"])
    return out


# --------------------------------------------------------------------------------------------- writing


def _encode(arr: np.ndarray, complevel: int) -> bytes:
    """One whole-field HDF5 chunk exactly as the shuffle + deflate filters store it.

    Compressing here instead of inside HDF5 lets worker threads do it while the GIL is free (zlib and numpy's
    copies release it; netCDF4 and h5py do not), which roughly halves the time of a large sample on two cores.
    """
    raw = np.ascontiguousarray(arr)
    if complevel == 0:
        return raw.tobytes()
    shuffled = raw.view(np.uint8).reshape(-1, raw.dtype.itemsize).T.tobytes()
    return zlib.compress(shuffled, complevel)


class _Writer:
    """Writes one slot's CF-1.8 NetCDF4 file; coordinates are encoded once per sample.

    netCDF-C lays out the file (dimensions, CF attributes, filters); h5py then stores the chunks compressed
    beforehand. That split is ~8x faster than h5netcdf for the metadata and keeps compression off the GIL.
    """

    def __init__(self, ctx: _Context, complevel: int):
        # Imported here, once, rather than concurrently by the writer threads.
        import h5py
        import netCDF4

        self.h5py, self.netCDF4 = h5py, netCDF4
        # The HDF5 libraries are not thread-safe (and netCDF4 and h5py each bundle their own): only the
        # encoding runs in parallel, the few milliseconds of file I/O take turns.
        self.lock = threading.Lock()
        self.ctx = ctx
        self.complevel = complevel
        g = ctx.catalog.grid
        self.xn = g.x.source_names[0] if g.x.source_names else "x"
        self.yn = g.y.source_names[0] if g.y.source_names else "y"
        self.geo = ctx.crs.is_geographic
        self.filters: dict[str, Any] = (
            {"zlib": True, "complevel": complevel, "shuffle": True} if complevel else {"zlib": False})
        # Geographic grids already have latitude / longitude as their 1-D axes.
        self.latlon = {} if self.geo else {"lat": _encode(ctx.lat, complevel), "lon": _encode(ctx.lon, complevel)}
        self.crs_attrs = {k: v for k, v in ctx.crs.to_cf().items() if v is not None}

    def write(self, path: Path, t_s: int, chunks: dict[str, bytes]) -> None:
        """Write under a temporary name and rename, so a reader never sees half a file."""
        ctx, g = self.ctx, self.ctx.catalog.grid
        cat = ctx.catalog
        xn, yn, ny, nx = self.xn, self.yn, ctx.ny, ctx.nx
        tmp = path.with_name(f".{path.name}.part")
        with self.lock:
            with self.netCDF4.Dataset(tmp, "w", format="NETCDF4") as nc:
                nc.setncatts({
                    "Conventions": "CF-1.8",
                    "title": cat.title,
                    "institution": "synthetic",
                    "source": cat.source,
                    "comment": "Synthetic observations made by forecast.sample; not measurements.",
                    "dataset_id": cat.id,
                    "generator": GENERATOR,
                    "seed": np.int64(ctx.seed),
                })
                nc.createDimension("time", 1)
                nc.createDimension(yn, ny)
                nc.createDimension(xn, nx)
                tv = nc.createVariable("time", "i8", ("time",))
                tv.setncatts({"standard_name": "time", "long_name": "time", "axis": "T", "units": _TIME_UNITS,
                              "calendar": "proleptic_gregorian"})
                tv[:] = np.array([t_s], dtype=np.int64)
                for name, axis, vals, which in ((yn, "Y", g.y.values(), "y"), (xn, "X", g.x.values(), "x")):
                    cv = nc.createVariable(name, "f8", (name,))
                    if self.geo:
                        std = "latitude" if which == "y" else "longitude"
                        cv.setncatts({"standard_name": std, "long_name": std,
                                      "units": "degrees_north" if which == "y" else "degrees_east", "axis": axis})
                    else:
                        cv.setncatts({"standard_name": f"projection_{which}_coordinate",
                                      "long_name": f"{which} coordinate of projection", "units": "m", "axis": axis})
                    cv[:] = vals
                crs = nc.createVariable("crs", "i4")
                crs.setncatts(self.crs_attrs)
                for name, std, units in (("lat", "latitude", "degrees_north"), ("lon", "longitude", "degrees_east")):
                    if name in self.latlon:
                        cv = nc.createVariable(name, "f4", (yn, xn), chunksizes=(ny, nx), **self.filters)
                        cv.setncatts({"standard_name": std, "long_name": std, "units": units})
                for spec in ctx.specs:
                    dv = nc.createVariable(spec.name, "f4", ("time", yn, xn), fill_value=np.float32(np.nan),
                                           chunksizes=(1, ny, nx), **self.filters)
                    attrs = {"standard_name": spec.standard_name, "long_name": spec.long_name, "units": spec.units,
                             "grid_mapping": "crs"}
                    if self.latlon:
                        attrs["coordinates"] = "lat lon"
                    dv.setncatts(attrs)
            with self.h5py.File(tmp, "r+") as h5:
                for name, chunk in self.latlon.items():
                    h5[name].id.write_direct_chunk((0, 0), chunk)
                for spec in ctx.specs:
                    h5[spec.name].id.write_direct_chunk((0, 0, 0), chunks[spec.vid])
        os.replace(tmp, path)

    def emit(self, plan: _Plan, out: Path, slot: int, fields: dict[str, np.ndarray]) -> int:
        """Encode and write everything one slot contributes (runs in a worker thread); returns the file count."""
        status = plan.status[slot]
        t_s = plan.labels[slot]
        name = _fname(self.ctx.catalog, t_s)
        chunks = {k: _encode(v, self.complevel) for k, v in fields.items()}
        if status == "late":
            self.write(out / "late" / name, t_s, chunks)
            return 1
        if status == "corrupt":
            full = out / f".{name}.valid"
            self.write(full, t_s, chunks)
            data = full.read_bytes()
            full.unlink()
            tmp = out / f".{name}.part"
            tmp.write_bytes(data[: int(len(data) * _CORRUPT_FRACTION)])
            os.replace(tmp, out / name)
            return 1
        self.write(out / name, t_s, chunks)
        if status == "revised":
            revised = {k: _encode(v, self.complevel) for k, v in _revise(plan, fields).items()}
            self.write(out / "revised" / name, t_s, revised)
            return 2
        return 1


def _threads() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8))


# ---------------------------------------------------------------------------------------------- public


def _validate(catalog: Catalog, start: datetime, hours: float, faults: Sequence[str], seed: int,
              complevel: int) -> tuple[int, float, set[str]]:
    if isinstance(faults, str):
        faults = [f for f in faults.split(",") if f.strip()]
    names = set()
    valid = ", ".join((*FAULTS, "all"))
    for f in faults:
        f = str(f).strip()
        if f == "all":
            names.update(FAULTS)
        elif f in FAULTS:
            names.add(f)
        else:
            raise BadInputError(f"unknown fault {f!r}; valid faults are: {valid}")
    if not isinstance(hours, (int, float)) or not math.isfinite(hours) or hours <= 0:
        raise BadInputError(f"hours must be a positive number of hours, got {hours!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise BadInputError(f"seed must be a non-negative integer, got {seed!r}")
    if not 0 <= int(complevel) <= 9:
        raise BadInputError(f"complevel must be between 0 (no compression) and 9, got {complevel!r}")
    if not isinstance(start, datetime):
        raise BadInputError(f"start must be a datetime, got {start!r}")
    start = utc(start)
    ts = start.timestamp()
    ax = catalog.time
    slot = ax.slot_of(ts)
    if slot is None or int(ax.label(slot)) != ts:
        near = max(0, math.ceil((ts - ax.start_s) / ax.step_seconds)) if ax.step_seconds else None
        hint = f" (e.g. {_iso(int(ax.label(near)))})" if near is not None else ""
        raise BadInputError(
            f"start {start:%Y-%m-%dT%H:%M:%SZ} is not on the time axis of {catalog.id!r}, which has a slot every "
            f"{ax.step} from {ax.start:%Y-%m-%dT%H:%M:%SZ}; choose a slot time{hint}"
        )
    return slot, ts + hours * 3600.0, names


def generate_sample(catalog: Catalog, *, start: datetime, hours: float, out: Path,
                    faults: Sequence[str] = (), seed: int = 0, complevel: int = 4,
                    progress: Callable[[int, int], None] | None = None) -> dict:
    """Write a synthetic observation feed of ``catalog`` for [start, start + hours) into ``out``.

    One CF-1.8 NetCDF4 file per slot of the catalog's time axis, named ``{dataset}_{YYYYmmddTHHMMSS}Z.nc``,
    with the requested ``faults`` (names from ``FAULTS`` or ``"all"``) planted and recorded in the returned
    manifest, which is also written to ``out/manifest.json``. The data depend only on (catalog, seed, time).

    Layout: on-time files in ``out/``; ``late/`` (to ingest later), ``duplicates/`` (byte-identical copies),
    ``revised/`` (corrected files, same names). Files listed by an earlier manifest in ``out`` are removed first.
    Manifest keys: dataset, catalog_hash, generator, seed, start, end, step, variables, time_encoding, files,
    batches {main, late, duplicates, revised}, missing, slots [{time, status, files}], faults [{kind, variable,
    file_variable, units, times, cells | bbox, values, file | files, ...}].

    Raises:
        BadInputError: start not on the time axis, hours <= 0, an unknown fault, or a sample too short /
            a grid too small to plant the requested faults apart from each other.
    """
    t_start = _time.perf_counter()
    first, end_s, names = _validate(catalog, start, hours, faults, seed, complevel)
    out = Path(out)
    labels: list[int] = []
    i = first
    while True:
        t = int(catalog.time.label(i))
        if t >= end_s:
            break
        labels.append(t)
        i += 1
    ctx = _Context(catalog, int(seed))
    plan = _plan(ctx, catalog, labels, names, int(seed))
    _remove_previous(out)
    for sub in ("", "late", "revised", "duplicates"):
        (out / sub).mkdir(parents=True, exist_ok=True)

    order = list(range(len(labels)))
    total = sum({"missing": 0, "revised": 2, "duplicate": 2}.get(plan.status[s], 1) for s in order)
    done = 0

    def tick(n_files: int) -> None:
        nonlocal done
        for _ in range(n_files):
            done += 1
            if progress is not None:
                progress(done, total)

    dup_slot = next((s for s in order if plan.status[s] == "duplicate"), None)
    writer = _Writer(ctx, int(complevel))
    # The main thread renders the next slot while worker threads compress and write the previous ones.
    threads = _threads()
    with ThreadPoolExecutor(threads, thread_name_prefix="sample-writer") as pool:
        pending: deque = deque()
        try:
            for s in order:
                if plan.status[s] == "missing":
                    continue
                pending.append(pool.submit(writer.emit, plan, out, s, _render(ctx, plan, s)))
                while pending and (pending[0].done() or len(pending) > 2 * threads):
                    tick(pending.popleft().result())
            while pending:
                tick(pending.popleft().result())
        except BaseException:
            for f in pending:
                f.cancel()
            raise
    if dup_slot is not None:
        name = _fname(catalog, labels[dup_slot])
        (out / "duplicates" / name).write_bytes((out / name).read_bytes())
        tick(1)

    manifest = _manifest(ctx, catalog, plan, start=labels[0] if labels else int(utc(start).timestamp()),
                         end_s=end_s, seed=int(seed), out=out)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    logger.info("wrote %d files of %s (%d slots, %d x %d) into %s in %.1f s", len(manifest["files"]), catalog.id,
                len(labels), ctx.ny, ctx.nx, out, _time.perf_counter() - t_start)
    return manifest


def _remove_previous(out: Path) -> None:
    """Delete the files an earlier sample listed in ``out/manifest.json``, so no stale slot is ingested."""
    try:
        old = json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError):
        return
    root = out.resolve()
    removed = 0
    for rel in old.get("files", []) if isinstance(old, dict) else []:
        p = (out / str(rel)).resolve()
        if p.is_relative_to(root) and p.suffix == ".nc" and p.is_file():
            p.unlink()
            removed += 1
    if removed:
        logger.info("removed %d files of the previous sample in %s", removed, out)


def _manifest(ctx: _Context, catalog: Catalog, plan: _Plan, *, start: int, end_s: float, seed: int,
              out: Path) -> dict:
    labels = plan.labels
    spec_of = {s.vid: s for s in ctx.specs}
    fname = {i: _fname(catalog, t) for i, t in enumerate(labels)}
    batches: dict[str, list[str]] = {"main": [], "late": [], "duplicates": [], "revised": []}
    slots = []
    for i, t in enumerate(labels):
        st = plan.status[i]
        files = []
        if st == "late":
            files.append(f"late/{fname[i]}")
        elif st != "missing":
            files.append(fname[i])
            if st == "revised":
                files.append(f"revised/{fname[i]}")
            if st == "duplicate":
                files.append(f"duplicates/{fname[i]}")
        for f in files:
            batches[f.split("/")[0] if "/" in f else "main"].append(f)
        slots.append({"time": _iso(t), "status": st, "files": files})
    faults: list[dict[str, Any]] = []

    def var_info(vid: str) -> dict:
        s = spec_of[vid]
        # The catalog's variable id (as in the store) and its name in the files (source_names[0]).
        return {"variable": vid, "file_variable": s.name, "units": s.units}

    for p in plan.points:
        s = spec_of[p["variable"]]
        e = {"kind": p["kind"], **var_info(p["variable"]), "times": [_iso(labels[p["slot"]])],
             "cells": [p["cell"]], "values": [p["value"]], "background": [p["background"]],
             "file": fname[p["slot"]]}
        if p["kind"] == "impossible":
            e["physical_range"] = [round(s.to_file(v), 6) for v in s.phys]
        faults.append(e)
    if plan.stuck:
        st = plan.stuck
        faults.append({"kind": "stuck", **var_info(st["variable"]), "times": [_iso(labels[i]) for i in st["slots"]],
                       "bbox": st["bbox"], "values": [_fval(st["value"])],
                       "files": [fname[i] for i in st["slots"]],
                       "description": f"every cell of the bbox holds exactly {st['value']:g} in {len(st['slots'])} "
                                      f"consecutive slots"})
    if plan.record:
        rc = plan.record
        s = spec_of[rc["variable"]]
        core = [i for i, g in zip(rc["slots"], _RECORD_RAMP) if g == 1.0]
        by_time: dict[str, list[list[int]]] = {}
        peaks, records = [], []
        union: set[tuple[int, int]] = set()
        for i in core:
            v = _base_fields(ctx, plan, i)[rc["variable"]]
            rec = round(s.to_file(s.rec_max[_month_of(labels[i])]), 6)
            above = np.argwhere(v > rec)
            by_time[_iso(labels[i])] = above.tolist()
            union.update(map(tuple, above.tolist()))
            peaks.append(_fval(v.max()))
            records.append(rec)
        cells = sorted([list(c) for c in union])
        arr = np.array(cells) if cells else np.zeros((0, 2), int)
        bbox = ([int(arr[:, 0].min()), int(arr[:, 0].max()), int(arr[:, 1].min()), int(arr[:, 1].max())]
                if cells else None)
        faults.append({
            "kind": "record_extreme", **var_info(rc["variable"]), "times": [_iso(labels[i]) for i in core],
            "bbox": bbox, "cells": cells, "cells_by_time": by_time, "values": peaks, "record": records,
            "physical_range": [round(s.to_file(v), 6) for v in s.phys],
            "context_times": [_iso(labels[i]) for i in rc["slots"] if i not in core],
            "track": [[round(c[0], 2), round(c[1], 2)] for c in rc["centres"]],
            "files": [fname[i] for i in core],
            "description": "a smooth, coherent extreme beyond the month's climatological record max but inside the "
                           "physical range; it builds up and decays in the context_times (within the record)",
        })
    for kind in ("missing", "late", "duplicate", "revised", "corrupt"):
        idx = [i for i in range(len(labels)) if plan.status[i] == kind]
        if not idx:
            continue
        e: dict[str, Any] = {"kind": kind, "variable": None, "times": [_iso(labels[i]) for i in idx]}
        if kind == "missing":
            e["files"] = [fname[i] for i in idx]
            e["description"] = "no file was delivered for these slots"
        elif kind == "late":
            e["files"] = [f"late/{fname[i]}" for i in idx]
            e["description"] = "written into late/ instead of the main batch, to be ingested later"
        elif kind == "duplicate":
            e["file"] = fname[idx[0]]
            e["files"] = [f"duplicates/{fname[idx[0]]}"]
            e["description"] = "a byte-identical copy of a main-batch file"
        elif kind == "revised":
            rv = plan.revised
            e.update(var_info(rv["variable"]))
            e["file"] = fname[idx[0]]
            e["files"] = [fname[idx[0]], f"revised/{fname[idx[0]]}"]
            e["bbox"] = rv["bbox"]
            e["values"] = {k: rv[k] for k in ("operation", "factor", "amount") if k in rv}
            e["description"] = rv["description"] + "; everything else is identical"
        else:
            p = out / fname[idx[0]]
            e["file"] = fname[idx[0]]
            e["files"] = [fname[idx[0]]]
            e["values"] = {"kept_bytes": p.stat().st_size if p.exists() else None, "fraction": _CORRUPT_FRACTION}
            e["description"] = f"truncated copy: the first {_CORRUPT_FRACTION:.0%} of a valid file's bytes"
        faults.append(e)

    for k in batches:
        batches[k].sort()
    return {
        "dataset": catalog.id,
        "catalog_hash": catalog.hash,
        "generator": GENERATOR,
        "seed": seed,
        "start": _iso(start),
        "end": _iso(end_s),
        "step": catalog.time.step,
        "variables": {s.name: {"id": s.vid, "standard_name": s.standard_name, "units": s.units} for s in ctx.specs},
        "time_encoding": {"units": _TIME_UNITS, "calendar": "proleptic_gregorian", "dtype": "int64"},
        "files": sorted(f for b in batches.values() for f in b),
        "batches": batches,
        "missing": [_iso(labels[i]) for i in range(len(labels)) if plan.status[i] == "missing"],
        "slots": slots,
        "faults": faults,
    }


__all__ = ["FAULTS", "GENERATOR", "generate_sample"]
