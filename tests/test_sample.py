"""The synthetic observation feed: file layout, CF encoding, realism, and every planted fault as recorded."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr
from scipy import ndimage

from forecast.catalog.models import Catalog, load_catalog
from forecast.errors import BadInputError
from forecast.synthetic.generate import FAULTS, generate_sample

CATALOGS = Path(__file__).resolve().parents[1] / "catalogs"
JULY = datetime(2026, 7, 15, 12, 0, tzinfo=timezone.utc)


def parse(t: str) -> datetime:
    return datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def read(path: Path, var: str) -> np.ndarray:
    with netCDF4.Dataset(path) as ds:
        return np.asarray(ds[var][0].filled(np.nan))


def slot_file(out: Path, manifest: dict, time: str) -> Path:
    slot = next(s for s in manifest["slots"] if s["time"] == time)
    return out / slot["files"][0]


def first_ok(manifest: dict) -> str:
    """The first slot file that is neither late, corrupt nor missing."""
    return next(s["files"][0] for s in manifest["slots"] if s["status"] == "ok")


def fields(out: Path, manifest: dict, var: str) -> tuple[list[str], np.ndarray]:
    """Every readable on-time or late field of a variable, in time order (the preliminary one if revised)."""
    times, arrs = [], []
    for s in manifest["slots"]:
        if s["status"] in ("missing", "corrupt"):
            continue
        times.append(s["time"])
        arrs.append(read(out / s["files"][0], var))
    return times, np.array(arrs)


@pytest.fixture(scope="module")
def radar() -> Catalog:
    return load_catalog(CATALOGS / "radar_precip.yaml")


@pytest.fixture(scope="module")
def surface() -> Catalog:
    return load_catalog(CATALOGS / "surface_obs.yaml")


@pytest.fixture(scope="module")
def radar_all(radar, tmp_path_factory):
    out = tmp_path_factory.mktemp("radar_all")
    return generate_sample(radar, start=JULY, hours=2, out=out, faults=["all"], seed=3), out


@pytest.fixture(scope="module")
def radar_clean(radar, tmp_path_factory):
    out = tmp_path_factory.mktemp("radar_clean")
    return generate_sample(radar, start=JULY, hours=1.5, out=out, seed=3), out


@pytest.fixture(scope="module")
def surface_all(surface, tmp_path_factory):
    out = tmp_path_factory.mktemp("surface_all")
    return generate_sample(surface, start=datetime(2026, 7, 14), hours=48, out=out, faults=["all"], seed=2), out


@pytest.fixture(scope="module")
def surface_clean(surface, tmp_path_factory):
    out = tmp_path_factory.mktemp("surface_clean")
    return generate_sample(surface, start=datetime(2026, 7, 14), hours=72, out=out, seed=2), out


@pytest.fixture(params=["radar_all", "surface_all"])
def faulty(request):
    return request.getfixturevalue(request.param)


def by_kind(manifest: dict, kind: str) -> list[dict]:
    return [f for f in manifest["faults"] if f["kind"] == kind]


# ------------------------------------------------------------------------------------------ layout


def test_file_names_count_and_batches(radar_all):
    manifest, out = radar_all
    assert manifest["dataset"] == "radar_precip"
    assert manifest["start"] == "2026-07-15T12:00:00Z" and manifest["end"] == "2026-07-15T14:00:00Z"
    assert manifest["step"] == "5min" and len(manifest["slots"]) == 24
    on_disk = sorted(str(p.relative_to(out)) for p in out.rglob("*.nc"))
    assert on_disk == manifest["files"]
    assert not [p for p in out.rglob("*") if p.name.startswith(".")], "temporary files left behind"
    for f in manifest["batches"]["main"]:
        assert re.fullmatch(r"radar_precip_\d{8}T\d{6}Z\.nc", f)
    slots = manifest["slots"]
    for s in slots:
        name = f"radar_precip_{parse(s['time']):%Y%m%dT%H%M%S}Z.nc"
        expected = {"missing": [], "late": [f"late/{name}"], "revised": [name, f"revised/{name}"],
                    "duplicate": [name, f"duplicates/{name}"]}.get(s["status"], [name])
        assert s["files"] == expected
    assert len(manifest["batches"]["main"]) == 24 - len(manifest["missing"]) - len(manifest["batches"]["late"])
    assert 2 <= len(manifest["missing"]) <= 3 and 2 <= len(manifest["batches"]["late"]) <= 3
    assert len(manifest["batches"]["duplicates"]) == 1 and len(manifest["batches"]["revised"]) == 1
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert manifest["catalog_hash"] == load_catalog(CATALOGS / "radar_precip.yaml").hash
    assert manifest["seed"] == 3 and manifest["generator"].startswith("forecast.sample")


def test_cf_encoding_precipitation(radar_all, radar):
    manifest, out = radar_all
    path = out / first_ok(manifest)
    with netCDF4.Dataset(path) as ds:
        assert ds.Conventions == "CF-1.8"
        assert dict(ds.dimensions.items()).keys() == {"time", "y", "x"}
        t = ds["time"]
        assert t.dtype == np.int64 and t.units == "seconds since 1970-01-01 00:00:00"
        assert t.calendar == "proleptic_gregorian"
        stamp = datetime.strptime(path.name, "radar_precip_%Y%m%dT%H%M%SZ.nc").replace(tzinfo=timezone.utc)
        assert int(t[0]) == int(stamp.timestamp())
        x, y = ds["x"], ds["y"]
        assert x.standard_name == "projection_x_coordinate" and x.units == "m"
        assert y.standard_name == "projection_y_coordinate" and y.units == "m"
        np.testing.assert_array_equal(x[:], radar.grid.x.values())
        np.testing.assert_array_equal(y[:], radar.grid.y.values())
        lat, lon = radar.grid.latlon()
        assert ds["lat"].dimensions == ("y", "x") and ds["lat"].units == "degrees_north"
        np.testing.assert_allclose(ds["lat"][:], lat, atol=1e-4)
        np.testing.assert_allclose(ds["lon"][:], lon, atol=1e-4)
        assert ds["crs"].grid_mapping_name == "lambert_azimuthal_equal_area"
        assert "crs_wkt" in ds["crs"].ncattrs()
        v = ds["precipitation_rate"]
        assert v.dtype == np.float32 and v.dimensions == ("time", "y", "x")
        assert v.units == "mm h-1" and v.standard_name == "lwe_precipitation_rate"
        assert v.long_name and v.grid_mapping == "crs" and v.coordinates == "lat lon"
        assert np.isnan(v._FillValue)
        filters = v.filters()
        assert filters["zlib"] and filters["shuffle"] and filters["complevel"] == 4
        assert v.chunking() == [1, 256, 256]
    ds = xr.open_dataset(path)
    assert ds.time.values[0] == np.datetime64(stamp.replace(tzinfo=None))
    assert ds.precipitation_rate.attrs["units"] == "mm h-1"


def test_cf_encoding_temperature_in_degc(surface_all):
    manifest, out = surface_all
    with netCDF4.Dataset(out / first_ok(manifest)) as ds:
        for name, std in (("air_temperature", "air_temperature"), ("dew_point_temperature", "dew_point_temperature")):
            assert ds[name].units == "degC" and ds[name].standard_name == std
            assert ds[name].chunking() == [1, 64, 64]
    assert manifest["variables"]["air_temperature"]["units"] == "degC"


def test_complevel_zero_writes_uncompressed(surface, tmp_path):
    m = generate_sample(surface, start=JULY, hours=2, out=tmp_path, complevel=0)
    with netCDF4.Dataset(tmp_path / m["files"][0]) as ds:
        assert not ds["air_temperature"].filters()["zlib"]
        assert np.isfinite(ds["air_temperature"][:]).all()


def test_progress_is_called_after_each_file(surface, tmp_path):
    calls = []
    m = generate_sample(surface, start=JULY, hours=30, out=tmp_path, faults="all", seed=1,
                        progress=lambda done, total: calls.append((done, total)))
    total = len(m["files"])
    assert calls == [(i, total) for i in range(1, total + 1)]


def test_rerun_into_the_same_folder_leaves_no_stale_files(surface, tmp_path):
    generate_sample(surface, start=JULY, hours=30, out=tmp_path, faults="all", seed=1)
    m = generate_sample(surface, start=JULY, hours=3, out=tmp_path, seed=1)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.nc")) == m["files"]
    assert len(m["files"]) == 3


def test_deterministic_for_a_seed(surface, tmp_path):
    runs = []
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        out = tmp_path / name
        runs.append((generate_sample(surface, start=datetime(2026, 1, 10), hours=30, out=out, faults="all",
                                     seed=seed), out))
    (ma, a), (mb, b), (mc, c) = runs
    assert ma == mb
    for f in ma["files"]:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    first = first_ok(ma)
    assert not np.array_equal(read(a / first, "air_temperature"), read(c / first, "air_temperature"))


def test_slots_do_not_depend_on_the_sample_window(radar, tmp_path):
    a = generate_sample(radar, start=JULY, hours=0.5, out=tmp_path / "a", seed=9)
    b = generate_sample(radar, start=JULY + timedelta(minutes=15), hours=0.5, out=tmp_path / "b", seed=9)
    shared = sorted(set(a["files"]) & set(b["files"]))
    assert len(shared) == 3
    for f in shared:
        np.testing.assert_array_equal(read(tmp_path / "a" / f, "precipitation_rate"),
                                      read(tmp_path / "b" / f, "precipitation_rate"))


def test_any_grid_shape(radar, tmp_path):
    doc = radar.model_dump(mode="json", exclude={"path"})
    doc["grid"]["x"].update(size=70, step=2000.0)
    doc["grid"]["y"].update(size=48)
    cat = Catalog.model_validate(doc)
    m = generate_sample(cat, start=JULY, hours=2, out=tmp_path, faults="all", seed=1)
    arr = read(tmp_path / first_ok(m), "precipitation_rate")
    assert arr.shape == (48, 70) and arr.dtype == np.float32
    assert len(m["faults"]) == len(FAULTS) + 4  # spikes and impossible values are one entry per cell


# ----------------------------------------------------------------------------------------- realism


def xcorr_shift(a: np.ndarray, b: np.ndarray, max_shift: int = 12) -> tuple[int, int]:
    """The (rows, columns) shift of ``a`` that best matches ``b`` (circular cross-correlation)."""
    a, b = a - a.mean(), b - b.mean()
    cc = np.fft.ifft2(np.fft.fft2(b) * np.conj(np.fft.fft2(a))).real
    shifts = [(dy, dx) for dy in range(-max_shift, max_shift + 1) for dx in range(-max_shift, max_shift + 1)]
    return max(shifts, key=lambda s: cc[s[0] % a.shape[0], s[1] % a.shape[1]])


def test_precipitation_is_realistic(radar_clean, radar):
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


def test_temperature_diurnal_cycle_lapse_rate_and_dew_point(surface_clean, surface):
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


# ------------------------------------------------------------------------------------------- faults


def test_every_fault_kind_is_recorded(faulty):
    manifest, _ = faulty
    assert {f["kind"] for f in manifest["faults"]} == set(FAULTS)
    assert len(by_kind(manifest, "spike")) == 3 and len(by_kind(manifest, "impossible")) == 3


def test_spikes(faulty):
    manifest, out = faulty
    for f in by_kind(manifest, "spike"):
        (iy, ix), = f["cells"]
        arr = read(out / f["file"], f["file_variable"])
        assert arr[iy, ix] == np.float32(f["values"][0])
        around = arr[iy - 3: iy + 4, ix - 3: ix + 4].copy()
        around[3, 3] = np.nan
        if f["units"] == "mm h-1":
            assert 80 <= arr[iy, ix] <= 150 and np.nanmax(around) < 2.0
        else:
            assert 12 <= arr[iy, ix] - f["background"][0] <= 18
            assert arr[iy, ix] - np.nanmedian(around[2:5, 2:5]) > 10


def test_impossible_values(faulty):
    manifest, out = faulty
    kinds = set()
    for f in by_kind(manifest, "impossible"):
        (iy, ix), = f["cells"]
        value = read(out / f["file"], f["file_variable"])[iy, ix]
        assert value == np.float32(f["values"][0])
        lo, hi = f["physical_range"]
        assert value < lo or value > hi
        kinds.add("low" if value < lo else "high")
    assert kinds == {"low", "high"}


def test_stuck_region(faulty):
    manifest, out = faulty
    f, = by_kind(manifest, "stuck")
    y0, y1, x0, x1 = f["bbox"]
    assert (y1 - y0 + 1, x1 - x0 + 1) == (6, 6)
    times = [parse(t) for t in f["times"]]
    assert len(times) >= 12
    step = times[1] - times[0]
    assert all(b - a == step for a, b in zip(times, times[1:]))
    value = np.float32(f["values"][0])
    assert value != 0
    for t, name in zip(f["times"], f["files"]):
        assert slot_file(out, manifest, t) == out / name
        block = read(out / name, f["file_variable"])[y0: y1 + 1, x0: x1 + 1]
        assert (block == value).all()


def test_record_extreme_is_coherent_and_beyond_the_record(faulty):
    manifest, out = faulty
    f, = by_kind(manifest, "record_extreme")
    times = [parse(t) for t in f["times"]]
    assert len(times) >= 3 and all(b - a == times[1] - times[0] for a, b in zip(times, times[1:]))
    centroids = []
    for t, rec in zip(f["times"], f["record"]):
        arr = read(slot_file(out, manifest, t), f["file_variable"])
        cells = np.array(f["cells_by_time"][t])
        assert len(cells) >= 30, "several dozen cells beyond the record"
        vals = arr[cells[:, 0], cells[:, 1]]
        assert (vals > rec).all() and (vals < f["physical_range"][1]).all()
        # Coherent: one connected area ...
        mask = np.zeros(arr.shape, bool)
        mask[cells[:, 0], cells[:, 1]] = True
        assert ndimage.label(mask)[1] == 1
        # ... and smooth: no cell stands out from the mean of its four neighbours (a spike would, by ~100 %).
        y0, x0 = cells.min(axis=0) - 2
        y1, x1 = cells.max(axis=0) + 3
        sub = arr[y0:y1, x0:x1]
        bump = sub[1:-1, 1:-1] - (sub[:-2, 1:-1] + sub[2:, 1:-1] + sub[1:-1, :-2] + sub[1:-1, 2:]) / 4
        assert np.abs(bump).max() < (0.05 * vals.max() if f["units"] == "mm h-1" else 1.5)
        # Elsewhere nothing natural reaches the record (spikes and impossible values are faults).
        outside = arr.copy()
        outside[mask] = np.nan
        for g in manifest["faults"]:
            if g["kind"] in ("spike", "impossible") and t in g["times"]:
                outside[tuple(g["cells"][0])] = np.nan
        assert np.nanmax(outside) <= rec
        centroids.append(cells.mean(axis=0))
    if f["units"] == "mm h-1":  # the storm moves with the wind
        assert np.hypot(*(centroids[-1] - centroids[0])) > 2


def test_nothing_natural_beyond_the_record(faulty, radar, surface):
    manifest, out = faulty
    cat = radar if manifest["dataset"] == "radar_precip" else surface
    planted: dict[str, set] = {}
    for g in manifest["faults"]:
        if g["kind"] in ("spike", "impossible"):
            planted.setdefault(g["times"][0], set()).add((g["variable"], *g["cells"][0]))
        if g["kind"] == "record_extreme":
            for t, cells in g["cells_by_time"].items():
                planted.setdefault(t, set()).update((g["variable"], *c) for c in cells)
    offset = 273.15 if manifest["dataset"] == "surface_obs" else 0.0
    for s in manifest["slots"]:
        if s["status"] in ("missing", "corrupt"):
            continue
        for vid, var in cat.variables.items():
            arr = read(out / s["files"][0], cat.source_names(vid)[0])
            for v, iy, ix in planted.get(s["time"], ()):
                if v == vid:
                    arr[iy, ix] = np.nan
            month = parse(s["time"]).month - 1
            rec = var.climatological_record
            assert np.nanmax(arr) <= rec.max[month] - offset
            if rec.min is not None:
                assert np.nanmin(arr) >= rec.min[month] - offset


def test_file_faults(faulty):
    manifest, out = faulty
    missing, = by_kind(manifest, "missing")
    assert missing["times"] == manifest["missing"]
    for name in missing["files"]:
        assert not list(out.rglob(name))
    late, = by_kind(manifest, "late")
    for rel in late["files"]:
        assert (out / rel).is_file() and not (out / Path(rel).name).exists()
        assert rel in manifest["batches"]["late"]
    dup, = by_kind(manifest, "duplicate")
    assert (out / dup["files"][0]).read_bytes() == (out / dup["file"]).read_bytes()
    corrupt, = by_kind(manifest, "corrupt")
    path = out / corrupt["file"]
    assert path.stat().st_size == corrupt["values"]["kept_bytes"]
    assert path.stat().st_size < 0.5 * (out / dup["file"]).stat().st_size
    with pytest.raises(OSError):
        netCDF4.Dataset(path)


def test_revised_differs_only_in_its_region(faulty):
    manifest, out = faulty
    f, = by_kind(manifest, "revised")
    prelim = read(out / f["files"][0], f["file_variable"])
    corrected = read(out / f["files"][1], f["file_variable"])
    y0, y1, x0, x1 = f["bbox"]
    inside = np.zeros(prelim.shape, bool)
    inside[y0: y1 + 1, x0: x1 + 1] = True
    np.testing.assert_array_equal(prelim[~inside], corrected[~inside])
    op = f["values"]
    if op["operation"] == "multiply":
        expected = prelim[inside] * np.float32(op["factor"])
    else:
        expected = prelim[inside] + np.float32(op["amount"])
    np.testing.assert_array_equal(corrected[inside], expected)
    assert (corrected[inside] != prelim[inside]).sum() >= 10


def test_faults_do_not_overlap(faulty):
    manifest, _ = faulty
    file_times = {t for g in manifest["faults"] if g["variable"] is None or g["kind"] == "revised"
                  for t in g["times"]}
    value_faults = [g for g in manifest["faults"] if g["kind"] in ("spike", "impossible", "stuck", "record_extreme")]
    for g in value_faults:
        assert not file_times & set(g["times"]), g["kind"]
        assert not file_times & set(g.get("context_times", []))

    def box(g):
        if "bbox" in g:
            return g["bbox"]
        (iy, ix), = g["cells"]
        return [iy, iy, ix, ix]

    for i, a in enumerate(value_faults):
        for b in value_faults[i + 1:]:
            ay0, ay1, ax0, ax1 = box(a)
            by0, by1, bx0, bx1 = box(b)
            gap = max(by0 - ay1, ay0 - by1, bx0 - ax1, ax0 - bx1)
            assert gap >= 3, (a["kind"], b["kind"])


# ------------------------------------------------------------------------------------------- errors


def test_start_off_the_axis(radar, tmp_path):
    with pytest.raises(BadInputError, match=r"not on the time axis of 'radar_precip'.*2026-07-15T12:05:00Z"):
        generate_sample(radar, start=datetime(2026, 7, 15, 12, 2), hours=1, out=tmp_path)
    with pytest.raises(BadInputError, match="not on the time axis"):
        generate_sample(radar, start=datetime(2019, 1, 1), hours=1, out=tmp_path)


def test_unknown_fault_lists_the_valid_ones(radar, tmp_path):
    with pytest.raises(BadInputError, match=r"unknown fault 'spikes'; valid faults are: spike, impossible.*all"):
        generate_sample(radar, start=JULY, hours=1, out=tmp_path, faults=["spikes"])


@pytest.mark.parametrize("hours", [0, -1.5, float("nan")])
def test_hours_must_be_positive(radar, tmp_path, hours):
    with pytest.raises(BadInputError, match="hours must be a positive number"):
        generate_sample(radar, start=JULY, hours=hours, out=tmp_path)


def test_too_short_or_too_small_for_the_faults(radar, tmp_path):
    with pytest.raises(BadInputError, match=r"need at least \d+ time slots of 5min but the sample has 6"):
        generate_sample(radar, start=JULY, hours=0.5, out=tmp_path, faults="all")
    doc = radar.model_dump(mode="json", exclude={"path"})
    doc["grid"]["x"]["size"] = doc["grid"]["y"]["size"] = 12
    tiny = Catalog.model_validate(doc)
    with pytest.raises(BadInputError, match="too small to plant"):
        generate_sample(tiny, start=JULY, hours=2, out=tmp_path, faults=["record_extreme", "stuck", "spike"])
