"""Every planted fault, as the manifest records it: spikes, impossible values, a stuck block, a record extreme,
missing / late / duplicate / revised / corrupt files; nothing natural beyond the record; faults apart."""

from __future__ import annotations

from pathlib import Path

import netCDF4
import numpy as np
import pytest
from samplefiles import JULY, by_kind, make, parse, read, shipped, slot_file
from scipy import ndimage

from forecast.catalog import Catalog
from forecast.errors import BadInputError
from forecast.synthetic import FAULTS
from forecast.synthetic.generate import generate_sample


@pytest.fixture(scope="module")
def radar_all(tmp_path_factory):
    return make("radar_all", tmp_path_factory)


@pytest.fixture(scope="module")
def surface_all(tmp_path_factory):
    return make("surface_all", tmp_path_factory)


@pytest.fixture(params=["radar_all", "surface_all"])
def faulty(request):
    return request.getfixturevalue(request.param)


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


def test_nothing_natural_beyond_the_record(faulty):
    radar = shipped("radar_precip")
    surface = shipped("surface_obs")
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


def test_too_short_or_too_small_for_the_faults(tmp_path):
    radar = shipped("radar_precip")
    with pytest.raises(BadInputError, match=r"need at least \d+ time slots of 5min but the sample has 6"):
        generate_sample(radar, start=JULY, hours=0.5, out=tmp_path, faults="all")
    doc = radar.model_dump(mode="json", exclude={"path"})
    doc["grid"]["x"]["size"] = doc["grid"]["y"]["size"] = 12
    tiny = Catalog.model_validate(doc)
    with pytest.raises(BadInputError, match="too small to plant"):
        generate_sample(tiny, start=JULY, hours=2, out=tmp_path, faults=["record_extreme", "stuck", "spike"])
