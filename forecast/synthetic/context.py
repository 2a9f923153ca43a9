"""The world a synthetic sample is rendered in, rebuilt identically from (catalog, seed) in any process: the
variables as the files carry them (``VarSpec``), the grid's geometry, the steering wind, the random textures,
and the keyed random streams every process draws from.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np

from forecast.catalog import Catalog, units_registry
from forecast.errors import BadInputError

# Seconds since 1970 of 2000-01-01: the phase origin of every time-dependent term (wind, fronts, textures),
# so a slot's field never depends on where a sample starts.
T_REF = 946_684_800.0

# Random-stream tags: each physical process draws from its own stream, keyed by (seed, tag, epoch).
TAG_WIND, TAG_CELLS, TAG_STRAT, TAG_TEX, TAG_FRONT, TAG_PLAN = 11, 12, 13, 14, 15, 16

#: Kinds of steering flow. ``steady``: a mean vector of 15 m/s plus slow oscillations (the demo's weather);
#: ``curving``: a faster flow (27 m/s) whose direction turns steadily anticlockwise, a full turn every
#: ``CURVING_PERIOD_H`` hours (45 degrees an hour), with the same oscillations: features move along arcs,
#: so one motion vector held for an hour misses them (a second weather regime for the model bench).
MOTIONS = ("steady", "curving")
CURVING_SPEED = 27.0  # m/s
CURVING_PERIOD_H = 8.0


def stream(*key: int) -> np.random.Generator:
    """The random stream keyed by ``(seed, tag, ...)``: the same key draws the same numbers in any process."""
    # Offset so that epochs before the phase origin (negative indices) are valid seed words too.
    return np.random.default_rng(np.random.SeedSequence([int(k) + (1 << 40) for k in key]))


def month_of(t_s: float) -> int:
    """Calendar month index 0..11 of a time."""
    return datetime.fromtimestamp(t_s, tz=timezone.utc).month - 1


def fval(v: float) -> float:
    """A value as it lands in a float32 file, as an exact JSON number."""
    return float(np.float32(v))


# ------------------------------------------------------------------------------------------ variables


@dataclass(frozen=True)
class VarSpec:
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


def _var_specs(catalog: Catalog) -> list[VarSpec]:
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
        rec_max, rec_min = var.record_max, var.record_min
        specs.append(
            VarSpec(
                vid=vid,
                name=catalog.source_names(vid)[0],
                kind=kind,
                standard_name=var.standard_name,
                long_name=var.long_name or var.standard_name.replace("_", " ").capitalize(),
                units=units,
                scale=float(b - a),
                offset=float(a),
                phys=tuple(float(v) for v in conv(var.physical_range, var.units, native)),
                rec_max=None if rec_max is None else tuple(float(v) for v in conv(rec_max, var.units, native)),
                rec_min=None if rec_min is None else tuple(float(v) for v in conv(rec_min, var.units, native)),
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


class EpochCache:
    """What was drawn for the last few epochs, by epoch: neighbouring slots need the same epochs' features,
    so each is drawn once (the oldest is dropped first; the draw depends only on the epoch)."""

    def __init__(self, keep: int):
        self.keep = keep
        self._items: dict[int, Any] = {}

    def get(self, epoch: int, draw: Callable[[], Any]) -> Any:
        if epoch not in self._items:
            if len(self._items) > self.keep:
                self._items.pop(next(iter(self._items)))
            self._items[epoch] = draw()
        return self._items[epoch]


# -------------------------------------------------------------------------------------------- context


class Context:
    """Everything a slot's rendering needs, rebuilt identically from (catalog, seed) in any process."""

    def __init__(self, catalog: Catalog, seed: int, motion: str = "steady"):
        from pyproj import CRS

        if motion not in MOTIONS:
            raise BadInputError(f"unknown motion {motion!r}; motions are: {', '.join(MOTIONS)}")
        self.catalog = catalog
        self.seed = seed
        self.motion = motion
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
        r = stream(seed, TAG_WIND)
        toward = math.radians(r.uniform(-45.0, 90.0))  # mostly westerly / south-westerly flow
        self.w_mean = (15.0 * math.cos(toward), 15.0 * math.sin(toward))
        self.w_amp = r.uniform(1.2, 3.0, size=(2, 2))
        self.w_omega = 2 * math.pi / (3600.0 * np.array([[17.0, 41.0], [23.0, 53.0]]))
        self.w_phase = r.uniform(0, 2 * math.pi, size=(2, 2))
        # curving: the mean vector turns (direction ``toward`` at the phase origin) at ``w_turn`` rad/s
        self.w_speed = CURVING_SPEED if motion == "curving" else 15.0
        self.w_turn = 2 * math.pi / (3600.0 * CURVING_PERIOD_H) if motion == "curving" else 0.0
        self.w_dir0 = toward
        # Bounds how far upstream a feature can be born and still reach the grid (mean + oscillations).
        self.max_wind = 22.0 if motion == "steady" else CURVING_SPEED + 9.0

        # Convective cells and stratiform systems born in recent epochs, by epoch (see fields.py).
        self.cells = EpochCache(keep=16)
        self.strat = EpochCache(keep=8)
        self.tex: dict[str, _Texture] = {}

        def texture(k: int, beta: float, l0_km: float, lmin_km: float) -> _Texture:
            return _Texture(g.shape, self.km, stream(seed, TAG_TEX, k), beta=beta, l0_km=l0_km, lmin_km=lmin_km)

        if "precipitation" in kinds:
            self.tex["rain_a"] = texture(1, beta=3.0, l0_km=120.0, lmin_km=1.5)
            self.tex["rain_b"] = texture(2, beta=3.0, l0_km=120.0, lmin_km=1.5)
        if kinds & {"air_temperature", "dew_point"}:
            self.tex["temp"] = texture(3, beta=4.0, l0_km=80.0, lmin_km=6.0)
            self.tex["dep"] = texture(4, beta=4.0, l0_km=150.0, lmin_km=10.0)
            r = stream(seed, TAG_FRONT)
            self.front_dir = r.uniform(-0.25 * math.pi, 0.6 * math.pi)
            self.front_phase = r.uniform(0, 2 * math.pi)
        if "generic" in kinds:
            self.tex["generic"] = texture(5, beta=4.0, l0_km=300.0, lmin_km=20.0)

    # --- wind -------------------------------------------------------------------------------------
    def wind(self, t_s: float) -> tuple[float, float]:
        tr = t_s - T_REF
        mean = self._mean_wind(tr)
        uv = [mean[c] + float(np.sum(self.w_amp[c] * np.sin(self.w_omega[c] * tr + self.w_phase[c])))
              for c in (0, 1)]
        return uv[0], uv[1]

    def _mean_wind(self, tr):
        """The mean steering vector (east, north) in m/s at ``tr`` seconds after the phase origin."""
        if self.w_turn == 0.0:
            return self.w_mean
        a = self.w_dir0 + self.w_turn * np.asarray(tr, dtype=np.float64)
        return self.w_speed * np.cos(a), self.w_speed * np.sin(a)

    def _mean_shift_m(self, tr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Metres (east, north) the mean steering vector carries air in ``tr`` seconds from the phase origin."""
        if self.w_turn == 0.0:
            return self.w_mean[0] * tr, self.w_mean[1] * tr
        a0, k = self.w_dir0, self.w_speed / self.w_turn
        a = a0 + self.w_turn * tr
        return k * (np.sin(a) - math.sin(a0)), k * (math.cos(a0) - np.cos(a))

    def shift_px(self, t_s, factor: float = 1.0):
        """Displacement (rows, columns) of air moving with the steering wind since the phase origin;
        ``t_s`` may be an array."""
        tr = np.asarray(t_s, dtype=np.float64)[..., None] - T_REF
        mean = self._mean_shift_m(tr[..., 0])
        d = []
        for c in (0, 1):
            osc = self.w_amp[c] * (np.cos(self.w_phase[c]) - np.cos(self.w_omega[c] * tr + self.w_phase[c]))
            d.append(factor * (mean[c] + np.sum(osc / self.w_omega[c], axis=-1)))
        rows, cols = d[1] / self.step_y_m, d[0] / self.step_x_m
        if np.ndim(t_s) == 0:
            return float(rows), float(cols)
        return rows, cols

    def local_hour(self, t_s: float, lon: np.ndarray | float) -> np.ndarray | float:
        return ((t_s / 3600.0) + np.asarray(lon, dtype=np.float64) / 15.0) % 24.0

    def summerness(self, t_s: float) -> float:
        m = month_of(t_s) + (6 if self.southern else 0)
        return 0.5 - 0.5 * math.cos(2 * math.pi * (m % 12) / 12.0)

