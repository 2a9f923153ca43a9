"""The physics: realistic precipitation (dry share, cores, motion, predictability) and temperatures (diurnal
cycle, lapse rate, dew point), inside the climatological records."""

from __future__ import annotations

import numpy as np
import pytest
from samplefiles import fields, make, parse, shipped
from scipy import ndimage


@pytest.fixture(scope="module")
def radar_clean(tmp_path_factory):
    return make("radar_clean", tmp_path_factory)


@pytest.fixture(scope="module")
def surface_clean(tmp_path_factory):
    return make("surface_clean", tmp_path_factory)


def xcorr_shift(a: np.ndarray, b: np.ndarray, max_shift: int = 12) -> tuple[int, int]:
    """The (rows, columns) shift of ``a`` that best matches ``b`` (circular cross-correlation)."""
    a, b = a - a.mean(), b - b.mean()
    cc = np.fft.ifft2(np.fft.fft2(b) * np.conj(np.fft.fft2(a))).real
    shifts = [(dy, dx) for dy in range(-max_shift, max_shift + 1) for dx in range(-max_shift, max_shift + 1)]
    return max(shifts, key=lambda s: cc[s[0] % a.shape[0], s[1] % a.shape[1]])


def test_precipitation_is_realistic(radar_clean):
    radar = shipped("radar_precip")
    manifest, out = radar_clean
    times, rr = fields(out, manifest, "precipitation_rate")
    assert len(times) == 18 and np.isfinite(rr).all()
    assert rr.min() == 0.0
    dry = (rr == 0).mean(axis=(1, 2))
    assert (dry > 0.6).all() and (dry < 0.995).all(), dry  # mostly dry, never empty
    assert 0.7 < dry.mean() < 0.97, dry
    assert rr.max() > 50.0, "convective cores should exceed 50 mm/h"
    month = parse(times[0]).month - 1
    assert rr.max() < radar.variables["precipitation_rate"].climatological_record.max[month]  # natural < record
    light = rr[(rr > 0) & (rr < 8)]
    assert light.size > 0.5 * (rr > 0).sum()  # most rain is light (stratiform and cell edges)
    # Motion: consecutive fields match best at one consistent, non-zero shift.
    shifts = [xcorr_shift(np.log1p(rr[i]), np.log1p(rr[i + 1])) for i in range(len(rr) - 1)]
    dy, dx = max(set(shifts), key=shifts.count)
    assert all(max(abs(sy - dy), abs(sx - dx)) <= 1 for sy, sx in shifts), shifts  # the wind drifts slowly
    assert 1.5 <= np.hypot(dy, dx) <= 8.0, (dy, dx)  # 5 min at 10-20 m/s on a 1 km grid: 3-6 px
    # Predictable but not trivial: moving a field 15 min on beats persistence, yet is not perfect.
    a, b = rr[0], rr[3]
    moved = ndimage.shift(a, xcorr_shift(np.log1p(a), np.log1p(b), 30), order=0, mode="constant")
    persistence = np.abs(a - b).mean()
    advection = np.abs(moved - b).mean()
    assert advection < 0.85 * persistence
    assert np.corrcoef(moved.ravel(), b.ravel())[0, 1] < 0.99  # cells grow and decay on the way


def test_temperature_diurnal_cycle_lapse_rate_and_dew_point(surface_clean):
    surface = shipped("surface_obs")
    manifest, out = surface_clean
    times, t = fields(out, manifest, "air_temperature")
    _, td = fields(out, manifest, "dew_point_temperature")
    assert len(times) == 72
    lat, lon = surface.grid.latlon()
    assert parse(times[0]).hour == 0
    # Diurnal cycle: remove the slow part (fronts pass) with a centred 24-hour mean, average the days, and
    # find the extremes in local solar time.
    mean = t.mean(axis=(1, 2))
    weights = np.r_[0.5, np.ones(23), 0.5] / 24
    anomaly = mean[12:-12] - np.convolve(mean, weights, mode="valid")  # hours 12 .. 59 UTC
    composite = np.roll(anomaly.reshape(2, 24).mean(axis=0), 12)  # index = UTC hour
    local = (np.arange(24) + lon.mean() / 15.0) % 24
    assert 3.0 <= local[np.argmin(composite)] <= 7.5, local[np.argmin(composite)]
    assert 12.5 <= local[np.argmax(composite)] <= 17.0, local[np.argmax(composite)]
    assert np.ptp(composite) > 5.0
    # Lapse rate: colder up the mountains, about -6.5 K/km.
    z = surface.grid.elevation_field().ravel() / 1000.0
    corr = [np.corrcoef(z, f.ravel())[0, 1] for f in t]
    slope = [np.polyfit(z, f.ravel(), 1)[0] for f in t]
    assert np.median(corr) < -0.7
    assert -8.5 < np.median(slope) < -4.5
    # Dew point 1..12 K below the air temperature, everywhere.
    dep = t - td
    assert dep.min() >= 0.99 and dep.max() <= 12.01
    assert np.ptp(dep) > 5  # varies in space and time
    # Written in degC, comfortably inside the month's records (given in K by the catalog).
    month = parse(times[0]).month - 1
    for name, arr in (("air_temperature", t), ("dew_point_temperature", td)):
        rec = surface.variables[name].climatological_record
        assert arr.min() > rec.min[month] - 273.15 + 2 and arr.max() < rec.max[month] - 273.15 - 2
