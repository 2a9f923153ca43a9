"""The sample as a whole: file layout and batches, progress, reruns, determinism, any grid, bad requests,
and its output unchanged for a seed."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from samplefiles import CATALOGS, JULY, differences, first_ok, make, parse, read, sample, shipped, summary

from forecast.catalog import Catalog, load_catalog
from forecast.errors import BadInputError
from forecast.synthetic import FAULTS, GENERATOR
from forecast.synthetic.generate import generate_sample

GOLDEN = Path(__file__).with_name("golden_sample.json")


@pytest.fixture(scope="module")
def radar_all(tmp_path_factory):
    return make("radar_all", tmp_path_factory)


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


def test_progress_is_called_after_each_file(tmp_path):
    surface = shipped("surface_obs")
    calls = []
    m = generate_sample(surface, start=JULY, hours=30, out=tmp_path, faults="all", seed=1,
                        progress=lambda done, total: calls.append((done, total)))
    total = len(m["files"])
    assert calls == [(i, total) for i in range(1, total + 1)]


def test_rerun_into_the_same_folder_leaves_no_stale_files(tmp_path):
    surface = shipped("surface_obs")
    generate_sample(surface, start=JULY, hours=30, out=tmp_path, faults="all", seed=1)
    m = generate_sample(surface, start=JULY, hours=3, out=tmp_path, seed=1)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.nc")) == m["files"]
    assert len(m["files"]) == 3


def test_deterministic_for_a_seed(tmp_path):
    surface = shipped("surface_obs")
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


def test_slots_do_not_depend_on_the_sample_window(tmp_path):
    radar = shipped("radar_precip")
    a = generate_sample(radar, start=JULY, hours=0.5, out=tmp_path / "a", seed=9)
    b = generate_sample(radar, start=JULY + timedelta(minutes=15), hours=0.5, out=tmp_path / "b", seed=9)
    shared = sorted(set(a["files"]) & set(b["files"]))
    assert len(shared) == 3
    for f in shared:
        np.testing.assert_array_equal(read(tmp_path / "a" / f, "precipitation_rate"),
                                      read(tmp_path / "b" / f, "precipitation_rate"))


def test_any_grid_shape(tmp_path):
    radar = shipped("radar_precip")
    doc = radar.model_dump(mode="json", exclude={"path"})
    doc["grid"]["x"].update(size=70, step=2000.0)
    doc["grid"]["y"].update(size=48)
    cat = Catalog.model_validate(doc)
    m = generate_sample(cat, start=JULY, hours=2, out=tmp_path, faults="all", seed=1)
    arr = read(tmp_path / first_ok(m), "precipitation_rate")
    assert arr.shape == (48, 70) and arr.dtype == np.float32
    assert len(m["faults"]) == len(FAULTS) + 4  # spikes and impossible values are one entry per cell


# ----------------------------------------------------------------------------------------- realism


def test_start_off_the_axis(tmp_path):
    radar = shipped("radar_precip")
    with pytest.raises(BadInputError, match=r"not on the time axis of 'radar_precip'.*2026-07-15T12:05:00Z"):
        generate_sample(radar, start=datetime(2026, 7, 15, 12, 2), hours=1, out=tmp_path)
    with pytest.raises(BadInputError, match="not on the time axis"):
        generate_sample(radar, start=datetime(2019, 1, 1), hours=1, out=tmp_path)


def test_unknown_fault_lists_the_valid_ones(tmp_path):
    radar = shipped("radar_precip")
    with pytest.raises(BadInputError, match=r"unknown fault 'spikes'; valid faults are: spike, impossible.*all"):
        generate_sample(radar, start=JULY, hours=1, out=tmp_path, faults=["spikes"])


@pytest.mark.parametrize("hours", [0, -1.5, float("nan")])
def test_hours_must_be_positive(tmp_path, hours):
    radar = shipped("radar_precip")
    with pytest.raises(BadInputError, match="hours must be a positive number"):
        generate_sample(radar, start=JULY, hours=hours, out=tmp_path)


def test_output_unchanged_for_a_seed(tmp_path):
    """Seed 42 of both catalogs with every fault gives the manifest and fields it gave when golden_sample.json
    was written (floats to 1e-5, so a numerical library's last bits may move). Regenerate that file only for a
    deliberate change of the generator's output:
    ``python -c "import sys; sys.path.insert(0, 'tests/forecast/synthetic'); import test_generate as t;
    t.write_golden()"``."""
    want = json.loads(GOLDEN.read_text())
    got = _golden(tmp_path)
    assert got.keys() == want.keys()
    for name in want:
        diff = differences(got[name], want[name])
        assert not diff, f"{name}: {len(diff)} differences, e.g. " + "; ".join(diff[:5])
    assert GENERATOR.startswith("forecast.sample ")


def _golden(folder: Path) -> dict:
    return {
        "radar_precip": summary(*sample(shipped("radar_precip"), folder / "r", start=JULY, hours=2, faults="all",
                                        seed=42)),
        "surface_obs": summary(*sample(shipped("surface_obs"), folder / "s", start=datetime(2026, 1, 10), hours=30,
                                       faults="all", seed=42)),
    }


def write_golden() -> None:  # pragma: no cover - run by hand, see test_output_unchanged_for_a_seed
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        GOLDEN.write_text(json.dumps(_golden(Path(d)), indent=1, sort_keys=True) + "\n")
