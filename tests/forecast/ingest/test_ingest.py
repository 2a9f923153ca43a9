"""Ingestion into the versioned store: duplicates, late files, revisions, as-of reads, bad inputs."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from testkit import T0
from forecast.cli import app
from forecast.errors import BadInputError, StoreError
from forecast.ingest.batch import ingest
from forecast.stores import ObservationStore, dataset_summary, open_observations
from ncfiles import field, write_nc

P = "precipitation_rate"


def _slot(i: int):
    return T0 + timedelta(minutes=5 * i)


def _files(folder: Path, cat, slots, *, base: float = 0.0, seed_offset: int = 0) -> list[Path]:
    return [write_nc(folder / f"{cat.id}_{_slot(i):%Y%m%dT%H%M%S}Z.nc", cat, _slot(i),
                     {P: field(cat, base + i, seed=i + seed_offset)}) for i in slots]


def _ingest(cat, paths, store, tmp_path, at_minutes=0, **kw):
    return ingest(cat, paths, store=store, available_at=T0 + timedelta(minutes=at_minutes),
                  quarantine_dir=tmp_path / "quarantine", scheduler="sync", **kw)


def test_first_batch_is_one_commit_and_values_are_exact(radar, store, tmp_path):
    files = _files(tmp_path / "in", radar, range(4))
    rep = _ingest(radar, files, store, tmp_path, at_minutes=20)
    assert rep.committed and len(rep.written) == 4 and not rep.late and not rep.revisions and not rep.rejected
    ds = open_observations(radar.id, store=store)
    assert ds.sizes["time"] == 4 and ds[P].dtype == np.float32
    for i, f in enumerate(files):
        src = xr.open_dataset(f)[P].values[0]
        np.testing.assert_array_equal(ds[P].isel(time=i).values, src)  # byte-identical
    assert (ds[f"{P}_revision"].values == 0).all()
    assert ds.attrs["snapshot"] == rep.snapshot
    log = store.log(radar.id)
    assert log[0]["snapshot"] == rep.snapshot and log[0]["kind"] == "ingest"
    meta = log[0]["metadata"]
    assert [f["name"] for f in meta["files"]] == [f.name for f in files]
    assert all(len(f["sha256"]) == 64 for f in meta["files"])
    assert meta["catalog_hash"] == radar.hash and meta["software"].startswith("forecast ")
    assert meta["written"] == rep.written and "blosc zstd level 1" in meta["codec"]


def test_same_file_again_is_a_duplicate_without_commit(radar, store, tmp_path):
    files = _files(tmp_path / "in", radar, range(3))
    first = _ingest(radar, files, store, tmp_path)
    again = _ingest(radar, files[:2], store, tmp_path, at_minutes=30)
    assert not again.committed and again.snapshot == first.snapshot == store.head()
    assert again.duplicates == first.written[:2] and not again.written
    assert sorted(again.duplicate_files) == sorted(map(str, files[:2]))
    # the same values re-encoded differently (another compression level) are no revision either
    recoded = tmp_path / "recoded.nc"
    xr.open_dataset(files[0]).to_netcdf(recoded, encoding={P: {"zlib": True, "complevel": 9}})
    rep = _ingest(radar, [recoded], store, tmp_path, at_minutes=40)
    assert rep.duplicates == first.written[:1] and not rep.committed


def test_late_file_fills_its_slot(radar, store, tmp_path):
    files = _files(tmp_path / "in", radar, [0, 1, 3, 4])
    _ingest(radar, files, store, tmp_path, at_minutes=25)
    assert np.isnan(open_observations(radar.id, store=store)[P].isel(time=2).values).all()
    late = _files(tmp_path / "late", radar, [2])
    rep = _ingest(radar, late, store, tmp_path, at_minutes=50)
    assert rep.late == [f"{_slot(2):%Y-%m-%dT%H:%M:%SZ}"] and rep.written == rep.late and rep.committed
    ds = open_observations(radar.id, store=store)
    assert not np.isnan(ds[P].isel(time=2).values).any()
    # as known at 30 minutes the late slot was still missing
    early = open_observations(radar.id, store=store, as_of=T0 + timedelta(minutes=30))
    assert np.isnan(early[P].isel(time=2).values).all() and early[f"{P}_revision"].values[2] == -1
    assert not np.isnan(early[P].isel(time=3).values).any()


def test_revision_keeps_the_old_one_readable(radar, store, tmp_path):
    prelim = _files(tmp_path / "prelim", radar, range(3))
    _ingest(radar, prelim, store, tmp_path, at_minutes=15)
    final = _files(tmp_path / "final", radar, [1], base=50.0)
    rep = _ingest(radar, final, store, tmp_path, at_minutes=90)
    assert rep.revisions == [f"{_slot(1):%Y-%m-%dT%H:%M:%SZ}"] and not rep.late
    latest = open_observations(radar.id, store=store)
    old = xr.open_dataset(prelim[1])[P].values[0]
    new = xr.open_dataset(final[0])[P].values[0]
    np.testing.assert_array_equal(latest[P].isel(time=1).values, new)
    assert latest[f"{P}_revision"].values.tolist() == [0, 1, 0]
    as_known = open_observations(radar.id, store=store, as_of=T0 + timedelta(minutes=60))
    np.testing.assert_array_equal(as_known[P].isel(time=1).values, old)
    assert as_known[f"{P}_revision"].values.tolist() == [0, 0, 0]
    assert as_known[f"{P}_available_at"].values[1] == np.datetime64((T0 + timedelta(minutes=15)).replace(tzinfo=None))
    # before anything was available there is nothing at all
    assert open_observations(radar.id, store=store, as_of=T0).sizes["time"] == 0
    # a second revision; both earlier ones stay readable as of their times
    final2 = _files(tmp_path / "final2", radar, [1], base=80.0)
    _ingest(radar, final2, store, tmp_path, at_minutes=120)
    for minutes, expect in ((60, old), (100, new)):
        ds = open_observations(radar.id, store=store, as_of=T0 + timedelta(minutes=minutes))
        np.testing.assert_array_equal(ds[P].isel(time=1).values, expect)
    summary = dataset_summary(store, radar.id)
    assert summary["variables"][P]["max_revision"] == 2 and summary["variables"][P]["archived_revisions"] == 2


def test_stale_redelivery_of_a_superseded_revision_is_a_duplicate(radar, store, tmp_path):
    prelim = _files(tmp_path / "prelim", radar, [0])
    _ingest(radar, prelim, store, tmp_path, at_minutes=5)
    final = _files(tmp_path / "final", radar, [0], base=10.0)
    _ingest(radar, final, store, tmp_path, at_minutes=30)
    rep = _ingest(radar, prelim, store, tmp_path, at_minutes=60)
    assert rep.duplicates and not rep.committed
    np.testing.assert_array_equal(open_observations(radar.id, store=store)[P].isel(time=0).values,
                                  xr.open_dataset(final[0])[P].values[0])


def test_two_files_for_one_slot_in_one_batch_land_in_order(radar, store, tmp_path):
    a = _files(tmp_path / "a", radar, [0, 1])
    b = _files(tmp_path / "b", radar, [1], base=40.0)
    rep = _ingest(radar, [*a, *b], store, tmp_path)
    assert rep.committed and rep.revisions == [f"{_slot(1):%Y-%m-%dT%H:%M:%SZ}"]
    ds = open_observations(radar.id, store=store)
    np.testing.assert_array_equal(ds[P].isel(time=1).values, xr.open_dataset(b[0])[P].values[0])
    assert ds[f"{P}_revision"].values.tolist() == [0, 1]


def test_degc_inputs_are_converted_to_kelvin(surface, store, tmp_path):
    t = T0
    ta = np.full(surface.grid.shape, 21.5, "float32")
    td = np.full(surface.grid.shape, 12.25, "float32")
    f = write_nc(tmp_path / "s.nc", surface, t, {"air_temperature": ta, "dew_point_temperature": td},
                 units={"air_temperature": "degC", "dew_point_temperature": "degC"})
    rep = _ingest(surface, [f], store, tmp_path)
    assert rep.committed
    ds = open_observations(surface.id, store=store)
    np.testing.assert_allclose(ds["air_temperature"].values, 294.65, rtol=0, atol=1e-4)
    np.testing.assert_allclose(ds["dew_point_temperature"].values, 285.4, rtol=0, atol=1e-4)
    assert ds["air_temperature"].attrs["units"] == "K"
    assert ds["elevation"].shape == surface.grid.shape


def test_reversed_axis_is_flipped_onto_the_catalog_grid(radar, store, tmp_path):
    data = field(radar, 3.0)
    ys = radar.grid.y.values()[::-1]
    f = write_nc(tmp_path / "flipped.nc", radar, T0, {P: data[::-1]}, y=ys)
    _ingest(radar, [f], store, tmp_path)
    np.testing.assert_array_equal(open_observations(radar.id, store=store)[P].values[0], data)


def _bad_inputs(radar, folder: Path) -> dict[str, tuple[Path, str]]:
    good = write_nc(folder / "good.nc", radar, T0, {P: field(radar)})
    out = {}
    trunc = folder / "truncated.nc"
    trunc.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    out["truncated"] = (trunc, "cannot be read as NetCDF")
    garbage = folder / "garbage.nc"
    garbage.write_bytes(b"this is not a netcdf file\n" * 100)
    out["garbage"] = (garbage, "cannot be read as NetCDF")
    ny, nx = radar.grid.shape
    small = write_nc(folder / "smallgrid.nc", radar, T0, {P: np.zeros((ny, nx - 1), "float32")},
                     x=radar.grid.x.values()[:-1])
    out["wrong grid size"] = (small, f"wrong grid: x \\(x\\) has {nx - 1} points, .* expects {nx}")
    shifted = write_nc(folder / "shifted.nc", radar, T0, {P: field(radar)}, x=radar.grid.x.values() + 500.0)
    out["shifted grid"] = (shifted, "wrong grid: x \\(x\\) differs from .* by up to 500 m")
    units = write_nc(folder / "units.nc", radar, T0, {P: field(radar)}, units={P: "K"})
    out["wrong units"] = (units, "wrong units: variable 'precipitation_rate' is in 'K' but .* accepts mm h-1")
    offaxis = write_nc(folder / "offaxis.nc", radar, T0 + timedelta(minutes=2), {P: field(radar)})
    out["off-axis time"] = (offaxis, "time 2026-07-15T12:02:00Z is not on the axis of .* \\(step 5min, tolerance 30s\\)")
    early = write_nc(folder / "early.nc", radar, T0.replace(year=2019), {P: field(radar)})
    out["before start"] = (early, "is before the axis start 2020-01-01T00:00:00Z")
    unknown = write_nc(folder / "unknown.nc", radar, T0, {P: field(radar), "hail": field(radar)})
    out["unknown variable"] = (unknown, "unknown variable 'hail': .* knows RR, precipitation_rate, rainfall_rate")
    return out


def test_every_bad_input_is_quarantined_while_the_rest_lands(radar, store, tmp_path):
    bad = _bad_inputs(radar, tmp_path / "bad")
    good = _files(tmp_path / "good", radar, [1, 2])
    rep = _ingest(radar, [*good, *[p for p, _ in bad.values()], tmp_path / "absent.nc"], store, tmp_path)
    assert rep.committed and len(rep.written) == 2
    reasons = {Path(r["file"]).name: r["reason"] for r in rep.rejected}
    assert reasons["absent.nc"] == "does not exist"
    for case, (path, pattern) in bad.items():
        import re

        assert re.search(pattern, reasons[path.name]), (case, reasons[path.name])
        assert "\n" not in reasons[path.name]
    qdir = tmp_path / "quarantine" / radar.id
    quarantined = sorted(p.name for p in qdir.iterdir() if not p.name.endswith(".reason.txt"))
    assert len(quarantined) == len(bad)
    note = next(qdir.glob("*truncated.nc.reason.txt")).read_text()
    assert "truncated.nc: cannot be read as NetCDF" in note
    for path, _ in bad.values():
        assert path.exists()  # quarantine copies; the feed's file is left alone


def test_cli_ingest_json_and_exit_codes(radar, env, tmp_path):
    runner = CliRunner()
    files = _files(tmp_path / "in", radar, range(3))
    res = runner.invoke(app, ["ingest", radar.id, str(tmp_path / "in"), "--available-at", "2026-07-15T12:30Z", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert set(doc) >= {"snapshot", "written", "late", "duplicates", "revisions", "rejected"}
    assert len(doc["written"]) == 3 and doc["available_at"] == "2026-07-15T12:30:00Z"
    garbage = tmp_path / "in2" / "garbage.nc"
    garbage.parent.mkdir()
    garbage.write_bytes(b"\0" * 64)
    res = runner.invoke(app, ["ingest", radar.id, str(files[0]), str(garbage), "--json"])
    assert res.exit_code == 2
    doc = json.loads(res.stdout)
    assert doc["duplicates"] and doc["rejected"][0]["file"] == str(garbage)
    res = runner.invoke(app, ["ingest", "nope", str(files[0]), "--json"])
    assert res.exit_code == 2 and "unknown dataset 'nope'" in json.loads(res.stdout)["error"]
    res = runner.invoke(app, ["ingest", radar.id, str(files[0]), "--available-at", "yesterday"])
    assert res.exit_code == 2 and "--available-at: 'yesterday' is not an ISO-8601 time" in res.stderr
    res = runner.invoke(app, ["store", "show", radar.id, "--json"])
    assert res.exit_code == 0
    show = json.loads(res.stdout)
    assert show["slots_filled"] == 3 and show["first"] == "2026-07-15T12:00:00Z"
    res = runner.invoke(app, ["store", "show", radar.id, "--as-of", "2026-07-15T12:00Z", "--json"])
    assert json.loads(res.stdout)["slots_filled"] == 0
    res = runner.invoke(app, ["store", "log", radar.id, "--json"])
    commits = json.loads(res.stdout)["commits"]
    assert commits[0]["kind"] == "ingest" and len(commits[0]["files"]) == 3


def test_catalog_that_moved_its_grid_is_refused(radar, store, tmp_path):
    _ingest(radar, _files(tmp_path / "in", radar, [0]), store, tmp_path)
    moved = radar.model_copy(update={"grid": radar.grid.model_copy(
        update={"x": radar.grid.x.model_copy(update={"start": radar.grid.x.start + 1000})})})
    with pytest.raises(StoreError, match="no longer matches the store it created \\(grid changed\\)"):
        _ingest(moved, _files(tmp_path / "in2", radar, [1]), store, tmp_path)


def test_reading_before_anything_was_ingested(radar, store, tmp_path):
    with pytest.raises(BadInputError, match="does not exist yet"):
        open_observations(radar.id, store=store)
    _ingest(radar, _files(tmp_path / "in", radar, [0]), store, tmp_path)
    with pytest.raises(BadInputError, match="dataset 'other' has no data"):
        open_observations("other", store=store)


def test_parallel_local_processes_equal_in_process(radar, tmp_path):
    files = _files(tmp_path / "in", radar, range(6))
    a = ObservationStore(tmp_path / "a")
    b = ObservationStore(tmp_path / "b")
    ingest(radar, files, store=a, available_at=T0, scheduler="sync")
    rep = ingest(radar, files, store=b, available_at=T0, scheduler=None, workers=2)
    assert len(rep.written) == 6
    xr.testing.assert_identical(open_observations(radar.id, store=a).drop_attrs(),
                                open_observations(radar.id, store=b).drop_attrs())


def test_real_ostia_file_from_iris_sample_data(tmp_path):
    import iris_sample_data

    from forecast.catalog import load_catalog
    from testkit import ROOT

    src = Path(iris_sample_data.__file__).parent / "sample_data" / "ostia_monthly.nc"
    cat = load_catalog(ROOT / "catalogs" / "ostia_sst.yaml")
    store = ObservationStore(tmp_path / "store")
    rep = ingest(cat, [src], store=store, scheduler="sync")
    assert rep.committed and not rep.rejected and len(rep.written) == 54
    assert rep.written[0] == "2006-04-01T00:00:00Z" and rep.written[-1] == "2010-09-01T00:00:00Z"
    ds = open_observations(cat.id, store=store)
    ref = xr.open_dataset(src)["surface_temperature"]
    np.testing.assert_array_equal(ds["surface_temperature"].values, ref.values.astype("float32"))
    assert ds["surface_temperature"].attrs["standard_name"] == "sea_surface_temperature"
    again = ingest(cat, [src], store=store, scheduler="sync")
    assert not again.committed and len(again.duplicates) == 54


def test_latency_declares_each_slot_available_at_its_time_plus_the_lag(radar, store, tmp_path):
    files = _files(tmp_path / "in", radar, range(4))
    rep = ingest(radar, files, store=store, latency=timedelta(minutes=2), scheduler="sync")
    assert rep.available_at == "slot time + 120 s"
    ds = open_observations(radar.id, store=store)
    got = ds[f"{P}_available_at"].values.astype("datetime64[s]")
    want = np.array([np.datetime64(_slot(i).replace(tzinfo=None), "s") + np.timedelta64(120, "s") for i in range(4)])
    np.testing.assert_array_equal(got, want)
    # as known one minute after slot 2's time: slots 0 and 1 had arrived, 2 and 3 not yet
    seen = open_observations(radar.id, store=store, as_of=_slot(2) + timedelta(minutes=1),
                             start=_slot(0), end=_slot(3))
    assert seen[f"{P}_revision"].values.tolist() == [0, 0, -1, -1]
    with pytest.raises(BadInputError, match="latency must not be negative"):
        ingest(radar, files, store=store, latency=timedelta(minutes=-1), scheduler="sync")


def test_cli_refuses_available_at_with_latency(radar, env, tmp_path):
    files = _files(tmp_path / "in", radar, range(1))
    res = CliRunner().invoke(app, ["ingest", radar.id, str(files[0]), "--latency", "2min",
                                   "--available-at", "2026-07-15T12:00Z", "--json"])
    assert res.exit_code == 2 and "not both" in json.loads(res.stdout)["error"]
    res = CliRunner().invoke(app, ["ingest", radar.id, str(files[0]), "--latency", "soon", "--json"])
    assert res.exit_code == 2 and "not a duration" in json.loads(res.stdout)["error"]
