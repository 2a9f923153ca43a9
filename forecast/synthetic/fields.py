"""The physics of the synthetic fields, in native units (mm/h, K): moving convective cells with life cycles
over advected stratiform rain areas; temperatures from climate, diurnal cycle, lapse rate, fronts and
texture, with the dew point below them; a smooth field for any other variable. ``natural_fields`` renders
a slot's fields; every term is an analytic function of (catalog, seed, time).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timezone

import numpy as np

from forecast.synthetic.context import T_REF, TAG_CELLS, TAG_STRAT, Context, VarSpec, month_of, stream

PRECIP_THRESHOLD = 0.1  # mm/h: below this a radar reports 0


# ----------------------------------------------------------------------------------------- shaping


def _smoothstep(x: np.ndarray | float) -> np.ndarray | float:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _softcap(x: np.ndarray, cap: float, s: float) -> np.ndarray:
    """Smooth ceiling: never above ``cap`` nor above ``x``; the identity well below ``cap``."""
    return (cap - s * np.logaddexp(0.0, (cap - x) / s)).astype(np.float32)


def _softfloor(x: np.ndarray, floor: float, s: float) -> np.ndarray:
    return (floor + s * np.logaddexp(0.0, (x - floor) / s)).astype(np.float32)


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


def _cells(ctx: Context, epoch: int, cap: Callable[[float], float]) -> dict[str, np.ndarray]:
    """Convective cells of the clusters that start during one hour: birth, place, life, peak, shape, drift."""
    return ctx.cells.get(epoch, lambda: _draw_cells(ctx, epoch, cap))


def _draw_cells(ctx: Context, epoch: int, cap: Callable[[float], float]) -> dict[str, np.ndarray]:
    r = stream(ctx.seed, TAG_CELLS, epoch)
    margin_km = ctx.max_wind * (_CELL_MAX_LIFE + _CLUSTER_MAX * _CLUSTER_GAP[1]) / 1000.0 + 40.0
    my, mx = margin_km / ctx.km[0], margin_km / ctx.km[1]
    area_km2 = (ctx.ny * ctx.km[0] + 2 * margin_km) * (ctx.nx * ctx.km[1] + 2 * margin_km)
    t0 = T_REF + epoch * _CELL_EPOCH
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
    return cells


def _strat_systems(ctx: Context, epoch: int) -> dict[str, np.ndarray]:
    """Stratiform rain areas born during one 6-hour epoch."""
    return ctx.strat.get(epoch, lambda: _draw_strat_systems(ctx, epoch))


def _draw_strat_systems(ctx: Context, epoch: int) -> dict[str, np.ndarray]:
    r = stream(ctx.seed, TAG_STRAT, epoch)
    margin_km = ctx.max_wind * _STRAT_MAX_LIFE / 1000.0 + 300.0
    my, mx = margin_km / ctx.km[0], margin_km / ctx.km[1]
    area_km2 = (ctx.ny * ctx.km[0] + 2 * margin_km) * (ctx.nx * ctx.km[1] + 2 * margin_km)
    n = r.poisson(_STRAT_RATE * area_km2 * _STRAT_EPOCH / 3600.0)
    tb = T_REF + epoch * _STRAT_EPOCH + r.uniform(0, _STRAT_EPOCH, n)
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
    return sys_


def _window(ctx: Context, cy: float, cx: float, r_km: float) -> tuple[slice, slice] | None:
    ry, rx = r_km / ctx.km[0], r_km / ctx.km[1]
    y0, y1 = max(0, math.floor(cy - ry)), min(ctx.ny, math.ceil(cy + ry) + 1)
    x0, x1 = max(0, math.floor(cx - rx)), min(ctx.nx, math.ceil(cx + rx) + 1)
    if y0 >= y1 or x0 >= x1:
        return None
    return slice(y0, y1), slice(x0, x1)


def _visible(ctx: Context, cy: np.ndarray, cx: np.ndarray, r_km: np.ndarray) -> np.ndarray:
    ry, rx = r_km / ctx.km[0], r_km / ctx.km[1]
    return (cy + ry > -1) & (cy - ry < ctx.ny) & (cx + rx > -1) & (cx - rx < ctx.nx)


def _ellipse_r2(ctx: Context, ys: slice, xs: slice, cy: float, cx: float, a: float, b: float,
                theta: float) -> np.ndarray:
    """Squared normalised elliptical distance (km axes a, b, major axis at angle theta from east)."""
    de = ((np.arange(xs.start, xs.stop, dtype=np.float32) - np.float32(cx)) * np.float32(ctx.step_x_m / 1000.0))
    dn = ((np.arange(ys.start, ys.stop, dtype=np.float32) - np.float32(cy)) * np.float32(ctx.step_y_m / 1000.0))
    c, s = math.cos(theta), math.sin(theta)
    # Scale before the outer product so the 2-D work is two multiply-adds and a square.
    u = (de[None, :] * np.float32(c / a)) + (dn[:, None] * np.float32(s / a))
    v = (dn[:, None] * np.float32(c / b)) - (de[None, :] * np.float32(s / b))
    return u * u + v * v


def _precip_cap(spec: VarSpec) -> Callable[[float], float]:
    def cap(t_s: float) -> float:
        if spec.rec_max is None:
            return 0.8 * spec.phys[1]
        m = month_of(t_s)
        rec = min(spec.rec_max[m], spec.rec_max[(m + 1) % 12])  # a cell may live into the next month
        return max(5.0, min(0.8 * rec, rec - 10.0))

    return cap


def precipitation(ctx: Context, spec: VarSpec, t_s: float) -> np.ndarray:
    """Rain rate (mm/h): moving convective cells with life cycles over advected stratiform areas."""
    out = np.zeros((ctx.ny, ctx.nx), np.float32)
    cap = _precip_cap(spec)
    oy, ox = ctx.shift_px(t_s)

    # Stratiform: smooth envelopes (one per system) times an advected texture that slowly changes pattern.
    env = None
    k = math.floor((t_s - T_REF) / _STRAT_EPOCH)
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
            phi = 2 * math.pi * (t_s - T_REF) / (11 * 3600.0)
            tex = ctx.tex["rain_a"].sample(oy, ox, ys, xs) * np.float32(math.cos(phi))
            tex += ctx.tex["rain_b"].sample(oy, ox, ys, xs) * np.float32(math.sin(phi))
            q = env[ys, xs] * (np.float32(0.6) + np.float32(0.4) * np.clip(tex * np.float32(0.5), -1, 1))
            x = np.clip((q - np.float32(0.45)) / np.float32(0.75), 0, 1)
            rain = np.float32(0.2) + np.float32(7.8) * x * np.sqrt(x)
            rain[q <= 0.45] = 0
            out[ys, xs] = rain

    # Convective cells, all combined by maximum (cores do not add up).
    k = math.floor((t_s - T_REF) / _CELL_EPOCH)
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
        for j in np.flatnonzero((inten >= 2 * PRECIP_THRESHOLD) & _visible(ctx, cy, cx, a)):
            win = _window(ctx, cy[j], cx[j], a[j])
            if win is None:
                continue
            r2 = _ellipse_r2(ctx, *win, cy[j], cx[j], a[j], a[j] * cells["aspect"][j], cells["theta"][j])
            # Rain rate falls log-linearly (like reflectivity in dB) from the core to the cell's edge, where it
            # reaches the detection threshold; the core is rounded so it does not look like a spike.
            g = (np.sqrt(r2 + c0 * c0) - c0) / g1
            val = np.float32(inten[j]) * np.exp(np.float32(math.log(PRECIP_THRESHOLD / inten[j])) * g)
            val[r2 >= 1.0] = 0.0
            np.maximum(out[win], val, out=out[win])
    out[out < PRECIP_THRESHOLD] = 0.0
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


def _record_mid(spec: VarSpec | None, t_s: float, fallback: float) -> float:
    if spec is None:
        return fallback
    if spec.rec_max is not None and spec.rec_min is not None:
        return _monthly(tuple((a + b) / 2 for a, b in zip(spec.rec_min, spec.rec_max)), t_s)
    if spec.rec_max is not None:
        return _monthly(spec.rec_max, t_s) - 18.0
    return _monthly(spec.rec_min, t_s) + 18.0


def diurnal_phase(hour: np.ndarray) -> np.ndarray:
    """-1 at 05 local, +1 at 15 local: 10 hours of warming, 14 of cooling."""
    h = (hour - 5.0) % 24.0
    return np.where(h < 10.0, -np.cos(np.pi * h / 10.0), np.cos(np.pi * (h - 10.0) / 14.0)).astype(np.float32)


def temperatures(ctx: Context, t_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(air temperature, dew point, diurnal phase) in K: climate + diurnal + lapse rate + front + noise."""
    air = next((s for s in ctx.specs if s.kind == "air_temperature"), None)
    dew = next((s for s in ctx.specs if s.kind == "dew_point"), None)
    mid = _record_mid(air, t_s, _record_mid(dew, t_s, 285.0) + 7.0)
    summer = ctx.summerness(t_s)
    diurnal = diurnal_phase(ctx.local_hour(t_s, ctx.lon))
    amp = 3.0 + 2.5 * summer
    z = ctx.elevation
    lapse = np.float32(-6.5e-3) * (z - np.float32(z.mean()))
    # Alternating warm and cold fronts (square wave, ~30 km transitions) moving at 7 m/s.
    s_km = ctx.east_km[None, :] * math.cos(ctx.front_dir) + ctx.north_km[:, None] * math.sin(ctx.front_dir)
    phase = 2 * np.pi * (s_km - 7.0e-3 * (t_s - T_REF)) / 1400.0 + ctx.front_phase
    front = np.tanh(8.0 * np.sin(phase)) / np.float32(math.tanh(8.0))
    oy, ox = ctx.shift_px(t_s, 0.5)
    full = (slice(0, ctx.ny), slice(0, ctx.nx))
    noise = ctx.tex["temp"].sample(oy, ox, *full)
    t = np.float32(mid) + lapse + np.float32(amp) * diurnal + np.float32(2.5) * front + np.float32(0.6) * noise
    if air is not None and air.rec_max is not None and air.rec_min is not None:
        m = month_of(t_s)
        t = _softfloor(_softcap(t, air.rec_max[m] - 4.0, 1.5), air.rec_min[m] + 4.0, 1.5)
    # Dew-point depression 1..12 K: drier in the afternoon, on the cold side of fronts and where the texture says.
    dep_tex = ctx.tex["dep"].sample(oy * 0.5, ox * 0.5, *full)
    dep = 1.0 + 11.0 * (0.5 + 0.5 * np.tanh(0.9 * dep_tex + 0.7 * diurnal - 0.4 * front))
    td = t - dep.astype(np.float32)
    if dew is not None and dew.rec_max is not None and dew.rec_min is not None:
        m = month_of(t_s)
        td = _softfloor(_softcap(td, dew.rec_max[m] - 3.0, 1.5), dew.rec_min[m] + 3.0, 1.5)
    # The soft limits above may stretch the depression a little; keep it within 1..12 K.
    td = np.clip(td, t - np.float32(12.0), t - np.float32(1.0))
    return t.astype(np.float32), td.astype(np.float32), diurnal


def generic(ctx: Context, spec: VarSpec, t_s: float) -> np.ndarray:
    """Any other variable: a smooth, slowly drifting field well inside its climatological record."""
    lo, hi = spec.phys
    m = month_of(t_s)
    rlo = spec.rec_min[m] if spec.rec_min is not None else lo
    rhi = spec.rec_max[m] if spec.rec_max is not None else hi
    mid, span = (rlo + rhi) / 2, rhi - rlo
    oy, ox = ctx.shift_px(t_s, 0.05)
    tex = ctx.tex["generic"].sample(oy, ox, slice(0, ctx.ny), slice(0, ctx.nx))
    return (np.float32(mid) + np.float32(0.25 * span) * np.tanh(0.7 * tex)).astype(np.float32)


def natural_fields(ctx: Context, t_s: float) -> dict[str, np.ndarray]:
    """Every variable's field at time ``t_s``, native units (before any planted fault)."""
    out: dict[str, np.ndarray] = {}
    temps = None
    for spec in ctx.specs:
        if spec.kind == "precipitation":
            out[spec.vid] = precipitation(ctx, spec, t_s)
        elif spec.kind in ("air_temperature", "dew_point"):
            temps = temps or temperatures(ctx, t_s)
            out[spec.vid] = temps[0] if spec.kind == "air_temperature" else temps[1]
        else:
            out[spec.vid] = generic(ctx, spec, t_s)
    return out
