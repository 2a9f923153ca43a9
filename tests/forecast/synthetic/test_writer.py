"""The files as written: CF-1.8 encoding (time, coordinates, CRS, units, fill value, chunks, filters)."""

from __future__ import annotations

from datetime import datetime, timezone

import netCDF4
import numpy as np
import pytest
import xarray as xr
from samplefiles import JULY, first_ok, make, shipped

from forecast.synthetic.generate import generate_sample


@pytest.fixture(scope="module")
def radar_all(tmp_path_factory):
    return make("radar_all", tmp_path_factory)


@pytest.fixture(scope="module")
def surface_all(tmp_path_factory):
    return make("surface_all", tmp_path_factory)


def test_cf_encoding_precipitation(radar_all):
    radar = shipped("radar_precip")
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


def test_complevel_zero_writes_uncompressed(tmp_path):
    surface = shipped("surface_obs")
    m = generate_sample(surface, start=JULY, hours=2, out=tmp_path, complevel=0)
    with netCDF4.Dataset(tmp_path / m["files"][0]) as ds:
        assert not ds["air_temperature"].filters()["zlib"]
        assert np.isfinite(ds["air_temperature"][:]).all()
