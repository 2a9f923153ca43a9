"""Real CF files that registry packages ship (iris-sample-data, eofs): a variable on a single pressure
level, a file without a units attribute, a model calendar, a variable with no climatological record."""

from __future__ import annotations

import importlib.util
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from forecast.catalog import parse_catalog
from forecast.errors import CatalogError
from forecast.ingest import ingest
from forecast.stores import ObservationStore, open_observations


def _data(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.origin, f"the test dependency {package} is not installed"
    return Path(spec.origin).parent.joinpath(*parts)


HGT = _data("eofs", "examples", "example_data", "hgt_djf.nc")  # z(time, pressure=1, latitude, longitude), no units
A1B = _data("iris_sample_data", "sample_data", "A1B_north_america.nc")  # 360_day calendar
WIND = _data("iris_sample_data", "sample_data", "vlstr_type.nc")  # wind(time, lat=1, lon=1) in m s-1


def _hgt_catalog(**variable) -> dict:
    return {
        "id": "hgt500", "title": "DJF mean 500 hPa geopotential height", "source": "eofs example data",
        "licence": "public domain (NCEP/NCAR reanalysis)",
        "grid": {"crs": "EPSG:4326",
                 "x": {"start": -80.0, "step": 2.5, "size": 49, "units": "degrees_east", "source_names": ["longitude"]},
                 "y": {"start": 20.0, "step": 2.5, "size": 29, "units": "degrees_north", "source_names": ["latitude"]}},
        "time": {"start": "1948-01-01T00:00:00Z", "step": "12month", "placement": "period", "block": 64},
        "variables": {"geopotential_height": {
            "standard_name": "geopotential_height", "units": "m", "source_names": ["z"],
            "physical_range": [-1000, 20000], **variable}},
    }


def test_a_single_level_variable_without_units_is_ingested_where_the_catalog_assumes_its_units(tmp_path):
    # the catalog omits the climatological record: nobody keeps records of DJF mean heights
    cat = parse_catalog(_hgt_catalog(assume_units={"z": "m"}), "hgt500.yaml")
    assert cat.variables["geopotential_height"].record_max is None
    store = ObservationStore(tmp_path / "obs.icechunk")
    rep = ingest(cat, [HGT], store=store, quarantine_dir=tmp_path / "q", scheduler="sync")
    assert rep.rejected == [] and len(rep.written) == 65
    ds = open_observations(cat, store=store)
    with xr.open_dataset(HGT) as src:
        expected = src["z"].isel(pressure=0).values.astype("float32")
    # the file runs south to north like the catalog: values land unchanged, level squeezed away
    np.testing.assert_array_equal(ds["geopotential_height"].values, expected)
    assert ds["geopotential_height"].attrs["units"] == "m"


def test_a_file_without_units_is_rejected_unless_the_catalog_assumes_them(tmp_path):
    cat = parse_catalog(_hgt_catalog(), "hgt500.yaml")
    rep = ingest(cat, [HGT], store=ObservationStore(tmp_path / "obs.icechunk"), quarantine_dir=tmp_path / "q",
                 scheduler="sync")
    (bad,) = rep.rejected
    assert "variable 'z' has no units attribute" in bad["reason"] and "assume_units" in bad["reason"]
    assert Path(rep.quarantine[0]).exists()


def test_assumed_units_must_be_convertible():
    with pytest.raises(CatalogError, match="cannot be converted to 'm'"):
        parse_catalog(_hgt_catalog(assume_units={"z": "K"}), "hgt500.yaml")


def test_a_model_calendar_is_refused_naming_the_calendar(tmp_path):
    with xr.open_dataset(A1B, decode_times=False) as ds:
        lat, lon = ds["latitude"].values, ds["longitude"].values
    doc = {
        "id": "a1b", "title": "HadCM3 A1B air temperature", "source": "iris sample data", "licence": "OGL",
        "grid": {"crs": "EPSG:4326",
                 "x": {"start": float(lon[0]), "step": float(lon[1] - lon[0]), "size": len(lon),
                       "units": "degrees_east", "source_names": ["longitude"]},
                 "y": {"start": float(lat[0]), "step": float(lat[1] - lat[0]), "size": len(lat),
                       "units": "degrees_north", "source_names": ["latitude"]}},
        "time": {"start": "1860-01-01T00:00:00Z", "step": "1month", "placement": "period"},
        "variables": {"air_temperature": {"standard_name": "air_temperature", "units": "K",
                                          "physical_range": [150, 350]}},
    }
    cat = parse_catalog(doc, "a1b.yaml")
    rep = ingest(cat, [A1B], store=ObservationStore(tmp_path / "obs.icechunk"), quarantine_dir=tmp_path / "q",
                 scheduler="sync")
    (bad,) = rep.rejected
    assert "is on the '360_day' calendar" in bad["reason"], bad["reason"]
    assert "units None" not in bad["reason"]


def test_wind_without_a_climatological_record(tmp_path):
    with xr.open_dataset(WIND) as ds:
        lat, lon = float(ds["lat"].values[0]), float(ds["lon"].values[0])
        times = ds["time"].values
        wind = ds["wind"].values[:, 0, 0]
    doc = {
        "id": "station_wind", "title": "wind at a point", "source": "iris sample data", "licence": "OGL",
        "grid": {"crs": "EPSG:4326",
                 "x": {"start": lon, "step": 1.0, "size": 1, "units": "degrees_east", "source_names": ["lon"]},
                 "y": {"start": lat, "step": 1.0, "size": 1, "units": "degrees_north", "source_names": ["lat"]}},
        "time": {"start": str(np.datetime64(times[0], "h")) + ":00:00Z", "step": "1h", "block": 256},
        "variables": {"wind_speed": {"standard_name": "wind_speed", "units": "m s-1", "source_names": ["wind"],
                                     "physical_range": [0, 120]}},
    }
    cat = parse_catalog(doc, "wind.yaml")
    assert cat.variables["wind_speed"].climatological_record is None
    store = ObservationStore(tmp_path / "obs.icechunk")
    rep = ingest(cat, [WIND], store=store, quarantine_dir=tmp_path / "q", scheduler="sync",
                 available_at=datetime(2026, 1, 1, tzinfo=timezone.utc))
    assert rep.rejected == [], rep.rejected
    ds = open_observations(cat, store=store)
    got = ds["wind_speed"].sel(time=times).values[:, 0, 0]
    np.testing.assert_allclose(got, wind.astype("float32"))
